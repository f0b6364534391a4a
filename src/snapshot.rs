//! The dashboard's picture of the world at one moment: this process's memory merged with the
//! database, each running task judged (healthy, stalled, stale, orphaned), the visible window of
//! history, the log and the detail of one task. Built off the render loop by
//! [`SnapshotSource::build`] on its own read-only connection; every query is a short statement,
//! so no read transaction outlives a build. The dashboard only ever borrows the result.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::Config;
use crate::engine::{EngineState, Notice, Phase, TaskView};
use crate::health::{Assessed, Assessor};
use crate::instance::LivenessProbe;
use crate::model::{EventKind, FileEntry, Source, Status, Task, TaskEvent, TaskId};
use crate::recovery::Verdict;
use crate::store::{Actor, HistoryExtent, HistoryFilter, PageKey, ReadOnlyStore, StoreError};

/// How many log lines a snapshot carries.
const LOG_LINES: usize = 300;
/// How many of a task's latest events the detail view carries.
const DETAIL_EVENTS: usize = 40;
/// A database row claiming this process runs it, while memory does not, is flagged only after
/// this long without an update (a fresh claim takes a moment to reach memory).
const CLAIM_GRACE_SECS: u64 = 2;
/// History rows are read again at least this often while the database changes.
const HISTORY_ROWS_MAX_AGE: Duration = Duration::from_secs(2);

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

/// Merges what this process runs (`memory`) with the database's unfinished rows (assessed),
/// one row per id. `me` is this process, when it runs downloads.
pub fn merge_active(
    memory: &BTreeMap<TaskId, TaskView>,
    database: &[Assessed],
    me: Option<&Actor>,
) -> Vec<ActiveRow> {
    let by_id: HashMap<TaskId, &Assessed> = database.iter().map(|a| (a.task.id, a)).collect();
    let mut rows: Vec<ActiveRow> = memory
        .values()
        .map(|view| memory_row(view, by_id.get(&view.lease.task).copied(), me))
        .collect();
    for a in database {
        let task = &a.task;
        if memory.contains_key(&task.id) || !task.status.is_active() {
            continue;
        }
        let mine = me.is_some_and(|me| task.owner.as_ref() == Some(&me.instance));
        let disagreement = (mine
            && task.status == Status::Running
            && a.since_update_secs.is_some_and(|s| s >= CLAIM_GRACE_SECS))
        .then(|| "the database says this process runs it, but it does not".to_owned());
        rows.push(ActiveRow {
            id: task.id,
            project: task.project.clone(),
            name: task.name.clone(),
            status: task.status,
            source: Source::Database,
            owner: a.owner.as_ref().map(|o| o.label()),
            heartbeat_at: (task.status == Status::Running).then_some(task.updated_at),
            bytes_done: task.bytes_done,
            bytes_total: task.bytes_total,
            files_done: task.files_done,
            files_total: task.files_total,
            speed_bps: None,
            eta_secs: None,
            verdict: a.verdict.clone(),
            phase: None,
            disagreement,
        });
    }
    rows.sort_by_key(|r| r.id);
    rows
}

fn memory_row(view: &TaskView, db: Option<&Assessed>, me: Option<&Actor>) -> ActiveRow {
    let disagreement = match db {
        None => Some("not in the database".to_owned()),
        Some(a) if a.task.status != Status::Running => {
            Some(format!("the database says {}", a.task.status))
        }
        Some(a) if a.task.attempt != view.lease.attempt => Some(format!(
            "the database is at attempt {}, this process at {}",
            a.task.attempt, view.lease.attempt
        )),
        Some(a) if me.is_some_and(|me| a.task.owner.as_ref() != Some(&me.instance)) => {
            let owner = a
                .owner
                .as_ref()
                .map_or_else(|| "nobody".to_owned(), |o| o.label());
            Some(format!("the database says {owner} owns it"))
        }
        Some(_) => None,
    };
    let phase = match &view.phase {
        Phase::Starting => "starting".to_owned(),
        Phase::Transferring { index } => format!("file {}/{}", index + 1, view.files_total),
        Phase::Retrying { reason, .. } => format!("retrying: {reason}"),
        Phase::Finished(_) => "finishing".to_owned(),
    };
    let single_file_total = view.current_total.filter(|_| view.files_total == 1);
    ActiveRow {
        id: view.lease.task,
        project: view.project.clone(),
        name: view.name.clone(),
        status: Status::Running,
        source: Source::Memory,
        owner: me.map(|me| me.label.clone()),
        heartbeat_at: db.map(|a| a.task.updated_at),
        bytes_done: view.bytes_received,
        bytes_total: db.and_then(|a| a.task.bytes_total).or(single_file_total),
        files_done: view.files_done,
        files_total: view.files_total,
        speed_bps: Some(view.speed_bps),
        eta_secs: view.eta_secs(),
        verdict: db.map_or(Verdict::Healthy, |a| a.verdict.clone()),
        phase: Some(phase),
        disagreement,
    }
}

/// Stale and orphaned tasks, with the action that recovers each.
pub fn attention_rows(database: &[Assessed]) -> Vec<AttentionRow> {
    database
        .iter()
        .filter(|a| a.verdict.needs_recovery())
        .map(|a| AttentionRow {
            id: a.task.id,
            project: a.task.project.clone(),
            name: a.task.name.clone(),
            owner: a.owner.as_ref().map(|o| o.label()),
            heartbeat_at: a.task.updated_at,
            warning: a.verdict.warning().unwrap_or_default(),
            recovery: match a.verdict {
                Verdict::Orphaned { .. } => Recovery::Restart,
                _ => Recovery::ForceRestart,
            },
            verdict: a.verdict.clone(),
        })
        .collect()
}

/// This process's notices and the database's events, newest first.
pub fn merge_log(notices: &VecDeque<Notice>, events: &VecDeque<TaskEvent>) -> Vec<LogLine> {
    let here = notices.iter().map(|n| LogLine {
        at: n.at,
        task: n.task,
        origin: LogOrigin::Here,
        kind: None,
        by: None,
        text: n.text.clone(),
    });
    let database = events.iter().map(|e| LogLine {
        at: e.at,
        task: Some(e.task_id),
        origin: LogOrigin::Database,
        kind: Some(e.kind),
        by: e.by.clone(),
        text: e.message.clone(),
    });
    let mut lines: Vec<LogLine> = here.chain(database).collect();
    lines.sort_by_key(|l| std::cmp::Reverse(l.at));
    lines.truncate(LOG_LINES);
    lines
}

/// Builds snapshots from a read-only connection and, in read-write mode, the engine's state.
pub struct SnapshotSource {
    reader: ReadOnlyStore,
    probe: LivenessProbe,
    config: Arc<Config>,
    engine: Option<(watch::Receiver<Arc<EngineState>>, Actor)>,
    events: VecDeque<TaskEvent>,
    history: Option<HistoryCache>,
}

/// The last history window read, for what and when, with the extent of its filter.
struct HistoryCache {
    query: HistoryQuery,
    at: Instant,
    extent: HistoryExtent,
    window: HistoryWindow,
}

impl SnapshotSource {
    /// A source over `reader`; `engine` is this process's engine state and identity, if it
    /// runs downloads.
    pub fn new(
        reader: ReadOnlyStore,
        probe: LivenessProbe,
        config: Arc<Config>,
        engine: Option<(watch::Receiver<Arc<EngineState>>, Actor)>,
    ) -> SnapshotSource {
        SnapshotSource {
            reader,
            probe,
            config,
            engine,
            events: VecDeque::new(),
            history: None,
        }
    }

    /// Changes whenever another connection commits.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.reader.data_version()
    }

    /// True when the engine published a new state since the last build.
    pub fn engine_changed(&self) -> bool {
        self.engine
            .as_ref()
            .is_some_and(|(rx, _)| rx.has_changed().unwrap_or(false))
    }

    /// Reads everything `request` needs and merges it with memory, judged at `now`.
    pub fn build(
        &mut self,
        request: &ViewRequest,
        now: DateTime<Utc>,
    ) -> Result<Snapshot, StoreError> {
        let memory = match &mut self.engine {
            Some((rx, _)) => rx.borrow_and_update().clone(),
            None => Arc::new(EngineState::default()),
        };
        let me = self.engine.as_ref().map(|(_, me)| me.clone());
        let database = self.assess_unfinished(&memory, now)?;
        let active = merge_active(&memory.tasks, &database, me.as_ref());
        let detail = match request.detail {
            Some(id) => self.detail(id, &active, now)?,
            None => None,
        };
        let tasks_changed = self.tail_events()?;
        let history = self.history(&request.history, tasks_changed)?;
        Ok(Snapshot {
            attention: attention_rows(&database),
            local_running: memory.tasks.len(),
            log: merge_log(&memory.notices, &self.events),
            active,
            history,
            detail,
            error: None,
        })
    }

    fn assess_unfinished(
        &self,
        memory: &EngineState,
        now: DateTime<Utc>,
    ) -> Result<Vec<Assessed>, StoreError> {
        let mut assessor = Assessor::new(&self.reader, &self.probe, &self.config, now);
        let mut seen = HashSet::new();
        let mut database = Vec::new();
        for task in self.reader.unfinished()? {
            if task.status.is_active() || memory.tasks.contains_key(&task.id) {
                seen.insert(task.id);
                database.push(assessor.assess(task)?);
            }
        }
        for id in memory.tasks.keys().filter(|id| !seen.contains(id)) {
            if let Some(task) = self.reader.task(*id)? {
                database.push(assessor.assess(task)?);
            }
        }
        Ok(database)
    }

    fn detail(
        &self,
        id: TaskId,
        active: &[ActiveRow],
        now: DateTime<Utc>,
    ) -> Result<Option<Detail>, StoreError> {
        let Some(task) = self.reader.task(id)? else {
            return Ok(None);
        };
        let assessed = Assessor::new(&self.reader, &self.probe, &self.config, now).assess(task)?;
        let mut events = self.reader.events(id)?;
        events.drain(..events.len().saturating_sub(DETAIL_EVENTS));
        Ok(Some(Detail {
            owner: assessed.owner.as_ref().map(|o| o.label()),
            verdict: assessed.verdict,
            files: self.reader.files(id)?,
            events,
            live: active
                .iter()
                .find(|r| r.id == id && r.source == Source::Memory)
                .cloned(),
            task: assessed.task,
        }))
    }

    /// The window around `q.top`. Every change of a task's state writes an event, so the
    /// filter's extent (count and ids) is taken again only when the filter changed or events
    /// arrived; the rows also when the window moved or is older than [`HISTORY_ROWS_MAX_AGE`]
    /// (bytes move without events).
    fn history(&mut self, q: &HistoryQuery, changed: bool) -> Result<HistoryWindow, StoreError> {
        let cached = self.history.take();
        let same_filter =
            |c: &&HistoryCache| c.query.filter == q.filter && c.query.order == q.order;
        let fresh =
            |c: &&HistoryCache| !changed && c.query == *q && c.at.elapsed() < HISTORY_ROWS_MAX_AGE;
        if let Some(window) = cached.as_ref().filter(fresh).map(|c| c.window.clone()) {
            self.history = cached;
            return Ok(window);
        }
        let extent = match cached.as_ref().filter(same_filter) {
            Some(c) if !changed => c.extent,
            _ => self.reader.history_extent(&q.filter)?,
        };
        let (rows, at_start, at_end) = self.history_rows(q)?;
        let window = HistoryWindow {
            filter: q.filter.clone(),
            order: q.order,
            top: q.top,
            total: extent.count,
            start: start_position(q.order, &extent, &rows, at_start, at_end),
            at_end,
            rows,
        };
        self.history = Some(HistoryCache {
            query: q.clone(),
            at: Instant::now(),
            extent,
            window: window.clone(),
        });
        Ok(window)
    }

    /// The rows from a page before `q.top` to a page after the visible ones, in `q.order`, and
    /// whether they reach the start and the end. Each side is read by key, one row more than it
    /// keeps, to tell "exactly a page left" from "more".
    fn history_rows(&self, q: &HistoryQuery) -> Result<(Vec<Task>, bool, bool), StoreError> {
        let page = q.rows.max(1);
        let read = |key: PageKey, keep: usize| -> Result<(Vec<Task>, bool), StoreError> {
            let mut rows = self.reader.history_page(&q.filter, key, keep + 1)?;
            let all = rows.len() <= keep;
            rows.truncate(keep);
            Ok((rows, all))
        };
        let newest_first = q.order == HistoryOrder::NewestFirst;
        let (first, last) = if newest_first {
            (PageKey::Newest, PageKey::Oldest)
        } else {
            (PageKey::Oldest, PageKey::Newest)
        };
        Ok(match q.top {
            HistoryAnchor::First => {
                let (rows, at_end) = read(first, 2 * page)?;
                (rows, true, at_end)
            }
            HistoryAnchor::Last => {
                let (mut rows, at_start) = read(last, 2 * page)?;
                rows.reverse();
                (rows, at_start, true)
            }
            HistoryAnchor::At(id) => {
                let (from, behind) = if newest_first {
                    (
                        PageKey::Before(TaskId(id.0.saturating_add(1))),
                        PageKey::After(id),
                    )
                } else {
                    (
                        PageKey::After(TaskId(id.0.saturating_sub(1))),
                        PageKey::Before(id),
                    )
                };
                let (mut rows, at_start) = read(behind, page)?;
                rows.reverse();
                let (after, at_end) = read(from, 2 * page)?;
                rows.extend(after);
                (rows, at_start, at_end)
            }
        })
    }

    /// Appends events newer than the last one seen, keeping the newest; true if there were any.
    fn tail_events(&mut self) -> Result<bool, StoreError> {
        let after = self.events.back().map_or(0, |e| e.id);
        let new = self.reader.recent_events(after, LOG_LINES)?;
        let any = !new.is_empty();
        self.events.extend(new);
        while self.events.len() > LOG_LINES {
            self.events.pop_front();
        }
        Ok(any)
    }
}

/// Where `rows[0]` stands in `order`: exact at either end, or when every id between the filter's
/// lowest and highest matches it (then it is arithmetic on ids, as for all of history, since
/// tasks are never deleted); otherwise interpolated on ids, at least one row from either end.
fn start_position(
    order: HistoryOrder,
    extent: &HistoryExtent,
    rows: &[Task],
    at_start: bool,
    at_end: bool,
) -> RowPosition {
    let len = rows.len() as u64;
    if at_start {
        return RowPosition::Exact(0);
    }
    if at_end {
        return RowPosition::Exact(extent.count.saturating_sub(len).max(1));
    }
    let (Some(first), Some((low, high))) = (rows.first(), extent.ids) else {
        return RowPosition::About(1);
    };
    let from_edge = match order {
        HistoryOrder::NewestFirst => high.0.saturating_sub(first.id.0),
        HistoryOrder::OldestFirst => first.id.0.saturating_sub(low.0),
    }
    .max(0) as u64;
    let span = high.0.saturating_sub(low.0).max(0) as u64;
    if span.checked_add(1) == Some(extent.count) {
        return RowPosition::Exact(from_edge.max(1));
    }
    let estimate = if span == 0 {
        0.0
    } else {
        from_edge as f64 / span as f64 * extent.count.saturating_sub(1) as f64
    };
    let most = extent.count.saturating_sub(len + 1).max(1);
    RowPosition::About((estimate.round() as u64).clamp(1, most))
}
