//! Hostile servers (RELIABILITY rows 9, 11, 17, 18, 19, 21): bodies shorter or longer than
//! announced, `206` answers that must not be appended, control bytes in the status line and
//! headers, a 1 PiB `Content-Length`, a close-delimited body, a self-signed certificate.

use haul::demo::server::{RangeMode, Route, sample_bytes};

use crate::faults_checks::{assert_fenced_events, assert_integrity};
use crate::support::evil::{Answer, Evil, SelfSignedTls, honest, range_start, raw, raw_bytes};
use crate::support::{Env, Server, sha256};

const ETAG: &str = "\"v1\"";

fn body(len: usize) -> Vec<u8> {
    sample_bytes(900 + len as u64, len).to_vec()
}

fn error_of(env: &Env, task: i64) -> String {
    env.query_string(&format!(
        "SELECT error_message FROM tasks WHERE id = {task}"
    ))
}

/// No C0/C1 control, DEL or bidi character in `s`.
fn assert_printable(what: &str, s: &str) {
    assert!(
        !s.chars().any(haul::text::is_unsafe_char),
        "{what} holds a raw control character: {s:?}"
    );
}

/// Every text haul stored from the server or shows: names, paths, validators, errors, events.
fn assert_db_printable(env: &Env) {
    let conn = env.db();
    for sql in [
        "SELECT COALESCE(error_message, '') || name FROM tasks",
        "SELECT name || COALESCE(dest_path, '') || COALESCE(etag, '') || \
         COALESCE(last_modified, '') FROM files",
        "SELECT message FROM task_events",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        for text in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            assert_printable(sql, &text.unwrap());
        }
    }
}

#[test]
fn a_body_shorter_than_its_content_length_is_retried_and_resumed_never_kept_short() {
    let data = body(100_000);
    let full = data.clone();
    let evil = Evil::start(move |n, head| {
        if n == 0 {
            // Announces everything, sends 40 %, closes.
            let cl = format!("Content-Length: {}", full.len());
            let tag = format!("ETag: {ETAG}");
            Answer::Close(raw("HTTP/1.1 200 OK", &[&cl, &tag], &full[..40_000]))
        } else {
            honest(head, &full, ETAG)
        }
    });
    let env = Env::new();
    let task = env.add(&[&evil.url("/short.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    assert_eq!(env.file("short.bin"), data);
    let heads = evil.heads();
    assert_eq!(heads.len(), 2, "{heads:?}");
    let resumed_at = range_start(&heads[1]).expect("the retry resumes with Range");
    assert!(resumed_at > 0 && resumed_at <= 40_000, "{resumed_at}");
    assert!(
        heads[1].to_ascii_lowercase().contains("if-range: \"v1\""),
        "{}",
        heads[1]
    );
    let events = env.events(task);
    assert!(events.iter().any(|(k, _, _)| k == "retry"), "{events:?}");
}

#[test]
fn a_body_that_always_ends_early_fails_the_task_without_a_final_file() {
    let evil = Evil::start(|_, _| {
        Answer::Close(raw(
            "HTTP/1.1 200 OK",
            &["Content-Length: 1000"],
            &[7u8; 400],
        ))
    });
    let env = Env::new();
    let task = env.add(&[&evil.url("/cut.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "failed");
    let error = error_of(&env, task);
    assert!(error.contains("gave up after 4 tries"), "{error}");
    assert_eq!(evil.heads().len(), 4, "bounded retries");
    assert!(
        !env.out.join("cut.bin").exists(),
        "a short body never becomes a finished file"
    );
    let part = std::fs::metadata(env.out.join("cut.bin.part"))
        .unwrap()
        .len();
    assert!(part <= 400, "{part}");
}

#[test]
fn bytes_past_the_announced_length_are_never_written() {
    // A 200 whose body runs 10 bytes past its Content-Length: HTTP framing ends the message
    // at the announced length; the rest is not part of the file.
    let evil = Evil::start(|_, _| {
        Answer::Close(raw(
            "HTTP/1.1 200 OK",
            &["Content-Length: 10", "Connection: close"],
            b"0123456789EXTRABYTES",
        ))
    });
    let env = Env::new();
    let task = env.add(&[&evil.url("/long.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    assert_eq!(env.file("long.bin"), b"0123456789");

    // A 206 whose Content-Range says the file ends sooner than the bytes it sends: an error,
    // not a longer file, and the resume after it is exact.
    let data = body(50_000);
    let full = data.clone();
    let evil = Evil::start(move |n, head| {
        let tag = format!("ETag: {ETAG}");
        match n {
            0 => {
                let cl = format!("Content-Length: {}", full.len());
                Answer::Close(raw("HTTP/1.1 200 OK", &[&cl, &tag], &full[..20_000]))
            }
            1 => {
                let start = range_start(head).unwrap_or(0) as usize;
                let mut rest = full[start..].to_vec();
                rest.extend_from_slice(&[0xEE; 30_000]);
                let cr = format!(
                    "Content-Range: bytes {start}-{}/{}",
                    full.len() - 1,
                    full.len()
                );
                let cl = format!("Content-Length: {}", rest.len());
                Answer::Close(raw(
                    "HTTP/1.1 206 Partial Content",
                    &[&cl, &cr, &tag],
                    &rest,
                ))
            }
            _ => honest(head, &full, ETAG),
        }
    });
    let task = env.add(&[&evil.url("/overlong.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    assert_eq!(env.file("overlong.bin"), data, "no extra byte kept");
    let events = env.events(task);
    assert!(
        events
            .iter()
            .any(|(k, _, m)| k == "retry" && m.contains("more bytes than it announced")),
        "{events:?}"
    );
}

#[test]
fn a_206_without_content_range_is_never_appended() {
    let data = body(80_000);
    let full = data.clone();
    let evil = Evil::start(move |n, head| {
        let tag = format!("ETag: {ETAG}");
        match n {
            0 => {
                let cl = format!("Content-Length: {}", full.len());
                Answer::Close(raw("HTTP/1.1 200 OK", &[&cl, &tag], &full[..30_000]))
            }
            // The resume gets a 206 with no Content-Range, and bytes from the wrong place.
            1 => {
                let cl = format!("Content-Length: {}", full.len());
                Answer::Close(raw("HTTP/1.1 206 Partial Content", &[&cl, &tag], &full))
            }
            _ => honest(head, &full, ETAG),
        }
    });
    let env = Env::new();
    let task = env.add(&[&evil.url("/nocr.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    let file = env.file("nocr.bin");
    assert_eq!(file.len(), data.len(), "never appended blindly");
    assert_eq!(file, data);
    let events = env.events(task);
    assert!(
        events
            .iter()
            .any(|(k, _, m)| k == "restart_from_zero"
                && m.contains("without a usable Content-Range")),
        "{events:?}"
    );
    let heads = evil.heads();
    assert_eq!(
        range_start(&heads[2]),
        None,
        "restarted from zero: {heads:?}"
    );
}

#[test]
fn a_206_at_the_wrong_start_or_the_whole_file_as_206_restarts_from_zero() {
    for (mode, reason) in [
        (RangeMode::WrongStart, "range starting at"),
        (RangeMode::WholeAs206, "whole file as 206"),
    ] {
        let len = 400_000;
        let data = sample_bytes(31, len);
        let server = Server::start(vec![(
            "/r.bin",
            Route::file(data.clone())
                .ranges(mode)
                .drop_after(150_000, 1),
        )]);
        let env = Env::new();
        let task = env.add(&[&server.url("/r.bin")], &[]);
        env.run_until_idle();
        assert_eq!(env.status(task), "completed", "{mode:?}");
        let file = env.file("r.bin");
        assert_eq!(
            file.len(),
            len,
            "{mode:?}: never appended to the partial file"
        );
        assert_eq!(sha256(&file), sha256(&data), "{mode:?}");
        let events = env.events(task);
        assert!(
            events
                .iter()
                .any(|(k, _, m)| k == "restart_from_zero" && m.contains(reason)),
            "{mode:?}: {events:?}"
        );
        assert_fenced_events(&env);
    }
}

#[test]
fn control_bytes_in_the_status_line_and_headers_never_reach_the_database_or_the_screen() {
    let data = body(5_000);
    let full = data.clone();
    let evil = Evil::start(move |n, _| {
        match n {
        // An error status with escape sequences in its reason phrase.
        0 => Answer::Close(raw_bytes(
            b"HTTP/1.1 503 \x1b[2J\x1b]0;pwn\x07 \xc2\x9b31m\r\nContent-Length: 0\r\nRetry-After: 0\r\n\r\n",
            b"",
        )),
        // A good body whose headers carry control bytes in the validators and the name.
        _ => {
            let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
            head.extend_from_slice(format!("Content-Length: {}\r\n", full.len()).as_bytes());
            head.extend_from_slice(b"ETag: \"a\x1b[31mb\"\r\n");
            head.extend_from_slice(b"Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\x07\r\n");
            head.extend_from_slice(
                b"Content-Disposition: attachment; filename*=UTF-8''%1B%5D0%3Bpwn%07%E2%80%AEfdp.exe\r\n",
            );
            head.extend_from_slice(b"X-Junk: \x1b[2J\x7f\r\n\r\n");
            Answer::Close(raw_bytes(&head, &full))
        }
    }
    });
    let env = Env::new();
    let task = env.add(&[&evil.url("/ctl.bin")], &[]);
    env.run_until_idle();
    // Whatever the HTTP library made of those bytes, haul ended in a final state...
    let status = env.status(task);
    assert!(status == "completed" || status == "failed", "{status}");
    // ...and stored or showed none of them raw.
    assert_db_printable(&env);
    for args in [
        vec!["list".to_owned()],
        vec!["list".to_owned(), "--json".to_owned()],
        vec!["status".to_owned(), task.to_string(), "--json".to_owned()],
        vec!["events".to_owned(), task.to_string()],
    ] {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = env.haul(&refs);
        assert!(out.status.success(), "{args:?}");
        assert_printable(
            &format!("{args:?}"),
            &String::from_utf8_lossy(&out.stdout).replace('\n', " "),
        );
    }
    for name in env.out_names() {
        assert_printable("file name", &name);
        assert!(!name.starts_with('.'), "{name}");
    }
    if status == "completed" {
        let names = env.out_names();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(std::fs::read(env.out.join(&names[0])).unwrap(), data);
    }
}

#[test]
fn a_1_pib_content_length_is_refused_before_anything_is_written() {
    const PIB: u64 = 1 << 50;
    let evil = Evil::start(|_, _| {
        let cl = format!("Content-Length: {PIB}");
        Answer::Hang(raw("HTTP/1.1 200 OK", &[&cl], b"0123456789"))
    });
    // Over max_file_size_bytes (default 1 TiB): refused, never retried.
    let env = Env::new();
    let task = env.add(&[&evil.url("/huge.iso")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "failed");
    let error = error_of(&env, task);
    assert!(
        error.contains(&format!("announced {PIB} bytes")) && error.contains("max_file_size_bytes"),
        "{error}"
    );
    assert_eq!(evil.heads().len(), 1, "a refusal is not retried");
    assert!(
        env.out_names().is_empty(),
        "nothing created: {:?}",
        env.out_names()
    );

    // Under a huge max_file_size_bytes: the free-space check refuses it, still before a file
    // exists (no preallocation, no partial file).
    let env = Env::with_config(&format!(
        "{}max_file_size_bytes = {}\n",
        "heartbeat_interval_ms = 100\n",
        u64::MAX / 2
    ));
    let task = env.add(&[&evil.url("/huge2.iso")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "failed");
    let error = error_of(&env, task);
    assert!(
        error.contains("disk full") && error.contains("needed"),
        "{error}"
    );
    assert!(env.out_names().is_empty(), "{:?}", env.out_names());
}

#[test]
fn a_close_delimited_body_of_unknown_length_completes() {
    let data = body(70_000);
    let full = data.clone();
    let evil = Evil::start(move |_, _| {
        Answer::Close(raw("HTTP/1.1 200 OK", &["Connection: close"], &full))
    });
    let env = Env::new();
    let task = env.add(&[&evil.url("/stream.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    assert_eq!(env.file("stream.bin"), data);
    assert_eq!(
        env.query_i64(&format!(
            "SELECT bytes_total FROM files WHERE task_id = {task}"
        )),
        data.len() as i64,
        "the size is recorded once known"
    );
    assert_integrity(&env);
}

#[test]
fn a_self_signed_certificate_is_refused_with_a_clear_message() {
    let tls = SelfSignedTls::start(b"secret payload");
    let env = Env::new();
    let task = env.add(&[&tls.url("/x.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "failed");
    let error = error_of(&env, task);
    assert!(
        error.contains("TLS certificate not trusted for 127.0.0.1"),
        "{error}"
    );
    assert_eq!(
        tls.requests(),
        0,
        "no request crossed an untrusted handshake"
    );
    assert_eq!(
        env.status_json(task)["retries"],
        0,
        "an untrusted certificate is not retried"
    );
    assert!(env.out_names().is_empty(), "{:?}", env.out_names());
}

#[test]
fn a_tls_handshake_that_never_finishes_fails_within_the_connect_timeout() {
    // Accepts TCP, then never answers the ClientHello (it waits for an HTTP head).
    let silent = Evil::start(|_, _| Answer::Hang(Vec::new()));
    let env = Env::with_config(
        "connect_timeout_secs = 1\nstall_timeout_secs = 60\n\
         [retry]\nmax_attempts = 2\nbase_delay_ms = 20\nmax_delay_ms = 50\n",
    );
    let url = silent.url("/x.bin").replacen("http://", "https://", 1);
    let task = env.add(&[&url], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "failed");
    let error = error_of(&env, task);
    assert!(
        error.contains("connection to 127.0.0.1 failed") && error.contains("connect timed out"),
        "the handshake counts as connecting, not as waiting for a response: {error}"
    );
}

#[test]
fn a_changed_remote_file_without_a_strong_validator_restarts_whole_never_mixed() {
    use haul::demo::server::EtagMode;
    for (etag, last_modified) in [(EtagMode::Weak, false), (EtagMode::None, false)] {
        let len = 500_000;
        let data = sample_bytes(33, len);
        let server = Server::start(vec![(
            "/m.bin",
            Route::file(data.clone())
                .etag(etag)
                .last_modified(last_modified)
                .drop_after(200_000, 1)
                .mutate_after(1),
        )]);
        let env = Env::new();
        let task = env.add(&[&server.url("/m.bin")], &[]);
        env.run_until_idle();
        assert_eq!(env.status(task), "completed", "{etag:?}");
        let now = server.server.current_body("/m.bin").unwrap();
        assert_eq!(
            sha256(&env.file("m.bin")),
            sha256(&now),
            "{etag:?}: all new bytes"
        );
        let requests = server.server.requests();
        assert!(
            requests.iter().all(|r| r.range.is_none()),
            "{etag:?}: no resume without a strong validator: {requests:?}"
        );
        let events = env.events(task);
        assert!(
            events
                .iter()
                .any(|(k, _, m)| k == "restart_from_zero" && m.contains("no strong validator")),
            "{etag:?}: {events:?}"
        );
    }
}

#[test]
fn a_silent_server_and_a_stalled_body_time_out_and_are_retried() {
    let data = body(60_000);
    let full = data.clone();
    let evil = Evil::start(move |n, head| match n {
        // Accepts, reads the request, never answers.
        0 => Answer::Hang(Vec::new()),
        // Answers, sends a third of the body, then goes silent with the connection open.
        1 => {
            let cl = format!("Content-Length: {}", full.len());
            let tag = format!("ETag: {ETAG}");
            Answer::Hang(raw("HTTP/1.1 200 OK", &[&cl, &tag], &full[..20_000]))
        }
        _ => honest(head, &full, ETAG),
    });
    let env = Env::with_config(
        "heartbeat_interval_ms = 100\nstall_timeout_secs = 1\n\
         [retry]\nmax_attempts = 4\nbase_delay_ms = 20\nmax_delay_ms = 200\n",
    );
    let task = env.add(&[&evil.url("/quiet.bin")], &[]);
    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    assert_eq!(env.file("quiet.bin"), data);
    let retries: Vec<String> = env
        .events(task)
        .into_iter()
        .filter(|(k, _, _)| k == "retry")
        .map(|(_, _, m)| m)
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(
        retries[0].contains("no response from 127.0.0.1 within 1 s"),
        "{retries:?}"
    );
    assert!(retries[1].contains("stalled"), "{retries:?}");
    let heads = evil.heads();
    assert!(
        range_start(&heads[2]).is_some_and(|s| s > 0),
        "resumed: {heads:?}"
    );
}
