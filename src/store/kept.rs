//! Unfinished rows a reader keeps from one read to the next ([`Reader::unfinished_kept`]):
//! read again only when a task row changed (the `task_changes` counter its triggers move),
//! while the owners' beats, which a heartbeat tick changes without touching a task row, are
//! added again on every read.

use super::{Reader, StoreError};
use crate::model::Task;

/// The unfinished rows as stored (no beats added), with the `task_changes` count they were
/// read at.
#[derive(Debug, Clone, Default)]
pub struct KeptTasks {
    pub(super) changes: Option<i64>,
    rows: Vec<Task>,
}

impl Reader {
    /// Queued, running and interrupted tasks, oldest first, with their owners' last heartbeat
    /// added: the rows in `kept` while no task row changed since they were read, otherwise the
    /// rows read again (and kept). The count, the rows and the beats come from one commit.
    pub fn unfinished_kept(&self, kept: &mut KeptTasks) -> Result<Vec<Task>, StoreError> {
        self.consistent(|| {
            let changes = Some(self.task_changes()?);
            if kept.changes != changes {
                kept.changes = None;
                kept.rows = self.unfinished_rows()?;
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
