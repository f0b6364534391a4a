//! The one table from keys to actions. It also writes the help overlay, the hint line, the
//! "recover with" column and the read-only refusal, so they can never disagree with what the
//! keys really do.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;

/// A key, with or without Ctrl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn key(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ch(c: char) -> Key {
    key(KeyCode::Char(c))
}

/// Keys, how the help names them, what they do.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    pub label: &'static str,
    pub action: Action,
    pub help: &'static str,
}

const fn bind(
    keys: &'static [Key],
    label: &'static str,
    action: Action,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        label,
        action,
        help,
    }
}

/// Every key of the dashboard's normal mode.
pub const BINDINGS: &[Binding] = &[
    bind(&[key(KeyCode::Up), ch('k')], "↑ k", Action::Up, "move up"),
    bind(
        &[key(KeyCode::Down), ch('j')],
        "↓ j",
        Action::Down,
        "move down",
    ),
    bind(&[key(KeyCode::PageUp)], "PgUp", Action::PageUp, "page up"),
    bind(
        &[key(KeyCode::PageDown)],
        "PgDn",
        Action::PageDown,
        "page down",
    ),
    bind(
        &[ch('g'), key(KeyCode::Home)],
        "g",
        Action::Top,
        "first row",
    ),
    bind(
        &[ch('G'), key(KeyCode::End)],
        "G",
        Action::Bottom,
        "last row",
    ),
    bind(&[key(KeyCode::Tab)], "Tab", Action::NextPane, "next pane"),
    bind(
        &[key(KeyCode::BackTab)],
        "S-Tab",
        Action::PrevPane,
        "previous pane",
    ),
    bind(&[key(KeyCode::Enter)], "Enter", Action::Open, "task detail"),
    bind(&[key(KeyCode::Esc)], "Esc", Action::Back, "back / close"),
    bind(&[ch('c')], "c", Action::Cancel, "cancel task (asks)"),
    bind(
        &[ch('F')],
        "F",
        Action::ForceRestart,
        "force restart (asks)",
    ),
    bind(&[ch('r')], "r", Action::Retry, "retry / recover task"),
    bind(&[ch('a')], "a", Action::Add, "add URLs"),
    bind(&[ch('/')], "/", Action::Filter, "filter history"),
    bind(&[ch('s')], "s", Action::Sort, "cycle sort"),
    bind(&[ch('?')], "?", Action::Help, "help"),
    bind(&[ch('q')], "q", Action::Quit, "quit"),
    bind(
        &[Key {
            code: KeyCode::Char('c'),
            ctrl: true,
        }],
        "C-c",
        Action::Interrupt,
        "quit now",
    ),
];

/// Keys while a question or an input line is shown (handled by the prompt, listed in help).
pub const PROMPT_KEYS: &[(&str, &str)] = &[
    ("y Enter", "answer yes"),
    ("n Esc", "answer no / close the input"),
    ("Enter", "submit the input"),
    ("C-u", "clear the input"),
];

/// The action a key press asks for, if any.
pub fn action_for(event: &KeyEvent) -> Option<Action> {
    let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
    if event.modifiers.contains(KeyModifiers::ALT) {
        return None;
    }
    BINDINGS
        .iter()
        .find(|b| {
            b.keys
                .iter()
                .any(|k| k.code == event.code && k.ctrl == ctrl)
        })
        .map(|b| b.action)
}

/// The binding of `action` (every action has one).
pub fn binding(action: Action) -> Option<&'static Binding> {
    BINDINGS.iter().find(|b| b.action == action)
}

/// How the help names the key of `action`.
pub fn label(action: Action) -> &'static str {
    binding(action).map_or("?", |b| b.label)
}

/// The status line's answer to a writing key in read-only mode.
pub fn refusal(action: Action) -> String {
    let (label, help) = binding(action).map_or(("?", "that"), |b| (b.label, b.help));
    format!("read-only mode: {label} ({help}) is disabled; watch never writes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> Option<Action> {
        action_for(&KeyEvent::new(code, modifiers))
    }

    #[test]
    fn each_key_gives_its_action() {
        let none = KeyModifiers::NONE;
        let cases = [
            (KeyCode::Up, none, Action::Up),
            (KeyCode::Char('k'), none, Action::Up),
            (KeyCode::Down, none, Action::Down),
            (KeyCode::Char('j'), none, Action::Down),
            (KeyCode::PageUp, none, Action::PageUp),
            (KeyCode::PageDown, none, Action::PageDown),
            (KeyCode::Char('g'), none, Action::Top),
            (KeyCode::Char('G'), KeyModifiers::SHIFT, Action::Bottom),
            (KeyCode::Tab, none, Action::NextPane),
            (KeyCode::BackTab, KeyModifiers::SHIFT, Action::PrevPane),
            (KeyCode::Enter, none, Action::Open),
            (KeyCode::Esc, none, Action::Back),
            (KeyCode::Char('c'), none, Action::Cancel),
            (
                KeyCode::Char('F'),
                KeyModifiers::SHIFT,
                Action::ForceRestart,
            ),
            (KeyCode::Char('r'), none, Action::Retry),
            (KeyCode::Char('a'), none, Action::Add),
            (KeyCode::Char('/'), none, Action::Filter),
            (KeyCode::Char('s'), none, Action::Sort),
            (KeyCode::Char('?'), KeyModifiers::SHIFT, Action::Help),
            (KeyCode::Char('q'), none, Action::Quit),
            (KeyCode::Char('c'), KeyModifiers::CONTROL, Action::Interrupt),
        ];
        for (code, modifiers, action) in cases {
            assert_eq!(
                press(code, modifiers),
                Some(action),
                "{code:?} {modifiers:?}"
            );
        }
    }

    #[test]
    fn unbound_and_alt_keys_do_nothing() {
        assert_eq!(press(KeyCode::Char('x'), KeyModifiers::NONE), None);
        assert_eq!(
            press(KeyCode::Char('f'), KeyModifiers::NONE),
            None,
            "force restart is F only"
        );
        assert_eq!(press(KeyCode::Char('q'), KeyModifiers::ALT), None);
    }

    #[test]
    fn every_action_has_one_binding_and_a_help_line() {
        for b in BINDINGS {
            assert_eq!(
                binding(b.action).map(|f| f.label),
                Some(b.label),
                "{:?} bound twice",
                b.action
            );
            assert!(!b.help.is_empty());
        }
        assert!(refusal(Action::Cancel).starts_with("read-only mode: c (cancel"));
    }
}
