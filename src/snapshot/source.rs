//! [`SnapshotSource`]: reads what a snapshot needs on its own read-only connection and merges
//! it with this process's engine state.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::unfinished::Unfinished;
use super::{
    ActiveRow, Detail, HistoryAnchor, HistoryOrder, HistoryQuery, HistoryWindow, LOG_LINES,
    RowPosition, Snapshot, ViewRequest, attention_rows, merge_active, merge_log,
};
use crate::config::Config;
use crate::engine::EngineState;
use crate::health::Assessor;
use crate::instance::LivenessProbe;
use crate::model::{Source, Task, TaskEvent, TaskId};
use crate::store::{Actor, HistoryExtent, PageKey, ReadOnlyStore, StoreError};

/// How many of a task's latest events the detail view carries.
const DETAIL_EVENTS: usize = 40;
/// History rows are read again at least this often while the database changes.
const HISTORY_ROWS_MAX_AGE: Duration = Duration::from_secs(2);

/// Builds snapshots from a read-only connection and, in read-write mode, the engine's state.
pub struct SnapshotSource {
    reader: ReadOnlyStore,
    probe: LivenessProbe,
    config: Arc<Config>,
    engine: Option<(watch::Receiver<Arc<EngineState>>, Actor)>,
    unfinished: Unfinished,
    events: VecDeque<TaskEvent>,
    /// The `data_version` read before the last tail of the events.
    events_version: Option<i64>,
    history: Option<HistoryCache>,
}

/// The last history window read, for what and when, with the extent of its filter.
struct HistoryCache {
    query: HistoryQuery,
    at: Instant,
    /// The `data_version` read before the window.
    version: i64,
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
            unfinished: Unfinished::default(),
            events: VecDeque::new(),
            events_version: None,
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

    /// Reads everything `request` needs and merges it with memory, judged at `now`. What was
    /// read at the same `data_version` (no other connection committed since) is reused.
    pub fn build(
        &mut self,
        request: &ViewRequest,
        now: DateTime<Utc>,
    ) -> Result<Snapshot, StoreError> {
        let version = self.reader.data_version()?;
        let memory = match &mut self.engine {
            Some((rx, _)) => rx.borrow_and_update().clone(),
            None => Arc::new(EngineState::default()),
        };
        let me = self.engine.as_ref().map(|(_, me)| me.clone());
        let assessor = Assessor::new(&self.reader, &self.probe, &self.config, now);
        let database = self
            .unfinished
            .refresh(assessor, &self.reader, &memory, version)?;
        let active = merge_active(&memory.tasks, database, me.as_ref());
        let attention = attention_rows(database);
        let detail = match request.detail {
            Some(id) => self.detail(id, &active, now)?,
            None => None,
        };
        let tasks_changed = self.tail_events(version)?;
        let history = self.history(&request.history, version, tasks_changed)?;
        Ok(Snapshot {
            attention,
            local_running: memory.tasks.len(),
            log: merge_log(&memory.notices, &self.events),
            active,
            history,
            detail,
            error: None,
        })
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

    /// The window around `q.top` at `version`. Every change of a task's state writes an event,
    /// so the filter's extent (count and ids) is taken again only when the filter changed or
    /// events arrived; the rows also when the window moved, or when the database changed since
    /// they were read and they are older than [`HISTORY_ROWS_MAX_AGE`] (bytes move without
    /// events).
    fn history(
        &mut self,
        q: &HistoryQuery,
        version: i64,
        changed: bool,
    ) -> Result<HistoryWindow, StoreError> {
        let cached = self.history.take();
        let same_filter =
            |c: &&HistoryCache| c.query.filter == q.filter && c.query.order == q.order;
        let fresh = |c: &&HistoryCache| {
            !changed
                && c.query == *q
                && (c.version == version || c.at.elapsed() < HISTORY_ROWS_MAX_AGE)
        };
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
            version,
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
    /// None can have arrived while `version` stayed the same.
    fn tail_events(&mut self, version: i64) -> Result<bool, StoreError> {
        if self.events_version == Some(version) {
            return Ok(false);
        }
        let after = self.events.back().map_or(0, |e| e.id);
        let new = self.reader.recent_events(after, LOG_LINES)?;
        self.events_version = Some(version);
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
