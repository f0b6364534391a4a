//! `haul watch` never writes: run it while a worker writes, then prove from the database and
//! from the kernel's file table that it wrote nothing.

use std::path::{Path, PathBuf};

use haul::demo::server::{Route, sample_bytes};
use haul::instance::host_name;

use crate::support::{Env, Server, sha256, wait_exit};
use crate::tui_e2e::Tmux;

/// The bytes of the database and its WAL (absent files hash as empty).
fn fingerprint(db: &Path) -> (String, String) {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    (sha256(&read(db)), sha256(&read(&wal)))
}

/// `(path, flags)` of every file the process `pid` has open under `dir`.
fn open_files(pid: u32, dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .flatten()
    {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.starts_with(dir) {
            continue;
        }
        let fd = entry.file_name().to_string_lossy().into_owned();
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            .expect("fdinfo flags");
        files.push((target, flags));
    }
    files
}

fn data_version(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .expect("data_version")
}

#[test]
fn watch_follows_a_working_worker_and_never_writes() {
    let server = Server::start(vec![(
        "/w.bin",
        Route::file(sample_bytes(3, 8 << 20)).throttle(2 << 20),
    )]);
    let env = Env::new();
    let task = env.add(&[&server.url("/w.bin")], &[]);
    let tmux = Tmux::start(&env, "watch", (120, 40));
    let pid = tmux.pid();
    let label = format!("{}/{pid}", host_name());
    tmux.wait_for("the read-only dashboard", |s| {
        s.contains("READ-ONLY") && s.contains("w.bin") && s.contains("queued")
    });

    let mut worker = env.spawn_worker("worker", &["--exit-when-idle"]);
    tmux.wait_for("the worker's download, live", |s| {
        s.contains("running") && s.contains("database")
    });
    for (key, what) in [
        ("c", "c (cancel"),
        ("F", "F (force restart"),
        ("r", "r (retry"),
        ("a", "a (add"),
    ] {
        tmux.key(key);
        tmux.wait_for("the refusal", |s| {
            s.contains(&format!("read-only mode: {what}"))
        });
    }
    // The database file itself is open read-only. (SQLite opens the `-wal` read-write for
    // every connection; that it is never written is proven below, byte for byte.)
    let files = open_files(pid, env.dir.path());
    let db = files
        .iter()
        .find(|(p, _)| p == &env.db)
        .expect("watch has the database open");
    assert_eq!(
        db.1 & 0o3,
        0,
        "watch opened the database for writing (flags {:o})",
        db.1
    );
    assert!(wait_exit(&mut worker).success(), "{}", env.log("worker"));
    assert_eq!(env.status(task), "completed");
    tmux.wait_for("the finished download in the view", |s| {
        s.contains("Nothing runs or waits") && s.contains("History 1")
    });

    let probe = env.db();
    let (version, prints) = (data_version(&probe), fingerprint(&env.db));
    for key in ["Tab", "Tab", "j", "Enter"] {
        tmux.key(key);
    }
    tmux.wait_for("the detail of the task", |s| {
        s.contains("Events (latest)") && s.contains("completed")
    });
    tmux.key("Escape");
    tmux.key("/");
    tmux.type_text("status:completed w.bin");
    tmux.key("Enter");
    tmux.wait_for("the filtered history", |s| {
        s.contains("filter: status:completed w.bin") && s.contains("1–1 of 1")
    });
    tmux.key("q");
    let status = tmux.wait_exit();
    assert_eq!(
        status,
        0,
        "watch quits at once, without asking:\n{}",
        tmux.screen()
    );

    assert_eq!(
        data_version(&probe),
        version,
        "no connection committed while only watch was open"
    );
    assert_eq!(
        fingerprint(&env.db),
        prints,
        "the database and its WAL are byte for byte unchanged"
    );
    let rows = env.query_i64(&format!(
        "SELECT COUNT(*) FROM instances WHERE pid = {pid} OR mode = 'watch'"
    ));
    assert_eq!(rows, 0, "watch registered no instance");
    let events = env.query_i64(&format!(
        "SELECT COUNT(*) FROM task_events WHERE by_label = '{label}'"
    ));
    assert_eq!(events, 0, "watch wrote no event");
}
