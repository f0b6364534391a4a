//! One file per pane, plus what they share: columns that drop out on narrow terminals, the
//! two-line footer about the selected row, and the formatting of cells. Every string that
//! came from a server or the database goes through [`safe`] before it reaches a cell.

pub mod active;
pub mod detail;
pub mod help;
pub mod history;
pub mod log;
pub mod stale;

use chrono::{DateTime, Utc};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Widget, Wrap};

use super::theme::Theme;
use crate::output::format_secs;
use crate::recovery::age_secs;
use crate::text::escape_controls;

/// Rows of the footer under every list.
pub const FOOTER_ROWS: u16 = 2;

/// A column: its header, its width (the minimum, for the flexible one), and how long it stays
/// when space runs out (higher stays longer).
#[derive(Debug, Clone, Copy)]
pub struct Column<K> {
    pub key: K,
    pub title: &'static str,
    pub width: u16,
    pub keep: u8,
    pub flex: bool,
}

impl<K> Column<K> {
    /// A fixed-width column.
    pub const fn new(key: K, title: &'static str, width: u16, keep: u8) -> Column<K> {
        Column {
            key,
            title,
            width,
            keep,
            flex: false,
        }
    }

    /// The same column, taking the width left over.
    pub const fn flexible(mut self) -> Column<K> {
        self.flex = true;
        self
    }
}

/// The page of `items` that holds `selected`, one row each, the selected row highlighted.
pub fn page_rows<'a, T>(
    items: &[T],
    selected: usize,
    page: usize,
    highlight: Style,
    row: impl Fn(&T) -> Row<'a>,
) -> Vec<Row<'a>> {
    let page = page.max(1);
    let first = (selected / page) * page;
    items
        .iter()
        .enumerate()
        .skip(first)
        .take(page)
        .map(|(i, item)| {
            let r = row(item);
            if i == selected { r.style(highlight) } else { r }
        })
        .collect()
}

/// The columns that fit in `width`, in their original order: the lowest `keep` drop first.
pub fn fit<K: Copy>(columns: &[Column<K>], width: u16) -> Vec<Column<K>> {
    let mut kept: Vec<Column<K>> = columns.to_vec();
    let need = |cols: &[Column<K>]| -> u16 {
        let widths: u16 = cols.iter().map(|c| c.width).sum();
        widths + cols.len().saturating_sub(1) as u16
    };
    while need(&kept) > width && kept.len() > 1 {
        let Some(drop) = kept
            .iter()
            .enumerate()
            .min_by_key(|(i, c)| (c.keep, usize::MAX - i))
            .map(|(i, _)| i)
        else {
            break;
        };
        kept.remove(drop);
    }
    kept
}

/// A bordered list pane: a table of `rows` with `columns` (or the `empty` message), and a
/// footer of two lines about the selected row.
pub struct List<'a, K> {
    pub title: Line<'a>,
    pub columns: Vec<Column<K>>,
    pub rows: Vec<Row<'a>>,
    pub empty: &'a str,
    pub footer: Vec<Line<'a>>,
}

/// Draws `list` into `area`.
pub fn list<K: Copy>(theme: &Theme, list: List<'_, K>, area: Rect, buf: &mut Buffer) {
    let List {
        title,
        columns,
        rows,
        empty,
        footer,
    } = list;
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    let [table_area, footer_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(FOOTER_ROWS)]).areas(inner);
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|c| {
            if c.flex {
                Constraint::Fill(1)
            } else {
                Constraint::Length(c.width)
            }
        })
        .collect();
    let header = Row::new(columns.iter().map(|c| c.title)).style(theme.header);
    let no_rows = rows.is_empty();
    Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .render(table_area, buf);
    if no_rows && table_area.height > 1 {
        let [_, message] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(table_area);
        Paragraph::new(Line::styled(empty, theme.dim)).render(message, buf);
    }
    Paragraph::new(footer)
        .wrap(Wrap { trim: false })
        .render(footer_area, buf);
}

/// A string from the database or a server, with control characters made visible.
pub fn safe(s: &str) -> String {
    escape_controls(s)
}

/// `12s`, `3m05s`; `—` when unknown or in the future.
pub fn age(then: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    then.and_then(|t| age_secs(t, now))
        .map_or_else(|| "—".to_owned(), format_secs)
}

/// `1,000,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A progress bar `width` cells wide with the percentage: `█████░░░  62%`.
pub fn bar<'a>(theme: &Theme, done: u64, total: Option<u64>, width: u16) -> Line<'a> {
    let Some(total) = total.filter(|t| *t > 0) else {
        return Line::styled("", theme.dim);
    };
    let fraction = (done as f64 / total as f64).clamp(0.0, 1.0);
    let cells = usize::from(width.saturating_sub(5));
    let filled = (fraction * cells as f64).round() as usize;
    Line::from(vec![
        Span::styled("█".repeat(filled), theme.bar_done),
        Span::styled("░".repeat(cells - filled), theme.bar_todo),
        Span::raw(format!("{:>4}%", (fraction * 100.0).floor() as u64)),
    ])
}

/// The block title of a pane: its name, then details.
pub fn title<'a>(theme: &Theme, name: &'a str, rest: String) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!(" {name} "), theme.title),
        Span::styled(format!("{rest} "), Style::new()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_columns_drop_lowest_keep_first() {
        let cols = [
            Column {
                key: 'a',
                title: "A",
                width: 10,
                keep: 9,
                flex: false,
            },
            Column {
                key: 'b',
                title: "B",
                width: 10,
                keep: 1,
                flex: false,
            },
            Column {
                key: 'c',
                title: "C",
                width: 10,
                keep: 5,
                flex: true,
            },
        ];
        let keys = |w| fit(&cols, w).iter().map(|c| c.key).collect::<String>();
        assert_eq!(keys(32), "abc");
        assert_eq!(keys(31), "ac");
        assert_eq!(keys(15), "a");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(0), "0");
    }
}
