//! Claiming work: one immediate transaction checks the limits across every instance and moves
//! one task to running with `attempt + 1`. Two instances never both win a claim.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::writes::{Actor, insert_event};
use super::{Store, StoreError, rows, to_ms};
use crate::model::{EventKind, FileEntry, Status, Task, TaskId};

/// Candidates looked at per claim; enough to skip past tasks blocked by a limit.
const CANDIDATE_WINDOW: i64 = 256;

/// The limits a claim must respect, counted across the whole database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimRules {
    pub max_concurrent: u32,
    pub per_host_limit: u32,
    /// Projects with their own limit (exclusive projects have 1).
    pub project_limits: HashMap<String, u32>,
    /// Resume interrupted tasks unless their project says otherwise.
    pub auto_resume: bool,
    /// Projects whose `auto_resume` differs from the default.
    pub auto_resume_exceptions: HashSet<String>,
    /// Tasks the claiming process still winds down (a restart requeued them while their old
    /// worker stops): claimed again only once that worker is gone.
    pub skip: HashSet<TaskId>,
}

impl ClaimRules {
    fn resumes(&self, project: &str) -> bool {
        self.auto_resume != self.auto_resume_exceptions.contains(project)
    }
}

impl Store {
    /// Claims the oldest runnable task for `by`, or `None` when nothing may run now.
    pub fn claim_next(
        &mut self,
        rules: &ClaimRules,
        by: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Option<(Task, Vec<FileEntry>)>, StoreError> {
        self.write(|tx| {
            let mut running_total = 0u32;
            let mut per_project: HashMap<String, u32> = HashMap::new();
            let mut per_host: HashMap<String, u32> = HashMap::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT project, host, COUNT(*) FROM tasks WHERE status = 'running' \
                     GROUP BY project, host",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let project: String = row.get(0)?;
                    let host: String = row.get(1)?;
                    let n = row.get::<_, i64>(2)?.max(0) as u32;
                    running_total += n;
                    *per_project.entry(project).or_default() += n;
                    *per_host.entry(host).or_default() += n;
                }
            }
            if running_total >= rules.max_concurrent {
                return Ok(None);
            }
            let chosen = {
                let mut stmt = tx.prepare_cached(
                    "SELECT id, project, host, status FROM tasks \
                     WHERE status IN ('queued', 'interrupted') ORDER BY id LIMIT ?1",
                )?;
                let mut rows = stmt.query([CANDIDATE_WINDOW])?;
                let mut chosen = None;
                while let Some(row) = rows.next()? {
                    let id: i64 = row.get(0)?;
                    let project: String = row.get(1)?;
                    let host: String = row.get(2)?;
                    let status: String = row.get(3)?;
                    let resumed = status == Status::Interrupted.as_str();
                    if rules.skip.contains(&TaskId(id)) || (resumed && !rules.resumes(&project)) {
                        continue;
                    }
                    let project_full = rules.project_limits.get(&project).is_some_and(|limit| {
                        per_project.get(&project).copied().unwrap_or(0) >= *limit
                    });
                    let host_full =
                        per_host.get(&host).copied().unwrap_or(0) >= rules.per_host_limit;
                    if !project_full && !host_full {
                        chosen = Some((TaskId(id), resumed));
                        break;
                    }
                }
                chosen
            };
            let Some((id, resumed)) = chosen else {
                return Ok(None);
            };
            let sql = format!(
                "UPDATE tasks SET status = 'running', attempt = attempt + 1, owner_id = ?2, \
                 started_at = COALESCE(started_at, ?3), updated_at = ?3, progress_at = ?3, \
                 finished_at = NULL, error_message = NULL, control = NULL \
                 WHERE id = ?1 AND status IN ('queued', 'interrupted') RETURNING {}",
                rows::TASK_COLUMNS
            );
            let task = tx
                .prepare_cached(&sql)?
                .query_row(params![id.0, by.instance.0, to_ms(now)], rows::task)?;
            let message = if resumed {
                format!("claimed by {} (resuming after interruption)", by.label)
            } else {
                format!("claimed by {}", by.label)
            };
            insert_event(
                tx,
                task.id,
                task.attempt,
                EventKind::Claimed,
                Some(by),
                &message,
                now,
            )?;
            let files = {
                let sql = format!(
                    "SELECT {} FROM files WHERE task_id = ?1 ORDER BY idx",
                    rows::FILE_COLUMNS
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                stmt.query_map([task.id.0], rows::file)?
                    .collect::<Result<Vec<_>, _>>()?
            };
            Ok(Some((task, files)))
        })
    }
}
