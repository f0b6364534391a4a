//! Active: what runs and waits, memory ∪ database, one row per task.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use super::{Column, List, age, bar, safe, title};
use crate::model::{Source, Status};
use crate::output::{format_bytes, format_progress, format_secs};
use crate::recovery::Verdict;
use crate::snapshot::ActiveRow;
use crate::tui::action::Action;
use crate::tui::app::App;
use crate::tui::keymap::label;
use crate::tui::theme::Theme;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Flag,
    Id,
    Project,
    Name,
    Source,
    Owner,
    State,
    Progress,
    Bytes,
    Speed,
    Eta,
    Heartbeat,
}

const COLUMNS: [Column<Col>; 12] = [
    Column::new(Col::Flag, "", 1, 20),
    Column::new(Col::Id, "ID", 6, 19),
    Column::new(Col::Project, "PROJECT", 10, 2),
    Column::new(Col::Name, "NAME", 12, 18).flexible(),
    Column::new(Col::Source, "SOURCE", 8, 7),
    Column::new(Col::Owner, "OWNER", 14, 3),
    Column::new(Col::State, "STATE", 8, 17),
    Column::new(Col::Progress, "PROGRESS", 12, 12),
    Column::new(Col::Bytes, "BYTES", 21, 4),
    Column::new(Col::Speed, "SPEED", 12, 10),
    Column::new(Col::Eta, "ETA", 6, 5),
    Column::new(Col::Heartbeat, "HB AGE", 6, 9),
];

/// Draws the Active pane.
pub fn render(app: &App, theme: &Theme, area: Rect, buf: &mut Buffer) {
    let columns = super::fit(&COLUMNS, area.width.saturating_sub(2));
    let rows = app.active_rows();
    let table = super::page_rows(&rows, app.active.index, app.page(), theme.selected, |r| {
        Row::new(columns.iter().map(|c| cell(app, theme, r, c)))
    });
    let memory = rows.iter().filter(|r| r.source == Source::Memory).count();
    let rest = format!(
        "{} tasks ({memory} memory, {} database) · sort: {}",
        rows.len(),
        rows.len() - memory,
        app.sort.label()
    );
    let footer = footer(theme, rows.get(app.active.index).copied());
    let empty = "Nothing runs or waits. Press a to add a URL.";
    let list = List {
        title: title(theme, "Active", rest),
        columns,
        rows: table,
        empty,
        footer,
    };
    super::list(theme, list, area, buf);
}

fn cell<'a>(app: &App, theme: &Theme, r: &ActiveRow, c: &Column<Col>) -> Cell<'a> {
    let dash = || Cell::from("—");
    match c.key {
        Col::Flag if r.disagreement.is_some() => Cell::from(Span::styled("≠", theme.error)),
        Col::Flag if r.verdict.needs_recovery() => Cell::from(Span::styled("!", theme.warn)),
        Col::Flag => Cell::from(""),
        Col::Id => Cell::from(r.id.to_string()),
        Col::Project => Cell::from(safe(&r.project)),
        Col::Name => Cell::from(safe(&r.name)),
        Col::Source => Cell::from(match r.source {
            Source::Memory => "memory",
            Source::Database => "database",
        }),
        Col::Owner => r
            .owner
            .as_deref()
            .map_or_else(dash, |o| Cell::from(safe(o))),
        Col::State => state(theme, r),
        Col::Progress if r.status == Status::Queued => Cell::from(""),
        Col::Progress => Cell::from(bar(theme, r.bytes_done, r.bytes_total, c.width)),
        Col::Bytes => Cell::from(bytes(r)),
        Col::Speed => r.speed_bps.map_or_else(dash, |s| {
            Cell::from(format!("{}/s", format_bytes(s as u64)))
        }),
        Col::Eta => r.eta_secs.map_or_else(dash, |s| Cell::from(format_secs(s))),
        Col::Heartbeat => Cell::from(age(r.heartbeat_at, app.now)),
    }
}

fn state<'a>(theme: &Theme, r: &ActiveRow) -> Cell<'a> {
    let (text, style) = match (&r.verdict, r.status) {
        (_, Status::Queued) => ("queued", theme.queued),
        (Verdict::Healthy, _) => ("running", theme.running),
        (Verdict::Stalled { .. }, _) => ("stalled", theme.warn),
        (Verdict::Stale { .. }, _) => ("stale", theme.warn),
        (Verdict::Orphaned { .. }, _) => ("orphaned", theme.error),
    };
    Cell::from(Span::styled(text, style))
}

fn bytes(r: &ActiveRow) -> String {
    match r.bytes_total {
        Some(total) => format!("{} / {}", format_bytes(r.bytes_done), format_bytes(total)),
        None => format_bytes(r.bytes_done),
    }
}

fn footer<'a>(theme: &Theme, row: Option<&ActiveRow>) -> Vec<Line<'a>> {
    let Some(r) = row else {
        return Vec::new();
    };
    let source = match r.source {
        Source::Memory => "run here (memory)",
        Source::Database => "seen in the database",
    };
    let owner = r
        .owner
        .as_deref()
        .map_or_else(|| "no owner".to_owned(), |o| format!("owner {}", safe(o)));
    let phase = r
        .phase
        .as_deref()
        .map(|p| format!(" · {}", safe(p)))
        .unwrap_or_default();
    let first = Line::from(vec![
        Span::styled(format!("task {} ", r.id), theme.title),
        Span::raw(format!(
            "{}/{} · {source} · {owner} · {} · files {}/{}{phase}",
            safe(&r.project),
            safe(&r.name),
            format_progress(r.bytes_done, r.bytes_total),
            r.files_done,
            r.files_total
        )),
    ]);
    let second = if let Some(d) = &r.disagreement {
        Line::styled(
            format!("≠ memory and database disagree: {}", safe(d)),
            theme.error,
        )
    } else if let Some(w) = r.verdict.warning() {
        Line::styled(format!("! {}", safe(&w)), theme.warn)
    } else {
        Line::styled(
            format!(
                "{} detail · {} cancel · {} force restart",
                label(Action::Open),
                label(Action::Cancel),
                label(Action::ForceRestart)
            ),
            theme.dim,
        )
    };
    vec![first, second]
}
