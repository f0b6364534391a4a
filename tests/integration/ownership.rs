//! Ownership: claims across processes, the sweep, stale tasks, collisions, force restart and
//! cancel from another process.

use haul::demo::server::{Route, sample_bytes};

use crate::support::{Env, Server, freeze, sha256, signal, wait_exit, wait_until};

#[test]
fn two_workers_on_one_database_run_fifty_tasks_exactly_once() {
    let bodies: Vec<_> = (0..50)
        .map(|i| sample_bytes(100 + i, 64 * 1024 + i as usize))
        .collect();
    let paths: Vec<String> = (0..50).map(|i| format!("/f{i:02}.bin")).collect();
    let server = Server::files(&paths, &bodies);
    let env = Env::with_config("heartbeat_interval_ms = 100\nmax_concurrent = 4\n");
    let tasks: Vec<i64> = paths
        .iter()
        .map(|p| env.add(&[&server.url(p)], &[]))
        .collect();

    let mut a = env.spawn_worker("a", &["--exit-when-idle"]);
    let mut b = env.spawn_worker("b", &["--exit-when-idle"]);
    assert!(wait_exit(&mut a).success(), "{}", env.log("a"));
    assert!(wait_exit(&mut b).success(), "{}", env.log("b"));

    for (task, body) in tasks.iter().zip(&bodies) {
        assert_eq!(env.status(*task), "completed");
        let claims = env
            .events(*task)
            .iter()
            .filter(|(k, _, _)| k == "claimed")
            .count();
        assert_eq!(claims, 1, "task {task} claimed once");
        assert_eq!(env.attempt(*task), 1);
        let name = format!("f{:02}.bin", task - 1);
        assert_eq!(sha256(&env.file(&name)), sha256(body));
    }
    let owners =
        env.query_i64("SELECT COUNT(DISTINCT instance_id) FROM task_events WHERE kind = 'claimed'");
    assert!(owners >= 1);
    assert_eq!(
        server.server.requests().len(),
        50,
        "every file fetched exactly once"
    );
}

#[test]
fn the_sweep_leaves_a_live_owner_alone_and_recovers_a_dead_one() {
    let body = sample_bytes(8, 4 << 20);
    let server = Server::start(vec![(
        "/slow.bin",
        Route::file(body.clone()).throttle(256 * 1024),
    )]);
    let env = Env::new();
    let task = env.add(&[&server.url("/slow.bin")], &[]);
    let mut worker = env.spawn_worker("w", &[]);
    wait_until("running", || env.status(task) == "running");

    let sweep = env.haul(&["recover"]);
    assert!(sweep.status.success());
    assert!(String::from_utf8_lossy(&sweep.stdout).contains("No orphaned running tasks"));
    assert_eq!(env.status(task), "running");
    assert_eq!(env.attempt(task), 1);

    worker.kill().unwrap();
    wait_exit(&mut worker);
    let dry = env.haul(&["recover", "--dry-run"]);
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(dry_out.contains("would recover task 1"), "{dry_out}");
    assert_eq!(env.status(task), "running", "a dry run changes nothing");
    let sweep = env.haul(&["recover"]);
    let out = String::from_utf8_lossy(&sweep.stdout);
    assert!(out.contains("Recovered 1 orphaned running tasks"), "{out}");
    assert_eq!(env.status(task), "interrupted");
    let error = env.query_string("SELECT error_message FROM tasks WHERE id = 1");
    assert_eq!(error, "Task interrupted by restart or crash");
}

#[test]
fn a_hung_owner_turns_stale_is_recovered_on_collision_and_then_writes_nothing() {
    let body = sample_bytes(9, 4 << 20);
    let server = Server::start(vec![(
        "/hang.bin",
        Route::file(body.clone()).throttle(1 << 20),
    )]);
    let env = Env::with_config("heartbeat_interval_ms = 100\nstale_after_secs = 1\n");
    let url = server.url("/hang.bin");
    let task = env.add(&[&url], &[]);
    let mut old = env.spawn_worker("old", &[]);
    wait_until("some progress", || env.durable(task) > 0);

    freeze(&old, &env.db);
    wait_until("stale", || env.status_json(task)["is_stale"] == true);
    let json = env.status_json(task);
    assert!(json["time_since_update_seconds"].as_u64().unwrap() >= 1);
    assert!(
        json["warning"].as_str().unwrap().contains("force restart"),
        "{json}"
    );

    // A new start for the same file collides with the stale task: it is recovered and reused.
    let again = env.add(&[&url], &[]);
    assert_eq!(again, task);
    assert_eq!(env.status(task), "queued");
    let events = env.events(task);
    assert!(
        events
            .iter()
            .any(|(k, _, m)| k == "recovered" && m.contains("stale")),
        "{events:?}"
    );

    signal(&old, "CONT");
    wait_until("old claim notices", || {
        env.log("old").contains("lease lost")
    });
    // The same process may claim the task again, as a new attempt; it finishes it.
    wait_until("completed", || env.status(task) == "completed");
    signal(&old, "TERM");
    wait_exit(&mut old);
    assert_eq!(sha256(&env.file("hang.bin")), sha256(&body));
    let events = env.events(task);
    let recovered = events
        .iter()
        .position(|(k, _, _)| k == "recovered")
        .expect("recovered");
    assert!(
        events[recovered + 1..]
            .iter()
            .all(|(_, attempt, _)| *attempt >= 2),
        "attempt 1 wrote nothing after losing its claim: {events:?}"
    );
}

#[test]
fn a_collision_with_a_live_task_exits_3_and_force_restart_takes_it_over() {
    let body = sample_bytes(11, 3 << 20);
    let server = Server::start(vec![(
        "/busy.bin",
        Route::file(body.clone()).throttle(1 << 20),
    )]);
    let env = Env::new();
    let url = server.url("/busy.bin");
    let task = env.add(&[&url], &[]);
    let mut worker = env.spawn_worker("w", &[]);
    wait_until("some progress", || env.durable(task) > 0);

    let out = env.out.to_string_lossy().into_owned();
    let collision = env.haul(&["add", &url, "--dest", &out]);
    assert_eq!(collision.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&collision.stderr);
    assert!(stderr.contains("Download already in progress"), "{stderr}");
    assert!(
        stderr.contains(&format!("haul restart {task} --force")),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1);

    let refused = env.haul(&["restart", &task.to_string()]);
    assert_eq!(refused.status.code(), Some(3));

    let forced = env.haul(&["restart", &task.to_string(), "--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_eq!(env.attempt(task), 2);
    wait_until("old claim stops", || env.log("w").contains("lease lost"));
    wait_until("completed", || env.status(task) == "completed");
    signal(&worker, "TERM");
    wait_exit(&mut worker);

    assert_eq!(sha256(&env.file("busy.bin")), sha256(&body));
    let events = env.events(task);
    let restarted = events
        .iter()
        .position(|(k, a, _)| k == "restarted" && *a == 2)
        .expect("restarted");
    let reclaimed = events
        .iter()
        .position(|(k, a, _)| k == "claimed" && *a == 3)
        .expect("claimed again");
    assert!(restarted < reclaimed, "{events:?}");
    assert!(
        events
            .iter()
            .all(|(k, a, _)| !(k == "completed" && *a == 1)),
        "the old attempt never completes"
    );
}

#[test]
fn cancel_from_another_process_stops_a_running_task_within_a_heartbeat() {
    let body = sample_bytes(12, 8 << 20);
    let server = Server::start(vec![("/long.bin", Route::file(body).throttle(512 * 1024))]);
    let env = Env::new();
    let task = env.add(&[&server.url("/long.bin")], &[]);
    let mut worker = env.spawn_worker("w", &[]);
    wait_until("some progress", || env.durable(task) > 0);

    let cancel = env.haul(&["cancel", &task.to_string()]);
    let out = String::from_utf8_lossy(&cancel.stdout);
    assert!(out.contains("cancel requested"), "{out}");
    wait_until("cancelled", || env.status(task) == "cancelled");
    let sent = server.server.bytes_sent("/long.bin");
    assert!(sent < 8 << 20, "stopped before the end");
    let events = env.events(task);
    let kinds: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    let requested = kinds
        .iter()
        .position(|k| *k == "cancel_requested")
        .expect("requested");
    let cancelled = kinds
        .iter()
        .position(|k| *k == "cancelled")
        .expect("cancelled");
    assert!(requested < cancelled, "{kinds:?}");
    assert!(
        env.out.join("long.bin.part").exists(),
        "the partial file is kept"
    );
    signal(&worker, "TERM");
    assert!(wait_exit(&mut worker).success());
}
