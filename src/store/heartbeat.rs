//! One transaction per tick for every task this instance owns: heartbeat, durable offsets,
//! progress milestones, and the answer to "do I still hold it, and does anyone want it stopped?".
//!
//! The tick writes the owner's `instances.heartbeat_at` and the packed `task_beats` rows that
//! changed; it never rewrites a task's or a file's row while the claim runs. How readers turn
//! that back into each task's `updated_at`, progress and offsets: [`super::beats`].

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::beats::{self, Book};
use super::writes::{Actor, insert_event};
use super::{Store, StoreError, execute_cached, to_ms};
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
    /// Fencing reads, once per tick, the claims this owner holds (one walk of the running
    /// entries of the covering index `tasks_status_id`): a task whose claim was replaced gets
    /// [`HeartbeatReply::Lost`] and nothing of it is written. The held tasks' progress and
    /// durable offsets go into this owner's `task_beats` rows (only the buckets that changed),
    /// their liveness into the one `instances` row. A claim this owner still holds but no longer
    /// reports is written back to its rows as of the last tick that reported it, so its
    /// `updated_at` stops there. The cancel requests are read once through a tiny partial index.
    pub fn heartbeat(
        &mut self,
        by: &Actor,
        tasks: &[TaskProgress],
        now: DateTime<Utc>,
    ) -> Result<Vec<HeartbeatReply>, StoreError> {
        let now_ms = to_ms(now);
        let owner = by.instance.0.as_str();
        self.write(|tx| {
            let last_tick = beats::heartbeat_at(tx, owner)?;
            execute_cached(
                tx,
                "UPDATE instances SET heartbeat_at = ?2 WHERE id = ?1",
                params![owner, now_ms],
            )?;
            let held = held_claims(tx, owner)?;
            let cancelled = cancel_requests(tx)?;
            let mut book = Book::load(tx, owner)?;
            let mut reported = HashSet::with_capacity(tasks.len());
            let mut replies = Vec::with_capacity(tasks.len());
            for task in tasks {
                let lease = task.lease;
                if held.get(&lease.task.0) != Some(&lease.attempt.0) {
                    replies.push(HeartbeatReply::Lost { lease });
                    continue;
                }
                reported.insert(lease.task.0);
                let progress_at = task.progressed.then_some(now_ms);
                book.beat(tx, lease, &task.files, progress_at)?;
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
            for beat in book.take_unreported(&reported) {
                if held.get(&beat.task) == Some(&beat.attempt) {
                    beats::write_back(tx, &beat, last_tick)?;
                }
            }
            book.save(tx)?;
            Ok(replies)
        })
    }
}

/// The claims `owner` holds: task id → attempt, from the covering `(status, id, owner_id,
/// attempt)` index.
fn held_claims(tx: &Connection, owner: &str) -> Result<HashMap<i64, i64>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, attempt FROM tasks WHERE status = 'running' AND owner_id = ?1",
    )?;
    let held = stmt
        .query_map([owner], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<HashMap<i64, i64>, _>>()?;
    Ok(held)
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
