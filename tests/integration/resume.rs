//! Resuming: after a crash, when the server ignores Range, when the remote file changed.

use haul::demo::server::{RangeMode, Route, sample_bytes};

use crate::support::{Env, Server, sha256, wait_exit, wait_until};

#[test]
fn a_killed_worker_is_recovered_and_resumes_from_the_durable_offset() {
    let len = 8 << 20;
    let body = sample_bytes(5, len);
    let server = Server::start(vec![(
        "/big.bin",
        Route::file(body.clone()).throttle(4 << 20),
    )]);
    let env = Env::new();
    let task = env.add(&[&server.url("/big.bin")], &[]);

    let mut worker = env.spawn_worker("first", &[]);
    wait_until("2 MiB durable", || env.durable(task) >= 2 << 20);
    worker.kill().expect("SIGKILL");
    wait_exit(&mut worker);
    let durable = env.durable(task) as u64;
    assert_eq!(
        env.status(task),
        "running",
        "the dead owner's row still says running"
    );
    let part = env.out.join("big.bin.part");
    assert!(
        std::fs::metadata(&part).unwrap().len() >= durable,
        "durable offset never ahead of the file"
    );

    env.run_until_idle();

    assert_eq!(env.status(task), "completed");
    assert_eq!(sha256(&env.file("big.bin")), sha256(&body));
    let requests = server.server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let resume = &requests[1];
    assert_eq!(resume.status, 206);
    let range = resume.range.clone().unwrap_or_default();
    let offset: u64 = range
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(
        offset >= durable,
        "resumed at {offset}, durable was {durable}"
    );
    assert!(
        resume.if_range.is_some(),
        "resume must be conditional (If-Range)"
    );
    assert!(
        resume.body_bytes_sent < len as u64,
        "fewer bytes than a restart from zero"
    );
    let kinds: Vec<(String, i64, String)> = env.events(task);
    assert!(
        kinds
            .iter()
            .any(|(k, a, m)| k == "recovered" && *a == 1 && m.contains("owner died")),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|(k, a, _)| k == "claimed" && *a == 2),
        "{kinds:?}"
    );
    assert_eq!(
        env.query_i64(&format!("SELECT attempt FROM tasks WHERE id = {task}")),
        2
    );
}

#[test]
fn a_server_that_ignores_range_makes_the_file_restart_from_zero() {
    let len = 600_000;
    let body = sample_bytes(6, len);
    let server = Server::start(vec![(
        "/norange.bin",
        Route::file(body.clone())
            .ranges(RangeMode::Off)
            .drop_after(250_000, 1),
    )]);
    let env = Env::new();
    let task = env.add(&[&server.url("/norange.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    let file = env.file("norange.bin");
    assert_eq!(file.len(), len, "never appended to a partial file");
    assert_eq!(sha256(&file), sha256(&body));
    let events = env.events(task);
    assert!(
        events
            .iter()
            .any(|(k, _, m)| k == "restart_from_zero" && m.contains("200")),
        "the restart and its reason are recorded: {events:?}"
    );
}

#[test]
fn a_remote_file_that_changed_restarts_from_zero_never_a_mixed_file() {
    let len = 600_000;
    let body = sample_bytes(7, len);
    let server = Server::start(vec![(
        "/changing.bin",
        Route::file(body.clone())
            .drop_after(300_000, 1)
            .mutate_after(1),
    )]);
    let env = Env::new();
    let task = env.add(&[&server.url("/changing.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    let now_served = server.server.current_body("/changing.bin").unwrap();
    assert_ne!(now_served, body, "the content did change");
    assert_eq!(
        sha256(&env.file("changing.bin")),
        sha256(&now_served),
        "all new bytes, none old"
    );
    let requests = server.server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].range.is_some() && requests[1].if_range.is_some());
    assert_eq!(
        requests[1].status, 200,
        "If-Range with the old ETag gets the whole new file"
    );
    let events = env.events(task);
    assert!(
        events.iter().any(|(k, _, _)| k == "restart_from_zero"),
        "{events:?}"
    );
}
