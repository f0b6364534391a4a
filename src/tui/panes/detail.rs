//! Detail: one task's files, attempts, bytes, validators, errors and latest events.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget, Wrap};

use super::history::clock;
use super::{age, safe, title};
use crate::output::{format_bytes, format_progress, format_secs};
use crate::snapshot::Detail;
use crate::text::redact_url;
use crate::tui::app::App;
use crate::tui::theme::Theme;

/// Draws the detail of the task `app.detail` names.
pub fn render(app: &App, theme: &Theme, area: Rect, buf: &mut Buffer) {
    let Some(view) = app.detail else {
        return;
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(title(
            theme,
            "Detail",
            format!("task {} · Esc back", view.id),
        ));
    let lines = match app
        .snapshot
        .detail
        .as_ref()
        .filter(|d| d.task.id == view.id)
    {
        Some(detail) => lines(app, theme, detail),
        None => vec![Line::styled(
            format!("loading task {}…", view.id),
            theme.dim,
        )],
    };
    let scroll = view.scroll.min(max_scroll(lines.len(), area.height));
    Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0))
        .render(area, buf);
}

/// How far the detail can scroll with `line_count` lines in `height` rows.
pub fn max_scroll(line_count: usize, height: u16) -> u16 {
    let visible = usize::from(height.saturating_sub(2));
    u16::try_from(line_count.saturating_sub(visible)).unwrap_or(u16::MAX)
}

/// How many lines the open detail has (for scrolling).
pub fn line_count(app: &App) -> usize {
    let id = app.detail.map(|d| d.id);
    let detail = app
        .snapshot
        .detail
        .as_ref()
        .filter(|d| Some(d.task.id) == id);
    detail.map_or(1, |d| lines(app, &Theme::mono(), d).len())
}

fn section<'a>(theme: &Theme, name: &'a str) -> Line<'a> {
    Line::styled(name, theme.header)
}

fn lines<'a>(app: &App, theme: &Theme, d: &Detail) -> Vec<Line<'a>> {
    let t = &d.task;
    let owner = d.owner.as_deref().map_or_else(|| "none".to_owned(), safe);
    let mut out = vec![
        Line::from(vec![
            Span::styled(
                format!("{}/{}", safe(&t.project), safe(&t.name)),
                theme.title,
            ),
            Span::raw("  "),
            Span::styled(t.status.as_str(), theme.status(t.status)),
            Span::raw(format!(" ({})", d.verdict.label())),
        ]),
        Line::raw(format!(
            "attempt {} · owner {owner} · retries {}",
            t.attempt, t.retries
        )),
        Line::raw(format!(
            "created {} · started {} · finished {}",
            clock(app, Some(t.created_at)),
            clock(app, t.started_at),
            clock(app, t.finished_at)
        )),
        Line::raw(format!(
            "last update {} ago",
            age(Some(t.updated_at), app.now)
        )),
        Line::raw(format!(
            "bytes {} · files {}/{} · into {}",
            format_progress(t.bytes_done, t.bytes_total),
            t.files_done,
            t.files_total,
            safe(&t.dest_dir)
        )),
    ];
    if let Some(live) = &d.live {
        let speed = live.speed_bps.map_or_else(
            || "—".to_owned(),
            |s| format!("{}/s", format_bytes(s as u64)),
        );
        let eta = live.eta_secs.map_or_else(|| "—".to_owned(), format_secs);
        let phase = live.phase.as_deref().map(safe).unwrap_or_default();
        out.push(Line::styled(
            format!(
                "live here: {} · {speed} · ETA {eta} · {phase}",
                format_bytes(live.bytes_done)
            ),
            theme.running,
        ));
    }
    if let Some(w) = d.verdict.warning() {
        out.push(Line::styled(format!("! {}", safe(&w)), theme.warn));
    }
    if let Some(e) = &t.error_message {
        out.push(Line::styled(format!("error: {}", safe(e)), theme.error));
    }
    out.push(Line::raw(""));
    out.push(section(theme, "Files"));
    for f in &d.files {
        let state = if f.done { "done" } else { "partial" };
        out.push(Line::raw(format!(
            "#{} {}  {}  {state}",
            f.index,
            safe(&f.name),
            format_progress(f.bytes_done, f.bytes_total)
        )));
        out.push(Line::styled(
            format!("   url {}", redact_url(&f.url)),
            theme.dim,
        ));
        let validators = format!(
            "   etag {} · last-modified {}",
            f.etag.as_deref().map_or_else(|| "—".to_owned(), safe),
            f.last_modified
                .as_deref()
                .map_or_else(|| "—".to_owned(), safe),
        );
        out.push(Line::styled(validators, theme.dim));
        if let Some(expected) = &f.sha256_expected {
            let got = f
                .sha256
                .as_deref()
                .map_or_else(|| "not yet".to_owned(), safe);
            out.push(Line::styled(
                format!("   sha256 expected {} · got {got}", safe(expected)),
                theme.dim,
            ));
        }
        if let Some(path) = &f.dest_path {
            out.push(Line::styled(format!("   → {}", safe(path)), theme.dim));
        }
    }
    out.push(Line::raw(""));
    out.push(section(theme, "Events (latest)"));
    for e in &d.events {
        out.push(Line::from(vec![
            Span::styled(
                format!("{} ", e.at.with_timezone(&app.tz).format("%H:%M:%S")),
                theme.dim,
            ),
            Span::styled(format!("{:<17}", e.kind.as_str()), theme.warn),
            Span::raw(format!(
                "a{} {} {}",
                e.attempt,
                e.by.as_deref().map(safe).unwrap_or_default(),
                safe(&e.message)
            )),
        ]));
    }
    out
}
