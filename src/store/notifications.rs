//! The notification outbox: transitions are recorded once per (task, attempt, kind) in the same
//! transaction as the change itself, and senders in any instance claim them with a lease.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::{Store, StoreError, execute_cached, overlay, rows, to_ms};
use crate::config::NotifyKinds;
use crate::model::{Attempt, InstanceId, Lease, TaskId};
use crate::recovery::age_secs;
use crate::text::escape_controls;

/// A transition operators can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    Stale,
    OrphanRecovered,
    Failed,
    Completed,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Stale => "stale",
            NotifyKind::OrphanRecovered => "orphan_recovered",
            NotifyKind::Failed => "failed",
            NotifyKind::Completed => "completed",
        }
    }

    fn enabled(self, kinds: NotifyKinds) -> bool {
        match self {
            NotifyKind::Stale => kinds.stale,
            NotifyKind::OrphanRecovered => kinds.orphan_recovered,
            NotifyKind::Failed => kinds.failed,
            NotifyKind::Completed => kinds.completed,
        }
    }
}

/// A claimed notification, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub kind: String,
    /// The JSON document to send.
    pub payload: String,
    pub tries: u32,
}

/// Records a transition in the outbox when that kind is wanted; a repeat is ignored.
pub(super) fn enqueue(
    tx: &Connection,
    kinds: NotifyKinds,
    task: TaskId,
    attempt: Attempt,
    kind: NotifyKind,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if !kind.enabled(kinds) {
        return Ok(());
    }
    let sql = format!("SELECT {} FROM tasks WHERE id = ?1", rows::TASK_COLUMNS);
    let Some(mut row) = tx
        .prepare_cached(&sql)?
        .query_row([task.0], rows::task)
        .optional()?
    else {
        return Ok(());
    };
    overlay::Overlay::new(tx).task(&mut row)?;
    let owner = match &row.owner {
        Some(id) => tx
            .prepare_cached("SELECT host, pid FROM instances WHERE id = ?1")?
            .query_row([&id.0], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .optional()?
            .map(|(host, pid)| json!({"instance_id": id.0, "host": escape_controls(&host), "pid": pid})),
        None => None,
    };
    let payload = json!({
        "event": kind.as_str(),
        "task_id": task.0,
        "attempt": attempt.0,
        "project": escape_controls(&row.project),
        "name": escape_controls(&row.name),
        "status": row.status.as_str(),
        "error": row.error_message.as_deref().map(escape_controls),
        "time_since_update_seconds": age_secs(row.updated_at, now),
        "owner": owner,
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    tx.prepare_cached(
        "INSERT OR IGNORE INTO notifications (task_id, attempt, kind, payload, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        task.0,
        attempt.0,
        kind.as_str(),
        payload.to_string(),
        to_ms(now)
    ])?;
    Ok(())
}

impl Store {
    /// Which transitions this handle records (set from `[notify]`; none by default).
    pub fn set_notify_kinds(&mut self, kinds: NotifyKinds) {
        self.notify = kinds;
    }

    /// Records that a running claim was seen stale (once per attempt, across instances).
    pub fn note_stale(&mut self, lease: Lease, now: DateTime<Utc>) -> Result<(), StoreError> {
        let kinds = self.notify;
        if !kinds.stale {
            return Ok(());
        }
        self.write(|tx| enqueue(tx, kinds, lease.task, lease.attempt, NotifyKind::Stale, now))
    }

    /// Claims up to `limit` notifications to send: pending ones, and ones whose sender's lease
    /// ran out.
    pub fn claim_notifications(
        &mut self,
        by: &InstanceId,
        lease: Duration,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Notification>, StoreError> {
        let expired = to_ms(now) - lease.as_millis() as i64;
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE notifications SET state = 'sending', claimed_by = ?1, claimed_at = ?2 \
                 WHERE id IN (SELECT id FROM notifications WHERE state = 'pending' \
                   OR (state = 'sending' AND claimed_at < ?3) ORDER BY id LIMIT ?4) \
                 RETURNING id, kind, payload, tries",
            )?;
            let claimed = stmt
                .query_map(params![by.0, to_ms(now), expired, limit as i64], |r| {
                    Ok(Notification {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        payload: r.get(2)?,
                        tries: r.get::<_, i64>(3)?.max(0) as u32,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(claimed)
        })
    }

    /// Records a send: sent, or failed once more (pending again until `max_attempts`).
    pub fn notification_sent(
        &mut self,
        id: i64,
        result: Result<(), String>,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            match result {
                Ok(()) => execute_cached(
                    tx,
                    "UPDATE notifications SET state = 'sent', sent_at = ?2, tries = tries + 1 \
                     WHERE id = ?1",
                    params![id, to_ms(now)],
                )?,
                Err(error) => execute_cached(
                    tx,
                    "UPDATE notifications SET tries = tries + 1, last_error = ?2, \
                     state = CASE WHEN tries + 1 >= ?3 THEN 'failed' ELSE 'pending' END \
                     WHERE id = ?1",
                    params![id, error, max_attempts],
                )?,
            };
            Ok(())
        })
    }
}
