//! Stale & orphaned: every task that needs recovery, why, and the key that recovers it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use super::{Column, List, age, safe, title};
use crate::snapshot::{AttentionRow, Recovery};
use crate::tui::action::Action;
use crate::tui::app::App;
use crate::tui::keymap::{binding, label};
use crate::tui::theme::Theme;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Id,
    State,
    Age,
    Key,
    Owner,
    Project,
    Name,
    Warning,
}

const fn col(key: Col, title: &'static str, width: u16, keep: u8) -> Column<Col> {
    Column {
        key,
        title,
        width,
        keep,
        flex: matches!(key, Col::Warning),
    }
}

const COLUMNS: [Column<Col>; 8] = [
    col(Col::Id, "ID", 6, 20),
    col(Col::State, "STATE", 8, 19),
    col(Col::Age, "AGE", 6, 18),
    col(Col::Key, "KEY", 3, 17),
    col(Col::Owner, "OWNER", 14, 6),
    col(Col::Project, "PROJECT", 10, 3),
    col(Col::Name, "NAME", 16, 16),
    col(Col::Warning, "WARNING", 12, 10),
];

fn recovery_action(r: Recovery) -> Action {
    match r {
        Recovery::ForceRestart => Action::ForceRestart,
        Recovery::Restart => Action::Retry,
    }
}

/// Draws the Stale & orphaned pane.
pub fn render(app: &App, theme: &Theme, area: Rect, buf: &mut Buffer) {
    let columns = super::fit(&COLUMNS, area.width.saturating_sub(2));
    let rows = &app.snapshot.attention;
    let page = app.page().max(1);
    let first = (app.stale.index / page) * page;
    let table: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(first)
        .take(page)
        .map(|(i, r)| {
            let row = Row::new(columns.iter().map(|c| cell(app, theme, r, c)));
            if i == app.stale.index {
                row.style(theme.selected)
            } else {
                row
            }
        })
        .collect();
    let rest = format!("{} tasks need recovery", rows.len());
    let footer = match rows.get(app.stale.index) {
        Some(r) => {
            let action = recovery_action(r.recovery);
            let what =
                binding(action).map_or("recover", |b| b.help.split(" (").next().unwrap_or(b.help));
            let owner = r
                .owner
                .as_deref()
                .map_or_else(|| "no owner".to_owned(), safe);
            vec![
                Line::from(vec![
                    Span::styled(format!("task {} ", r.id), theme.title),
                    Span::raw(format!(
                        "{}/{} · owner {owner} · recover with ",
                        safe(&r.project),
                        safe(&r.name)
                    )),
                    Span::styled(label(action), theme.title),
                    Span::raw(format!(" ({what})")),
                ]),
                Line::styled(format!("! {}", safe(&r.warning)), theme.warn),
            ]
        }
        None => Vec::new(),
    };
    let empty = "Nothing is stale or orphaned.";
    let list = List {
        title: title(theme, "Stale & orphaned", rest),
        columns,
        rows: table,
        empty,
        footer,
    };
    super::list(theme, list, area, buf);
}

fn cell<'a>(app: &App, theme: &Theme, r: &AttentionRow, c: &Column<Col>) -> Cell<'a> {
    match c.key {
        Col::Id => Cell::from(r.id.to_string()),
        Col::State => Cell::from(Span::styled(r.verdict.label(), theme.warn)),
        Col::Age => Cell::from(age(Some(r.heartbeat_at), app.now)),
        Col::Key => Cell::from(Span::styled(
            label(recovery_action(r.recovery)),
            theme.title,
        )),
        Col::Owner => Cell::from(r.owner.as_deref().map_or_else(|| "—".to_owned(), safe)),
        Col::Project => Cell::from(safe(&r.project)),
        Col::Name => Cell::from(safe(&r.name)),
        Col::Warning => Cell::from(safe(&r.warning)),
    }
}
