//! Keys over the app state: each key gives the right action, and read-only mode never writes.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{fixture, now};
use crate::model::{Status, TaskId};
use crate::snapshot::{HistoryAnchor, HistoryOrder};
use crate::tui::Event;
use crate::tui::action::{Command, Op};
use crate::tui::app::{Access, ActiveSort, App, Pane};
use crate::tui::keymap::BINDINGS;

fn app(access: Access) -> App {
    let mut app = App::new(access, "db".into(), (120, 40), now(), chrono::Utc.fix());
    app.sync_request();
    app.update(Event::Snapshot(fixture()));
    app
}

fn press(app: &mut App, code: KeyCode) -> Vec<Command> {
    let modifiers = match code {
        KeyCode::Char(c) if c.is_ascii_uppercase() => KeyModifiers::SHIFT,
        _ => KeyModifiers::NONE,
    };
    app.update(Event::Key(KeyEvent::new(code, modifiers)))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        assert!(press(app, KeyCode::Char(c)).is_empty());
    }
}

fn runs(commands: &[Command]) -> Vec<&Op> {
    commands
        .iter()
        .filter_map(|c| {
            if let Command::Run(op) = c {
                Some(op)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn cancel_and_force_restart_ask_first_and_act_on_the_selected_task() {
    let mut app = app(Access::ReadWrite);
    assert!(press(&mut app, KeyCode::Char('j')).is_empty());
    assert_eq!(app.selected().map(|s| s.0), Some(TaskId(102)));
    assert!(
        press(&mut app, KeyCode::Char('c')).is_empty(),
        "asks before cancelling"
    );
    assert!(
        press(&mut app, KeyCode::Char('n')).is_empty(),
        "n answers no"
    );
    assert!(app.prompt.is_none());
    press(&mut app, KeyCode::Char('c'));
    assert_eq!(
        press(&mut app, KeyCode::Char('y')),
        vec![Command::Run(Op::Cancel(TaskId(102)))]
    );
    press(&mut app, KeyCode::Char('k'));
    assert!(
        press(&mut app, KeyCode::Char('F')).is_empty(),
        "asks before a force restart"
    );
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        vec![Command::Run(Op::ForceRestart(TaskId(101)))]
    );
    assert_eq!(
        press(&mut app, KeyCode::Char('r')),
        vec![Command::Run(Op::Retry(TaskId(101)))]
    );
}

#[test]
fn add_reads_urls_from_the_input_line() {
    let mut app = app(Access::ReadWrite);
    press(&mut app, KeyCode::Char('a'));
    typed(&mut app, "http://x/a.iso  http://x/bb");
    press(&mut app, KeyCode::Backspace);
    let commands = press(&mut app, KeyCode::Enter);
    assert_eq!(
        runs(&commands),
        vec![&Op::Add(vec!["http://x/a.iso".into(), "http://x/b".into()])]
    );
    press(&mut app, KeyCode::Char('a'));
    assert!(
        press(&mut app, KeyCode::Esc).is_empty(),
        "Esc abandons the input"
    );
    assert!(app.prompt.is_none());
}

#[test]
fn the_filter_goes_to_history_and_asks_for_a_new_window() {
    let mut app = app(Access::ReadWrite);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "status:failed project:isos ubuntu");
    let commands = press(&mut app, KeyCode::Enter);
    assert_eq!(app.pane, Pane::History);
    let Some(Command::Request(request)) = commands.first() else {
        panic!("{commands:?}")
    };
    assert_eq!(request.history.filter.status, Some(Status::Failed));
    assert_eq!(request.history.filter.project.as_deref(), Some("isos"));
    assert_eq!(request.history.filter.text.as_deref(), Some("ubuntu"));
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, " status:bogus");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(app.prompt.is_some(), "a bad filter keeps the input open");
    assert!(
        app.status
            .as_ref()
            .is_some_and(|s| s.text.contains("unknown status"))
    );
}

#[test]
fn history_scrolls_by_task_id_through_a_million_rows() {
    let mut app = app(Access::ReadWrite);
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.pane, Pane::History);
    let page = app.page();
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(app.selected().map(|s| s.0), Some(TaskId(999_999)));
    assert_eq!(app.history.top, HistoryAnchor::First, "no scroll yet");
    let commands = press(&mut app, KeyCode::PageDown);
    assert_eq!(
        app.selected().map(|s| s.0),
        Some(TaskId(1_000_000 - 1 - page as i64))
    );
    let Some(Command::Request(request)) = commands.first() else {
        panic!("{commands:?}")
    };
    assert_eq!(
        request.history.top,
        HistoryAnchor::At(TaskId(999_998)),
        "the view scrolled by two rows and asks for the window around its new first row"
    );
    assert_eq!(request.history.rows, page);
    assert_eq!(app.history.selected, page - 1);
    press(&mut app, KeyCode::Char('G'));
    assert_eq!(app.history.top, HistoryAnchor::Last);
    assert_eq!(app.history.selected, page - 1);
    assert_eq!(app.selected(), None, "the last page is not loaded yet");
    press(&mut app, KeyCode::Char('g'));
    assert_eq!(
        (app.history.selected, app.history.top),
        (0, HistoryAnchor::First)
    );
    assert_eq!(app.selected().map(|s| s.0), Some(TaskId(1_000_000)));
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.history.order, HistoryOrder::OldestFirst);
}

#[test]
fn panes_detail_help_sort_and_quit() {
    let mut app = app(Access::ReadWrite);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.pane, Pane::Stale);
    press(&mut app, KeyCode::BackTab);
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.pane, Pane::Log);
    press(&mut app, KeyCode::Tab);
    let commands = press(&mut app, KeyCode::Enter);
    assert_eq!(app.detail.map(|d| d.id), Some(TaskId(101)));
    assert!(matches!(commands.first(), Some(Command::Request(r)) if r.detail == Some(TaskId(101))));
    press(&mut app, KeyCode::Esc);
    assert!(app.detail.is_none());
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.sort, ActiveSort::Progress);
    assert_eq!(
        app.selected().map(|s| s.0),
        Some(TaskId(101)),
        "the selection follows its task"
    );
    press(&mut app, KeyCode::Char('?'));
    assert!(app.help);
    press(&mut app, KeyCode::Esc);
    assert!(!app.help);
    assert!(
        press(&mut app, KeyCode::Char('q')).is_empty(),
        "asks: downloads run here"
    );
    assert_eq!(press(&mut app, KeyCode::Char('y')), vec![Command::Quit]);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.update(Event::Key(ctrl_c)), vec![Command::Quit]);
}

#[test]
fn read_only_mode_never_writes_whatever_is_pressed() {
    let mut app = app(Access::ReadOnly);
    let mut commands = Vec::new();
    for _ in Pane::ALL {
        for binding in BINDINGS {
            for key in binding.keys {
                let modifiers = if key.ctrl {
                    KeyModifiers::CONTROL
                } else {
                    KeyModifiers::NONE
                };
                if binding.action == crate::tui::action::Action::Quit || key.ctrl {
                    continue;
                }
                commands.extend(app.update(Event::Key(KeyEvent::new(key.code, modifiers))));
                if binding.action.writes() {
                    let status = app
                        .status
                        .as_ref()
                        .map(|s| s.text.clone())
                        .unwrap_or_default();
                    assert!(
                        status.starts_with("read-only mode"),
                        "{:?}: {status}",
                        binding.action
                    );
                }
                for answer in [KeyCode::Char('y'), KeyCode::Enter, KeyCode::Esc] {
                    commands.extend(press(&mut app, answer));
                }
            }
        }
        press(&mut app, KeyCode::Tab);
    }
    assert!(
        runs(&commands).is_empty(),
        "read-only mode wrote: {commands:?}"
    );
    assert_eq!(
        press(&mut app, KeyCode::Char('q')),
        vec![Command::Quit],
        "quits without asking"
    );
}

use chrono::Offset;
