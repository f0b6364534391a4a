//! One transaction per tick for every task this instance owns: heartbeat, durable offsets,
//! progress milestones, and the answer to "do I still hold it, and does anyone want it stopped?".

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::writes::{Actor, FileChange, adjust_task_totals, insert_event};
use super::{Store, StoreError, to_ms};
use crate::model::{EventKind, Lease};

/// What the owner knows of one task at a tick. Offsets are durable (synced to disk) only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskProgress {
    pub lease: Lease,
    /// `(file index, durable offset)` of files being written.
    pub files: Vec<(u32, u64)>,
    /// True when bytes arrived since the last tick.
    pub progressed: bool,
    /// A milestone crossed since the last tick ("50% of 1.0 GiB").
    pub milestone: Option<String>,
}

/// The database's answer for one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatReply {
    /// Still ours; `cancel` is true when an operator asked to stop it.
    Held { lease: Lease, cancel: bool },
    /// Another claim (restart, recovery) replaced ours: stop writing at once.
    Lost { lease: Lease },
}

impl Store {
    /// Writes the heartbeat of the instance and all its tasks in one transaction.
    ///
    /// One fenced `UPDATE` per task (which also moves its byte total by its file's delta, read
    /// in the same statement) and one per file whose durable offset moved; the cancel requests
    /// are read once for the whole tick through a tiny partial index. No indexed column
    /// changes, so a tick moves no index entries.
    pub fn heartbeat(
        &mut self,
        by: &Actor,
        tasks: &[TaskProgress],
        now: DateTime<Utc>,
    ) -> Result<Vec<HeartbeatReply>, StoreError> {
        let now_ms = to_ms(now);
        self.write(|tx| {
            tx.prepare_cached("UPDATE instances SET heartbeat_at = ?2 WHERE id = ?1")?
                .execute(params![by.instance.0, now_ms])?;
            let mut touch = tx.prepare_cached(
                "UPDATE tasks SET updated_at = ?3, \
                   progress_at = CASE WHEN ?4 THEN ?3 ELSE progress_at END, \
                   bytes_done = bytes_done + COALESCE((SELECT ?6 - f.bytes_done FROM files AS f \
                     WHERE f.task_id = ?1 AND f.idx = ?5 AND f.done = 0), 0) \
                 WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
            )?;
            let mut move_offset = tx.prepare_cached(
                "UPDATE files SET bytes_done = ?3 WHERE task_id = ?1 AND idx = ?2 AND done = 0",
            )?;
            let cancelled = cancel_requests(tx)?;
            let mut replies = Vec::with_capacity(tasks.len());
            for task in tasks {
                let lease = task.lease;
                // The first file's delta rides along with the touch; further files (a task
                // of many files, several in flight) move the total on their own.
                let (index, offset) = task
                    .files
                    .first()
                    .map_or((-1, 0), |&(i, o)| (i64::from(i), o as i64));
                let touched = touch.execute(params![
                    lease.task.0,
                    lease.attempt.0,
                    now_ms,
                    task.progressed,
                    index,
                    offset
                ])?;
                if touched == 0 {
                    replies.push(HeartbeatReply::Lost { lease });
                    continue;
                }
                for &(index, offset) in task.files.iter().skip(1) {
                    let change = FileChange {
                        done: Some(offset),
                        ..FileChange::default()
                    };
                    adjust_task_totals(tx, lease.task, index, change, now)?;
                }
                for (index, offset) in &task.files {
                    move_offset.execute(params![lease.task.0, *index as i64, *offset as i64])?;
                }
                if let Some(milestone) = &task.milestone {
                    insert_event(
                        tx,
                        lease.task,
                        lease.attempt,
                        EventKind::Progress,
                        Some(by),
                        milestone,
                        now,
                    )?;
                }
                replies.push(HeartbeatReply::Held {
                    lease,
                    cancel: cancelled.contains(&lease.task.0),
                });
            }
            Ok(replies)
        })
    }
}

/// Tasks an operator asked to stop (`control = 'cancel'`), from the partial index on
/// `control`: cheap however many tasks run.
fn cancel_requests(tx: &Connection) -> Result<HashSet<i64>, StoreError> {
    let mut stmt =
        tx.prepare_cached("SELECT id FROM tasks WHERE control = 'cancel' AND status = 'running'")?;
    let ids = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<HashSet<i64>, _>>()?;
    Ok(ids)
}
