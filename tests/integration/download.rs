//! Whole downloads: single and many-file tasks, checksums, permanent and retried HTTP errors.

use haul::demo::server::{Route, sample_bytes};

use crate::support::{Env, Server, sha256};

#[test]
fn one_file_and_a_many_file_task_complete_with_the_right_sha256() {
    let big = sample_bytes(1, 3 << 20);
    let smalls: Vec<_> = (0..4)
        .map(|i| sample_bytes(10 + i, 100 * 1024 + i as usize))
        .collect();
    let mut routes = vec![("/big.bin", Route::file(big.clone()))];
    let paths: Vec<String> = (0..4).map(|i| format!("/s{i}.bin")).collect();
    for (path, body) in paths.iter().zip(&smalls) {
        routes.push((path.as_str(), Route::file(body.clone())));
    }
    let server = Server::start(routes);
    let env = Env::new();
    let one = env.add(&[&server.url("/big.bin")], &["--sha256", &sha256(&big)]);
    let urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let many = env.add(&url_refs, &["--project", "pdfs"]);

    env.run_until_idle();

    assert_eq!(env.status(one), "completed");
    assert_eq!(env.status(many), "completed");
    assert_eq!(sha256(&env.file("big.bin")), sha256(&big));
    assert_eq!(
        env.query_string(&format!("SELECT sha256 FROM files WHERE task_id = {one}")),
        sha256(&big),
        "the verified checksum is recorded"
    );
    for (i, body) in smalls.iter().enumerate() {
        assert_eq!(sha256(&env.file(&format!("s{i}.bin"))), sha256(body));
    }
    assert!(
        env.out_names().iter().all(|n| !n.ends_with(".part")),
        "{:?}",
        env.out_names()
    );
    let json = env.status_json(many);
    assert_eq!(json["files_done"], 4);
    assert_eq!(json["bytes_done"], json["bytes_total"]);
}

#[test]
fn finished_files_of_a_task_are_not_fetched_again() {
    let a = sample_bytes(2, 200_000);
    let b = sample_bytes(3, 200_000);
    // The second file fails twice (more than max_attempts = 2), then works.
    let server = Server::start(vec![
        ("/a.bin", Route::file(a.clone())),
        (
            "/b.bin",
            Route::file(b.clone()).statuses(vec![(503, None), (503, None)]),
        ),
    ]);
    let env = Env::with_config(
        "heartbeat_interval_ms = 100\n[retry]\nmax_attempts = 2\nbase_delay_ms = 10\nmax_delay_ms = 50\n",
    );
    let task = env.add(&[&server.url("/a.bin"), &server.url("/b.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "failed");
    let error = env.query_string(&format!(
        "SELECT error_message FROM tasks WHERE id = {task}"
    ));
    assert!(error.contains("503"), "{error}");
    assert_eq!(env.file("a.bin"), a.to_vec(), "the first file is finished");
    let a_requests = server
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/a.bin")
        .count();

    let restart = env.haul(&["restart", &task.to_string()]);
    assert!(
        restart.status.success(),
        "{}",
        String::from_utf8_lossy(&restart.stderr)
    );
    env.run_until_idle();

    assert_eq!(env.status(task), "completed");
    assert_eq!(env.file("b.bin"), b.to_vec());
    let a_after = server
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/a.bin")
        .count();
    assert_eq!(
        a_after, a_requests,
        "a finished file must not be requested again"
    );
}

#[test]
fn a_404_fails_at_once_with_the_status_in_the_message() {
    let server = Server::start(vec![]);
    let env = Env::new();
    let task = env.add(&[&server.url("/missing.pdf")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "failed");
    let json = env.status_json(task);
    let error = json["error_message"].as_str().unwrap_or_default();
    assert!(error.contains("HTTP 404 Not Found"), "{error}");
    assert_eq!(server.server.requests().len(), 1, "a 404 is never retried");
    assert_eq!(json["retries"], 0);
}

#[test]
fn two_503s_then_200_succeeds_after_retries() {
    let body = sample_bytes(4, 50_000);
    let server = Server::start(vec![(
        "/flaky.bin",
        Route::file(body.clone()).statuses(vec![(503, Some(0)), (503, None)]),
    )]);
    let env = Env::new();
    let task = env.add(&[&server.url("/flaky.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    assert_eq!(env.file("flaky.bin"), body.to_vec());
    let statuses: Vec<u16> = server.server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
    assert_eq!(env.status_json(task)["retries"], 2);
    let kinds: Vec<String> = env.events(task).into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "retry").count(),
        2,
        "{kinds:?}"
    );
}

#[test]
fn bad_input_gets_a_one_line_error_and_an_exit_code() {
    let env = Env::new();
    let output = env.haul(&["add", "ftp://example.org/x"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unsupported scheme ftp"), "{stderr}");

    let output = env.haul(&["status", "999"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("task 999 not found"));

    let bad = env.dir.path().join("bad.toml");
    std::fs::write(&bad, "max_concurrent = 4\nmax_concurent = 3\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_haul"))
        .arg("--db")
        .arg(&env.db)
        .arg("--config")
        .arg(&bad)
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("max_concurent"),
        "{stderr}"
    );
}

#[test]
fn add_each_queues_one_task_per_url_in_one_go_and_all_of_them_complete() {
    let bodies: Vec<_> = (0..30)
        .map(|i| sample_bytes(40 + i, 4096 + i as usize))
        .collect();
    let paths: Vec<String> = (0..30).map(|i| format!("/e{i}.bin")).collect();
    let server = Server::files(&paths, &bodies);
    let env = Env::new();
    let list = env.dir.path().join("urls.txt");
    let mut text = String::from("# one task per line\n");
    for path in &paths {
        text.push_str(&server.url(path));
        text.push('\n');
    }
    // The same URL twice: the second line reuses the first line's task.
    text.push_str(&server.url(&paths[0]));
    text.push('\n');
    std::fs::write(&list, text).unwrap();

    let dest = env.out.to_string_lossy().into_owned();
    let list = list.to_string_lossy().into_owned();
    let out = env.haul(&["add", "--each", "--input", &list, "--dest", &dest, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = json["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 31);
    assert_eq!(tasks[30]["created"], false);
    assert_eq!(tasks[30]["task_id"], tasks[0]["task_id"]);
    assert_eq!(env.query_i64("SELECT COUNT(*) FROM tasks"), 30);
    assert_eq!(env.query_i64("SELECT MAX(files_total) FROM tasks"), 1);

    env.run_until_idle();
    assert_eq!(
        env.query_i64("SELECT COUNT(*) FROM tasks WHERE status = 'completed'"),
        30
    );
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(env.file(&format!("e{i}.bin")), body.to_vec());
    }
}

#[test]
fn add_each_with_one_bad_url_adds_nothing() {
    let env = Env::new();
    let list = env.dir.path().join("urls.txt");
    std::fs::write(
        &list,
        "http://127.0.0.1:9/a.bin\nftp://127.0.0.1/b.bin\nhttp://127.0.0.1:9/c.bin\n",
    )
    .unwrap();
    let (list, dest) = (list.to_string_lossy(), env.out.to_string_lossy());
    let out = env.haul(&["add", "--each", "--input", &list, "--dest", &dest]);
    assert_eq!(out.status.code(), Some(2), "a bad URL is a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("ftp://"), "{stderr}");
    assert_eq!(
        env.query_i64("SELECT COUNT(*) FROM tasks"),
        0,
        "all or nothing"
    );
}
