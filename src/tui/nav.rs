//! Moving around: selections in each pane (kept on their task when rows move), history
//! scrolling within the loaded window (by task id, never by row number), and detail scrolling.

use super::action::Command;
use super::app::{App, Pane, Selection};
use crate::model::{Task, TaskId};
use crate::snapshot::{HistoryAnchor, HistoryWindow};

/// Where a move goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Move {
    By(i64),
    Top,
    Bottom,
}

impl App {
    /// The selected task's id and name, in the detail or in the pane in front.
    pub fn selected(&self) -> Option<(TaskId, String)> {
        if let Some(d) = self.detail {
            let name = self.snapshot.detail.as_ref().filter(|x| x.task.id == d.id);
            return Some((d.id, name.map(|x| x.task.name.clone()).unwrap_or_default()));
        }
        let s = &self.snapshot;
        match self.pane {
            Pane::Active => self
                .active_rows()
                .get(self.active.index)
                .map(|r| (r.id, r.name.clone())),
            Pane::Stale => s
                .attention
                .get(self.stale.index)
                .map(|r| (r.id, r.name.clone())),
            Pane::History => self
                .history_rows()
                .get(self.history.selected)
                .map(|t| (t.id, t.name.clone())),
            Pane::Log => s
                .log
                .get(self.log.index)
                .and_then(|l| l.task)
                .map(|id| (id, String::new())),
        }
    }

    pub(super) fn go(&mut self, to: Move) -> Vec<Command> {
        if self.detail.is_some() {
            let lines = super::panes::detail::line_count(self);
            let max = super::panes::detail::max_scroll(lines, self.size.1.saturating_sub(3));
            if let Some(detail) = &mut self.detail {
                detail.scroll = match to {
                    Move::By(n) => (i64::from(detail.scroll) + n).clamp(0, i64::from(max)) as u16,
                    Move::Top => 0,
                    Move::Bottom => max,
                };
            }
            return Vec::new();
        }
        match self.pane {
            Pane::Active => {
                let rows = self.active_rows();
                let index = step(self.active.index as u64, rows.len() as u64, to) as usize;
                self.active = Selection {
                    index,
                    id: rows.get(index).map(|r| r.id),
                };
            }
            Pane::Stale => {
                let rows = &self.snapshot.attention;
                let index = step(self.stale.index as u64, rows.len() as u64, to) as usize;
                self.stale = Selection {
                    index,
                    id: rows.get(index).map(|r| r.id),
                };
            }
            Pane::Log => {
                let index =
                    step(self.log.index as u64, self.snapshot.log.len() as u64, to) as usize;
                self.log = Selection { index, id: None };
            }
            Pane::History => {
                self.scroll_history(to);
                return self.sync_request();
            }
        }
        Vec::new()
    }

    /// The loaded history window, when it is for the view's filter and order.
    pub(super) fn history_window(&self) -> Option<&HistoryWindow> {
        let window = &self.snapshot.history;
        (window.filter == self.history.filter && window.order == self.history.order)
            .then_some(window)
    }

    /// The index of the first visible history row in the window, when the window holds it.
    pub(super) fn history_top(&self) -> Option<usize> {
        self.history_window()?.locate(self.history.top, self.page())
    }

    /// The visible history rows (none until the window for them arrived).
    pub(super) fn history_rows(&self) -> &[Task] {
        match (self.history_window(), self.history_top()) {
            (Some(window), Some(top)) => {
                let rows = &window.rows[top.min(window.rows.len())..];
                &rows[..rows.len().min(self.page())]
            }
            _ => &[],
        }
    }

    /// Moves the history selection. Home and End are anchors of their own; steps move within
    /// the loaded window, which holds a page either side of the visible rows, and the view
    /// scrolls by re-anchoring on the id of its new first row.
    fn scroll_history(&mut self, to: Move) {
        let page = self.page().max(1);
        match to {
            Move::Top => {
                self.history.top = HistoryAnchor::First;
                self.history.selected = 0;
                return;
            }
            Move::Bottom => {
                self.history.top = HistoryAnchor::Last;
                self.history.selected = page - 1;
                self.clamp_history_selection();
                return;
            }
            Move::By(_) => {}
        }
        let Some(top) = self.history_top() else {
            return;
        };
        let window = &self.snapshot.history;
        let len = window.rows.len();
        let Some(last) = len.checked_sub(1) else {
            return;
        };
        let from = (top + self.history.selected).min(last);
        let target = step(from as u64, len as u64, to) as usize;
        let top = if target < top {
            target
        } else if target >= top + page {
            target + 1 - page
        } else {
            top
        };
        self.history.top = window.anchor_at(top, page);
        self.history.selected = target - top;
    }

    /// Keeps the history selection on a visible row.
    fn clamp_history_selection(&mut self) {
        if self.history_top().is_some() {
            let visible = self.history_rows().len();
            self.history.selected = self.history.selected.min(visible.saturating_sub(1));
        }
    }

    /// Keeps each selection on its task when rows move, or in range when it went away.
    pub(super) fn follow_selections(&mut self) {
        let rows = self.active_rows();
        let index = self
            .active
            .id
            .and_then(|id| rows.iter().position(|r| r.id == id));
        let index = index
            .unwrap_or(self.active.index)
            .min(rows.len().saturating_sub(1));
        self.active = Selection {
            index,
            id: rows.get(index).map(|r| r.id),
        };
        let rows = &self.snapshot.attention;
        let index = self
            .stale
            .id
            .and_then(|id| rows.iter().position(|r| r.id == id));
        let index = index
            .unwrap_or(self.stale.index)
            .min(rows.len().saturating_sub(1));
        self.stale = Selection {
            index,
            id: rows.get(index).map(|r| r.id),
        };
        self.log.index = self
            .log
            .index
            .min(self.snapshot.log.len().saturating_sub(1));
        self.clamp_history_selection();
    }
}

/// A position moved within `0..len`.
fn step(from: u64, len: u64, to: Move) -> u64 {
    let last = len.saturating_sub(1);
    match to {
        Move::Top => 0,
        Move::Bottom => last,
        Move::By(n) if n < 0 => from.saturating_sub(n.unsigned_abs()).min(last),
        Move::By(n) => from.saturating_add(n as u64).min(last),
    }
}
