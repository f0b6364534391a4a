//! Operator actions that work from any non-read-only instance: cancel, restart, force restart,
//! and the recovery sweep's interrupt. Each is one immediate transaction.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::beats;
use super::notifications::{NotifyKind, enqueue};
use super::writes::{Actor, insert_event};
use super::{Store, StoreError, execute_cached, rows, to_ms};
use crate::model::{Attempt, EventKind, InstanceId, Lease, Status, Task, TaskId};

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The task was not running (or its owner was dead): it is cancelled now.
    Cancelled,
    /// Its live owner was asked through the database; it stops within one heartbeat.
    Requested {
        owner: InstanceId,
    },
    /// Already completed, failed or cancelled.
    AlreadyFinal(Status),
    NotFound,
}

/// What a restart did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartOutcome {
    /// Queued again with the given attempt as the fence any old owner now fails.
    Requeued {
        attempt: Attempt,
    },
    /// The task changed since it was read (another claim); nothing done.
    Changed,
    NotFound,
}

impl Store {
    /// Cancels a task. A running one whose owner is alive gets a request its owner honours.
    pub fn cancel(
        &mut self,
        id: TaskId,
        by: &Actor,
        now: DateTime<Utc>,
        owner_is_alive: &dyn Fn(&InstanceId) -> bool,
    ) -> Result<CancelOutcome, StoreError> {
        self.write(|tx| {
            let Some(task) = load(tx, id)? else {
                return Ok(CancelOutcome::NotFound);
            };
            if task.status.is_final() {
                return Ok(CancelOutcome::AlreadyFinal(task.status));
            }
            let message = format!("cancelled by {}", by.label);
            if task.status == Status::Running
                && let Some(owner) = task.owner.clone().filter(|o| owner_is_alive(o))
            {
                execute_cached(
                    tx,
                    "UPDATE tasks SET control = 'cancel' WHERE id = ?1 AND attempt = ?2",
                    params![id.0, task.attempt.0],
                )?;
                let message = format!("cancel requested by {}", by.label);
                insert_event(
                    tx,
                    id,
                    task.attempt,
                    EventKind::CancelRequested,
                    Some(by),
                    &message,
                    now,
                )?;
                return Ok(CancelOutcome::Requested { owner });
            }
            beats::fold(tx, task.lease())?;
            execute_cached(
                tx,
                "UPDATE tasks SET status = 'cancelled', error_message = ?2, finished_at = ?3, \
                 updated_at = ?3, control = NULL WHERE id = ?1",
                params![id.0, message, to_ms(now)],
            )?;
            insert_event(
                tx,
                id,
                task.attempt,
                EventKind::Cancelled,
                Some(by),
                &message,
                now,
            )?;
            Ok(CancelOutcome::Cancelled)
        })
    }

    /// Queues a task again. With `expected`, only if its attempt is still that one (so a check
    /// made before, such as "it is stale", still holds). Raising the attempt fences out any
    /// previous owner: its next write touches no row and it stops.
    pub fn requeue(
        &mut self,
        id: TaskId,
        expected: Option<Attempt>,
        reason: &str,
        by: &Actor,
        now: DateTime<Utc>,
    ) -> Result<RestartOutcome, StoreError> {
        self.write(|tx| {
            let Some(task) = load(tx, id)? else {
                return Ok(RestartOutcome::NotFound);
            };
            if expected.is_some_and(|a| a != task.attempt) {
                return Ok(RestartOutcome::Changed);
            }
            beats::fold(tx, task.lease())?;
            let attempt: i64 = tx.query_row(
                "UPDATE tasks SET status = 'queued', attempt = attempt + 1, owner_id = NULL, \
                 control = NULL, error_message = NULL, finished_at = NULL, retries = 0, \
                 updated_at = ?2 WHERE id = ?1 RETURNING attempt",
                params![id.0, to_ms(now)],
                |r| r.get(0),
            )?;
            insert_event(
                tx,
                id,
                Attempt(attempt),
                EventKind::Restarted,
                Some(by),
                reason,
                now,
            )?;
            Ok(RestartOutcome::Requeued {
                attempt: Attempt(attempt),
            })
        })
    }

    /// Recovery: a running claim whose owner is dead or stale becomes `interrupted`. Fenced on the
    /// lease, so a claim that moved on meanwhile is left alone.
    pub fn interrupt(
        &mut self,
        lease: Lease,
        reason: &str,
        by: &Actor,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let kinds = self.notify;
        self.write(|tx| {
            beats::fold(tx, lease)?;
            let n = execute_cached(
                tx,
                "UPDATE tasks SET status = 'interrupted', error_message = ?3, updated_at = ?4, \
                 control = NULL WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
                params![
                    lease.task.0,
                    lease.attempt.0,
                    "Task interrupted by restart or crash",
                    to_ms(now)
                ],
            )?;
            if n == 1 {
                insert_event(
                    tx,
                    lease.task,
                    lease.attempt,
                    EventKind::Recovered,
                    Some(by),
                    reason,
                    now,
                )?;
                let kind = NotifyKind::OrphanRecovered;
                enqueue(tx, kinds, lease.task, lease.attempt, kind, now)?;
            }
            Ok(n == 1)
        })
    }
}

fn load(tx: &rusqlite::Connection, id: TaskId) -> Result<Option<Task>, StoreError> {
    let sql = format!("SELECT {} FROM tasks WHERE id = ?1", rows::TASK_COLUMNS);
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([id.0], rows::task)
        .optional()?)
}
