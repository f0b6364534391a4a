//! The memory ∪ database merge behind the Active and Stale panes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::{now, task};
use crate::engine::{EngineEvent, Notice, TaskView};
use crate::health::Assessed;
use crate::model::{Attempt, Instance, InstanceId, Lease, Mode, Source, Status, TaskEvent, TaskId};
use crate::recovery::Verdict;
use crate::snapshot::{LogOrigin, Recovery, attention_rows, merge_active, merge_log};
use crate::store::Actor;

fn me() -> Actor {
    Actor {
        instance: InstanceId("me".into()),
        label: "here/1".into(),
    }
}

fn instance(id: &str, pid: u32) -> Instance {
    Instance {
        id: InstanceId(id.into()),
        host: "host".into(),
        pid,
        mode: Mode::Worker,
        started_at: now(),
        heartbeat_at: now(),
        stopped_at: None,
    }
}

/// A running row owned by `owner` at `attempt`, `since` seconds after its last heartbeat.
fn running(id: i64, owner: &str, attempt: i64, since: u64, verdict: Verdict) -> Assessed {
    let mut t = task(id, Status::Running, &format!("t{id}.bin"));
    t.owner = Some(InstanceId(owner.into()));
    t.attempt = Attempt(attempt);
    Assessed {
        task: t,
        owner: Some(Arc::new(instance(owner, id as u32))),
        verdict,
        since_update_secs: Some(since),
    }
}

fn db_row(id: i64, status: Status) -> Assessed {
    Assessed {
        task: task(id, status, "q.bin"),
        owner: None,
        verdict: Verdict::Healthy,
        since_update_secs: None,
    }
}

/// This process runs task `id` at `attempt`, `received` bytes in.
fn memory(ids: &[(i64, i64, u64)]) -> BTreeMap<TaskId, TaskView> {
    let at = Instant::now();
    ids.iter()
        .map(|&(id, attempt, received)| {
            let lease = Lease {
                task: TaskId(id),
                attempt: Attempt(attempt),
            };
            let mut view = TaskView::new(lease, "pdfs".into(), format!("t{id}.bin"), 1, 0, at);
            let task = TaskId(id);
            view.apply(&EngineEvent::FileStarted {
                task,
                index: 0,
                offset: 0,
                total: Some(4 << 20),
                at,
            });
            view.apply(&EngineEvent::Progress {
                task,
                index: 0,
                offset: received,
                at,
            });
            (task, view)
        })
        .collect()
}

#[test]
fn duplicates_merge_into_one_row_with_live_figures_from_memory() {
    let memory = memory(&[(1, 2, 3 << 20)]);
    let database = vec![
        running(1, "me", 2, 0, Verdict::Healthy),
        running(2, "other", 1, 3, Verdict::Healthy),
        db_row(3, Status::Queued),
        db_row(4, Status::Interrupted),
    ];
    let rows = merge_active(&memory, &database, Some(&me()));
    let ids: Vec<i64> = rows.iter().map(|r| r.id.0).collect();
    assert_eq!(
        ids,
        vec![1, 2, 3],
        "deduplicated by id; interrupted waits in history"
    );
    assert_eq!(rows[0].source, Source::Memory);
    assert_eq!(
        rows[0].bytes_done,
        3 << 20,
        "live bytes from memory, not the durable 1 MiB"
    );
    assert_eq!(rows[0].owner.as_deref(), Some("here/1"));
    assert_eq!(rows[1].source, Source::Database);
    assert_eq!(rows[1].owner.as_deref(), Some("host/2"));
    assert_eq!(rows[2].status, Status::Queued);
    assert!(rows.iter().all(|r| r.disagreement.is_none()), "{rows:?}");
}

#[test]
fn disagreements_are_flagged_not_hidden() {
    let memory = memory(&[(1, 1, 10), (2, 1, 10), (3, 1, 10), (4, 1, 10)]);
    let mut done = db_row(1, Status::Completed);
    done.task.attempt = Attempt(1);
    let database = vec![
        done,
        running(2, "me", 2, 0, Verdict::Healthy),
        running(3, "other", 1, 0, Verdict::Healthy),
        running(5, "me", 1, 10, Verdict::Healthy),
        running(6, "me", 1, 0, Verdict::Healthy),
    ];
    let rows = merge_active(&memory, &database, Some(&me()));
    let flag = |id: i64| {
        rows.iter()
            .find(|r| r.id.0 == id)
            .and_then(|r| r.disagreement.clone())
    };
    assert_eq!(flag(1).as_deref(), Some("the database says completed"));
    assert_eq!(
        flag(2).as_deref(),
        Some("the database is at attempt 2, this process at 1")
    );
    assert_eq!(flag(3).as_deref(), Some("the database says host/3 owns it"));
    assert_eq!(flag(4).as_deref(), Some("not in the database"));
    assert_eq!(
        flag(5).as_deref(),
        Some("the database says this process runs it, but it does not")
    );
    assert_eq!(
        flag(6),
        None,
        "a claim that has not reached memory yet is not a disagreement"
    );
    assert_eq!(rows.len(), 6);
}

#[test]
fn stale_and_orphaned_rows_need_recovery_with_the_right_action() {
    let stale = Verdict::Stale {
        since_secs: 400,
        reason: "no heartbeat for over 300 s".into(),
    };
    let orphaned = Verdict::Orphaned {
        reason: "its lock file is gone (process exited)".into(),
    };
    let database = vec![
        running(1, "a", 1, 400, stale.clone()),
        running(2, "b", 1, 1, orphaned.clone()),
        running(3, "c", 1, 1, Verdict::Stalled { since_secs: 40 }),
        running(4, "c", 1, 1, Verdict::Healthy),
    ];
    let rows = attention_rows(&database);
    assert_eq!(rows.len(), 2, "stalled and healthy tasks need no recovery");
    assert_eq!(
        (rows[0].id, rows[0].recovery),
        (TaskId(1), Recovery::ForceRestart)
    );
    assert!(rows[0].warning.contains("stale"), "{}", rows[0].warning);
    assert_eq!(
        (rows[1].id, rows[1].recovery),
        (TaskId(2), Recovery::Restart)
    );
    assert!(rows[1].warning.contains("Owner is gone"));
    let active = merge_active(&BTreeMap::new(), &database, None);
    assert_eq!(
        active[0].verdict, stale,
        "the Active pane shows them too, flagged"
    );
    assert_eq!(active[1].verdict, orphaned);
}

#[test]
fn the_log_merges_both_sources_newest_first() {
    let at = |s| now() - chrono::Duration::seconds(s);
    let notices = VecDeque::from([Notice {
        at: at(5),
        task: None,
        text: "No orphaned running tasks".into(),
    }]);
    let events = VecDeque::from([
        TaskEvent {
            id: 1,
            task_id: TaskId(1),
            at: at(9),
            attempt: Attempt(1),
            kind: crate::model::EventKind::Claimed,
            by: Some("w/1".into()),
            message: "claimed".into(),
        },
        TaskEvent {
            id: 2,
            task_id: TaskId(1),
            at: at(1),
            attempt: Attempt(1),
            kind: crate::model::EventKind::Cancelled,
            by: Some("w/1".into()),
            message: "cancelled".into(),
        },
    ]);
    let log = merge_log(&notices, &events);
    let order: Vec<(&str, LogOrigin)> = log.iter().map(|l| (l.text.as_str(), l.origin)).collect();
    assert_eq!(
        order,
        vec![
            ("cancelled", LogOrigin::Database),
            ("No orphaned running tasks", LogOrigin::Here),
            ("claimed", LogOrigin::Database)
        ]
    );
}
