//! The store on real SQLite files: the task totals the triggers keep, including the back-fill
//! of a database made before them.

use chrono::Utc;
use rusqlite::Connection;

use super::{Actor, ClaimRules, HistoryFilter, Outcome, Store, schema};
use crate::model::{InstanceId, NewFile, NewTask, Status, TaskId};

fn me() -> Actor {
    Actor {
        instance: InstanceId("me".into()),
        label: "here/1".into(),
    }
}

fn new_task(project: &str, name: &str) -> NewTask {
    NewTask {
        project: project.into(),
        dest_dir: "/d".into(),
        files: vec![NewFile {
            url: format!("http://x/{name}"),
            name: name.into(),
            sha256_expected: None,
        }],
    }
}

/// A store in a temporary directory (kept alive by the returned guard).
fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("haul.db")).unwrap();
    (dir, store)
}

/// Adds `n` tasks: projects `a`/`b`/`c` in turn, names `f<id>.bin`; returns their ids.
fn add(store: &mut Store, n: usize) -> Vec<TaskId> {
    let projects = ["a", "b", "c"];
    (0..n)
        .map(|i| {
            let task = new_task(projects[i % 3], &format!("f{i}.bin"));
            store.add_task(&task, "x", Utc::now(), &me()).unwrap()
        })
        .collect()
}

/// Gives task `id` a status directly (the triggers fire on any update, however it is made).
fn set_status(store: &Store, id: TaskId, status: Status) {
    store
        .conn
        .execute(
            "UPDATE tasks SET status = ?2 WHERE id = ?1",
            rusqlite::params![id.0, status.as_str()],
        )
        .unwrap();
}

/// The kept totals against a `GROUP BY` over the tasks themselves.
fn assert_counts_match(conn: &Connection) {
    let read = |sql: &str| -> Vec<(String, String, i64)> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let kept = read("SELECT project, status, n FROM task_counts WHERE n != 0 ORDER BY 1, 2");
    let counted =
        read("SELECT project, status, COUNT(*) FROM tasks GROUP BY project, status ORDER BY 1, 2");
    assert_eq!(kept, counted);
}

fn count(store: &Store, status: Option<Status>, project: Option<&str>) -> u64 {
    let filter = HistoryFilter {
        status,
        project: project.map(str::to_owned),
        text: None,
    };
    store.history_count(&filter).unwrap()
}

#[test]
fn totals_follow_every_insert_and_status_change() {
    let (_dir, mut store) = store();
    let ids = add(&mut store, 9);
    assert_counts_match(&store.conn);
    assert_eq!(count(&store, None, None), 9);
    assert_eq!(count(&store, Some(Status::Queued), None), 9);
    assert_eq!(count(&store, None, Some("a")), 3);

    let rules = ClaimRules {
        max_concurrent: 100,
        per_host_limit: 100,
        ..ClaimRules::default()
    };
    let mut claimed = Vec::new();
    for _ in 0..4 {
        claimed.push(
            store
                .claim_next(&rules, &me(), Utc::now())
                .unwrap()
                .unwrap()
                .0,
        );
    }
    assert_counts_match(&store.conn);
    assert_eq!(count(&store, Some(Status::Running), None), 4);
    let (done, failed) = (claimed[0].lease(), claimed[1].lease());
    store
        .finish(done, &Outcome::Completed, &[], &me(), Utc::now())
        .unwrap();
    let outcome = Outcome::Failed("HTTP 404".into());
    store
        .finish(failed, &outcome, &[], &me(), Utc::now())
        .unwrap();
    store
        .interrupt(claimed[2].lease(), "owner died", &me(), Utc::now())
        .unwrap();
    store
        .cancel(ids[8], &me(), Utc::now(), &|_: &InstanceId| false)
        .unwrap();
    store
        .requeue(claimed[1].id, None, "retry", &me(), Utc::now())
        .unwrap();
    assert_counts_match(&store.conn);
    let by_status: Vec<(Status, u64)> = Status::ALL
        .into_iter()
        .map(|s| (s, count(&store, Some(s), None)))
        .collect();
    assert_eq!(
        by_status,
        [
            (Status::Queued, 5),
            (Status::Running, 1),
            (Status::Completed, 1),
            (Status::Failed, 0),
            (Status::Cancelled, 1),
            (Status::Interrupted, 1),
        ]
    );
    assert_eq!(count(&store, None, None), 9);
    let project_a = count(&store, None, Some("a"));
    let project_a_queued = count(&store, Some(Status::Queued), Some("a"));
    assert_eq!((project_a, project_a_queued), (3, 1));

    let metrics: u64 = store.status_counts().unwrap().iter().map(|c| c.count).sum();
    assert_eq!(metrics, 9);
    assert!(
        store.status_counts().unwrap().iter().all(|c| c.count > 0),
        "no zero rows for a status nobody has any more"
    );
    store
        .conn
        .execute("DELETE FROM tasks WHERE id = ?1", [ids[0].0])
        .unwrap();
    assert_counts_match(&store.conn);
    assert_eq!(count(&store, None, None), 8);
}

#[test]
fn the_migration_back_fills_the_totals_of_a_database_made_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haul.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        schema::configure_writer(&conn).unwrap();
        schema::migrate_to(&mut conn, 2).unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'task_counts'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "version 2 has no totals yet");
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
             INSERT INTO tasks (project, name, dest_dir, host, status, created_at, updated_at, \
               files_total) \
             SELECT 'p' || (i % 7), 'f' || i, '/d', 'x', \
               CASE i % 5 WHEN 0 THEN 'failed' WHEN 1 THEN 'queued' WHEN 2 THEN 'running' \
               ELSE 'completed' END, 0, 0, 1 FROM n",
        )
        .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    let version: usize = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::latest_version());
    assert_counts_match(&store.conn);
    assert_eq!(count(&store, None, None), 500);
    assert_eq!(count(&store, Some(Status::Failed), None), 100);
    assert_eq!(count(&store, Some(Status::Failed), Some("p0")), 14);
    add(&mut store, 4);
    set_status(&store, TaskId(1), Status::Cancelled);
    assert_counts_match(&store.conn);
    assert_eq!(count(&store, None, None), 504);
}
