//! Many downloads at once (issue 4's memory target): a download whose network side is idle
//! holds no thread, so threads do not grow with the number of downloads.

use haul::demo::server::{Route, sample_bytes};

use crate::support::{Env, FAST_CONFIG, Server, wait_until};

/// Bytes every body sends before its connection goes quiet (kept open).
const PREFIX: u64 = 20_000;

/// The number of threads of process `pid`.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads line")
}

#[test]
fn downloads_waiting_on_the_network_hold_no_thread() {
    // More downloads than the worker may have threads: its async workers (one per core), the
    // blocking pool's cap (32) and a few of its own (main, store, signals).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let n = 64 + 2 * cores;
    let body = sample_bytes(90, 200_000);
    let paths: Vec<String> = (0..n).map(|i| format!("/quiet/f{i}.bin")).collect();
    let routes = paths
        .iter()
        .map(|p| (p.as_str(), Route::file(body.clone()).stall_after(PREFIX, 1)))
        .collect();
    let server = Server::start(routes);
    // Everything runs at once, and nothing times out while the test looks.
    let fast = FAST_CONFIG.replace("stall_timeout_secs = 5", "stall_timeout_secs = 300");
    let env = Env::with_config(&format!(
        "max_concurrent = {n}\nper_host_limit = {n}\n{fast}"
    ));
    for path in &paths {
        env.add(&[&server.url(path)], &[]);
    }

    let mut worker = env.spawn_worker("w", &[]);
    let parts: Vec<_> = (0..n)
        .map(|i| env.out.join(format!("f{i}.bin.part")))
        .collect();
    wait_until("every download wrote what it received", || {
        parts
            .iter()
            .all(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == PREFIX))
    });
    let held = threads(worker.id());
    assert!(
        held < n,
        "{held} threads for {n} downloads waiting on the network"
    );
    assert!(worker.try_wait().unwrap().is_none(), "{}", env.log("w"));
}
