//! Unfinished rows a reader keeps from one read to the next ([`Reader::unfinished_kept`]):
//! read again only when a task row changed (the `task_changes` counter its triggers move),
//! while the owners' beats, which a heartbeat tick changes without touching a task row, are
//! added again on every read.

use super::{Reader, StoreError, rows};
use crate::model::Task;

/// The unfinished rows as stored (no beats added), with the `task_changes` count they were
/// read at.
#[derive(Debug, Clone, Default)]
pub struct KeptTasks {
    changes: Option<i64>,
    rows: Vec<Task>,
}

impl Reader {
    /// Queued, running and interrupted tasks, oldest first, with their owners' last heartbeat
    /// added: the rows in `kept` while no task row changed since they were read, otherwise the
    /// rows read again (and kept). The count, the rows and the beats come from one commit.
    ///
    /// Sorted here, not by SQLite: the `(status, id)` index gives them by status, and sorting
    /// the wide rows in a temporary b-tree costs twice what reading them does.
    pub fn unfinished_kept(&self, kept: &mut KeptTasks) -> Result<Vec<Task>, StoreError> {
        self.consistent(|| {
            let changes = Some(self.task_changes()?);
            if kept.changes != changes {
                kept.changes = None;
                let sql = format!(
                    "SELECT {} FROM tasks WHERE status IN ('queued', 'running', 'interrupted')",
                    rows::TASK_COLUMNS
                );
                let mut stmt = self.conn.prepare_cached(&sql)?;
                kept.rows = stmt.query_map([], rows::task)?.collect::<Result<_, _>>()?;
                kept.rows.sort_unstable_by_key(|t| t.id);
                kept.changes = changes;
            }
            let mut tasks = kept.rows.clone();
            self.overlay().tasks(&mut tasks)?;
            Ok(tasks)
        })
    }

    /// While no task row changed since `kept` was read, brings `live` (the rows
    /// [`Reader::unfinished_kept`] returned from it, in its order) up to their owners' beats
    /// now, in place, and returns true. Returns false, touching nothing, when task rows
    /// changed: read them with [`Reader::unfinished_kept`].
    pub fn beats_on_kept<'t>(
        &self,
        kept: &KeptTasks,
        live: impl ExactSizeIterator<Item = &'t mut Task>,
    ) -> Result<bool, StoreError> {
        if kept.changes.is_none() || live.len() != kept.rows.len() {
            return Ok(false);
        }
        self.consistent(|| {
            if Some(self.task_changes()?) != kept.changes {
                return Ok(false);
            }
            let mut overlay = self.overlay();
            for (row, task) in kept.rows.iter().zip(live) {
                overlay.task_again(row, task)?;
            }
            Ok(true)
        })
    }

    /// The `task_changes` count.
    fn task_changes(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT n FROM task_changes")?
            .query_row([], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::KeptTasks;
    use crate::model::{Instance, InstanceId, Lease, Mode, NewFile, NewTask, Status};
    use crate::store::{Actor, ClaimRules, ReadOnlyStore, Store, TaskProgress, from_ms};

    fn at(secs: i64) -> DateTime<Utc> {
        from_ms(1_800_000_000_000 + secs * 1000)
    }

    fn owner() -> (Actor, Instance) {
        let id = InstanceId("owner".into());
        let instance = Instance {
            id: id.clone(),
            host: "h".into(),
            pid: 1,
            mode: Mode::Worker,
            started_at: at(0),
            heartbeat_at: at(0),
            stopped_at: None,
        };
        let actor = Actor {
            instance: id,
            label: "h/1".into(),
        };
        (actor, instance)
    }

    fn add(store: &mut Store, by: &Actor, name: &str) {
        let task = NewTask {
            project: "p".into(),
            dest_dir: "/d".into(),
            files: vec![NewFile {
                url: format!("http://x/{name}"),
                name: name.into(),
                sha256_expected: None,
            }],
        };
        store.add_task(&task, "x", at(0), by).unwrap();
    }

    fn tick(store: &mut Store, by: &Actor, lease: Lease, offset: u64, secs: i64) {
        let progress = TaskProgress {
            lease,
            files: vec![(0, offset)],
            progressed: true,
            milestone: None,
        };
        store.heartbeat(by, &[progress], at(secs)).unwrap();
    }

    #[test]
    fn kept_rows_get_every_beat_and_are_read_again_after_any_change_of_a_task_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("haul.db");
        let mut store = Store::open(&db).unwrap();
        let (by, instance) = owner();
        store.register_instance(&instance).unwrap();
        add(&mut store, &by, "a.bin");
        add(&mut store, &by, "b.bin");
        let rules = ClaimRules {
            max_concurrent: 10,
            per_host_limit: 10,
            ..ClaimRules::default()
        };
        let (a, _) = store.claim_next(&rules, &by, at(0)).unwrap().unwrap();
        let reader = ReadOnlyStore::open(&db).unwrap();
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
            tick(&mut store, &by, a.lease(), offset, secs);
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
            .execute("UPDATE tasks SET name = 'renamed' WHERE id = ?1", [a.id.0])
            .unwrap();
        assert!(!reader.beats_on_kept(&kept, live.iter_mut()).unwrap());
        assert_eq!(live, rows, "untouched");
        assert_eq!(read(&mut kept)[0].name, "renamed");
        add(&mut store, &by, "c.bin");
        assert_eq!(read(&mut kept).len(), 3);
        store
            .conn
            .execute("DELETE FROM tasks WHERE name = 'b.bin'", [])
            .unwrap();
        let rows = read(&mut kept);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].status, rows[0].bytes_done), (Status::Running, 250));
        assert_ne!(kept.changes, changes);
    }
}
