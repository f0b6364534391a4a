//! Connection settings and versioned migrations (`PRAGMA user_version`).

use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// How long a writer waits for another process's transaction before `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Migrations in order; `user_version` is the number applied so far.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE instances (
    id            TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    mode          TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    stopped_at    INTEGER
);
CREATE INDEX instances_live ON instances(heartbeat_at) WHERE stopped_at IS NULL;

CREATE TABLE tasks (
    id             INTEGER PRIMARY KEY,
    project        TEXT NOT NULL,
    name           TEXT NOT NULL,
    dest_dir       TEXT NOT NULL,
    host           TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 0,
    owner_id       TEXT,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    updated_at     INTEGER NOT NULL,
    progress_at    INTEGER,
    finished_at    INTEGER,
    error_message  TEXT,
    control        TEXT,
    bytes_done     INTEGER NOT NULL DEFAULT 0,
    bytes_total    INTEGER,
    files_done     INTEGER NOT NULL DEFAULT 0,
    files_total    INTEGER NOT NULL,
    retries        INTEGER NOT NULL DEFAULT 0
);
-- The active list, the claim and the stale sweep read only unfinished rows.
CREATE INDEX tasks_unfinished ON tasks(status, updated_at)
    WHERE status IN ('queued', 'running', 'interrupted');
-- History pages, newest first, filtered by status or project.
CREATE INDEX tasks_status_id ON tasks(status, id);
CREATE INDEX tasks_project_id ON tasks(project, id);

CREATE TABLE files (
    task_id          INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    idx              INTEGER NOT NULL,
    url              TEXT NOT NULL,
    name             TEXT NOT NULL,
    dest_path        TEXT,
    bytes_done       INTEGER NOT NULL DEFAULT 0,
    bytes_total      INTEGER,
    etag             TEXT,
    last_modified    TEXT,
    sha256_expected  TEXT,
    sha256           TEXT,
    done             INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
-- Collision checks: is another unfinished task writing the same file name?
CREATE INDEX files_name ON files(name);

CREATE TABLE task_events (
    id           INTEGER PRIMARY KEY,
    task_id      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    instance_id  TEXT,
    by_label     TEXT,
    message      TEXT NOT NULL
);
CREATE INDEX task_events_task ON task_events(task_id, id);
"#,
    r#"
-- The outbox of notifications: one row per (task, attempt, transition), whichever instance
-- noticed it first; senders claim rows with a lease.
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    task_id     INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    claimed_by  TEXT,
    claimed_at  INTEGER,
    tries       INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    sent_at     INTEGER,
    UNIQUE (task_id, attempt, kind)
);
CREATE INDEX notifications_open ON notifications(state) WHERE state IN ('pending', 'sending');
"#,
    r#"
-- Tasks by project and status, kept by triggers, so totals never scan the tasks table: the
-- dashboard's counts (all, by status, by project) and `haul metrics` read these few rows.
CREATE TABLE task_counts (
    project  TEXT NOT NULL,
    status   TEXT NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (project, status)
) WITHOUT ROWID;
INSERT INTO task_counts (project, status, n)
    SELECT project, status, COUNT(*) FROM tasks GROUP BY project, status;
CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts (project, status, n) VALUES (new.project, new.status, 1)
        ON CONFLICT (project, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER task_counts_update AFTER UPDATE OF project, status ON tasks
    WHEN old.project IS NOT new.project OR old.status IS NOT new.status BEGIN
    UPDATE task_counts SET n = n - 1 WHERE project = old.project AND status = old.status;
    INSERT INTO task_counts (project, status, n) VALUES (new.project, new.status, 1)
        ON CONFLICT (project, status) DO UPDATE SET n = n + 1;
END;
-- haul never deletes tasks; a row removed by hand still leaves the counts right.
CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1 WHERE project = old.project AND status = old.status;
END;
"#,
    r#"
-- Every heartbeat rewrites updated_at; with it in an index, each tick moved one index entry
-- per running task. Unfinished rows are found through tasks_status_id instead.
DROP INDEX tasks_unfinished;
-- Cancel requests, read once per heartbeat tick.
CREATE INDEX tasks_control ON tasks(control) WHERE control IS NOT NULL;
"#,
    r#"
-- The heartbeat no longer rewrites a task's and a file's row per running task per tick. Its
-- owner's liveness is instances.heartbeat_at; the progress time and durable offsets of the
-- tasks it runs are packed here, a few rows per owner (bucket = task id mod 64), each a blob
-- of that bucket's claims, folded back into tasks and files when a claim ends or its files
-- change (src/store/beats.rs has the format).
CREATE TABLE task_beats (
    owner_id  TEXT NOT NULL,
    bucket    INTEGER NOT NULL,
    beats     BLOB NOT NULL,
    PRIMARY KEY (owner_id, bucket)
);
-- A tick's fence (which claims does its owner still hold?) walks the running entries of the
-- (status, id) index; with the owner and attempt in it, the walk reads no table row. Not a
-- partial index on status = 'running': SQLite re-prepares every statement that compares
-- status with a bound parameter when such an index exists (the claim's, every time).
DROP INDEX tasks_status_id;
CREATE INDEX tasks_status_id ON tasks(status, id, owner_id, attempt);
"#,
    r#"
-- One counter that every insert, update and delete of a task row moves, so a reader can tell
-- that no task row changed since it last read them (a heartbeat tick writes only instances and
-- task_beats) and keep the rows it has: the dashboard's unfinished rows, see store/kept.rs.
CREATE TABLE task_changes (n INTEGER NOT NULL);
INSERT INTO task_changes (n) VALUES (0);
CREATE TRIGGER task_changes_insert AFTER INSERT ON tasks BEGIN
    UPDATE task_changes SET n = n + 1;
END;
CREATE TRIGGER task_changes_update AFTER UPDATE ON tasks BEGIN
    UPDATE task_changes SET n = n + 1;
END;
CREATE TRIGGER task_changes_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_changes SET n = n + 1;
END;
"#,
];

/// Settings every read-write connection gets.
pub fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_handler(Some(retry_busy_every_millisecond))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unsupported(format!(
            "the database could not switch to WAL mode (got {mode}); \
             is it on a network file system?"
        )));
    }
    // FULL: every commit is durable before we act on it. Our write rate is a few commits a
    // second (one heartbeat transaction per tick, plus claims and state changes), so the
    // extra fsync per commit costs nothing that matters, and the durable offset we commit
    // must never be lost after we told the operator it was saved.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // temp_store stays FILE: with MEMORY, SQLite keeps every savepoint's sub-journal in
    // 1 KiB chunks, a malloc and a copy each (9 % of `haul run`'s instructions on one-file
    // tasks, with a savepoint per job of a group commit). As FILE it is one memory chunk,
    // spilled to a file only past SQLITE_STMTJRNL_SPILL, 120 KiB in .cargo/config.toml.
    if let Some(pages) = test_knob("HAUL_TEST_MAX_PAGE_COUNT") {
        conn.pragma_update(None, "max_page_count", pages)?;
    }
    Ok(())
}

/// Waits 1 ms between tries for a lock another writer holds, up to the busy timeout. SQLite's
/// own handler backs off up to 100 ms, so one claiming worker could starve another: with a
/// fixed short wait, writers take turns.
fn retry_busy_every_millisecond(tries: i32) -> bool {
    static LIMIT_MS: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let limit = *LIMIT_MS.get_or_init(|| busy_timeout().as_millis());
    std::thread::sleep(Duration::from_millis(1));
    (tries.max(0) as u128) < limit
}

/// [`BUSY_TIMEOUT`], or `HAUL_TEST_BUSY_TIMEOUT_MS` when set (tests only).
fn busy_timeout() -> Duration {
    test_knob("HAUL_TEST_BUSY_TIMEOUT_MS").map_or(BUSY_TIMEOUT, Duration::from_millis)
}

/// Test-only knobs, inert unless set: `HAUL_TEST_MAX_PAGE_COUNT` caps the database's size in
/// pages (so a test gets `SQLITE_FULL` without filling a disk) and `HAUL_TEST_BUSY_TIMEOUT_MS`
/// shortens the busy timeout (so a test outlasts it in well under a second).
fn test_knob(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// Settings of a read-only connection: it can never write, even by mistake.
pub fn configure_reader(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(busy_timeout())?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(())
}

/// Applies every migration not applied yet, each in its own immediate transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Applies the migrations not applied yet up to schema version `target`.
pub(super) fn migrate_to(conn: &mut Connection, target: usize) -> Result<(), StoreError> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Unsupported(format!(
            "the database has schema version {current}, newer than this haul ({}); \
             upgrade haul",
            MIGRATIONS.len()
        )));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().take(target).skip(current) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > version {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema version this build writes.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}
