//! Per-project policy and notifications: thresholds, exclusive projects, webhook and command
//! hooks fired once per transition across instances, `stale`, `metrics`, `config check`.

use haul::demo::server::{Route, sample_bytes};

use crate::support::receiver::Receiver;
use crate::support::{Env, Server, freeze, signal, wait_exit, wait_until};

#[test]
fn every_transition_is_notified_once_while_two_instances_watch() {
    let body = sample_bytes(21, 3 << 20);
    let server = Server::start(vec![("/slow.bin", Route::file(body).throttle(1 << 20))]);
    let receiver = Receiver::start();
    let hook_log = tempfile::NamedTempFile::new().unwrap();
    let config = format!(
        "heartbeat_interval_ms = 100\nstale_after_secs = 1\n[notify]\nwebhook_url = \"{}\"\n\
         command = [\"sh\", \"-c\", \"cat >> {}\"]\non_completed = true\n",
        receiver.url,
        hook_log.path().display()
    );
    let env = Env::with_config(&config);
    let task = env.add(&[&server.url("/slow.bin")], &[]);
    let mut first = env.spawn_worker("first", &[]);
    wait_until("progress", || env.durable(task) > 0);
    freeze(&first, &env.db);
    let mut second = env.spawn_worker("second", &[]);
    let mut third = env.spawn_worker("third", &[]);
    wait_until("stale notification", || receiver.count("stale") >= 1);

    first.kill().unwrap();
    wait_exit(&mut first);
    wait_until("recovery notification", || {
        receiver.count("orphan_recovered") >= 1
    });
    let missing = env.add(&[&server.url("/missing.bin")], &[]);
    wait_until("completed", || {
        receiver.count("completed") >= 1 && receiver.count("failed") >= 1
    });
    for worker in [&mut second, &mut third] {
        signal(worker, "TERM");
        assert!(wait_exit(worker).success());
    }

    assert_eq!(receiver.count("stale"), 1, "{:?}", receiver.received());
    assert_eq!(receiver.count("orphan_recovered"), 1);
    assert_eq!(receiver.count("completed"), 1);
    assert_eq!(receiver.count("failed"), 1);
    let failed = receiver
        .received()
        .into_iter()
        .find(|v| v["event"] == "failed")
        .unwrap();
    assert_eq!(failed["task_id"], missing);
    assert!(
        failed["error"].as_str().unwrap().contains("404"),
        "{failed}"
    );
    for key in [
        "project",
        "status",
        "time_since_update_seconds",
        "owner",
        "timestamp",
    ] {
        assert!(failed.get(key).is_some(), "missing {key}: {failed}");
    }
    let stale = receiver
        .received()
        .into_iter()
        .find(|v| v["event"] == "stale")
        .unwrap();
    assert_eq!(stale["task_id"], task);
    assert!(stale["owner"]["pid"].as_u64().is_some(), "{stale}");

    let lines = std::fs::read_to_string(hook_log.path()).unwrap();
    let from_command: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(from_command.len(), 4, "{lines}");
    assert_eq!(
        from_command
            .iter()
            .filter(|v| v["event"] == "stale")
            .count(),
        1
    );
}

#[test]
fn a_dead_webhook_does_not_slow_downloads_and_its_failure_is_recorded() {
    let body = sample_bytes(22, 100_000);
    let server = Server::start(vec![("/a.bin", Route::file(body.clone()))]);
    let env = Env::with_config(
        "heartbeat_interval_ms = 100\n[notify]\nwebhook_url = \"http://127.0.0.1:9/hook\"\n\
         on_completed = true\nmax_attempts = 2\ntimeout_secs = 1\n",
    );
    let task = env.add(&[&server.url("/a.bin")], &[]);
    let mut worker = env.spawn_worker("w", &[]);
    wait_until("completed", || env.status(task) == "completed");
    assert_eq!(env.file("a.bin"), body.to_vec());
    let state = || {
        env.query_string(&format!(
            "SELECT state FROM notifications WHERE task_id = {task}"
        ))
    };
    wait_until("notification failed for good", || state() == "failed");
    let tries = env.query_i64(&format!(
        "SELECT tries FROM notifications WHERE task_id = {task}"
    ));
    assert_eq!(tries, 2);
    let error = env.query_string(&format!(
        "SELECT last_error FROM notifications WHERE task_id = {task}"
    ));
    assert!(error.contains("webhook"), "{error}");
    signal(&worker, "TERM");
    wait_exit(&mut worker);
    assert!(env.log("w").contains("failed for good"), "{}", env.log("w"));
}

#[test]
fn only_the_project_with_the_short_threshold_turns_stale() {
    let server = Server::start(vec![
        (
            "/fast.bin",
            Route::file(sample_bytes(23, 4 << 20)).throttle(256 * 1024),
        ),
        (
            "/slow.bin",
            Route::file(sample_bytes(24, 4 << 20)).throttle(256 * 1024),
        ),
    ]);
    let env = Env::with_config(
        "heartbeat_interval_ms = 100\nstale_after_secs = 300\n\
         [projects.quick]\nstale_after_secs = 1\n[projects.patient]\nstale_after_secs = 300\n",
    );
    let quick = env.add(&[&server.url("/fast.bin")], &["--project", "quick"]);
    let patient = env.add(&[&server.url("/slow.bin")], &["--project", "patient"]);
    let mut worker = env.spawn_worker("w", &[]);
    wait_until("both running", || {
        env.status(quick) == "running" && env.status(patient) == "running"
    });
    freeze(&worker, &env.db);
    wait_until("quick is stale", || {
        env.status_json(quick)["is_stale"] == true
    });
    assert_eq!(env.status_json(patient)["is_stale"], false);

    let stale = env.haul(&["stale", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&stale.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["task_id"], quick);
    assert_eq!(
        rows[0]["recover_command"],
        format!("haul restart {quick} --force")
    );
    let metrics = String::from_utf8(env.haul(&["metrics"]).stdout).unwrap();
    assert!(metrics.contains("haul_stale_tasks 1"), "{metrics}");
    assert!(
        metrics.contains("haul_tasks{project=\"quick\",status=\"running\"} 1"),
        "{metrics}"
    );

    signal(&worker, "CONT");
    signal(&worker, "TERM");
    wait_exit(&mut worker);
}

#[test]
fn an_exclusive_project_refuses_a_second_task_until_the_first_is_stale_or_forced() {
    let server = Server::start(vec![
        (
            "/one.bin",
            Route::file(sample_bytes(25, 8 << 20)).throttle(256 * 1024),
        ),
        ("/two.bin", Route::file(sample_bytes(26, 1000))),
        ("/three.bin", Route::file(sample_bytes(27, 1000))),
    ]);
    let env = Env::with_config(
        "heartbeat_interval_ms = 100\n[projects.ex]\nexclusive = true\nstale_after_secs = 1\n",
    );
    let one = env.add(&[&server.url("/one.bin")], &["--project", "ex"]);
    let mut worker = env.spawn_worker("w", &[]);
    wait_until("running", || env.status(one) == "running");

    let out = env.out.to_string_lossy().into_owned();
    let refused = env.haul(&[
        "add",
        &server.url("/two.bin"),
        "--project",
        "ex",
        "--dest",
        &out,
    ]);
    assert_eq!(refused.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("project ex") && stderr.contains("--force"),
        "{stderr}"
    );

    let forced = env.add(
        &[&server.url("/two.bin")],
        &["--project", "ex", "--force-restart"],
    );
    assert!(forced > one);
    assert_eq!(
        env.status(forced),
        "queued",
        "accepted, waiting for its turn"
    );
    wait_until("one runs again as attempt 3", || {
        env.status(one) == "running" && env.attempt(one) == 3
    });

    freeze(&worker, &env.db);
    wait_until("one is stale", || env.status_json(one)["is_stale"] == true);
    let third = env.add(&[&server.url("/three.bin")], &["--project", "ex"]);
    assert!(third > forced, "accepted once the first is stale");
    let events = env.events(one);
    assert!(
        events.iter().any(|(k, _, _)| k == "recovered"),
        "{events:?}"
    );
    signal(&worker, "CONT");
    signal(&worker, "TERM");
    wait_exit(&mut worker);
}

#[test]
fn config_check_names_a_bad_key_with_its_line_and_masks_header_values() {
    let env = Env::new();
    let bad = env.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "stale_after_secs = 60\n\n[projects.a]\nstale_afer_secs = 5\n",
    )
    .unwrap();
    let output = env.haul(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 4") && stderr.contains("stale_afer_secs"),
        "{stderr}"
    );

    let good = env.dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[projects.a]\n[projects.a.headers]\nX-Api-Token = \"tok-123\"\n",
    )
    .unwrap();
    let output = env.haul(&["config", "check", good.to_str().unwrap()]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("X-Api-Token = \"***\""), "{stdout}");
    assert!(!stdout.contains("tok-123"), "{stdout}");
}

#[test]
fn list_watch_streams_one_ndjson_line_per_change() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    let body = sample_bytes(28, 200_000);
    let server = Server::start(vec![("/w.bin", Route::file(body))]);
    let env = Env::new();
    let first = env.add(&[&server.url("/w.bin")], &["--project", "watched"]);
    let mut watcher = env
        .cmd()
        .args(["list", "--json", "--watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || -> serde_json::Value {
        let line = lines
            .recv_timeout(crate::support::DEADLINE)
            .expect("an NDJSON line");
        serde_json::from_str(&line).expect("one JSON document per line")
    };
    let queued = next();
    assert_eq!(queued["task_id"], first);
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["project"], "watched");

    env.run_until_idle();
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("completed") {
        let row = next();
        assert_eq!(row["task_id"], first);
        statuses.push(row["status"].as_str().unwrap().to_owned());
    }
    assert!(
        statuses.len() <= 3,
        "one line per change, not per poll: {statuses:?}"
    );
    watcher.kill().unwrap();
    wait_exit(&mut watcher);
}
