//! History: every task, newest (or oldest) first, filtered; only the visible window is loaded.

use chrono::{DateTime, Utc};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use super::{Column, List, safe, thousands, title};
use crate::model::Task;
use crate::output::format_progress;
use crate::snapshot::{HistoryOrder, RowPosition};
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
    let view = &app.history;
    let window = app.history_window();
    let top = app.history_top();
    let visible = app.history_rows();
    let rows: Vec<Row> = visible
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let row = Row::new(columns.iter().map(|c| cell(app, theme, task, c)));
            if i == view.selected {
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
    let shown = match (window, top) {
        (Some(w), Some(top)) if !visible.is_empty() => {
            let first = w.start.plus(top as u64);
            let about = if matches!(first, RowPosition::About(_)) {
                "≈"
            } else {
                ""
            };
            format!(
                "{about}{}–{} of {}",
                thousands(first.value() + 1),
                thousands(first.value() + visible.len() as u64),
                thousands(w.total)
            )
        }
        (Some(w), Some(_)) => format!("0 of {}", thousands(w.total)),
        (Some(w), None) => format!("… of {}", thousands(w.total)),
        (None, _) => "…".to_owned(),
    };
    let filter = if view.filter_text.is_empty() {
        String::new()
    } else {
        format!(" · filter: {}", safe(&view.filter_text))
    };
    let footer = match visible.get(view.selected) {
        Some(task) => footer(theme, task),
        None => Vec::new(),
    };
    let rest = format!("{order} · {shown}{filter}");
    let empty = if top.is_some() {
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
