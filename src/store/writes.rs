//! Inserts and the owner's fenced writes. Every writing transaction is `BEGIN IMMEDIATE`, and
//! every owner write carries `WHERE id = ? AND attempt = ? AND status = 'running'`: when it
//! touches no row the lease is gone and the caller must stop writing the file.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::notifications::{NotifyKind, enqueue};
use super::{Store, StoreError, execute_cached, to_ms};
use crate::model::{Attempt, EventKind, Instance, InstanceId, Lease, NewTask, PlacedFile, TaskId};

/// Who performs a write: recorded in the event log ("host/pid").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub instance: InstanceId,
    pub label: String,
}

impl Store {
    /// Registers this process as an instance.
    pub fn register_instance(&mut self, instance: &Instance) -> Result<(), StoreError> {
        self.write(|tx| {
            execute_cached(
                tx,
                "INSERT OR REPLACE INTO instances (id, host, pid, mode, started_at, heartbeat_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    instance.id.0,
                    instance.host,
                    instance.pid,
                    instance.mode.as_str(),
                    to_ms(instance.started_at),
                    to_ms(instance.heartbeat_at)
                ],
            )?;
            Ok(())
        })
    }

    /// Marks an instance as stopped (clean exit) or found dead.
    pub fn stop_instance(&mut self, id: &InstanceId, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.write(|tx| {
            execute_cached(
                tx,
                "UPDATE instances SET stopped_at = ?2 WHERE id = ?1 AND stopped_at IS NULL",
                params![id.0, to_ms(now)],
            )?;
            Ok(())
        })
    }

    /// Inserts a queued task with its files; returns its id.
    pub fn add_task(
        &mut self,
        task: &NewTask,
        host: &str,
        now: DateTime<Utc>,
        by: &Actor,
    ) -> Result<TaskId, StoreError> {
        let name = match task.files.as_slice() {
            [one] => one.name.clone(),
            [first, rest @ ..] => format!("{} (+{} more)", first.name, rest.len()),
            [] => String::from("(no files)"),
        };
        self.write(|tx| {
            execute_cached(
                tx,
                "INSERT INTO tasks (project, name, dest_dir, host, status, created_at, updated_at, \
                 files_total) VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?5, ?6)",
                params![
                    task.project,
                    name,
                    task.dest_dir,
                    host,
                    to_ms(now),
                    task.files.len() as i64
                ],
            )?;
            let id = TaskId(tx.last_insert_rowid());
            let mut insert = tx.prepare_cached(
                "INSERT INTO files (task_id, idx, url, name, sha256_expected) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (idx, file) in task.files.iter().enumerate() {
                insert.execute(params![
                    id.0,
                    idx as i64,
                    file.url,
                    file.name,
                    file.sha256_expected
                ])?;
            }
            let message = format!("{} file(s) into {}", task.files.len(), task.dest_dir);
            insert_event(
                tx,
                id,
                Attempt(0),
                EventKind::Added,
                Some(by),
                &message,
                now,
            )?;
            Ok(id)
        })
    }

    /// Appends one event to a task's log.
    pub fn record_event(
        &mut self,
        lease: Lease,
        kind: EventKind,
        by: &Actor,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|tx| insert_event(tx, lease.task, lease.attempt, kind, Some(by), message, now))
    }

    /// Records where a file goes and the validators its server gave, with the files of the
    /// task placed since its last write (one fence for all). Fenced.
    #[allow(clippy::too_many_arguments)]
    pub fn set_file_target(
        &mut self,
        lease: Lease,
        index: u32,
        dest_path: &str,
        bytes_total: Option<u64>,
        etag: Option<&str>,
        last_modified: Option<&str>,
        placed: &[PlacedFile],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            // The beat is folded only when placed files' rows become final; that fold reads
            // the fence on the way, so `holds` is asked only without them.
            let held = if placed.is_empty() {
                holds(tx, lease)?
            } else {
                super::beats::fold(tx, lease)?
            };
            if !held {
                return Ok(false);
            }
            let mut totals = TaskTotals::default();
            for file in placed {
                record_done(tx, lease.task, file, &mut totals)?;
            }
            let change = FileChange {
                total: Some(bytes_total),
                ..FileChange::default()
            };
            totals.add(tx, lease.task, index, change)?;
            execute_cached(
                tx,
                "UPDATE files SET dest_path = ?3, bytes_total = ?4, etag = ?5, last_modified = ?6 \
                 WHERE task_id = ?1 AND idx = ?2",
                params![
                    lease.task.0,
                    index as i64,
                    dest_path,
                    bytes_total.map(|b| b as i64),
                    etag,
                    last_modified
                ],
            )?;
            totals.apply(tx, lease.task, Some(now))?;
            Ok(true)
        })
    }

    /// Forgets a file's durable offset (it restarts from zero) and logs why. Fenced.
    pub fn restart_file(
        &mut self,
        lease: Lease,
        index: u32,
        reason: &str,
        by: &Actor,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            if !super::beats::fold(tx, lease)? {
                return Ok(false);
            }
            let change = FileChange {
                done: Some(0),
                ..FileChange::default()
            };
            let mut totals = TaskTotals::default();
            totals.add(tx, lease.task, index, change)?;
            execute_cached(
                tx,
                "UPDATE files SET bytes_done = 0 WHERE task_id = ?1 AND idx = ?2",
                params![lease.task.0, index as i64],
            )?;
            totals.apply(tx, lease.task, Some(now))?;
            let message = format!("file {index}: {reason}; restarting from 0");
            insert_event(
                tx,
                lease.task,
                lease.attempt,
                EventKind::RestartFromZero,
                Some(by),
                &message,
                now,
            )?;
            Ok(true)
        })
    }

    /// Marks a file finished (renamed into place). Fenced.
    pub fn file_done(
        &mut self,
        lease: Lease,
        file: &PlacedFile,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            if !super::beats::fold(tx, lease)? {
                return Ok(false);
            }
            let mut totals = TaskTotals::default();
            record_done(tx, lease.task, file, &mut totals)?;
            totals.apply(tx, lease.task, Some(now))?;
            Ok(true)
        })
    }

    /// Counts a retry and shows its reason while the task keeps running. Fenced.
    pub fn note_retry(
        &mut self,
        lease: Lease,
        message: &str,
        by: &Actor,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = execute_cached(
                tx,
                "UPDATE tasks SET retries = retries + 1, error_message = ?3, updated_at = ?4 \
                 WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
                params![lease.task.0, lease.attempt.0, message, to_ms(now)],
            )?;
            if n == 1 {
                insert_event(
                    tx,
                    lease.task,
                    lease.attempt,
                    EventKind::Retry,
                    Some(by),
                    message,
                    now,
                )?;
            }
            Ok(n == 1)
        })
    }

    /// Ends a claim: completed, failed, cancelled or interrupted, recording the files' last
    /// durable offsets and the files placed since the last write with it. Fenced; `false`
    /// means the lease was lost (and nothing was written).
    pub fn finish(
        &mut self,
        lease: Lease,
        outcome: &Outcome,
        durable: &[(u32, u64)],
        placed: &[PlacedFile],
        by: &Actor,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let kinds = self.notify;
        let (status, kind, error) = match outcome {
            Outcome::Completed => ("completed", EventKind::Completed, None),
            Outcome::Failed(msg) => ("failed", EventKind::Failed, Some(msg.as_str())),
            Outcome::Cancelled(msg) => ("cancelled", EventKind::Cancelled, Some(msg.as_str())),
            Outcome::Interrupted(msg) => {
                ("interrupted", EventKind::Interrupted, Some(msg.as_str()))
            }
        };
        self.write(|tx| {
            if !super::beats::fold(tx, lease)? {
                return Ok(false);
            }
            // The placed files need no adjustment of the totals of their own: the update that
            // ends the claim below recomputes them from every file.
            for file in placed {
                mark_done(tx, lease.task, file)?;
            }
            let mut offset = tx.prepare_cached(
                "UPDATE files SET bytes_done = ?3 WHERE task_id = ?1 AND idx = ?2 AND done = 0",
            )?;
            for (index, bytes) in durable {
                offset.execute(params![lease.task.0, *index as i64, *bytes as i64])?;
            }
            execute_cached(
                tx,
                "UPDATE tasks SET status = ?3, error_message = ?4, finished_at = ?5, \
                 updated_at = ?5, control = NULL, \
                 bytes_done = (SELECT COALESCE(SUM(bytes_done), 0) FROM files WHERE task_id = ?1), \
                 bytes_total = (SELECT CASE WHEN COUNT(bytes_total) = COUNT(*) \
                                THEN SUM(bytes_total) END FROM files WHERE task_id = ?1), \
                 files_done = (SELECT COUNT(*) FROM files WHERE task_id = ?1 AND done = 1) \
                 WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
                params![lease.task.0, lease.attempt.0, status, error, to_ms(now)],
            )?;
            let message = error.unwrap_or("all files downloaded and verified");
            insert_event(tx, lease.task, lease.attempt, kind, Some(by), message, now)?;
            let notice = match outcome {
                Outcome::Completed => Some(NotifyKind::Completed),
                Outcome::Failed(_) => Some(NotifyKind::Failed),
                _ => None,
            };
            if let Some(notice) = notice {
                enqueue(tx, kinds, lease.task, lease.attempt, notice, now)?;
            }
            Ok(true)
        })
    }
}

/// How a claim ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed(String),
    Cancelled(String),
    /// Stopped cleanly (shutdown); resumable.
    Interrupted(String),
}

/// Marks one placed file done and counts it in `totals` (the caller holds the fence, has
/// folded the task's beat, and applies the totals).
fn record_done(
    tx: &Connection,
    task: TaskId,
    file: &PlacedFile,
    totals: &mut TaskTotals,
) -> Result<(), StoreError> {
    let change = FileChange {
        done: Some(file.bytes),
        total: Some(Some(file.bytes)),
        finished: true,
    };
    totals.add(tx, task, file.index, change)?;
    mark_done(tx, task, file)
}

/// Marks one placed file done, with its size, hash and destination (totals not touched).
fn mark_done(tx: &Connection, task: TaskId, file: &PlacedFile) -> Result<(), StoreError> {
    execute_cached(
        tx,
        "UPDATE files SET done = 1, bytes_done = ?3, bytes_total = ?3, sha256 = ?4, \
         dest_path = ?5 WHERE task_id = ?1 AND idx = ?2",
        params![
            task.0,
            file.index as i64,
            file.bytes as i64,
            file.sha256.as_deref(),
            file.dest
        ],
    )?;
    Ok(())
}

/// True while `lease` is the task's current running claim.
pub(super) fn holds(tx: &Connection, lease: Lease) -> Result<bool, StoreError> {
    let n: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM tasks WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
        )?
        .query_row(params![lease.task.0, lease.attempt.0], |r| r.get(0))?;
    Ok(n == 1)
}

/// A change to one file row, for [`TaskTotals::add`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FileChange {
    /// New durable offset.
    pub done: Option<u64>,
    /// New size (`Some(None)`: unknown).
    pub total: Option<Option<u64>>,
    /// The file becomes finished.
    pub finished: bool,
}

/// How the changes to some files of one task move its totals: summed file by file, each read
/// from only that file's row (so a task of 10,000 files costs the same per file as a task of
/// one), then written by one update of the task however many files changed.
#[derive(Debug, Default)]
pub(super) struct TaskTotals {
    bytes_done: i64,
    /// `None`: no file's size changed.
    bytes_total: Option<i64>,
    files_done: i64,
}

impl TaskTotals {
    /// Counts one file's change. Call before updating the file row.
    pub(super) fn add(
        &mut self,
        tx: &Connection,
        task: TaskId,
        index: u32,
        change: FileChange,
    ) -> Result<(), StoreError> {
        // The file row is read here and the differences computed, so that the update of the
        // task is a plain one: as `UPDATE ... FROM` the file, SQLite ran it through a temporary
        // table.
        let file: Option<(i64, Option<i64>, bool)> = tx
            .prepare_cached(
                "SELECT bytes_done, bytes_total, done FROM files WHERE task_id = ?1 AND idx = ?2",
            )?
            .query_row(params![task.0, index as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((bytes_done, bytes_total, done)) = file else {
            return Ok(());
        };
        if let Some(offset) = change.done.filter(|_| !done) {
            self.bytes_done += offset as i64 - bytes_done;
        }
        if let Some(total) = change.total {
            let delta = total.map_or(0, |t| t as i64) - bytes_total.unwrap_or(0);
            self.bytes_total = Some(self.bytes_total.unwrap_or(0) + delta);
        }
        self.files_done += i64::from(change.finished && !done);
        Ok(())
    }

    /// Writes the counted changes to the task, with `updated_at` when given one; writes
    /// nothing when neither changes anything.
    pub(super) fn apply(
        self,
        tx: &Connection,
        task: TaskId,
        updated_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let unchanged = self.bytes_done == 0 && self.bytes_total.is_none() && self.files_done == 0;
        if unchanged && updated_at.is_none() {
            return Ok(());
        }
        execute_cached(
            tx,
            "UPDATE tasks SET bytes_done = bytes_done + ?2, \
               bytes_total = CASE WHEN ?3 IS NULL THEN bytes_total ELSE COALESCE(bytes_total, 0) + ?3 END, \
               files_done = files_done + ?4, updated_at = COALESCE(?5, updated_at) \
             WHERE id = ?1",
            params![
                task.0,
                self.bytes_done,
                self.bytes_total,
                self.files_done,
                updated_at.map(to_ms)
            ],
        )?;
        Ok(())
    }
}

/// Appends one row to the event log.
pub(super) fn insert_event(
    tx: &Connection,
    task: TaskId,
    attempt: Attempt,
    kind: EventKind,
    by: Option<&Actor>,
    message: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO task_events (task_id, at, attempt, kind, instance_id, by_label, message) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        task.0,
        to_ms(now),
        attempt.0,
        kind.as_str(),
        by.map(|a| a.instance.0.as_str()),
        by.map(|a| a.label.as_str()),
        message
    ])?;
    Ok(())
}
