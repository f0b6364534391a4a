//! The crash loop (RELIABILITY rows 1, 2 and 28): `haul run` killed with SIGKILL at random
//! moments and at exact steps (a chunk written but not synced, a checkpoint synced but not
//! committed, before the rename, between the rename and the commit), restarted each time. Then
//! every file must be whole and right, and the database intact.
//!
//! `HAUL_CRASH_ROUNDS=N` sets the number of kills (default 10, for CI); `HAUL_CRASH_SEED=S`
//! replays a run (the seed is printed at the start).

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use bytes::Bytes;
use haul::demo::server::{Route, sample_bytes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::faults_checks::{
    assert_durable_not_ahead, assert_fenced_events, assert_integrity,
    assert_no_running_without_live_owner, stray_files,
};
use crate::support::{Env, Server, sha256, wait_exit};

/// Files of one batch (one many-file task) and their sizes.
const FILES_PER_BATCH: usize = 8;
/// Single-file tasks added with each batch, so several tasks write at once.
const SINGLES_PER_BATCH: usize = 2;
const KILL_POINTS: [&str; 4] = ["write", "synced", "before_rename", "renamed"];

/// One batch: a many-file task into its own directory plus single-file tasks beside it.
struct Batch {
    dir: String,
    /// `(file name, expected sha256)`.
    files: Vec<(String, String)>,
}

fn signal_of(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

fn unfinished(env: &Env) -> i64 {
    env.query_i64("SELECT COUNT(*) FROM tasks WHERE status NOT IN ('completed')")
}

#[test]
fn kill_9_at_random_points_and_exact_steps_loses_nothing() {
    let kills_wanted: usize = std::env::var("HAUL_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("HAUL_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    eprintln!("crash loop: {kills_wanted} kills, HAUL_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    // Bodies shared by every batch (Bytes clones are cheap): small to mid-size files.
    let bodies: Vec<Bytes> = (0..FILES_PER_BATCH + SINGLES_PER_BATCH)
        .map(|i| sample_bytes(500 + i as u64, 96 * 1024 + i * 61_337))
        .collect();
    let max_batches = kills_wanted + 2;
    let mut routes = Vec::new();
    for b in 0..max_batches {
        for (i, body) in bodies.iter().enumerate() {
            let route = Route::file(body.clone()).throttle(3 << 20);
            routes.push((format!("/b{b}/f{i}.bin"), route));
        }
    }
    let routes: Vec<(&str, Route)> = routes
        .iter()
        .map(|(p, r)| (p.as_str(), r.clone()))
        .collect();
    let server = Server::start(routes);
    let env = Env::new();

    let mut batches: Vec<Batch> = Vec::new();
    let add_batch = |batches: &mut Vec<Batch>| {
        let b = batches.len();
        let dir = format!("b{b}");
        let dest = env.out.join(&dir);
        let list = env.dir.path().join(format!("urls-{b}.txt"));
        let lines: String = (0..FILES_PER_BATCH)
            .map(|i| {
                format!(
                    "{} {}\n",
                    server.url(&format!("/b{b}/f{i}.bin")),
                    sha256(&bodies[i])
                )
            })
            .collect();
        std::fs::write(&list, lines).unwrap();
        let dest_s = dest.to_string_lossy().into_owned();
        let list_s = list.to_string_lossy().into_owned();
        let out = env.haul(&["add", "--input", &list_s, "--dest", &dest_s]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for i in FILES_PER_BATCH..FILES_PER_BATCH + SINGLES_PER_BATCH {
            let url = server.url(&format!("/b{b}/f{i}.bin"));
            let out = env.haul(&["add", &url, "--dest", &dest_s]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let files = (0..FILES_PER_BATCH + SINGLES_PER_BATCH)
            .map(|i| (format!("f{i}.bin"), sha256(&bodies[i])))
            .collect();
        batches.push(Batch { dir, files });
    };
    add_batch(&mut batches);

    let started = Instant::now();
    let mut kills = 0usize;
    let mut by_point = std::collections::BTreeMap::<String, usize>::new();
    let mut rounds = 0usize;
    while kills < kills_wanted {
        rounds += 1;
        assert!(
            rounds <= kills_wanted * 4 + 10,
            "too many rounds without kills"
        );
        if unfinished(&env) == 0 {
            assert!(batches.len() < max_batches, "ran out of batches");
            add_batch(&mut batches);
        }
        let mode = rng.gen_range(0..KILL_POINTS.len() + 2);
        let (label, mut worker) = if mode < KILL_POINTS.len() {
            let point = KILL_POINTS[mode];
            let nth = match point {
                "write" => rng.gen_range(1..=120),
                "synced" => rng.gen_range(1..=12),
                _ => rng.gen_range(1..=4),
            };
            let mut cmd = env.cmd();
            cmd.arg("run")
                .arg("--exit-when-idle")
                .env("HAUL_TEST_KILL_AT", format!("{point}:{nth}"))
                .stdout(std::process::Stdio::null())
                .stderr(log_file(&env, rounds));
            (point.to_owned(), cmd.spawn().expect("spawn"))
        } else {
            let mut worker = env.spawn_worker(&format!("round-{rounds}"), &["--exit-when-idle"]);
            kill_after_random_progress(&env, &mut worker, &mut rng);
            ("sigkill".to_owned(), worker)
        };
        let status = wait_exit(&mut worker);
        if signal_of(status) == Some(9) {
            kills += 1;
            *by_point.entry(label).or_default() += 1;
        } else {
            assert!(
                status.success(),
                "round {rounds}: worker failed: {status:?}\n{}",
                env.log(&format!("round-{rounds}"))
            );
        }
        assert_integrity(&env);
        assert_durable_not_ahead(&env);
        assert_no_running_without_live_owner(&env, 0);
    }
    eprintln!(
        "crash loop: {kills} kills in {rounds} rounds over {} batches in {:.1} s: {by_point:?}",
        batches.len(),
        started.elapsed().as_secs_f64()
    );

    // Now let it finish, and check everything.
    env.run_until_idle();
    let not_done = env.query_i64("SELECT COUNT(*) FROM tasks WHERE status != 'completed'");
    assert_eq!(not_done, 0, "every task completed");
    let mut expected = std::collections::BTreeSet::new();
    for batch in &batches {
        for (name, sha) in &batch.files {
            let path = env.out.join(&batch.dir).join(name);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(&sha256(&bytes), sha, "{} is right", path.display());
            expected.insert(format!("out/{}/{name}", batch.dir));
        }
    }
    let present: std::collections::BTreeSet<String> =
        crate::faults_checks::all_files(env.dir.path())
            .into_iter()
            .filter(|f| f.starts_with("out/"))
            .collect();
    assert_eq!(
        present, expected,
        "exactly the downloads, no .part, no ` (1)` copies"
    );
    assert!(stray_files(&env).is_empty(), "{:?}", stray_files(&env));
    assert_integrity(&env);
    assert_fenced_events(&env);
    assert_no_running_without_live_owner(&env, 0);
    let recorded =
        env.query_i64("SELECT COUNT(*) FROM files WHERE done = 1 AND sha256 IS NOT NULL");
    assert_eq!(
        recorded as usize,
        batches.len() * FILES_PER_BATCH,
        "every checksummed file has its verified sha256 recorded"
    );
}

fn log_file(env: &Env, round: usize) -> std::fs::File {
    std::fs::File::create(env.dir.path().join(format!("round-{round}.log"))).expect("log")
}

/// SIGKILLs the worker once the durable bytes grew by a random amount, or after a random
/// time, whichever comes first (it may also have exited by itself: then nothing is killed).
fn kill_after_random_progress(env: &Env, worker: &mut Child, rng: &mut StdRng) {
    let before = env.durable_total();
    let grow = rng.gen_range(0..1_500_000i64);
    let limit = Duration::from_millis(rng.gen_range(20..1500));
    let start = Instant::now();
    loop {
        if worker.try_wait().expect("try_wait").is_some() {
            return;
        }
        let now = env.durable_total();
        if now - before >= grow || start.elapsed() >= limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = worker.kill();
}
