//! The heartbeat tick and what every reader makes of it: liveness from the owner's heartbeat,
//! offsets from its packed beats, fencing, folding back, recovery, the v4 → v5 migration, and
//! the unfinished rows a reader keeps across ticks.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::*;
use crate::model::{
    Attempt, Instance, InstanceId, Lease, Mode, NewFile, NewTask, PlacedFile, Status, Task, TaskId,
};
use crate::recovery::{OwnerState, Verdict, verdict};

/// A moment with millisecond precision (what the database keeps), `secs` after a fixed start.
fn at(secs: i64) -> DateTime<Utc> {
    from_ms(1_800_000_000_000 + secs * 1000)
}

fn actor(name: &str) -> Actor {
    Actor {
        instance: InstanceId(name.into()),
        label: format!("h/{name}"),
    }
}

fn register(store: &mut Store, who: &Actor) {
    let instance = Instance {
        id: who.instance.clone(),
        host: "h".into(),
        pid: 1,
        mode: Mode::Worker,
        started_at: at(0),
        heartbeat_at: at(0),
        stopped_at: None,
    };
    store.register_instance(&instance).unwrap();
}

fn open() -> (tempfile::TempDir, Store, Actor) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("haul.db")).unwrap();
    let me = actor("owner-a");
    register(&mut store, &me);
    (dir, store, me)
}

fn rules() -> ClaimRules {
    ClaimRules {
        max_concurrent: 1000,
        per_host_limit: 1000,
        auto_resume: true,
        ..ClaimRules::default()
    }
}

/// Adds a queued task of `files` files at second 0.
fn add(store: &mut Store, by: &Actor, name: &str, files: usize) -> TaskId {
    let task = NewTask {
        project: "p".into(),
        dest_dir: "/d".into(),
        files: (0..files)
            .map(|i| NewFile {
                url: format!("http://x/{name}/{i}"),
                name: format!("{name}.{i}"),
                sha256_expected: None,
            })
            .collect(),
    };
    store.add_task(&task, "x", at(0), by).unwrap()
}

/// Adds a task of `files` files and claims it for `by` at second 0.
fn claimed(store: &mut Store, by: &Actor, name: &str, files: usize) -> Lease {
    let id = add(store, by, name, files);
    let mut claims = store.claim_up_to(1, &rules(), by, at(0)).unwrap();
    let (task, _) = claims.pop().unwrap();
    assert_eq!(task.id, id);
    task.lease()
}

fn placed(index: u32, bytes: u64, dest: &str) -> PlacedFile {
    PlacedFile {
        index,
        bytes,
        sha256: None,
        dest: dest.into(),
    }
}

fn progress(lease: Lease, files: &[(u32, u64)]) -> TaskProgress {
    TaskProgress {
        lease,
        files: files.to_vec(),
        progressed: !files.is_empty(),
        milestone: None,
    }
}

fn tick(store: &mut Store, by: &Actor, tasks: &[TaskProgress], secs: i64) -> Vec<HeartbeatReply> {
    store.heartbeat(by, tasks, at(secs)).unwrap()
}

fn task(store: &Store, lease: Lease) -> Task {
    store.task(lease.task).unwrap().unwrap()
}

fn offsets(store: &Store, lease: Lease) -> Vec<u64> {
    store
        .files(lease.task)
        .unwrap()
        .iter()
        .map(|f| f.bytes_done)
        .collect()
}

/// The task's own row, as stored (no heartbeat added): `(updated_at, bytes_done)` and the
/// files' `bytes_done`.
fn raw(store: &Store, lease: Lease) -> ((i64, i64), Vec<i64>) {
    let row = store
        .conn
        .query_row(
            "SELECT updated_at, bytes_done FROM tasks WHERE id = ?1",
            [lease.task.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let files = store
        .conn
        .prepare("SELECT bytes_done FROM files WHERE task_id = ?1 ORDER BY idx")
        .unwrap()
        .query_map([lease.task.0], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (row, files)
}

fn beat_rows(conn: &Connection) -> i64 {
    conn.query_row("SELECT COUNT(*) FROM task_beats", [], |r| r.get(0))
        .unwrap()
}

fn is_stale(task: &Task, now_secs: i64) -> bool {
    let v = verdict(
        task,
        &OwnerState::Alive,
        at(now_secs),
        std::time::Duration::from_secs(300),
        std::time::Duration::from_secs(30),
    );
    matches!(v, Verdict::Stale { .. })
}

#[test]
fn a_tick_moves_update_progress_and_offsets_for_every_reader_without_rewriting_task_rows() {
    let (dir, mut store, me) = open();
    let a = claimed(&mut store, &me, "a", 1);
    let b = claimed(&mut store, &me, "b", 2);
    let before = raw(&store, a);
    let replies = tick(
        &mut store,
        &me,
        &[progress(a, &[(0, 100)]), progress(b, &[(0, 10), (1, 20)])],
        1,
    );
    assert_eq!(
        replies,
        vec![
            HeartbeatReply::Held {
                lease: a,
                cancel: false
            },
            HeartbeatReply::Held {
                lease: b,
                cancel: false
            },
        ]
    );
    let seen = task(&store, a);
    assert_eq!((seen.updated_at, seen.progress_at), (at(1), Some(at(1))));
    assert_eq!(seen.bytes_done, 100);
    assert_eq!(offsets(&store, a), vec![100]);
    assert_eq!(task(&store, b).bytes_done, 30);
    assert_eq!(offsets(&store, b), vec![10, 20]);
    assert_eq!(raw(&store, a), before, "the tick wrote no task or file row");

    // A tick without news still moves the update, not the progress time nor the bytes.
    tick(
        &mut store,
        &me,
        &[progress(a, &[]), progress(b, &[(1, 25)])],
        2,
    );
    let seen = task(&store, a);
    assert_eq!((seen.updated_at, seen.progress_at), (at(2), Some(at(1))));
    assert_eq!(seen.bytes_done, 100);
    assert_eq!(offsets(&store, b), vec![10, 25]);

    // Every reader sees the same numbers: lists, history, per project, and a read-only watcher.
    let running = store.running().unwrap();
    let unfinished = store.unfinished().unwrap();
    let page = store
        .history_page(&HistoryFilter::default(), PageKey::Newest, 10)
        .unwrap();
    let watcher = ReadOnlyStore::open(&dir.path().join("haul.db")).unwrap();
    let version = watcher.data_version().unwrap();
    for list in [&running, &unfinished, &page, &watcher.running().unwrap()] {
        let mut list = list.clone();
        list.sort_by_key(|t| t.id);
        let got: Vec<(u64, DateTime<Utc>)> =
            list.iter().map(|t| (t.bytes_done, t.updated_at)).collect();
        assert_eq!(got, vec![(100, at(2)), (35, at(2))]);
    }
    assert_eq!(watcher.files(b.task).unwrap()[1].bytes_done, 25);
    assert_eq!(
        store.bytes_by_project().unwrap(),
        vec![("p".to_owned(), 135)]
    );
    assert_eq!(
        watcher.data_version().unwrap(),
        version,
        "reading wrote nothing"
    );
}

#[test]
fn a_tick_after_a_lost_claim_writes_nothing_of_it_and_says_lost() {
    let (_dir, mut store, me) = open();
    let a = claimed(&mut store, &me, "a", 1);
    let b = claimed(&mut store, &me, "b", 1);
    tick(
        &mut store,
        &me,
        &[progress(a, &[(0, 100)]), progress(b, &[(0, 100)])],
        1,
    );
    // An operator force-restarts `a`; recovery interrupts `b`. Both keep the offset reported.
    let requeued = store.requeue(a.task, None, "forced", &me, at(2)).unwrap();
    assert!(matches!(requeued, RestartOutcome::Requeued { .. }));
    assert!(store.interrupt(b, "stale", &me, at(2)).unwrap());
    let after_reset = (raw(&store, a), raw(&store, b));
    assert_eq!((after_reset.0).1, vec![100]);
    assert_eq!((after_reset.1).1, vec![100]);
    assert_eq!(
        beat_rows(&store.conn),
        0,
        "the beats were folded and removed"
    );

    let replies = tick(
        &mut store,
        &me,
        &[progress(a, &[(0, 900)]), progress(b, &[(0, 900)])],
        3,
    );
    assert_eq!(
        replies,
        vec![
            HeartbeatReply::Lost { lease: a },
            HeartbeatReply::Lost { lease: b }
        ]
    );
    assert_eq!((raw(&store, a), raw(&store, b)), after_reset);
    assert_eq!(beat_rows(&store.conn), 0);
    for lease in [a, b] {
        let seen = task(&store, lease);
        assert_eq!((seen.bytes_done, seen.updated_at), (100, at(2)));
    }

    // Claimed again by another owner: the old owner's tick still touches nothing of it.
    let other = actor("owner-b");
    register(&mut store, &other);
    let (again, _) = store
        .claim_up_to(1, &rules(), &other, at(4))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(again.id, a.task);
    tick(
        &mut store,
        &other,
        &[progress(again.lease(), &[(0, 150)])],
        5,
    );
    let replies = tick(&mut store, &me, &[progress(a, &[(0, 999)])], 6);
    assert_eq!(replies, vec![HeartbeatReply::Lost { lease: a }]);
    let seen = task(&store, a);
    assert_eq!((seen.bytes_done, seen.updated_at), (150, at(5)));
    assert_eq!(offsets(&store, a), vec![150]);
}

#[test]
fn the_update_stops_when_the_owner_stops_reporting_a_task_or_stops_ticking() {
    let (_dir, mut store, me) = open();
    let kept = claimed(&mut store, &me, "kept", 1);
    let dropped = claimed(&mut store, &me, "dropped", 1);
    let both = |k: u64, d: u64| [progress(kept, &[(0, k)]), progress(dropped, &[(0, d)])];
    tick(&mut store, &me, &both(10, 20), 1);
    tick(&mut store, &me, &both(11, 21), 2);
    // The owner still holds `dropped` but no longer reports it (say its worker hung).
    tick(&mut store, &me, &[progress(kept, &[(0, 12)])], 3);
    tick(&mut store, &me, &[progress(kept, &[(0, 13)])], 400);
    let seen = task(&store, dropped);
    assert_eq!(seen.status, Status::Running);
    assert_eq!(
        seen.updated_at,
        at(2),
        "frozen at the last tick that reported it"
    );
    assert_eq!((seen.bytes_done, seen.progress_at), (21, Some(at(2))));
    assert_eq!(
        raw(&store, dropped).1,
        vec![21],
        "its offset went to its row"
    );
    assert!(is_stale(&seen, 400));
    let seen = task(&store, kept);
    assert_eq!((seen.updated_at, seen.bytes_done), (at(400), 13));
    assert!(!is_stale(&seen, 400));

    // The owner stops ticking (hung or dead): nothing moves any more, and it turns stale.
    let last = task(&store, kept);
    assert_eq!(task(&store, kept), last);
    assert!(is_stale(&last, 701));
    assert!(!is_stale(&last, 699));
}

#[test]
fn recovery_resumes_each_file_from_the_last_offset_a_dead_owner_reported() {
    let (_dir, mut store, dead) = open();
    let lease = claimed(&mut store, &dead, "big", 2);
    tick(&mut store, &dead, &[progress(lease, &[(0, 1000)])], 1);
    tick(
        &mut store,
        &dead,
        &[progress(lease, &[(0, 2000), (1, 50)])],
        2,
    );
    // The owner dies here. The sweep of another instance interrupts its claim.
    let sweeper = actor("sweeper");
    register(&mut store, &sweeper);
    assert!(
        store
            .interrupt(lease, "owner died", &sweeper, at(9))
            .unwrap()
    );
    assert_eq!(
        raw(&store, lease),
        ((at(9).timestamp_millis(), 2050), vec![2000, 50])
    );
    let (task, files) = store
        .claim_up_to(1, &rules(), &sweeper, at(10))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(task.attempt, Attempt(lease.attempt.0 + 1));
    assert_eq!(task.bytes_done, 2050);
    let resumed: Vec<u64> = files.iter().map(|f| f.bytes_done).collect();
    assert_eq!(resumed, vec![2000, 50], "never behind, never beyond");
}

#[test]
fn the_owners_own_writes_fold_its_beat_first_so_no_offset_is_lost() {
    let (_dir, mut store, me) = open();
    let lease = claimed(&mut store, &me, "three", 3);
    tick(
        &mut store,
        &me,
        &[progress(lease, &[(0, 40), (1, 30), (2, 20)])],
        1,
    );
    // File 0 finishes: the others keep their reported offsets.
    assert!(
        store
            .file_done(lease, &placed(0, 64, "/d/three.0"), at(2))
            .unwrap()
    );
    assert_eq!(raw(&store, lease).1, vec![64, 30, 20]);
    assert_eq!(task(&store, lease).bytes_done, 114);
    // File 1 starts over (its validator changed): the old offset is not shown again.
    tick(&mut store, &me, &[progress(lease, &[(1, 35)])], 3);
    assert!(store.restart_file(lease, 1, "changed", &me, at(4)).unwrap());
    assert_eq!(offsets(&store, lease), vec![64, 0, 20]);
    assert_eq!(task(&store, lease).bytes_done, 84);
    // A tick reporting a finished file changes nothing of it.
    tick(&mut store, &me, &[progress(lease, &[(0, 1), (2, 25)])], 5);
    assert_eq!(offsets(&store, lease), vec![64, 0, 25]);
    // Interrupted with no offsets of its own (all were sent by ticks): the rows keep them.
    let stopped = Outcome::Interrupted("shutdown".into());
    assert!(store.finish(lease, &stopped, &[], &[], &me, at(6)).unwrap());
    assert_eq!(raw(&store, lease).1, vec![64, 0, 25]);
    assert_eq!(task(&store, lease).bytes_done, 89);
    assert_eq!(beat_rows(&store.conn), 0);
}

/// A task's end records the files placed since its last write in the same transaction: done,
/// with their sizes and destinations, and counted in the totals; a lost lease records none.
#[test]
fn a_finish_records_the_placed_files_it_carries_and_a_lost_lease_none() {
    let (_dir, mut store, me) = open();
    let lease = claimed(&mut store, &me, "two", 2);
    tick(&mut store, &me, &[progress(lease, &[(0, 4), (1, 7)])], 1);
    let files = [placed(0, 10, "/d/two.0"), placed(1, 20, "/d/two (1).1")];
    let replaced = Lease {
        attempt: Attempt(lease.attempt.0 + 1),
        ..lease
    };
    let done = Outcome::Completed;
    assert!(
        !store
            .finish(replaced, &done, &[], &files, &me, at(2))
            .unwrap()
    );
    assert_eq!(
        task(&store, lease).files_done,
        0,
        "nothing under a lost lease"
    );
    assert!(store.finish(lease, &done, &[], &files, &me, at(3)).unwrap());
    let ended = task(&store, lease);
    assert_eq!(ended.status, Status::Completed);
    assert_eq!(
        (ended.files_done, ended.bytes_done, ended.bytes_total),
        (2, 30, Some(30))
    );
    let rows = store.files(lease.task).unwrap();
    let got: Vec<(bool, u64, Option<&str>)> = rows
        .iter()
        .map(|f| (f.done, f.bytes_done, f.dest_path.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (true, 10, Some("/d/two.0")),
            (true, 20, Some("/d/two (1).1"))
        ]
    );
}

/// The next file's target record carries the files placed before it: they are done and
/// counted with the new file's size; under a lost lease neither is written.
/// A file's size recorded again (the server's file changed, or its size became unknown)
/// replaces its share of the task's total instead of adding to it.
#[test]
fn a_size_recorded_again_replaces_the_files_share_of_the_total() {
    let (_dir, mut store, me) = open();
    let lease = claimed(&mut store, &me, "sizes", 2);
    let target = |store: &mut Store, index: u32, size: Option<u64>| {
        let held = store.set_file_target(lease, index, "/d/f", size, None, None, &[], at(1));
        assert!(held.unwrap());
    };
    target(&mut store, 0, Some(100));
    target(&mut store, 1, Some(30));
    target(&mut store, 0, Some(70));
    assert_eq!(task(&store, lease).bytes_total, Some(100), "70 + 30");
    target(&mut store, 0, None);
    assert_eq!(
        task(&store, lease).bytes_total,
        Some(30),
        "an unknown size counts as none"
    );
}

#[test]
fn a_target_record_carries_the_placed_files_before_it() {
    let (_dir, mut store, me) = open();
    let lease = claimed(&mut store, &me, "pair", 2);
    let first = [placed(0, 10, "/d/pair.0")];
    let replaced = Lease {
        attempt: Attempt(lease.attempt.0 + 1),
        ..lease
    };
    let target = |s: &mut Store, lease: Lease, at_secs: i64| {
        s.set_file_target(
            lease,
            1,
            "/d/pair.1",
            Some(5),
            None,
            None,
            &first,
            at(at_secs),
        )
        .unwrap()
    };
    assert!(!target(&mut store, replaced, 1));
    assert_eq!(
        task(&store, lease).files_done,
        0,
        "nothing under a lost lease"
    );
    assert!(target(&mut store, lease, 2));
    let now = task(&store, lease);
    assert_eq!(
        (now.files_done, now.bytes_done, now.bytes_total),
        (1, 10, Some(15)),
        "file 0 done, both sizes counted"
    );
    let rows = store.files(lease.task).unwrap();
    let got: Vec<(bool, Option<u64>, Option<&str>)> = rows
        .iter()
        .map(|f| (f.done, f.bytes_total, f.dest_path.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (true, Some(10), Some("/d/pair.0")),
            (false, Some(5), Some("/d/pair.1"))
        ]
    );
}

#[test]
fn cancel_requests_are_still_answered_by_the_tick() {
    let (_dir, mut store, me) = open();
    let a = claimed(&mut store, &me, "a", 1);
    let b = claimed(&mut store, &me, "b", 1);
    let operator = actor("operator");
    let outcome = store.cancel(a.task, &operator, at(1), &|_| true).unwrap();
    assert!(matches!(outcome, CancelOutcome::Requested { .. }));
    let replies = tick(&mut store, &me, &[progress(a, &[]), progress(b, &[])], 2);
    assert_eq!(
        replies,
        vec![
            HeartbeatReply::Held {
                lease: a,
                cancel: true
            },
            HeartbeatReply::Held {
                lease: b,
                cancel: false
            },
        ]
    );
}

#[test]
fn a_version_4_database_upgrades_and_its_running_tasks_read_as_before() {
    let (_dir, mut store) = super::tests::upgraded_from(4, |conn| {
        conn.execute_batch(
            "INSERT INTO instances (id, host, pid, mode, started_at, heartbeat_at) \
               VALUES ('old', 'h', 1, 'worker', 0, 1800000000000);
             INSERT INTO tasks (id, project, name, dest_dir, host, status, attempt, owner_id, \
               created_at, updated_at, progress_at, bytes_done, files_total) \
               VALUES (1, 'p', 'f', '/d', 'x', 'running', 3, 'old', 0, 1799999990000, \
               1799999990000, 700, 1);
             INSERT INTO files (task_id, idx, url, name, bytes_done) \
               VALUES (1, 0, 'http://x/f', 'f', 700);",
        )
        .unwrap();
    });
    let lease = Lease {
        task: TaskId(1),
        attempt: Attempt(3),
    };
    let seen = task(&store, lease);
    assert_eq!(
        (seen.updated_at, seen.bytes_done),
        (at(-10), 700),
        "no beat yet: the row as it was"
    );
    // Its owner (a new haul) ticks: the task moves as any other.
    let old = actor("old");
    let replies = tick(&mut store, &old, &[progress(lease, &[(0, 900)])], 1);
    assert_eq!(
        replies,
        vec![HeartbeatReply::Held {
            lease,
            cancel: false
        }]
    );
    let seen = task(&store, lease);
    assert_eq!((seen.updated_at, seen.bytes_done), (at(1), 900));
    let plan: String = store
        .conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id, attempt FROM tasks \
             WHERE status = 'running' AND owner_id = 'old'",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("COVERING INDEX tasks_status_id"), "{plan}");
}

#[test]
fn a_stale_notification_counts_from_the_last_heartbeat() {
    let (_dir, mut store, me) = open();
    store.set_notify_kinds(crate::config::NotifyKinds {
        stale: true,
        ..crate::config::NotifyKinds::default()
    });
    let lease = claimed(&mut store, &me, "a", 1);
    tick(&mut store, &me, &[progress(lease, &[(0, 5)])], 100);
    store.note_stale(lease, at(500)).unwrap();
    let payload: String = store
        .conn
        .query_row("SELECT payload FROM notifications", [], |r| r.get(0))
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(json["time_since_update_seconds"], 400, "{json}");
}

#[test]
fn many_tasks_share_a_few_beat_rows_and_each_keeps_its_own() {
    let (_dir, mut store, me) = open();
    let leases: Vec<Lease> = (0..300)
        .map(|n| claimed(&mut store, &me, &format!("t{n}"), 1))
        .collect();
    let all: Vec<TaskProgress> = leases
        .iter()
        .map(|l| progress(*l, &[(0, l.task.0 as u64 * 10)]))
        .collect();
    tick(&mut store, &me, &all, 1);
    assert_eq!(beat_rows(&store.conn), beats::BUCKETS);
    for task in store.running().unwrap() {
        assert_eq!(task.bytes_done, task.id.0 as u64 * 10);
        assert_eq!(task.updated_at, at(1));
    }
    // Once no task runs, no row is left.
    for lease in &leases {
        assert!(
            store
                .finish(*lease, &Outcome::Completed, &[], &[], &me, at(2))
                .unwrap()
        );
    }
    tick(&mut store, &me, &[], 3);
    assert_eq!(beat_rows(&store.conn), 0);
    assert_eq!(store.running().unwrap(), Vec::<Task>::new(), "nothing runs");
}

#[test]
fn a_damaged_beat_row_is_a_clear_error_to_readers_the_tick_and_the_owners_writes() {
    let (_dir, mut store, me) = open();
    let lease = claimed(&mut store, &me, "a", 1);
    tick(&mut store, &me, &[progress(lease, &[(0, 10)])], 1);
    store
        .conn
        .execute(
            "UPDATE task_beats SET beats = substr(beats, 1, length(beats) - 1)",
            [],
        )
        .unwrap();
    let before = raw(&store, lease);
    let malformed = |err: StoreError| {
        let err = err.to_string();
        assert!(
            err.contains("heartbeat row of instance owner-a in task_beats is malformed"),
            "{err}"
        );
    };
    malformed(store.task(lease.task).unwrap_err());
    malformed(store.files(lease.task).unwrap_err());
    malformed(
        store
            .heartbeat(&me, &[progress(lease, &[(0, 20)])], at(2))
            .unwrap_err(),
    );
    malformed(
        store
            .finish(lease, &Outcome::Completed, &[], &[], &me, at(3))
            .unwrap_err(),
    );
    assert_eq!(raw(&store, lease), before, "nothing was written");
}

#[test]
fn kept_rows_get_every_beat_and_are_read_again_after_any_change_of_a_task_row() {
    let (dir, mut store, by) = open();
    let a = claimed(&mut store, &by, "a", 1);
    add(&mut store, &by, "b", 1);
    let reader = ReadOnlyStore::open(&dir.path().join("haul.db")).unwrap();
    let mut kept = KeptTasks::default();
    let read = |kept: &mut KeptTasks| {
        let rows = reader.unfinished_kept(kept).unwrap();
        assert_eq!(
            rows,
            reader.unfinished().unwrap(),
            "the same as a fresh read"
        );
        rows
    };
    let rows = read(&mut kept);
    assert_eq!(rows.len(), 2);
    let changes = kept.changes;

    // A tick changes no task row: the rows are kept, its beat is added to them, or to the
    // rows read last, in place (each tick's beat replacing the one before).
    let mut live = rows;
    for (offset, secs) in [(100, 1), (250, 2)] {
        tick(&mut store, &by, &[progress(a, &[(0, offset)])], secs);
        assert!(reader.beats_on_kept(&kept, live.iter_mut()).unwrap());
        assert_eq!(live, reader.unfinished().unwrap());
        assert_eq!((live[0].bytes_done, live[0].updated_at), (offset, at(secs)));
    }
    let rows = read(&mut kept);
    assert_eq!(kept.changes, changes, "a heartbeat tick changed a task row");
    assert_eq!(rows, live);

    // Any change of a task row, however it is made, is read again.
    store
        .conn
        .execute(
            "UPDATE tasks SET name = 'renamed' WHERE id = ?1",
            [a.task.0],
        )
        .unwrap();
    assert!(!reader.beats_on_kept(&kept, live.iter_mut()).unwrap());
    assert_eq!(live, rows, "untouched");
    assert_eq!(read(&mut kept)[0].name, "renamed");
    add(&mut store, &by, "c", 1);
    assert_eq!(read(&mut kept).len(), 3);
    store
        .conn
        .execute(
            "DELETE FROM tasks WHERE id = (SELECT task_id FROM files WHERE name = 'b.0')",
            [],
        )
        .unwrap();
    let rows = read(&mut kept);
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].status, rows[0].bytes_done), (Status::Running, 250));
    assert_ne!(kept.changes, changes);
}
