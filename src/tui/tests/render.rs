//! Every pane at 80×24 and 120×40, in colour and in monochrome, as insta snapshots of a
//! ratatui `TestBackend`: the text, then the styled runs of each line.

use std::fmt::Write;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

use super::{fixture, now};
use crate::model::TaskId;
use crate::text::is_unsafe_char;
use crate::tui::action::Op;
use crate::tui::app::{Access, App, DetailView, Pane};
use crate::tui::prompt::{Confirmed, Prompt};
use crate::tui::theme::Theme;
use crate::tui::{FrameSpec, render_frame, ui};

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

/// What is in front.
#[derive(Clone, Copy, Debug)]
enum Screen {
    Pane(Pane),
    Detail,
    Help,
}

const SCREENS: [(&str, Screen); 6] = [
    ("active", Screen::Pane(Pane::Active)),
    ("stale", Screen::Pane(Pane::Stale)),
    ("history", Screen::Pane(Pane::History)),
    ("log", Screen::Pane(Pane::Log)),
    ("detail", Screen::Detail),
    ("help", Screen::Help),
];

fn app(screen: Screen, access: Access, size: (u16, u16)) -> App {
    let mut app = App::new(
        access,
        "/srv/haul/haul.db".into(),
        size,
        now(),
        chrono::Utc.fix(),
    );
    app.update(crate::tui::Event::Snapshot(fixture()));
    match screen {
        Screen::Pane(pane) => app.pane = pane,
        Screen::Detail => {
            app.detail = Some(DetailView {
                id: TaskId(103),
                scroll: 0,
            })
        }
        Screen::Help => app.help = true,
    }
    app
}

fn draw(app: &App, theme: &Theme) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    terminal
        .draw(|f| ui::draw(app, theme, f.area(), f.buffer_mut()))
        .unwrap();
    terminal.backend().buffer().clone()
}

fn shown(app: &App, theme: &Theme) -> String {
    let mut terminal = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    terminal
        .draw(|f| ui::draw(app, theme, f.area(), f.buffer_mut()))
        .unwrap();
    format!(
        "{}\nstyles:\n{}",
        terminal.backend(),
        style_runs(terminal.backend().buffer())
    )
}

/// `y: x0-x1 fg/bg+MODS` for every run of cells not in the default style.
fn style_runs(buf: &Buffer) -> String {
    let mut out = String::new();
    let describe = |c: &ratatui::buffer::Cell| -> Option<String> {
        if c.fg == Color::Reset && c.bg == Color::Reset && c.modifier == Modifier::empty() {
            return None;
        }
        Some(
            format!("{:?}/{:?}{:?}", c.fg, c.bg, c.modifier)
                .replace("Modifier(", "+")
                .replace(')', ""),
        )
    };
    for y in 0..buf.area.height {
        let mut runs = Vec::new();
        let mut x = 0;
        while x < buf.area.width {
            let style = describe(&buf[(x, y)]);
            let start = x;
            while x < buf.area.width && describe(&buf[(x, y)]) == style {
                x += 1;
            }
            if let Some(style) = style {
                runs.push(format!("{start}-{} {style}", x - 1));
            }
        }
        if !runs.is_empty() {
            let _ = writeln!(out, "{y:>2}: {}", runs.join(" "));
        }
    }
    out
}

#[test]
fn every_pane_at_both_sizes_in_colour_and_monochrome() {
    for (name, screen) in SCREENS {
        for size in SIZES {
            for (theme_name, theme) in [("colour", Theme::colour()), ("mono", Theme::mono())] {
                let app = app(screen, Access::ReadWrite, size);
                let snapshot = format!("{name}_{}x{}_{theme_name}", size.0, size.1);
                insta::assert_snapshot!(snapshot, shown(&app, &theme));
            }
        }
    }
}

#[test]
fn watch_mode_shows_the_read_only_marker_and_no_writing_keys() {
    let app = app(Screen::Pane(Pane::Active), Access::ReadOnly, (80, 24));
    let text = shown(&app, &Theme::mono());
    assert!(text.contains("READ-ONLY"));
    insta::assert_snapshot!("watch_active_80x24_mono", text);
    let help = app_with_help(Access::ReadOnly);
    insta::assert_snapshot!("watch_help_80x24_mono", shown(&help, &Theme::mono()));
}

fn app_with_help(access: Access) -> App {
    app(Screen::Help, access, (80, 24))
}

#[test]
fn a_question_takes_the_status_line() {
    let mut app = app(Screen::Pane(Pane::Active), Access::ReadWrite, (80, 24));
    app.prompt = Some(Prompt::Confirm {
        question: "Cancel task 101 (report-2024.pdf)?".into(),
        answer: Confirmed::Op(Op::Cancel(TaskId(101))),
    });
    insta::assert_snapshot!("confirm_80x24_mono", shown(&app, &Theme::mono()));
}

#[test]
fn control_bytes_from_the_server_render_escaped_everywhere() {
    for (name, screen) in SCREENS {
        for size in SIZES {
            let buf = draw(&app(screen, Access::ReadWrite, size), &Theme::colour());
            for cell in buf.content() {
                assert!(
                    !cell.symbol().chars().any(is_unsafe_char),
                    "{name} {size:?}: raw control character {:?} reached the screen",
                    cell.symbol()
                );
            }
        }
    }
    let text = text_of(&draw(
        &app(Screen::Detail, Access::ReadWrite, (120, 40)),
        &Theme::mono(),
    ));
    assert!(
        text.contains(r"evil\x1b]0;pwned\x07\u{202e}gpj.exe"),
        "{text}"
    );
    assert!(
        text.contains(r"\x1b[2J"),
        "the ETag's escape is visible: {text}"
    );
    assert!(!text.contains("s3cret"), "URL query values are redacted");
}

fn text_of(buf: &Buffer) -> String {
    buf.content().iter().map(|c| c.symbol()).collect()
}

#[test]
fn render_frame_draws_what_the_dashboard_draws() {
    let spec = FrameSpec {
        width: 120,
        height: 40,
        pane: Pane::History,
        access: Access::ReadWrite,
        colour: false,
        now: now(),
        db_label: "/srv/haul/haul.db".into(),
    };
    let buf = render_frame(fixture(), &spec);
    let expected = draw(
        &app(Screen::Pane(Pane::History), Access::ReadWrite, (120, 40)),
        &Theme::mono(),
    );
    assert_eq!(buf, expected);
}

#[test]
fn too_small_a_terminal_says_so() {
    let buf = draw(
        &app(Screen::Pane(Pane::Active), Access::ReadWrite, (30, 8)),
        &Theme::mono(),
    );
    assert!(text_of(&buf).contains("haul needs 40×12"));
}

use chrono::Offset;
