//! The recovery rules as pure functions of rows, owner liveness and a clock reading: which
//! running tasks are healthy, stalled, stale or orphaned, and what the startup sweep changes.
//! No SQL and no sleeping here, so every rule is tested with plain values.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{Lease, Status, Task};

/// A clock may run ahead of another host's by this much before we call a time "in the future".
const CLOCK_TOLERANCE: Duration = Duration::from_secs(60);

/// What is known of a task owner's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerState {
    /// It holds its instance lock (or, on another host, its heartbeat is recent).
    Alive,
    /// Known dead, with how we know ("lock released", "heartbeat expired").
    Dead(String),
}

/// How a task looks to an operator right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Verdict {
    /// Not running, or running with a live owner and recent heartbeat and progress.
    Healthy,
    /// Live owner, recent heartbeat, but no byte for longer than the stall timeout; its owner
    /// aborts and retries the transfer.
    Stalled { since_secs: u64 },
    /// No heartbeat for longer than the stale threshold (owner hung, or not reachable).
    Stale { since_secs: u64, reason: String },
    /// Running, but its owner is known dead.
    Orphaned { reason: String },
}

impl Verdict {
    /// The label shown instead of plain "running".
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Stalled { .. } => "stalled",
            Verdict::Stale { .. } => "stale",
            Verdict::Orphaned { .. } => "orphaned",
        }
    }

    /// True for stale and orphaned tasks: the ones recovery acts on.
    pub fn needs_recovery(&self) -> bool {
        matches!(self, Verdict::Stale { .. } | Verdict::Orphaned { .. })
    }

    /// The sentence shown beside a task that is not healthy.
    pub fn warning(&self) -> Option<String> {
        match self {
            Verdict::Healthy => None,
            Verdict::Stalled { since_secs } => Some(format!(
                "No data received for {since_secs} s; the owner will abort and retry the transfer."
            )),
            Verdict::Stale { since_secs, reason } => Some(format!(
                "Download appears to be stale ({reason}; no update for {since_secs} s). \
                 You can force restart it."
            )),
            Verdict::Orphaned { reason } => Some(format!(
                "Owner is gone ({reason}); the task will be recovered and resumed."
            )),
        }
    }
}

/// Seconds since `then`, or `None` when `then` is in the future beyond the tolerance.
pub fn age_secs(then: DateTime<Utc>, now: DateTime<Utc>) -> Option<u64> {
    let delta = now.signed_duration_since(then);
    match delta.to_std() {
        Ok(d) => Some(d.as_secs()),
        Err(_)
            if (-delta)
                .to_std()
                .is_ok_and(|ahead| ahead <= CLOCK_TOLERANCE) =>
        {
            Some(0)
        }
        Err(_) => None,
    }
}

/// Judges one task.
pub fn verdict(
    task: &Task,
    owner: &OwnerState,
    now: DateTime<Utc>,
    stale_after: Duration,
    stall_timeout: Duration,
) -> Verdict {
    if task.status != Status::Running {
        return Verdict::Healthy;
    }
    if let OwnerState::Dead(reason) = owner {
        return Verdict::Orphaned {
            reason: reason.clone(),
        };
    }
    let Some(since) = age_secs(task.updated_at, now) else {
        return Verdict::Stale {
            since_secs: 0,
            reason: "its last update is in the future; clocks disagree".into(),
        };
    };
    if since >= stale_after.as_secs() {
        return Verdict::Stale {
            since_secs: since,
            reason: format!("no heartbeat for over {} s", stale_after.as_secs()),
        };
    }
    let progress_age = task.progress_at.and_then(|p| age_secs(p, now)).unwrap_or(0);
    if progress_age >= stall_timeout.as_secs() {
        return Verdict::Stalled {
            since_secs: progress_age,
        };
    }
    Verdict::Healthy
}

/// The startup sweep: every running task whose owner is dead, with the reason to record.
/// Tasks of live owners are left alone, even when stale.
pub fn sweep_plan(
    running: &[Task],
    owner_of: impl Fn(&Task) -> OwnerState,
) -> Vec<(&Task, Lease, String)> {
    running
        .iter()
        .filter(|t| t.status == Status::Running)
        .filter_map(|t| match owner_of(t) {
            OwnerState::Dead(reason) => Some((t, t.lease(), format!("owner died: {reason}"))),
            OwnerState::Alive => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attempt, InstanceId, TaskId};

    fn running(updated_secs_ago: i64, progress_secs_ago: i64, now: DateTime<Utc>) -> Task {
        Task {
            id: TaskId(1),
            project: "p".into(),
            name: "a.bin".into(),
            dest_dir: "/d".into(),
            status: Status::Running,
            attempt: Attempt(1),
            owner: Some(InstanceId("i".into())),
            created_at: now,
            started_at: Some(now),
            updated_at: now - chrono::Duration::seconds(updated_secs_ago),
            progress_at: Some(now - chrono::Duration::seconds(progress_secs_ago)),
            finished_at: None,
            error_message: None,
            control: None,
            bytes_done: 0,
            bytes_total: None,
            files_done: 0,
            files_total: 1,
            retries: 0,
        }
    }

    const STALE: Duration = Duration::from_secs(300);
    const STALL: Duration = Duration::from_secs(30);

    #[test]
    fn a_fresh_task_with_a_live_owner_is_healthy() {
        let now = Utc::now();
        let v = verdict(&running(1, 1, now), &OwnerState::Alive, now, STALE, STALL);
        assert_eq!(v, Verdict::Healthy);
        assert_eq!(v.warning(), None);
    }

    #[test]
    fn no_heartbeat_past_the_threshold_is_stale_even_with_a_live_owner() {
        let now = Utc::now();
        let v = verdict(
            &running(301, 301, now),
            &OwnerState::Alive,
            now,
            STALE,
            STALL,
        );
        assert!(
            matches!(
                v,
                Verdict::Stale {
                    since_secs: 301,
                    ..
                }
            ),
            "{v:?}"
        );
        assert!(v.warning().unwrap().contains("force restart"));
        let v = verdict(&running(299, 1, now), &OwnerState::Alive, now, STALE, STALL);
        assert_eq!(v, Verdict::Healthy);
    }

    #[test]
    fn a_dead_owner_makes_an_orphan_whatever_the_heartbeat() {
        let now = Utc::now();
        let dead = OwnerState::Dead("lock released".into());
        let v = verdict(&running(0, 0, now), &dead, now, STALE, STALL);
        assert!(matches!(v, Verdict::Orphaned { .. }));
    }

    #[test]
    fn heartbeat_without_progress_is_stalled() {
        let now = Utc::now();
        let v = verdict(&running(1, 45, now), &OwnerState::Alive, now, STALE, STALL);
        assert_eq!(v, Verdict::Stalled { since_secs: 45 });
    }

    #[test]
    fn an_update_in_the_future_is_never_fresh() {
        let now = Utc::now();
        let v = verdict(
            &running(-3600, 0, now),
            &OwnerState::Alive,
            now,
            STALE,
            STALL,
        );
        assert!(matches!(v, Verdict::Stale { .. }), "{v:?}");
        // Small skew between hosts is tolerated.
        let v = verdict(&running(-30, 0, now), &OwnerState::Alive, now, STALE, STALL);
        assert_eq!(v, Verdict::Healthy);
    }

    #[test]
    fn the_sweep_takes_only_dead_owners_tasks() {
        let now = Utc::now();
        let mut alive = running(900, 900, now);
        alive.id = TaskId(1);
        alive.owner = Some(InstanceId("alive".into()));
        let mut dead = running(1, 1, now);
        dead.id = TaskId(2);
        dead.owner = Some(InstanceId("dead".into()));
        let tasks = [alive, dead];
        let plan = sweep_plan(&tasks, |t| {
            if t.owner.as_ref().is_some_and(|o| o.0 == "dead") {
                OwnerState::Dead("lock released".into())
            } else {
                OwnerState::Alive
            }
        });
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].1.task, TaskId(2));
        assert!(plan[0].2.contains("owner died"));
    }
}
