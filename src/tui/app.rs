//! The dashboard's state: the latest snapshot plus the view (pane, selections, prompt, status),
//! and the one reducer, [`App::update`], that turns events into state changes and [`Command`]s.
//! No I/O here: the loop carries the commands out.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use crossterm::event::KeyEventKind;

use super::action::Command;
use super::event::Event;
use super::prompt::Prompt;
use crate::model::{Status, TaskId};
use crate::snapshot::{
    ActiveRow, HistoryAnchor, HistoryOrder, HistoryQuery, Snapshot, ViewRequest,
};
use crate::store::HistoryFilter;

/// Whether the dashboard may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// The panes, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Active,
    Stale,
    History,
    Log,
}

impl Pane {
    /// Every pane, in Tab order.
    pub const ALL: [Pane; 4] = [Pane::Active, Pane::Stale, Pane::History, Pane::Log];

    /// The pane's name in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Pane::Active => "Active",
            Pane::Stale => "Stale & orphaned",
            Pane::History => "History",
            Pane::Log => "Log",
        }
    }

    pub(super) fn step(self, forward: bool) -> Pane {
        let i = Pane::ALL.iter().position(|p| *p == self).unwrap_or(0);
        let n = Pane::ALL.len();
        Pane::ALL[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }]
    }
}

/// How the Active pane is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ActiveSort {
    #[default]
    Id,
    Progress,
    Speed,
    Heartbeat,
}

impl ActiveSort {
    /// How the pane title names the order.
    pub fn label(self) -> &'static str {
        match self {
            ActiveSort::Id => "id",
            ActiveSort::Progress => "progress",
            ActiveSort::Speed => "speed",
            ActiveSort::Heartbeat => "heartbeat age",
        }
    }

    pub(super) fn next(self) -> ActiveSort {
        match self {
            ActiveSort::Id => ActiveSort::Progress,
            ActiveSort::Progress => ActiveSort::Speed,
            ActiveSort::Speed => ActiveSort::Heartbeat,
            ActiveSort::Heartbeat => ActiveSort::Id,
        }
    }
}

/// A selected row, remembered by task id so it stays put when rows move.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    pub index: usize,
    pub id: Option<TaskId>,
}

/// The history view: filter, order, where the visible rows start (by task id, see
/// [`HistoryAnchor`]) and which of them is selected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryView {
    pub filter_text: String,
    pub filter: HistoryFilter,
    pub order: HistoryOrder,
    pub top: HistoryAnchor,
    /// The selected row, counted from the first visible one.
    pub selected: usize,
}

/// How serious a status line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// The message on the last line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub text: String,
    pub level: Level,
}

/// The open detail view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailView {
    pub id: TaskId,
    pub scroll: u16,
}

/// Everything one frame is drawn from.
#[derive(Debug, Clone)]
pub struct App {
    pub snapshot: Arc<Snapshot>,
    pub access: Access,
    /// The database, as the header names it.
    pub db_label: String,
    pub now: DateTime<Utc>,
    /// The operator's time zone, for clock times.
    pub tz: FixedOffset,
    /// Terminal columns and rows.
    pub size: (u16, u16),
    pub pane: Pane,
    pub detail: Option<DetailView>,
    pub help: bool,
    pub prompt: Option<Prompt>,
    pub status: Option<StatusLine>,
    pub active: Selection,
    pub stale: Selection,
    pub log: Selection,
    pub sort: ActiveSort,
    pub history: HistoryView,
    pub(super) dirty: bool,
    requested: Option<ViewRequest>,
}

impl App {
    /// A dashboard with no data yet, Active pane in front.
    pub fn new(
        access: Access,
        db_label: String,
        size: (u16, u16),
        now: DateTime<Utc>,
        tz: FixedOffset,
    ) -> App {
        App {
            snapshot: Arc::new(Snapshot::default()),
            access,
            db_label,
            now,
            tz,
            size,
            pane: Pane::Active,
            detail: None,
            help: false,
            prompt: None,
            status: None,
            active: Selection::default(),
            stale: Selection::default(),
            log: Selection::default(),
            sort: ActiveSort::default(),
            history: HistoryView::default(),
            dirty: true,
            requested: None,
        }
    }

    /// True (once) when something visible changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::replace(&mut self.dirty, false)
    }

    /// Folds one event into the state; returns what the loop must do.
    pub fn update(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::Key(key) if key.kind == KeyEventKind::Release => Vec::new(),
            Event::Key(key) => {
                self.dirty = true;
                self.on_key(key)
            }
            Event::Resize(w, h) => {
                self.size = (w, h);
                self.dirty = true;
                self.sync_request()
            }
            Event::Tick(now) => {
                if now.timestamp() != self.now.timestamp() {
                    self.now = now;
                    self.dirty |= self.shows_ages();
                }
                Vec::new()
            }
            Event::Snapshot(snapshot) => {
                self.snapshot = snapshot;
                self.dirty = true;
                self.follow_selections();
                self.sync_request()
            }
            Event::OpDone { ok, text } => {
                let level = if ok { Level::Info } else { Level::Error };
                self.say(level, text);
                Vec::new()
            }
            Event::EngineStopped(why) => {
                self.say(Level::Error, format!("the download engine stopped: {why}"));
                Vec::new()
            }
            Event::Signal => vec![Command::Quit],
        }
    }

    /// The request the feed must serve now, if it changed since the last one sent.
    pub fn sync_request(&mut self) -> Vec<Command> {
        let request = ViewRequest {
            history: HistoryQuery {
                filter: self.history.filter.clone(),
                order: self.history.order,
                top: self.history.top,
                rows: self.page(),
            },
            detail: self.detail.map(|d| d.id),
        };
        if self.requested.as_ref() == Some(&request) {
            return Vec::new();
        }
        self.requested = Some(request.clone());
        vec![Command::Request(request)]
    }

    /// The Active rows in the chosen order.
    pub fn active_rows(&self) -> Vec<&ActiveRow> {
        let mut rows: Vec<&ActiveRow> = self.snapshot.active.iter().collect();
        match self.sort {
            ActiveSort::Id => {}
            ActiveSort::Progress => rows.sort_by(|a, b| fraction(b).total_cmp(&fraction(a))),
            ActiveSort::Speed => rows.sort_by(|a, b| {
                b.speed_bps
                    .unwrap_or(0.0)
                    .total_cmp(&a.speed_bps.unwrap_or(0.0))
            }),
            ActiveSort::Heartbeat => rows.sort_by_key(|r| r.heartbeat_at),
        }
        rows
    }

    /// Visible rows of a list pane at the current size.
    pub fn page(&self) -> usize {
        super::ui::list_rows(self.size.1)
    }

    /// Shows `text` on the status line.
    pub fn say(&mut self, level: Level, text: impl Into<String>) {
        self.status = Some(StatusLine {
            text: text.into(),
            level,
        });
        self.dirty = true;
    }

    fn shows_ages(&self) -> bool {
        let visible = match self.pane {
            Pane::Active => self
                .snapshot
                .active
                .iter()
                .any(|r| r.heartbeat_at.is_some()),
            Pane::Stale => !self.snapshot.attention.is_empty(),
            Pane::History | Pane::Log => false,
        };
        visible || self.detail.is_some()
    }
}

/// Fraction done, for sorting (unknown totals last).
fn fraction(row: &ActiveRow) -> f64 {
    match row.bytes_total {
        Some(total) if total > 0 => row.bytes_done as f64 / total as f64,
        _ if row.status == Status::Queued => -1.0,
        _ => 0.0,
    }
}
