//! History: every task, newest (or oldest) first, filtered; only the visible window is loaded.

use chrono::{DateTime, Utc};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use super::{Column, List, safe, thousands, title};
use crate::model::Task;
use crate::output::format_progress;
use crate::snapshot::HistoryOrder;
use crate::tui::app::App;
use crate::tui::theme::Theme;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Id,
    Status,
    Project,
    Name,
    Bytes,
    Created,
    Finished,
}

const COLUMNS: [Column<Col>; 7] = [
    Column::new(Col::Id, "ID", 8, 20),
    Column::new(Col::Status, "STATUS", 11, 19),
    Column::new(Col::Project, "PROJECT", 12, 6),
    Column::new(Col::Name, "NAME", 14, 18).flexible(),
    Column::new(Col::Bytes, "BYTES", 25, 5),
    Column::new(Col::Created, "CREATED", 16, 8),
    Column::new(Col::Finished, "FINISHED", 16, 4),
];

/// Draws the History pane.
pub fn render(app: &App, theme: &Theme, area: Rect, buf: &mut Buffer) {
    let columns = super::fit(&COLUMNS, area.width.saturating_sub(2));
    let window = &app.snapshot.history;
    let view = &app.history;
    let current = window.filter == view.filter && window.order == view.order;
    let total = if current { window.total } else { 0 };
    let page = app.page() as u64;
    let end = (view.top + page).min(total);
    let rows: Vec<Row> = (view.top..end)
        .map(|position| {
            let row = match window.get(position) {
                Some(task) => Row::new(columns.iter().map(|c| cell(app, theme, task, c))),
                None => Row::new([Cell::from(Span::styled("…", theme.dim))]),
            };
            if position == view.selected {
                row.style(theme.selected)
            } else {
                row
            }
        })
        .collect();
    let order = match view.order {
        HistoryOrder::NewestFirst => "newest first",
        HistoryOrder::OldestFirst => "oldest first",
    };
    let shown = if end > view.top {
        format!(
            "{}–{} of {}",
            thousands(view.top + 1),
            thousands(end),
            thousands(total)
        )
    } else {
        format!("0 of {}", thousands(total))
    };
    let filter = if view.filter_text.is_empty() {
        String::new()
    } else {
        format!(" · filter: {}", safe(&view.filter_text))
    };
    let footer = match window.get(view.selected).filter(|_| current) {
        Some(task) => footer(theme, task),
        None => Vec::new(),
    };
    let rest = format!("{order} · {shown}{filter}");
    let empty = if current {
        "No task matches."
    } else {
        "loading…"
    };
    let list = List {
        title: title(theme, "History", rest),
        columns,
        rows,
        empty,
        footer,
    };
    super::list(theme, list, area, buf);
}

fn cell<'a>(app: &App, theme: &Theme, task: &Task, c: &Column<Col>) -> Cell<'a> {
    match c.key {
        Col::Id => Cell::from(task.id.to_string()),
        Col::Status => Cell::from(Span::styled(
            task.status.as_str(),
            theme.status(task.status),
        )),
        Col::Project => Cell::from(safe(&task.project)),
        Col::Name => Cell::from(safe(&task.name)),
        Col::Bytes => Cell::from(format_progress(task.bytes_done, task.bytes_total)),
        Col::Created => Cell::from(clock(app, Some(task.created_at))),
        Col::Finished => Cell::from(clock(app, task.finished_at)),
    }
}

/// `2024-05-01 13:04` in the operator's time zone.
pub fn clock(app: &App, t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".to_owned(),
        |t| {
            t.with_timezone(&app.tz)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        },
    )
}

fn footer<'a>(theme: &Theme, task: &Task) -> Vec<Line<'a>> {
    let first = Line::from(vec![
        Span::styled(format!("task {} ", task.id), theme.title),
        Span::raw(format!(
            "{}/{} · attempt {} · files {}/{} · retries {} · {}",
            safe(&task.project),
            safe(&task.name),
            task.attempt,
            task.files_done,
            task.files_total,
            task.retries,
            safe(&task.dest_dir)
        )),
    ]);
    let second = match &task.error_message {
        Some(e) => Line::styled(safe(e), theme.error),
        None => Line::styled("no error", theme.dim),
    };
    vec![first, second]
}
