//! Broken files and bad input (RELIABILITY rows 8, 22, 23, 24, 25 and the input rows): configs
//! (fixtures in `tests/configs/invalid/`), URLs, destinations, a corrupt database, a database
//! locked by another process, a full database, a read-only database directory. Each gets a
//! one-line message naming the file, key or URL, an exit code, never a panic, and leaves the
//! existing data as it was.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use haul::demo::server::{Route, sample_bytes};

use crate::faults_checks::assert_integrity;
use crate::support::{Env, Server, sha256, signal, wait_exit, wait_until};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code `code`, exactly one line on stderr, no panic.
fn assert_one_line_error(what: &str, out: &Output, code: i32) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    err
}

fn file_digest(path: &Path) -> String {
    sha256(&std::fs::read(path).expect("read"))
}

#[test]
fn every_invalid_config_fixture_is_refused_with_its_file_key_and_exit_code_2() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/invalid");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 10, "{fixtures:?}");
    let env = Env::new();
    for fixture in fixtures {
        let text = std::fs::read_to_string(&fixture).expect("fixture");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{}: no `# expect:` line",
            fixture.display()
        );
        for command in [
            vec!["list"],
            vec!["add", "http://127.0.0.1:9/x.bin"],
            vec!["run"],
        ] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_haul"))
                .arg("--db")
                .arg(&env.db)
                .arg("--config")
                .arg(&fixture)
                .args(&command)
                .output()
                .expect("run haul");
            let what = format!("{} {command:?}", fixture.display());
            let err = assert_one_line_error(&what, &out, 2);
            assert!(
                err.contains(&*fixture.to_string_lossy()),
                "{what}: names the file: {err}"
            );
            for want in &expected {
                assert!(err.contains(want), "{what}: expected {want:?} in {err}");
            }
        }
        assert!(!env.db.exists(), "a bad config never creates the database");
    }
}

#[test]
fn extreme_but_valid_config_values_do_not_panic() {
    let env = Env::with_config("stale_after_secs = 9223372036854775807\nmax_redirects = 0\n");
    env.add(&["http://127.0.0.1:9/x.bin"], &[]);
    for args in [vec!["list"], vec!["status", "1", "--json"], vec!["recover"]] {
        let out = env.haul(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn bad_urls_and_destinations_are_refused_naming_them_and_nothing_is_queued() {
    let env = Env::new();
    for (url, words) in [
        ("ftp://example.org/x.iso", "unsupported scheme ftp"),
        ("file:///etc/passwd", "unsupported scheme file"),
        ("javascript:alert(1)", "unsupported scheme javascript"),
        ("http://", "invalid URL"),
        ("not a url", "invalid URL"),
        ("http://exa mple.org/x", "invalid URL"),
        ("http://[::1/x", "invalid URL"),
    ] {
        let out = env.haul(&["add", url]);
        let err = assert_one_line_error(url, &out, 2);
        assert!(err.contains(words), "{url}: {err}");
    }
    // A list file with one bad line: refused whole, naming the line.
    let list = env.dir.path().join("urls.txt");
    std::fs::write(&list, "http://127.0.0.1:9/a.bin\nftp://x/b.bin\n").unwrap();
    let out = env.haul(&["add", "--input", &list.to_string_lossy()]);
    let err = assert_one_line_error("input list", &out, 2);
    assert!(err.contains("ftp://x/b.bin"), "{err}");
    // Destinations that cannot be written (even by root: /proc takes no new files).
    for dest in ["/proc/haul-test-dest", "/proc/self/status/sub"] {
        let out = env.haul(&["add", "http://127.0.0.1:9/a.bin", "--dest", dest]);
        let err = assert_one_line_error(dest, &out, 1);
        assert!(err.contains(dest), "{dest}: names it: {err}");
    }
    let tasks = if env.db.exists() {
        env.query_i64("SELECT COUNT(*) FROM tasks")
    } else {
        0
    };
    assert_eq!(tasks, 0, "nothing was queued");
}

#[test]
fn a_corrupt_database_is_refused_and_left_exactly_as_it_was() {
    let env = Env::new();
    // Garbage over the whole header: not a database at all.
    let garbage: Vec<u8> = sample_bytes(77, 16 * 1024).to_vec();
    std::fs::write(&env.db, &garbage).unwrap();
    for args in [
        vec!["add", "http://127.0.0.1:9/a.bin"],
        vec!["list"],
        vec!["status", "1", "--json"],
        vec!["run", "--exit-when-idle"],
        vec!["recover"],
    ] {
        let out = env.haul(&args);
        let err = assert_one_line_error(&format!("{args:?}"), &out, 1);
        assert!(
            err.contains(&*env.db.to_string_lossy()) && err.contains("corrupt"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read(&env.db).unwrap(),
        garbage,
        "not a byte changed"
    );

    // A real database cut in half: whatever still reads is shown, the rest is a clear error.
    let env = Env::new();
    let server = Server::start(vec![]);
    let list = env.dir.path().join("urls.txt");
    let lines: String = (0..400)
        .map(|i| {
            format!(
                "{}\n",
                server.url(&format!("/file-with-a-long-name-{i:04}.bin"))
            )
        })
        .collect();
    std::fs::write(&list, lines).unwrap();
    let out = env.haul(&[
        "add",
        "--input",
        &list.to_string_lossy(),
        "--dest",
        &env.out.to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let len = std::fs::metadata(&env.db).unwrap().len();
    let checkpoint = rusqlite::Connection::open(&env.db).unwrap();
    checkpoint
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(checkpoint);
    let len = std::fs::metadata(&env.db).unwrap().len().max(len);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&env.db)
        .unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let before = file_digest(&env.db);
    for args in [
        vec!["list"],
        vec!["status", "1", "--json"],
        vec!["events", "1"],
    ] {
        let out = env.haul(&args);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if !out.status.success() {
            assert_one_line_error(&format!("{args:?}"), &out, 1);
            assert!(err.contains(&*env.db.to_string_lossy()), "{args:?}: {err}");
        }
    }
    assert_eq!(file_digest(&env.db), before, "readers changed nothing");
}

#[test]
fn a_database_locked_past_the_busy_timeout_gives_a_busy_error_and_downloads_go_on() {
    let body = sample_bytes(61, 3 << 20);
    let server = Server::start(vec![(
        "/slow.bin",
        Route::file(body.clone()).throttle(1 << 20),
    )]);
    let env = Env::new();
    let task = env.add(&[&server.url("/slow.bin")], &[]);
    let mut worker = env.cmd();
    worker
        .env("HAUL_TEST_BUSY_TIMEOUT_MS", "200")
        .args(["run", "--exit-when-idle"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(env.dir.path().join("w.log")).unwrap());
    let mut worker = worker.spawn().unwrap();
    wait_until("some progress", || env.durable(task) > 0);

    // Another process holds the write lock for much longer than the busy timeout.
    let holder = rusqlite::Connection::open(&env.db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let sent_at_lock = server.server.bytes_sent("/slow.bin");
    let locked_at = Instant::now();
    let out = env
        .cmd()
        .env("HAUL_TEST_BUSY_TIMEOUT_MS", "200")
        .args(["add", &server.url("/other.bin")])
        .output()
        .unwrap();
    let err = assert_one_line_error("add while locked", &out, 1);
    assert!(
        err.contains("busy") && err.contains(&*env.db.to_string_lossy()),
        "{err}"
    );
    assert!(locked_at.elapsed() >= Duration::from_millis(200));
    // Readers are not blocked (WAL).
    let list = env.haul(&["list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    wait_until("the worker notices the busy database", || {
        env.log("w").contains("busy")
    });
    wait_until("the download goes on while the database is locked", || {
        server.server.bytes_sent("/slow.bin") > sent_at_lock + (512 << 10)
    });
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker is still running"
    );
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);

    let status = wait_exit(&mut worker);
    assert!(status.success(), "{}", env.log("w"));
    assert_eq!(env.status(task), "completed");
    assert_eq!(sha256(&env.file("slow.bin")), sha256(&body));
    assert_integrity(&env);
}

#[test]
fn a_full_database_is_reported_and_nothing_crashes_or_is_lost() {
    let bodies: Vec<_> = (0..3).map(|i| sample_bytes(70 + i, 300_000)).collect();
    let routes: Vec<(String, Route)> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            (
                format!("/f{i}.bin"),
                Route::file(b.clone()).throttle(1 << 20),
            )
        })
        .collect();
    let server = Server::start(
        routes
            .iter()
            .map(|(p, r)| (p.as_str(), r.clone()))
            .collect(),
    );
    let env = Env::new();
    for i in 0..3 {
        env.add(&[&server.url(&format!("/f{i}.bin"))], &[]);
    }
    // Work whose claims, errors and events need more room than is left: 404s.
    let list = env.dir.path().join("missing.txt");
    let lines: String = (0..60)
        .map(|i| format!("{}\n", server.url(&format!("/missing-{i}.bin"))))
        .collect();
    std::fs::write(&list, lines).unwrap();
    let out_dir = env.out.to_string_lossy().into_owned();
    for line in std::fs::read_to_string(&list).unwrap().lines() {
        let out = env.haul(&["add", line, "--dest", &out_dir]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let tasks = env.query_i64("SELECT COUNT(*) FROM tasks");
    // From now on the database may not grow by a single page.
    let pages = env.query_i64("PRAGMA page_count");
    let huge_url = server.url(&format!("/{}.bin", "x".repeat(20_000)));
    let out = env
        .cmd()
        .env("HAUL_TEST_MAX_PAGE_COUNT", pages.to_string())
        .args(["add", &huge_url, "--dest", &out_dir])
        .output()
        .unwrap();
    let err = assert_one_line_error("add to a full database", &out, 1);
    assert!(
        err.contains("is full") && err.contains(&*env.db.to_string_lossy()),
        "{err}"
    );
    assert_integrity(&env);
    assert_eq!(
        env.query_i64("SELECT COUNT(*) FROM tasks"),
        tasks,
        "no half-written task"
    );

    // A worker on the full database keeps running and says why it cannot record.
    let mut worker = env
        .cmd()
        .env("HAUL_TEST_MAX_PAGE_COUNT", pages.to_string())
        .args(["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(env.dir.path().join("full.log")).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !env.log("full").contains("is full") {
        assert!(
            start.elapsed() < crate::support::DEADLINE,
            "the worker never reported the full database: {}",
            env.log("full")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        worker.try_wait().unwrap().is_none(),
        "no crash: {}",
        env.log("full")
    );
    signal(&worker, "TERM");
    wait_exit(&mut worker);
    assert!(!env.log("full").contains("panicked"), "{}", env.log("full"));
    assert_integrity(&env);

    // Space again: everything completes.
    env.run_until_idle();
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(sha256(&env.file(&format!("f{i}.bin"))), sha256(body));
    }
    let unfinished =
        env.query_i64("SELECT COUNT(*) FROM tasks WHERE status NOT IN ('completed', 'failed')");
    assert_eq!(unfinished, 0, "every task reached its end");
    assert_integrity(&env);
}

#[test]
fn a_read_only_database_directory_is_refused_for_writes_with_a_clear_message() {
    // Root ignores directory permissions, so the commands run as `nobody` via setpriv.
    let is_root = rustix::process::geteuid().is_root();
    if is_root && !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: running as root without setpriv");
        return;
    }
    let env = Env::new();
    let task = env.add(&["http://127.0.0.1:9/a.bin"], &[]);
    assert_eq!(task, 1);
    // Make everything readable, then the directory read-only.
    let root = env.dir.path();
    for path in [root, &env.db, &env.config] {
        let mode = if path.is_dir() { 0o555 } else { 0o644 };
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let before = file_digest(&env.db);
    let run = |args: &[&str]| -> Output {
        let mut cmd = if is_root {
            let mut c = std::process::Command::new("/usr/bin/setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(env!("CARGO_BIN_EXE_haul"));
            c
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_haul"))
        };
        cmd.arg("--db")
            .arg(&env.db)
            .arg("--config")
            .arg(&env.config);
        cmd.env("HOME", "/nonexistent").args(args).output().unwrap()
    };
    for args in [
        vec!["add", "http://127.0.0.1:9/b.bin"],
        vec!["run", "--exit-when-idle"],
        vec!["cancel", "1"],
    ] {
        let out = run(&args);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(0), "{args:?} cannot write here");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(&*env.db.to_string_lossy()) || err.contains("read-only"),
            "{args:?}: {err}"
        );
    }
    std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_eq!(file_digest(&env.db), before, "the database is untouched");
    assert_eq!(env.status(task), "queued");
}

#[test]
fn every_write_transaction_in_the_store_is_immediate() {
    // RELIABILITY row 6: a deferred transaction that reads and then writes can fail with
    // SQLITE_BUSY_SNAPSHOT; every writer must start with BEGIN IMMEDIATE.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let at = format!("{}:{}", path.display(), n + 1);
                // The one read-only transaction (rows and heartbeats from one commit): it never
                // writes, so it never upgrades to a write lock.
                if path.ends_with("store/reads.rs")
                    && line == "const READ_SNAPSHOT: &str = \"BEGIN DEFERRED\";"
                {
                    continue;
                }
                assert!(
                    !line.contains(".transaction()"),
                    "{at}: deferred transaction"
                );
                assert!(!line.contains("BEGIN DEFERRED"), "{at}");
                if line.contains("transaction_with_behavior(") {
                    assert!(line.contains("Immediate"), "{at}: {line}");
                    checked += 1;
                }
                if line.contains("\"BEGIN") {
                    assert!(line.contains("IMMEDIATE"), "{at}: {line}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 2, "found the writers ({checked})");
}
