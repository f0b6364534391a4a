//! The dashboard's picture of the world at one moment: this process's memory merged with the
//! database, each running task judged (healthy, stalled, stale, orphaned), the visible window of
//! history, the log and the detail of one task. Built off the render loop by
//! [`SnapshotSource::build`] on its own read-only connection; every query is a short statement,
//! so no read transaction outlives a build. A build keeps what it read for the next one while
//! the database shows it did not change (`data_version`, and the `task_changes` counter for the
//! unfinished rows), and judges every running task again each time. The dashboard only ever
//! borrows the result.

mod merge;
mod source;
#[cfg(test)]
mod tests;
mod unfinished;

pub use merge::{attention_rows, merge_active, merge_log};
pub use source::SnapshotSource;

use chrono::{DateTime, Utc};

use crate::model::{EventKind, FileEntry, Source, Status, Task, TaskEvent, TaskId};
use crate::recovery::Verdict;
use crate::store::HistoryFilter;

/// How many log lines a snapshot carries.
const LOG_LINES: usize = 300;

/// Everything one frame shows, except the clock and the view state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Running and queued tasks, memory ∪ database, deduplicated by id, by id.
    pub active: Vec<ActiveRow>,
    /// Stale and orphaned tasks across every project.
    pub attention: Vec<AttentionRow>,
    pub history: HistoryWindow,
    /// Newest first.
    pub log: Vec<LogLine>,
    pub detail: Option<Detail>,
    /// Tasks this process runs now.
    pub local_running: usize,
    /// Why the last refresh failed, if it did (the data shown is the previous refresh's).
    pub error: Option<String>,
}

/// One row of the Active pane.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveRow {
    pub id: TaskId,
    pub project: String,
    pub name: String,
    pub status: Status,
    pub source: Source,
    /// "host/pid" of the owner, when known.
    pub owner: Option<String>,
    /// The last heartbeat the database holds.
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub files_done: u32,
    pub files_total: u32,
    pub speed_bps: Option<f64>,
    pub eta_secs: Option<u64>,
    pub verdict: Verdict,
    /// What memory says it does ("file 2/3", "retrying: …"), for rows run here.
    pub phase: Option<String>,
    /// Memory and database disagree about this task, and how.
    pub disagreement: Option<String>,
}

/// One row of the Stale & orphaned pane.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionRow {
    pub id: TaskId,
    pub project: String,
    pub name: String,
    pub owner: Option<String>,
    pub heartbeat_at: DateTime<Utc>,
    pub verdict: Verdict,
    pub warning: String,
    pub recovery: Recovery,
}

/// The operator action that recovers a task needing attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Its owner may be alive: take it over regardless.
    ForceRestart,
    /// Its owner is dead: interrupt and requeue it.
    Restart,
}

/// History order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HistoryOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

impl HistoryOrder {
    /// True when task `a` comes before task `b` in this order.
    pub fn precedes(self, a: TaskId, b: TaskId) -> bool {
        match self {
            HistoryOrder::NewestFirst => a > b,
            HistoryOrder::OldestFirst => a < b,
        }
    }
}

/// Where the visible history rows start. Rows are addressed by task id, never by row number,
/// so a window deep in a million rows is read by key as fast as the first one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HistoryAnchor {
    /// At the first row of the order, which new tasks join when they sort first.
    #[default]
    First,
    /// The last page of the order.
    Last,
    /// At this task, or the next one in the order when the filter no longer matches it.
    At(TaskId),
}

/// Which part of history the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub filter: HistoryFilter,
    pub order: HistoryOrder,
    /// Where the visible rows start.
    pub top: HistoryAnchor,
    /// Visible rows.
    pub rows: usize,
}

/// Where a row stands in its order, counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowPosition {
    Exact(u64),
    /// Estimated from the row's id within the filter's range of ids: an exact figure would need
    /// a count of every row before it.
    About(u64),
}

impl Default for RowPosition {
    fn default() -> RowPosition {
        RowPosition::Exact(0)
    }
}

impl RowPosition {
    /// The position, exact or not.
    pub fn value(self) -> u64 {
        match self {
            RowPosition::Exact(n) | RowPosition::About(n) => n,
        }
    }

    /// The position `n` rows further on, just as exact.
    pub fn plus(self, n: u64) -> RowPosition {
        match self {
            RowPosition::Exact(p) => RowPosition::Exact(p.saturating_add(n)),
            RowPosition::About(p) => RowPosition::About(p.saturating_add(n)),
        }
    }
}

/// The loaded part of history: the visible rows plus up to a page either side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryWindow {
    pub filter: HistoryFilter,
    pub order: HistoryOrder,
    /// The anchor the window was read around.
    pub top: HistoryAnchor,
    /// Rows the filter matches.
    pub total: u64,
    /// Where `rows[0]` stands in `order`; `Exact(0)` when no row comes before it.
    pub start: RowPosition,
    /// No row comes after the last one loaded.
    pub at_end: bool,
    /// In `order`.
    pub rows: Vec<Task>,
}

impl HistoryWindow {
    /// True when no row comes before `rows[0]`.
    pub fn at_start(&self) -> bool {
        self.start == RowPosition::Exact(0)
    }

    /// The index in `rows` of the first of `page` visible rows starting at `top`, if this window
    /// holds that part of history. Near the end it keeps a full page in view.
    pub fn locate(&self, top: HistoryAnchor, page: usize) -> Option<usize> {
        let last_page = self.rows.len().saturating_sub(page);
        match top {
            HistoryAnchor::First => self.at_start().then_some(0),
            HistoryAnchor::Last => self.at_end.then_some(last_page),
            HistoryAnchor::At(id) => {
                let holds_start = self.at_start()
                    || self
                        .rows
                        .first()
                        .is_some_and(|t| !self.order.precedes(id, t.id));
                if !holds_start {
                    return None;
                }
                let index = self
                    .rows
                    .iter()
                    .position(|t| !self.order.precedes(t.id, id));
                match index {
                    Some(i) if self.at_end => Some(i.min(last_page)),
                    Some(i) => Some(i),
                    None => self.at_end.then_some(last_page),
                }
            }
        }
    }

    /// The anchor that shows `rows[index]` first, with `page` rows visible: [`HistoryAnchor::First`]
    /// or [`HistoryAnchor::Last`] when that is where it is, so the view follows new rows there.
    pub fn anchor_at(&self, index: usize, page: usize) -> HistoryAnchor {
        if index == 0 && self.at_start() {
            return HistoryAnchor::First;
        }
        if self.at_end && index + page >= self.rows.len() {
            return HistoryAnchor::Last;
        }
        self.rows
            .get(index)
            .map_or(HistoryAnchor::First, |t| HistoryAnchor::At(t.id))
    }
}

/// Where a log line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOrigin {
    /// This process's engine.
    Here,
    /// The event log in the database (any instance).
    Database,
}

/// One line of the Log pane.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub task: Option<TaskId>,
    pub origin: LogOrigin,
    pub kind: Option<EventKind>,
    /// "host/pid" of the writer, for database events.
    pub by: Option<String>,
    pub text: String,
}

/// Everything about one task, for the Detail view.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub task: Task,
    pub owner: Option<String>,
    pub verdict: Verdict,
    pub files: Vec<FileEntry>,
    /// The latest events, oldest first.
    pub events: Vec<TaskEvent>,
    /// Live figures when this process runs it.
    pub live: Option<ActiveRow>,
}

/// What the dashboard wants loaded besides the live panes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewRequest {
    pub history: HistoryQuery,
    pub detail: Option<TaskId>,
}
