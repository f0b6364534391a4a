//! The database side of the Active and Stale panes: every unfinished row, assessed, kept from
//! one build to the next. While the database did not change (no other connection committed,
//! so its `data_version` stayed), the kept rows are the database's rows and only their
//! judgement is redone, since the clock and the owners' locks move without a commit. After a
//! commit the owners' beats are read again, and the task rows too if one of them changed
//! ([`KeptTasks`]): a heartbeat tick changes none.

use crate::engine::EngineState;
use crate::health::{Assessed, Assessor};
use crate::store::{KeptTasks, Reader, StoreError};

/// The unfinished rows as of one `data_version`, and the rows of tasks memory runs that are
/// not unfinished in the database.
#[derive(Default)]
pub(super) struct Unfinished {
    /// The `data_version` read before the rows; `None` until a read succeeded.
    version: Option<i64>,
    /// The unfinished rows, by id, then the rows only memory asked for.
    rows: Vec<Assessed>,
    /// How many of `rows` are unfinished rows; the rest are read again on every build.
    unfinished: usize,
    /// The task rows behind them, as stored.
    kept: KeptTasks,
}

impl Unfinished {
    /// The rows at `version` (taken before any of this build's reads), judged at the
    /// assessor's clock: the unfinished rows, whatever their status (the merge keeps the
    /// active ones and those memory runs), then the row of each task memory runs that is not
    /// among them. After a commit the kept rows get their owners' beats again in place, and
    /// are read again only if a task row changed.
    pub fn refresh(
        &mut self,
        mut assessor: Assessor<'_>,
        reader: &Reader,
        memory: &EngineState,
        version: i64,
    ) -> Result<&[Assessed], StoreError> {
        self.rows.truncate(self.unfinished);
        let kept = self.version == Some(version)
            || (self.version.is_some()
                && reader.beats_on_kept(&self.kept, self.rows.iter_mut().map(|a| &mut a.task))?);
        if kept {
            self.version = Some(version);
            for row in &mut self.rows {
                assessor.reassess(row)?;
            }
        } else {
            self.version = None;
            self.rows.clear();
            self.unfinished = 0;
            for task in reader.unfinished_kept(&mut self.kept)? {
                self.rows.push(assessor.assess(task)?);
            }
            self.unfinished = self.rows.len();
            self.version = Some(version);
        }
        for id in memory.tasks.keys() {
            let known = self.rows[..self.unfinished]
                .binary_search_by_key(id, |a| a.task.id)
                .is_ok();
            if !known && let Some(task) = reader.task(*id)? {
                self.rows.push(assessor.assess(task)?);
            }
        }
        Ok(&self.rows)
    }
}
