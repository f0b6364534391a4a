//! Log: this process's engine notices and every instance's events, newest first.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use super::{Column, List, safe, title};
use crate::model::EventKind;
use crate::snapshot::{LogLine, LogOrigin};
use crate::tui::app::App;
use crate::tui::theme::Theme;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Time,
    Origin,
    Task,
    Kind,
    By,
    Text,
}

const COLUMNS: [Column<Col>; 6] = [
    Column::new(Col::Time, "TIME", 8, 20),
    Column::new(Col::Origin, "FROM", 4, 6),
    Column::new(Col::Task, "TASK", 6, 18),
    Column::new(Col::Kind, "EVENT", 16, 8),
    Column::new(Col::By, "BY", 16, 4),
    Column::new(Col::Text, "MESSAGE", 20, 19).flexible(),
];

/// Draws the Log pane.
pub fn render(app: &App, theme: &Theme, area: Rect, buf: &mut Buffer) {
    let columns = super::fit(&COLUMNS, area.width.saturating_sub(2));
    let lines = &app.snapshot.log;
    let rows = super::page_rows(lines, app.log.index, app.page(), theme.selected, |l| {
        Row::new(columns.iter().map(|c| cell(app, theme, l, c)))
    });
    let footer = match lines.get(app.log.index) {
        Some(l) => vec![Line::from(vec![
            Span::styled(
                format!(
                    "{} ",
                    l.at.with_timezone(&app.tz).format("%Y-%m-%d %H:%M:%S")
                ),
                theme.dim,
            ),
            Span::raw(safe(&l.text)),
        ])],
        None => Vec::new(),
    };
    let rest = format!(
        "{} lines · recovery, errors, cancels and restarts of every instance",
        lines.len()
    );
    let list = List {
        title: title(theme, "Log", rest),
        columns,
        rows,
        empty: "Nothing logged yet.",
        footer,
    };
    super::list(theme, list, area, buf);
}

fn cell<'a>(app: &App, theme: &Theme, l: &LogLine, c: &Column<Col>) -> Cell<'a> {
    match c.key {
        Col::Time => Cell::from(l.at.with_timezone(&app.tz).format("%H:%M:%S").to_string()),
        Col::Origin => Cell::from(match l.origin {
            LogOrigin::Here => "here",
            LogOrigin::Database => "db",
        }),
        Col::Task => Cell::from(l.task.map(|t| t.to_string()).unwrap_or_default()),
        Col::Kind => {
            let style = match l.kind {
                Some(EventKind::Failed | EventKind::LeaseLost) => theme.error,
                Some(
                    EventKind::Recovered
                    | EventKind::Interrupted
                    | EventKind::CancelRequested
                    | EventKind::Cancelled
                    | EventKind::Restarted
                    | EventKind::Retry
                    | EventKind::RestartFromZero,
                ) => theme.warn,
                Some(EventKind::Completed) => theme.ok,
                _ => theme.dim,
            };
            Cell::from(Span::styled(
                l.kind.map_or("notice", EventKind::as_str),
                style,
            ))
        }
        Col::By => Cell::from(l.by.as_deref().map(safe).unwrap_or_default()),
        Col::Text => Cell::from(safe(&l.text)),
    }
}
