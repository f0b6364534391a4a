//! Styles, in colour or (with `NO_COLOR`) in monochrome: bold, reverse and underline only.

use ratatui::style::{Color, Modifier, Style};

use crate::model::Status;

/// Every style the dashboard draws with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub title: Style,
    pub read_only: Style,
    pub tab: Style,
    pub tab_selected: Style,
    pub border: Style,
    pub header: Style,
    pub selected: Style,
    pub dim: Style,
    pub warn: Style,
    pub error: Style,
    pub ok: Style,
    pub bar_done: Style,
    pub bar_todo: Style,
    pub prompt: Style,
    pub running: Style,
    pub queued: Style,
}

impl Theme {
    /// Colour, unless `NO_COLOR` is set to anything non-empty.
    pub fn from_env() -> Theme {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            Theme::mono()
        } else {
            Theme::colour()
        }
    }

    /// The colour theme.
    pub fn colour() -> Theme {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        Theme {
            title: bold.fg(Color::Cyan),
            read_only: bold.fg(Color::Black).bg(Color::Yellow),
            tab: Style::new().fg(Color::Gray),
            tab_selected: bold.fg(Color::Black).bg(Color::Cyan),
            border: Style::new().fg(Color::DarkGray),
            header: bold.fg(Color::Yellow),
            selected: Style::new()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD),
            dim: Style::new().fg(Color::DarkGray),
            warn: Style::new().fg(Color::Yellow),
            error: bold.fg(Color::Red),
            ok: Style::new().fg(Color::Green),
            bar_done: Style::new().fg(Color::Green),
            bar_todo: Style::new().fg(Color::DarkGray),
            prompt: bold.fg(Color::Black).bg(Color::Yellow),
            running: Style::new().fg(Color::Cyan),
            queued: Style::new().fg(Color::Blue),
        }
    }

    /// The monochrome theme.
    pub fn mono() -> Theme {
        let plain = Style::new();
        let bold = plain.add_modifier(Modifier::BOLD);
        let reversed = plain.add_modifier(Modifier::REVERSED);
        Theme {
            title: bold,
            read_only: reversed.add_modifier(Modifier::BOLD),
            tab: plain,
            tab_selected: reversed,
            border: plain,
            header: bold.add_modifier(Modifier::UNDERLINED),
            selected: reversed,
            dim: plain,
            warn: bold,
            error: bold,
            ok: plain,
            bar_done: plain,
            bar_todo: plain,
            prompt: reversed,
            running: plain,
            queued: plain,
        }
    }

    /// The style of a task status.
    pub fn status(&self, status: Status) -> Style {
        match status {
            Status::Queued => self.queued,
            Status::Running => self.running,
            Status::Completed => self.ok,
            Status::Failed => self.error,
            Status::Cancelled => self.dim,
            Status::Interrupted => self.warn,
        }
    }
}
