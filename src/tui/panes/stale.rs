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

const COLUMNS: [Column<Col>; 8] = [
    Column::new(Col::Id, "ID", 6, 20),
    Column::new(Col::State, "STATE", 8, 19),
    Column::new(Col::Age, "AGE", 6, 18),
    Column::new(Col::Key, "KEY", 3, 17),
    Column::new(Col::Owner, "OWNER", 14, 6),
    Column::new(Col::Project, "PROJECT", 10, 3),
    Column::new(Col::Name, "NAME", 16, 16),
    Column::new(Col::Warning, "WARNING", 12, 10).flexible(),
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
    let table = super::page_rows(rows, app.stale.index, app.page(), theme.selected, |r| {
        Row::new(columns.iter().map(|c| cell(app, theme, r, c)))
    });
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
