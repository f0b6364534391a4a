//! Invariants checked after the fault tests (RELIABILITY.md, "Invariants checked after every
//! test"): the database is intact, no task runs without a live owner, no owner wrote after
//! losing its claim, the durable offset is never ahead of the `.part`, and no stray file.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::Env;

/// Owner-only event kinds: written under a claim, fenced on its attempt.
const OWNER_KINDS: [&str; 5] = [
    "progress",
    "retry",
    "restart_from_zero",
    "completed",
    "failed",
];

/// `PRAGMA integrity_check` says `ok`.
pub fn assert_integrity(env: &Env) {
    let result: String = env
        .db()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(result, "ok", "PRAGMA integrity_check");
}

/// With no worker alive, nothing may say `running`... unless a sweep would recover it: this
/// checks that every running row's owner is dead by asking `haul recover --dry-run`, which
/// lists exactly the running tasks whose owner lock is free.
pub fn assert_no_running_without_live_owner(env: &Env, live_workers: usize) {
    let running = env.query_i64("SELECT COUNT(*) FROM tasks WHERE status = 'running'");
    if live_workers == 0 {
        let dry = env.haul(&["recover", "--dry-run"]);
        let out = String::from_utf8_lossy(&dry.stdout);
        let would = out.matches("would recover task").count() as i64;
        assert_eq!(
            would, running,
            "every running row of a dead owner is seen by the sweep: {out}"
        );
    }
}

/// For every task: each owner-written event carries the attempt of the latest claim before
/// it, so no attempt wrote after another claim replaced it.
pub fn assert_fenced_events(env: &Env) {
    let conn = env.db();
    let mut stmt = conn
        .prepare("SELECT task_id, kind, attempt FROM task_events ORDER BY task_id, id")
        .expect("prepare");
    let rows: Vec<(i64, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("events")
        .map(|r| r.expect("row"))
        .collect();
    let mut task = -1;
    let mut claimed = 0;
    for (id, kind, attempt) in rows {
        if id != task {
            task = id;
            claimed = 0;
        }
        if kind == "claimed" {
            assert!(
                attempt > claimed,
                "task {id}: claim {attempt} after {claimed}"
            );
            claimed = attempt;
        } else if OWNER_KINDS.contains(&kind.as_str()) {
            assert_eq!(
                attempt, claimed,
                "task {id}: a `{kind}` of attempt {attempt} written while attempt {claimed} held the claim"
            );
        }
    }
}

/// For every unfinished file with a destination: the `.part` (or, right after a rename that
/// was not recorded yet, the final file) holds at least the durable offset the database
/// recorded: the offset is never ahead of the data on disk.
pub fn assert_durable_not_ahead(env: &Env) {
    let conn = env.db();
    let mut stmt = conn.prepare("SELECT id FROM tasks").expect("prepare");
    let ids: Vec<i64> = stmt
        .query_map([], |r| r.get(0))
        .expect("tasks")
        .map(|r| r.expect("row"))
        .collect();
    // Through haul's reader: a running task's offsets include its owner's last heartbeat.
    let reader = env.reader();
    let mut rows: Vec<(String, i64)> = Vec::new();
    for id in ids {
        for file in reader.files(haul::model::TaskId(id)).expect("files") {
            if let (false, Some(dest)) = (file.done, file.dest_path) {
                rows.push((dest, file.bytes_done as i64));
            }
        }
    }
    for (dest, durable) in rows {
        // Killed between the rename and its commit, the data is in the final file.
        let part = PathBuf::from(format!("{dest}.part"));
        let on_disk = std::fs::metadata(&part)
            .or_else(|_| std::fs::metadata(&dest))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(
            on_disk >= durable as u64,
            "{}: {on_disk} bytes on disk, {durable} recorded as durable",
            part.display()
        );
    }
}

/// Every file under `root`, relative, sorted.
pub fn all_files(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_type().expect("type").is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Files in the workspace other than haul's own (database, WAL, instance locks), the config
/// and the worker logs: only downloads, all under `out/`.
pub fn stray_files(env: &Env) -> Vec<String> {
    all_files(env.dir.path())
        .into_iter()
        .filter(|f| {
            !(f.starts_with("out/")
                || f.starts_with("haul.db")
                || f == "config.toml"
                || f.ends_with(".log")
                || f.ends_with(".txt"))
        })
        .collect()
}
