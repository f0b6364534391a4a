//! The help overlay: every key, straight from the keymap table.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use crate::tui::app::{Access, App};
use crate::tui::keymap::{BINDINGS, PROMPT_KEYS};
use crate::tui::theme::Theme;

/// Draws the help overlay centred on `area`.
pub fn render(app: &App, theme: &Theme, area: Rect, buf: &mut Buffer) {
    let width = area.width.saturating_sub(4).min(84);
    let half = usize::from(width.saturating_sub(4) / 2);
    let entry = |label: &str, help: &str, writes: bool| -> Vec<Span<'static>> {
        let style = if writes && app.access == Access::ReadOnly {
            theme.dim
        } else {
            theme.title
        };
        let help = if writes && app.access == Access::ReadOnly {
            format!("{help} (off)")
        } else {
            help.to_owned()
        };
        let text = format!("{help:<w$}", w = half.saturating_sub(9));
        vec![
            Span::styled(format!(" {label:<7} "), style),
            Span::raw(text),
        ]
    };
    let mut lines = Vec::new();
    for pair in BINDINGS.chunks(2) {
        let mut spans = Vec::new();
        for b in pair {
            spans.extend(entry(b.label, b.help, b.action.writes()));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " In a question or an input line",
        theme.header,
    ));
    for pair in PROMPT_KEYS.chunks(2) {
        lines.push(Line::from(
            pair.iter()
                .flat_map(|(k, h)| entry(k, h, false))
                .collect::<Vec<_>>(),
        ));
    }
    lines.push(Line::raw(""));
    let note = match app.access {
        Access::ReadOnly => " READ-ONLY: keys that write are off; this dashboard never writes.",
        Access::ReadWrite => " Writing keys act on any task, whichever instance owns it.",
    };
    lines.push(Line::styled(note, theme.dim));
    let height = (lines.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    Clear.render(popup, buf);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.title)
        .title(Line::styled(" Keys · Esc or ? closes ", theme.title));
    Paragraph::new(lines).block(block).render(popup, buf);
}
