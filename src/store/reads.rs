//! Queries: tasks, files, events, instances, history pages. Every method is a short read;
//! none holds a transaction open after it returns. Tasks and files come back with their
//! owner's last heartbeat added ([`Overlay`]): the effective `updated_at`, progress
//! time, byte total and durable offsets, the same for every reader.

use rusqlite::{OptionalExtension, params_from_iter, types::Value};

use super::overlay::Overlay;
use super::{Reader, StoreError, rows};
use crate::model::{FileEntry, Instance, InstanceId, Status, Task, TaskEvent, TaskId};

/// Opens the one read transaction of the store ([`Reader::consistent`]). Deferred, unlike every
/// writing transaction (`BEGIN IMMEDIATE`): it only ever reads, so it never has to upgrade to a
/// write lock, which is what makes a deferred writer fail with `SQLITE_BUSY_SNAPSHOT`.
const READ_SNAPSHOT: &str = "BEGIN DEFERRED";

/// Which tasks a history page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub status: Option<Status>,
    pub project: Option<String>,
    /// Case-insensitive substring of the name or project.
    pub text: Option<String>,
}

/// Tasks of one status in one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub project: String,
    pub status: Status,
    pub count: u64,
}

/// Where a history page starts, by task id (keyset pagination): a page deep in history costs
/// what the first page costs, because no `OFFSET` steps over the rows before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKey {
    /// The newest tasks, newest first.
    Newest,
    /// The oldest tasks, oldest first.
    Oldest,
    /// Tasks older than this id, newest first.
    Before(TaskId),
    /// Tasks newer than this id, oldest first.
    After(TaskId),
}

/// How many tasks a filter matches, and the lowest and highest of their ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryExtent {
    pub count: u64,
    /// `(lowest, highest)`; `None` when nothing matches.
    pub ids: Option<(TaskId, TaskId)>,
}

impl HistoryFilter {
    /// The text to match, when there is any.
    fn text(&self) -> Option<&str> {
        self.text.as_deref().filter(|t| !t.is_empty())
    }

    /// The conditions on `status` and `project` (columns of both `tasks` and `task_counts`).
    fn counted_conditions(&self) -> (Vec<&'static str>, Vec<Value>) {
        let mut clauses = Vec::new();
        let mut params = Vec::new();
        if let Some(status) = self.status {
            clauses.push("status = ?");
            params.push(Value::Text(status.as_str().to_owned()));
        }
        if let Some(project) = &self.project {
            clauses.push("project = ?");
            params.push(Value::Text(project.clone()));
        }
        (clauses, params)
    }

    /// Every condition on `tasks`.
    fn conditions(&self) -> (Vec<&'static str>, Vec<Value>) {
        let (mut clauses, mut params) = self.counted_conditions();
        if let Some(text) = self.text() {
            clauses.push("(name LIKE ? ESCAPE '\\' OR project LIKE ? ESCAPE '\\')");
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let pattern = format!("%{escaped}%");
            params.push(Value::Text(pattern.clone()));
            params.push(Value::Text(pattern));
        }
        (clauses, params)
    }
}

/// `WHERE a AND b`, or nothing.
fn where_sql(clauses: &[&str]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    }
}

impl Reader {
    /// One task, or `None` when the id is unknown.
    pub fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        let sql = format!("SELECT {} FROM tasks WHERE id = ?1", rows::TASK_COLUMNS);
        self.consistent(|| {
            let mut task = self
                .conn
                .prepare_cached(&sql)?
                .query_row([id.0], rows::task)
                .optional()?;
            if let Some(task) = &mut task {
                self.overlay().task(task)?;
            }
            Ok(task)
        })
    }

    /// Reads beats on top of rows, on this connection.
    pub(super) fn overlay(&self) -> Overlay<'_> {
        Overlay::new(&self.conn)
    }

    /// Tasks `sql` selects (its columns `rows::TASK_COLUMNS`), with their owners' last heartbeat
    /// added, read from one commit.
    fn tasks_where(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Task>, StoreError> {
        self.consistent(|| {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let mut tasks: Vec<Task> = stmt
                .query_map(params, rows::task)?
                .collect::<Result<_, _>>()?;
            self.overlay().tasks(&mut tasks)?;
            Ok(tasks)
        })
    }

    /// Runs `read` in one read transaction (unless one is open already), so the rows and the
    /// beats added to them come from the same commit, never from either side of a tick or a
    /// fold (a row from before a fold with no beat after it would look stale). `read` only
    /// reads.
    pub(super) fn consistent<T>(
        &self,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if !self.conn.is_autocommit() {
            return read();
        }
        self.conn.prepare_cached(READ_SNAPSHOT)?.execute([])?;
        let result = read();
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.conn.prepare_cached(end)?.execute([]);
        let value = result?;
        ended?;
        Ok(value)
    }

    /// The files of a task, in order.
    pub fn files(&self, id: TaskId) -> Result<Vec<FileEntry>, StoreError> {
        let sql = format!(
            "SELECT {} FROM files WHERE task_id = ?1 ORDER BY idx",
            rows::FILE_COLUMNS
        );
        self.consistent(|| {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut files: Vec<FileEntry> = stmt
                .query_map([id.0], rows::file)?
                .collect::<Result<_, _>>()?;
            self.overlay().files(id, &mut files)?;
            Ok(files)
        })
    }

    /// A task's event log, oldest first.
    pub fn events(&self, id: TaskId) -> Result<Vec<TaskEvent>, StoreError> {
        let sql = format!(
            "SELECT {} FROM task_events WHERE task_id = ?1 ORDER BY id",
            rows::EVENT_COLUMNS
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let events = stmt
            .query_map([id.0], rows::event)?
            .collect::<Result<_, _>>()?;
        Ok(events)
    }

    /// The newest events of every task with an id above `after`, oldest first (for the Log).
    pub fn recent_events(&self, after: i64, limit: usize) -> Result<Vec<TaskEvent>, StoreError> {
        let sql = format!(
            "SELECT * FROM (SELECT {} FROM task_events WHERE id > ?1 AND kind != 'progress' \
             ORDER BY id DESC LIMIT ?2) ORDER BY id",
            rows::EVENT_COLUMNS
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let events = stmt
            .query_map(rusqlite::params![after, limit as i64], rows::event)?
            .collect::<Result<_, _>>()?;
        Ok(events)
    }

    /// Queued, running and interrupted tasks, oldest first.
    pub fn unfinished(&self) -> Result<Vec<Task>, StoreError> {
        self.consistent(|| {
            let mut tasks = self.unfinished_rows()?;
            self.overlay().tasks(&mut tasks)?;
            Ok(tasks)
        })
    }

    /// The unfinished rows as stored (no beats added), oldest first. Sorted here, not by
    /// SQLite: the `(status, id)` index gives them by status, and sorting the wide rows in a
    /// temporary b-tree costs twice what reading them does.
    pub(super) fn unfinished_rows(&self) -> Result<Vec<Task>, StoreError> {
        let sql = format!(
            "SELECT {} FROM tasks WHERE status IN ('queued', 'running', 'interrupted')",
            rows::TASK_COLUMNS
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut tasks: Vec<Task> = stmt.query_map([], rows::task)?.collect::<Result<_, _>>()?;
        tasks.sort_unstable_by_key(|t| t.id);
        Ok(tasks)
    }

    /// Running tasks only (the stale sweep's input).
    pub fn running(&self) -> Result<Vec<Task>, StoreError> {
        let sql = format!(
            "SELECT {} FROM tasks WHERE status = 'running' ORDER BY id",
            rows::TASK_COLUMNS
        );
        self.tasks_where(&sql, [])
    }

    /// True when some task is queued, or interrupted and resumable.
    pub fn has_waiting_work(&self, resume_interrupted: bool) -> Result<bool, StoreError> {
        let sql = "SELECT EXISTS(SELECT 1 FROM tasks WHERE status = 'queued' \
                   OR (?1 AND status = 'interrupted'))";
        Ok(self
            .conn
            .prepare_cached(sql)?
            .query_row([resume_interrupted], |r| r.get(0))?)
    }

    /// Up to `limit` tasks the filter matches, from `key` on, in the key's order (newest first
    /// for [`PageKey::Newest`] and [`PageKey::Before`], oldest first otherwise).
    pub fn history_page(
        &self,
        filter: &HistoryFilter,
        key: PageKey,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let (mut clauses, mut params) = filter.conditions();
        let order = match key {
            PageKey::Newest => "DESC",
            PageKey::Oldest => "ASC",
            PageKey::Before(id) => {
                clauses.push("id < ?");
                params.push(Value::Integer(id.0));
                "DESC"
            }
            PageKey::After(id) => {
                clauses.push("id > ?");
                params.push(Value::Integer(id.0));
                "ASC"
            }
        };
        let sql = format!(
            "SELECT {} FROM tasks {} ORDER BY id {order} LIMIT ?",
            rows::TASK_COLUMNS,
            where_sql(&clauses)
        );
        params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        self.tasks_where(&sql, params_from_iter(params))
    }

    /// How many tasks the filter matches. Without text this sums the kept per-project,
    /// per-status totals (a few rows, however many tasks there are); text is matched row by row.
    pub fn history_count(&self, filter: &HistoryFilter) -> Result<u64, StoreError> {
        let (sql, params) = if filter.text().is_some() {
            let (clauses, params) = filter.conditions();
            let sql = format!("SELECT COUNT(*) FROM tasks {}", where_sql(&clauses));
            (sql, params)
        } else {
            let (clauses, params) = filter.counted_conditions();
            let sql = format!(
                "SELECT COALESCE(SUM(n), 0) FROM task_counts {}",
                where_sql(&clauses)
            );
            (sql, params)
        };
        let count: i64 = self
            .conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(params), |r| r.get(0))?;
        Ok(count.max(0) as u64)
    }

    /// How many tasks the filter matches and their lowest and highest ids: the count as
    /// [`Reader::history_count`] takes it, the ids from an index (by status or project) or the
    /// table's key; with text, all three in the one pass over the rows.
    pub fn history_extent(&self, filter: &HistoryFilter) -> Result<HistoryExtent, StoreError> {
        if filter.text().is_some() {
            let (clauses, params) = filter.conditions();
            let sql = format!(
                "SELECT COUNT(*), MIN(id), MAX(id) FROM tasks {}",
                where_sql(&clauses)
            );
            let (count, low, high): (i64, Option<i64>, Option<i64>) = self
                .conn
                .prepare_cached(&sql)?
                .query_row(params_from_iter(params), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            return Ok(HistoryExtent {
                count: count.max(0) as u64,
                ids: low.zip(high).map(|(l, h)| (TaskId(l), TaskId(h))),
            });
        }
        let edge = |order: &str| -> Result<Option<TaskId>, StoreError> {
            let (clauses, params) = filter.counted_conditions();
            let sql = format!(
                "SELECT id FROM tasks {} ORDER BY id {order} LIMIT 1",
                where_sql(&clauses)
            );
            Ok(self
                .conn
                .prepare_cached(&sql)?
                .query_row(params_from_iter(params), |r| r.get(0))
                .optional()?
                .map(TaskId))
        };
        Ok(HistoryExtent {
            count: self.history_count(filter)?,
            ids: edge("ASC")?.zip(edge("DESC")?),
        })
    }

    /// Task counts by project and status (the kept totals: no scan of the tasks).
    pub fn status_counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT project, status, n FROM task_counts WHERE n > 0 ORDER BY project, status",
        )?;
        let counts = stmt
            .query_map([], |r| {
                let status: String = r.get(1)?;
                Ok(StatusCount {
                    project: r.get(0)?,
                    status: Status::parse(&status).unwrap_or(Status::Failed),
                    count: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(counts)
    }

    /// Every instance that has not said it stopped.
    pub fn live_instances(&self) -> Result<Vec<Instance>, StoreError> {
        let sql = format!(
            "SELECT {} FROM instances WHERE stopped_at IS NULL ORDER BY started_at",
            rows::INSTANCE_COLUMNS
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let instances = stmt
            .query_map([], rows::instance)?
            .collect::<Result<_, _>>()?;
        Ok(instances)
    }

    /// One instance by id.
    pub fn instance(&self, id: &InstanceId) -> Result<Option<Instance>, StoreError> {
        let sql = format!(
            "SELECT {} FROM instances WHERE id = ?1",
            rows::INSTANCE_COLUMNS
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([&id.0], rows::instance)
            .optional()?)
    }

    /// Unfinished tasks with a file planned as `dest_dir/name` for any of `names`, read in one
    /// read transaction: the index of file names gives each name's tasks, whose rows are then
    /// read by id (with `IN` over a subquery and a list, SQLite built two temporary tables a
    /// name, ~50k instructions with the read transaction: most of adding 10,000 files).
    pub fn unfinished_with_names(
        &self,
        dest_dir: &str,
        names: &[String],
    ) -> Result<Vec<Task>, StoreError> {
        self.consistent(|| {
            let mut by_name = self
                .conn
                .prepare_cached("SELECT task_id FROM files WHERE name = ?1")?;
            let mut ids = std::collections::BTreeSet::new();
            for name in names {
                let mut rows = by_name.query([name])?;
                while let Some(row) = rows.next()? {
                    ids.insert(row.get::<_, i64>(0)?);
                }
            }
            let sql = format!("SELECT {} FROM tasks WHERE id = ?1", rows::TASK_COLUMNS);
            let mut by_id = self.conn.prepare_cached(&sql)?;
            let mut found = Vec::new();
            for id in ids {
                if let Some(task) = by_id.query_row([id], rows::task).optional()?
                    && task.dest_dir == dest_dir
                    && !task.status.is_final()
                {
                    found.push(task);
                }
            }
            self.overlay().tasks(&mut found)?;
            Ok(found)
        })
    }

    /// Running tasks of `project`.
    pub fn running_in_project(&self, project: &str) -> Result<Vec<Task>, StoreError> {
        let sql = format!(
            "SELECT {} FROM tasks WHERE status = 'running' AND project = ?1",
            rows::TASK_COLUMNS
        );
        self.tasks_where(&sql, [project])
    }

    /// Total bytes durably downloaded, per project (running claims' heartbeats included).
    pub fn bytes_by_project(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let (mut rows, ahead) = self.consistent(|| {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT project, SUM(bytes_done) FROM tasks GROUP BY project")?;
            let rows: Vec<(String, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok((rows, self.overlay().bytes_ahead_by_project()?))
        })?;
        for (project, bytes) in &mut rows {
            *bytes = bytes.saturating_add(ahead.get(project).copied().unwrap_or(0));
        }
        Ok(rows
            .into_iter()
            .map(|(project, bytes)| (project, bytes.max(0) as u64))
            .collect())
    }

    /// SQLite's `data_version`: changes when another connection commits.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?)
    }
}
