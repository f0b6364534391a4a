//! The frame's layout: a header line, the tab bar, the pane in front (or the detail), and the
//! status line; the help overlay on top. Only layout here; the panes draw themselves.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::action::Action;
use super::app::{Access, App, Level, Pane};
use super::keymap::label;
use super::panes::{self, safe, thousands};
use super::prompt::Prompt;
use super::theme::Theme;
use crate::text::ellipsize;

/// Rows around a list: header, tabs, status line, two borders, the table header, the footer.
const CHROME_ROWS: u16 = 6 + panes::FOOTER_ROWS;
/// Below this the dashboard only says it needs more room.
const MIN_SIZE: (u16, u16) = (40, 12);

/// Visible rows of a list pane on a terminal `height` rows tall.
pub fn list_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(CHROME_ROWS).max(1))
}

/// Draws the whole dashboard into `buf`.
pub fn draw(app: &App, theme: &Theme, area: Rect, buf: &mut Buffer) {
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let text = format!("haul needs {}×{} or more", MIN_SIZE.0, MIN_SIZE.1);
        Paragraph::new(text).render(area, buf);
        return;
    }
    let [header, tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(app, theme, header, buf);
    draw_tabs(app, theme, tabs, buf);
    if app.detail.is_some() {
        panes::detail::render(app, theme, body, buf);
    } else {
        match app.pane {
            Pane::Active => panes::active::render(app, theme, body, buf),
            Pane::Stale => panes::stale::render(app, theme, body, buf),
            Pane::History => panes::history::render(app, theme, body, buf),
            Pane::Log => panes::log::render(app, theme, body, buf),
        }
    }
    draw_status(app, theme, status, buf);
    if app.help {
        panes::help::render(app, theme, body, buf);
    }
}

fn draw_header(app: &App, theme: &Theme, area: Rect, buf: &mut Buffer) {
    let s = &app.snapshot;
    let memory = s.local_running;
    let counts = format!(
        "{} active ({memory} here) · {} stale/orphaned · {} tasks ",
        s.active.len(),
        s.attention.len(),
        thousands(s.history.total)
    );
    let mut spans = vec![Span::styled(" haul ", theme.title)];
    if app.access == Access::ReadOnly {
        spans.push(Span::styled(" READ-ONLY ", theme.read_only));
        spans.push(Span::raw(" "));
    }
    let used: usize = spans.iter().map(Span::width).sum::<usize>() + counts.chars().count();
    let room = usize::from(area.width).saturating_sub(used + 1);
    let db = ellipsize(&safe(&app.db_label), room);
    let pad = room.saturating_sub(db.chars().count());
    spans.push(Span::styled(db, theme.dim));
    spans.push(Span::raw(" ".repeat(pad + 1)));
    let counts_style = if s.attention.is_empty() {
        theme.dim
    } else {
        theme.warn
    };
    spans.push(Span::styled(counts, counts_style));
    Line::from(spans).render(area, buf);
}

fn draw_tabs(app: &App, theme: &Theme, area: Rect, buf: &mut Buffer) {
    let s = &app.snapshot;
    let mut spans = vec![Span::raw(" ")];
    for pane in Pane::ALL {
        let count = match pane {
            Pane::Active => format!(" {}", s.active.len()),
            Pane::Stale => format!(" {}", s.attention.len()),
            Pane::History => format!(" {}", thousands(s.history.total)),
            Pane::Log => String::new(),
        };
        let style = if pane == app.pane && app.detail.is_none() {
            theme.tab_selected
        } else if pane == Pane::Stale && !s.attention.is_empty() {
            theme.warn
        } else {
            theme.tab
        };
        spans.push(Span::styled(format!(" {}{count} ", pane.title()), style));
        spans.push(Span::styled("│", theme.border));
    }
    spans.pop();
    Line::from(spans).render(area, buf);
}

fn draw_status(app: &App, theme: &Theme, area: Rect, buf: &mut Buffer) {
    let line = match &app.prompt {
        Some(Prompt::Confirm { question, .. }) => Line::from(vec![
            Span::styled(format!(" {question} "), theme.prompt),
            Span::raw(" y/n"),
        ]),
        Some(Prompt::Input { kind, text }) => {
            let room = usize::from(area.width).saturating_sub(kind.label().len() + 3);
            let shown: String = text
                .chars()
                .rev()
                .take(room)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Line::from(vec![
                Span::styled(format!(" {}", kind.label()), theme.prompt),
                Span::raw(format!(" {shown}")),
                Span::styled(" ", theme.selected),
            ])
        }
        None => match (&app.status, &app.snapshot.error) {
            (Some(status), _) => {
                let style = match status.level {
                    Level::Info => theme.ok,
                    Level::Warn => theme.warn,
                    Level::Error => theme.error,
                };
                Line::styled(format!(" {}", safe(&status.text)), style)
            }
            (None, Some(error)) => Line::styled(format!(" {}", safe(error)), theme.error),
            (None, None) => hints(app, theme, area.width),
        },
    };
    line.render(area, buf);
}

/// The most useful keys, named by the keymap table, as many as fit (writing keys left out in
/// read-only mode): `(action, short name, how long it stays when space runs out)`.
fn hints<'a>(app: &App, theme: &Theme, width: u16) -> Line<'a> {
    const SHOWN: [(Action, &str, u8); 10] = [
        (Action::NextPane, "pane", 2),
        (Action::Open, "detail", 7),
        (Action::Cancel, "cancel", 6),
        (Action::ForceRestart, "force restart", 5),
        (Action::Retry, "retry", 4),
        (Action::Add, "add", 3),
        (Action::Filter, "filter", 3),
        (Action::Sort, "sort", 1),
        (Action::Help, "help", 9),
        (Action::Quit, "quit", 8),
    ];
    let mut shown: Vec<(Action, &str, u8)> = SHOWN
        .into_iter()
        .filter(|(a, _, _)| !(a.writes() && app.access == Access::ReadOnly))
        .collect();
    let need = |items: &[(Action, &str, u8)]| -> usize {
        items
            .iter()
            .map(|(a, name, _)| label(*a).chars().count() + name.len() + 3)
            .sum::<usize>()
            + 1
    };
    while need(&shown) > usize::from(width) && shown.len() > 1 {
        if let Some(i) = shown
            .iter()
            .enumerate()
            .min_by_key(|(_, x)| x.2)
            .map(|(i, _)| i)
        {
            shown.remove(i);
        }
    }
    let mut spans = vec![Span::raw(" ")];
    for (action, name, _) in shown {
        spans.push(Span::styled(label(action), theme.title));
        spans.push(Span::styled(format!(" {name}  "), theme.dim));
    }
    Line::from(spans)
}
