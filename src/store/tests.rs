//! The store on real SQLite files: history pages by key (both directions, filters, edges) and
//! the task totals the triggers keep, including the back-fill of a database made before them.

use chrono::Utc;
use rusqlite::Connection;

use super::{Actor, ClaimRules, HistoryExtent, HistoryFilter, Outcome, PageKey, Store, schema};
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

/// Every task, newest first, straight from the table: what pages must add up to.
fn all_ids(store: &Store, filter: &HistoryFilter) -> Vec<TaskId> {
    let tasks = store
        .history_page(&HistoryFilter::default(), PageKey::Newest, usize::MAX)
        .unwrap();
    tasks
        .into_iter()
        .filter(|t| filter.status.is_none_or(|s| t.status == s))
        .filter(|t| filter.project.as_ref().is_none_or(|p| &t.project == p))
        .filter(|t| {
            filter
                .text
                .as_ref()
                .is_none_or(|x| t.name.contains(x.as_str()) || t.project.contains(x.as_str()))
        })
        .map(|t| t.id)
        .collect()
}

/// Walks history from `first` a page of `page` at a time; the ids in the order read.
fn walk(store: &Store, filter: &HistoryFilter, first: PageKey, page: usize) -> Vec<TaskId> {
    let mut key = first;
    let mut seen = Vec::new();
    loop {
        let rows = store.history_page(filter, key, page).unwrap();
        assert!(rows.len() <= page);
        let Some(last) = rows.last() else { break };
        key = match key {
            PageKey::Newest | PageKey::Before(_) => PageKey::Before(last.id),
            PageKey::Oldest | PageKey::After(_) => PageKey::After(last.id),
        };
        let short = rows.len() < page;
        seen.extend(rows.iter().map(|t| t.id));
        if short {
            break;
        }
    }
    seen
}

fn filters() -> Vec<HistoryFilter> {
    let f = |status: Option<Status>, project: Option<&str>, text: Option<&str>| HistoryFilter {
        status,
        project: project.map(str::to_owned),
        text: text.map(str::to_owned),
    };
    vec![
        f(None, None, None),
        f(Some(Status::Failed), None, None),
        f(Some(Status::Queued), None, None),
        f(None, Some("b"), None),
        f(Some(Status::Completed), Some("a"), None),
        f(None, None, Some("f1")),
        f(Some(Status::Failed), Some("c"), Some("1")),
        f(None, Some("nobody"), None),
    ]
}

/// 41 tasks across three projects and four statuses.
fn varied() -> (tempfile::TempDir, Store) {
    let (dir, mut store) = store();
    for (i, id) in add(&mut store, 41).into_iter().enumerate() {
        let status = match i % 4 {
            0 => Status::Completed,
            1 => Status::Failed,
            2 => Status::Cancelled,
            _ => Status::Queued,
        };
        set_status(&store, id, status);
    }
    (dir, store)
}

#[test]
fn pages_by_key_walk_all_of_history_both_ways_for_every_filter() {
    let (_dir, store) = varied();
    for filter in filters() {
        let expected = all_ids(&store, &filter);
        for page in [1, 4, 7, 100] {
            let down = walk(&store, &filter, PageKey::Newest, page);
            assert_eq!(down, expected, "newest first, page {page}, {filter:?}");
            let mut up = walk(&store, &filter, PageKey::Oldest, page);
            up.reverse();
            assert_eq!(up, expected, "oldest first, page {page}, {filter:?}");
        }
    }
}

#[test]
fn a_page_starts_right_after_its_key_and_stops_at_either_end() {
    let (_dir, mut store) = store();
    let ids = add(&mut store, 10);
    let all = HistoryFilter::default();
    let page = |key, limit| -> Vec<i64> {
        let rows = store.history_page(&all, key, limit).unwrap();
        rows.iter().map(|t| t.id.0).collect()
    };
    assert_eq!(ids.first(), Some(&TaskId(1)));
    assert_eq!(page(PageKey::Newest, 3), [10, 9, 8]);
    assert_eq!(page(PageKey::Oldest, 3), [1, 2, 3]);
    assert_eq!(page(PageKey::Before(TaskId(6)), 3), [5, 4, 3]);
    assert_eq!(page(PageKey::After(TaskId(6)), 3), [7, 8, 9]);
    assert_eq!(
        page(PageKey::Before(TaskId(3)), 5),
        [2, 1],
        "fewer than a page"
    );
    assert_eq!(
        page(PageKey::After(TaskId(7)), 3),
        [8, 9, 10],
        "exactly a page"
    );
    assert!(
        page(PageKey::After(TaskId(10)), 3).is_empty(),
        "past the end"
    );
    assert!(
        page(PageKey::Before(TaskId(1)), 3).is_empty(),
        "past the start"
    );
    assert_eq!(
        page(PageKey::Before(TaskId(1_000)), 2),
        [10, 9],
        "a key past the newest task"
    );
    assert!(page(PageKey::Newest, 0).is_empty());
}

#[test]
fn an_empty_history_has_no_pages_no_count_and_no_ids() {
    let (_dir, store) = store();
    for filter in filters() {
        for key in [
            PageKey::Newest,
            PageKey::Oldest,
            PageKey::Before(TaskId(5)),
            PageKey::After(TaskId(0)),
        ] {
            assert!(store.history_page(&filter, key, 10).unwrap().is_empty());
        }
        assert_eq!(store.history_count(&filter).unwrap(), 0);
        assert_eq!(
            store.history_extent(&filter).unwrap(),
            HistoryExtent::default()
        );
    }
    assert!(store.status_counts().unwrap().is_empty());
}

#[test]
fn tasks_added_while_scrolling_neither_repeat_nor_hide_older_rows() {
    let (_dir, mut store) = store();
    add(&mut store, 12);
    let all = HistoryFilter::default();
    let first = store.history_page(&all, PageKey::Newest, 5).unwrap();
    add(&mut store, 3);
    let edge = first.last().unwrap().id;
    let rest = walk(&store, &all, PageKey::Before(edge), 5);
    let mut seen: Vec<i64> = first.iter().map(|t| t.id.0).collect();
    seen.extend(rest.iter().map(|id| id.0));
    assert_eq!(seen, (1..=12).rev().collect::<Vec<_>>());
    let newer = store
        .history_page(&all, PageKey::After(first[0].id), 5)
        .unwrap();
    let newer: Vec<i64> = newer.iter().map(|t| t.id.0).collect();
    assert_eq!(
        newer,
        [13, 14, 15],
        "the new rows are right above the old top"
    );
}

#[test]
fn the_extent_counts_a_filter_and_finds_its_lowest_and_highest_id() {
    let (_dir, store) = varied();
    for filter in filters() {
        let ids = all_ids(&store, &filter);
        let expected = HistoryExtent {
            count: ids.len() as u64,
            ids: ids.last().copied().zip(ids.first().copied()),
        };
        assert_eq!(
            store.history_extent(&filter).unwrap(),
            expected,
            "{filter:?}"
        );
        assert_eq!(store.history_count(&filter).unwrap(), expected.count);
    }
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
        .finish(done, &Outcome::Completed, &[], &[], &me(), Utc::now())
        .unwrap();
    let outcome = Outcome::Failed("HTTP 404".into());
    store
        .finish(failed, &outcome, &[], &[], &me(), Utc::now())
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

/// A database an older haul made: schema `version` with the rows `seed` adds, then opened by
/// this haul (which upgrades it, checked).
pub(super) fn upgraded_from(
    version: usize,
    seed: impl FnOnce(&Connection),
) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haul.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        schema::configure_writer(&conn).unwrap();
        schema::migrate_to(&mut conn, version).unwrap();
        seed(&conn);
    }
    let store = Store::open(&path).unwrap();
    let now: usize = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(now, schema::latest_version());
    (dir, store)
}

#[test]
fn the_migration_back_fills_the_totals_of_a_database_made_before_them() {
    let (_dir, mut store) = upgraded_from(2, |conn| {
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
    });
    assert_counts_match(&store.conn);
    assert_eq!(count(&store, None, None), 500);
    assert_eq!(count(&store, Some(Status::Failed), None), 100);
    assert_eq!(count(&store, Some(Status::Failed), Some("p0")), 14);
    add(&mut store, 4);
    set_status(&store, TaskId(1), Status::Cancelled);
    assert_counts_match(&store.conn);
    assert_eq!(count(&store, None, None), 504);
}

#[test]
fn a_batch_commits_together_and_a_failed_inner_batch_undoes_only_itself() {
    let (_dir, mut store) = store();
    let now = Utc::now();
    let kept = store
        .batch(|s| {
            let first = s.add_task(&new_task("a", "kept.bin"), "x", now, &me())?;
            let inner: Result<TaskId, super::StoreError> = s.batch(|s| {
                s.add_task(&new_task("a", "undone.bin"), "x", now, &me())?;
                Err(super::StoreError::Unsupported("refused".into()))
            });
            assert!(inner.is_err());
            Ok::<_, super::StoreError>(first)
        })
        .unwrap();
    assert_eq!(all_ids(&store, &HistoryFilter::default()), vec![kept]);

    // An outer Err rolls back everything it wrote.
    let failed: Result<(), super::StoreError> = store.batch(|s| {
        s.add_task(&new_task("b", "gone.bin"), "x", now, &me())?;
        Err(super::StoreError::Unsupported("no".into()))
    });
    assert!(failed.is_err());
    assert_eq!(all_ids(&store, &HistoryFilter::default()), vec![kept]);
    assert_counts_match(&store.conn);
}

#[test]
fn an_atomic_unit_keeps_all_or_nothing_even_when_a_failed_write_is_swallowed() {
    let (_dir, mut store) = store();
    let now = Utc::now();
    let kept = store
        .atomic(|s| {
            let a = s.add_task(&new_task("a", "one.bin"), "x", now, &me())?;
            let b = s.add_task(&new_task("a", "two.bin"), "x", now, &me())?;
            Ok::<_, super::StoreError>(vec![a, b])
        })
        .unwrap();
    let mut newest_first = kept.clone();
    newest_first.reverse();
    assert_eq!(all_ids(&store, &HistoryFilter::default()), newest_first);

    // The unit's Err keeps nothing.
    let failed: Result<(), super::StoreError> = store.atomic(|s| {
        s.add_task(&new_task("b", "gone.bin"), "x", now, &me())?;
        Err(super::StoreError::Unsupported("no".into()))
    });
    assert!(failed.is_err());

    // A write that failed fails the unit, even when its error was not passed on.
    let swallowed: Result<(), super::StoreError> = store.atomic(|s| {
        s.add_task(&new_task("c", "gone-too.bin"), "x", now, &me())?;
        let refused = s.write(|tx| {
            tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
            Ok(())
        });
        assert!(refused.is_err());
        Ok(())
    });
    assert!(
        matches!(swallowed, Err(super::StoreError::WriteFailed)),
        "{swallowed:?}"
    );
    assert_eq!(all_ids(&store, &HistoryFilter::default()), newest_first);
    assert_counts_match(&store.conn);
}

#[test]
fn a_failed_atomic_unit_inside_a_batch_undoes_only_itself() {
    let (_dir, mut store) = store();
    let now = Utc::now();
    let kept = store
        .batch(|s| {
            let first = s.add_task(&new_task("a", "kept.bin"), "x", now, &me())?;
            let inner: Result<(), super::StoreError> = s.atomic(|s| {
                s.add_task(&new_task("a", "undone.bin"), "x", now, &me())?;
                s.batch(|s| s.add_task(&new_task("a", "undone-too.bin"), "x", now, &me()))?;
                Err(super::StoreError::Unsupported("refused".into()))
            });
            assert!(inner.is_err());
            Ok::<_, super::StoreError>(first)
        })
        .unwrap();
    assert_eq!(all_ids(&store, &HistoryFilter::default()), vec![kept]);
    assert_counts_match(&store.conn);
}

/// A new download's collision check finds the unfinished tasks writing one of its names into
/// the same directory, once each, and no finished task or other directory's.
#[test]
fn the_collision_check_finds_each_unfinished_task_with_a_name_in_the_same_directory() {
    let (_dir, mut store) = store();
    let mut add = |name: &str, dest: &str| {
        let mut task = new_task("p", name);
        task.dest_dir = dest.into();
        task.files.push(NewFile {
            url: format!("http://x/{name}.sig"),
            name: format!("{name}.sig"),
            sha256_expected: None,
        });
        store.add_task(&task, "x", Utc::now(), &me()).unwrap()
    };
    let queued = add("a.iso", "/d");
    let finished = add("a.iso", "/d");
    let elsewhere = add("a.iso", "/e");
    let interrupted = add("b.iso", "/d");
    set_status(&store, finished, Status::Completed);
    set_status(&store, interrupted, Status::Interrupted);
    let names = ["a.iso", "a.iso.sig", "b.iso", "c.iso"].map(String::from);
    let found: Vec<TaskId> = store
        .unfinished_with_names("/d", &names)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(found, vec![queued, interrupted]);
    assert!(!found.contains(&elsewhere));
    assert!(
        store
            .unfinished_with_names("/d", &["c.iso".into()])
            .unwrap()
            .is_empty()
    );
}

/// A write that changes megabytes of existing pages inside a group commit spills its
/// sub-journal to a temporary file, and commits: with `SQLITE_STMTJRNL_SPILL` at 1 MiB,
/// SQLite wrote the spilled journal in one call of more than 128 KiB, which its Unix layer
/// cuts to a multiple of 128 KiB, and failed with "database or disk is full".
#[test]
fn a_write_changing_megabytes_of_pages_in_a_batch_spills_its_journal_and_commits() {
    let (_dir, mut store) = store();
    store
        .batch(|s| {
            for i in 0..6_000 {
                let mut task = new_task("p", &format!("f{i}.bin"));
                task.dest_dir = format!("/srv/downloads/{}", "d".repeat(200));
                s.add_task(&task, "x", Utc::now(), &me())?;
            }
            Ok::<_, super::StoreError>(())
        })
        .unwrap();
    let changed = store
        .batch(|s| {
            s.write(|tx| {
                Ok(tx.execute(
                    "UPDATE tasks SET updated_at = updated_at + 1, name = name || '~'",
                    [],
                )?)
            })
        })
        .unwrap();
    assert_eq!(changed, 6_000);
    let renamed: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM tasks WHERE name LIKE '%~'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(renamed, 6_000);
}
