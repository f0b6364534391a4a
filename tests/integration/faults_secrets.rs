//! Secrets (RELIABILITY rows 16 and 20): credentials in URLs and `?token=` values never appear
//! in logs, error messages, events or JSON; no Referer, Authorization or project header
//! reaches another host on a redirect; https is never downgraded.

use haul::demo::server::{Route, sample_bytes};

use crate::support::evil::{Evil, honest};
use crate::support::{Env, Server};

const SECRETS: [&str; 4] = [
    "hunter2",
    "s3cr3t-token",
    "Bearer-proj-secret",
    "x-api-t0ken",
];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} leaks {secret:?}:\n{text}");
    }
}

/// Every output an operator or a log collector sees, for every task.
fn all_outputs(env: &Env, tasks: &[i64]) -> Vec<(String, String)> {
    let mut outputs = Vec::new();
    let mut commands = vec![
        vec!["list".to_owned()],
        vec!["list".to_owned(), "--json".to_owned()],
        vec!["tasks".to_owned(), "--json".to_owned()],
    ];
    for task in tasks {
        commands.push(vec!["status".into(), task.to_string()]);
        commands.push(vec!["status".into(), task.to_string(), "--json".into()]);
        commands.push(vec!["events".into(), task.to_string()]);
    }
    for args in commands {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = env.haul(&refs);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push((args.join(" "), text));
    }
    let conn = env.db();
    for sql in [
        "SELECT COALESCE(error_message, '') FROM tasks",
        "SELECT message FROM task_events",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        for text in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            outputs.push((sql.to_owned(), text.unwrap()));
        }
    }
    outputs
}

#[test]
fn credentials_and_tokens_in_urls_never_reach_logs_errors_events_or_json() {
    let server = Server::start(vec![("/ok.bin", Route::file(sample_bytes(41, 20_000)))]);
    let env = Env::new();
    let port = server.server.addr().port();
    // A task that works, one that 404s, one whose host refuses connections: each with
    // userinfo and a token in the query.
    let ok = format!("http://bob:hunter2@127.0.0.1:{port}/ok.bin?token=s3cr3t-token");
    let missing = format!("http://bob:hunter2@127.0.0.1:{port}/nope.bin?token=s3cr3t-token");
    let refused = "http://bob:hunter2@127.0.0.1:1/x.bin?token=s3cr3t-token&a=1".to_owned();
    let tasks: Vec<i64> = [&ok, &missing, &refused]
        .iter()
        .map(|u| env.add(&[u.as_str()], &[]))
        .collect();
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "-vv"]);
    assert!(crate::support::wait_exit(&mut worker).success());
    assert_eq!(env.status(tasks[0]), "completed");
    assert_eq!(env.status(tasks[1]), "failed");
    assert_eq!(env.status(tasks[2]), "failed");
    assert_no_secret("worker log (-vv)", &env.log("w"));
    for (what, text) in all_outputs(&env, &tasks) {
        assert_no_secret(&what, &text);
    }
    // The errors still say what failed, and where.
    let error = env.query_string(&format!(
        "SELECT error_message FROM tasks WHERE id = {}",
        tasks[2]
    ));
    assert!(error.contains("127.0.0.1"), "{error}");
    // An invalid URL with a secret is refused without echoing it.
    let out = env.haul(&["add", "ftp://bob:hunter2@example.org/x?token=s3cr3t-token"]);
    assert_eq!(out.status.code(), Some(2));
    assert_no_secret("add error", &String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_redirect_to_another_host_carries_no_referer_authorization_or_project_header() {
    let data = sample_bytes(42, 30_000).to_vec();
    let full = data.clone();
    let target = Evil::start(move |_, head| honest(head, &full, "\"t\""));
    let origin = Server::start(vec![(
        "/start.bin",
        Route::redirect(&target.url("/moved.bin")),
    )]);
    let env = Env::with_config(
        "heartbeat_interval_ms = 100\n[projects.p.headers]\n\
         Authorization = \"Bearer-proj-secret\"\nX-Api-Token = \"x-api-t0ken\"\n",
    );
    let port = origin.server.addr().port();
    let url = format!("http://bob:hunter2@127.0.0.1:{port}/start.bin");
    let task = env.add(&[&url], &["--project", "p"]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    assert_eq!(env.file("start.bin"), data);

    // The origin got the credentials (so the test can fail)...
    let first = &origin.server.requests()[0];
    assert!(first.authorization.is_some(), "{first:?}");
    // ...and the other host none of them.
    let heads = target.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    assert!(!head.contains("authorization"), "{head}");
    assert!(!head.contains("referer"), "{head}");
    assert!(!head.contains("x-api-token"), "{head}");
    assert_no_secret("redirect target request", &heads[0]);
}

#[test]
fn credentials_in_a_redirect_to_another_host_are_not_sent_there() {
    let data = sample_bytes(44, 5_000).to_vec();
    let full = data.clone();
    let target = Evil::start(move |_, head| honest(head, &full, "\"t\""));
    let moved = target
        .url("/moved.bin")
        .replacen("http://", "http://eve:planted@", 1);
    let origin = Server::start(vec![("/start.bin", Route::redirect(&moved))]);
    let env = Env::new();
    let task = env.add(&[&origin.url("/start.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    assert_eq!(env.file("start.bin"), data);
    let heads = target.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        !heads[0].to_ascii_lowercase().contains("authorization"),
        "{}",
        heads[0]
    );
}

#[test]
fn redirect_loops_long_chains_and_downgrades_are_refused_without_a_request_to_the_target() {
    let data = sample_bytes(43, 1000);
    let sink = Server::start(vec![("/file.bin", Route::file(data))]);
    let sink_url = sink.url("/file.bin");
    let file_target = "file:///etc/passwd".to_owned();
    let server = Server::start(vec![
        ("/a", Route::redirect("/b")),
        ("/b", Route::redirect("/a")),
        ("/c1", Route::redirect("/c2")),
        ("/c2", Route::redirect("/c3")),
        ("/c3", Route::redirect("/c4")),
        ("/c4", Route::redirect("/c5")),
        ("/c5", Route::redirect("/c6")),
        ("/c6", Route::redirect("/c7")),
        ("/c7", Route::redirect(&sink_url)),
        ("/f", Route::redirect(&file_target)),
    ]);
    let env = Env::new();
    let looped = env.add(&[&server.url("/a")], &[]);
    let chain = env.add(&[&server.url("/c1")], &[]);
    let to_file = env.add(&[&server.url("/f")], &[]);
    env.run_until_idle();
    for (task, words) in [
        (looped, "too many redirects"),
        (chain, "too many redirects"),
        (to_file, "unsupported scheme file"),
    ] {
        assert_eq!(env.status(task), "failed", "task {task}");
        let error = env.query_string(&format!(
            "SELECT error_message FROM tasks WHERE id = {task}"
        ));
        assert!(error.contains(words), "task {task}: {error}");
        assert!(error.contains("redirect refused"), "{error}");
        assert_eq!(env.status_json(task)["retries"], 0, "not retried");
    }
    assert!(
        sink.server.requests().is_empty(),
        "the refused target was never asked"
    );
    // At most max_redirects (5) hops were followed for the loop.
    let loop_hits = server
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/a" || r.path == "/b")
        .count();
    assert!(loop_hits <= 6, "{loop_hits}");
}
