//! The bottom line's two modal states: a yes/no question before a destructive action, and a
//! one-line input (URLs to add, the history filter).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Op;
use crate::model::Status;
use crate::store::HistoryFilter;

/// What a confirmed question does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    Op(Op),
    Quit,
}

/// What an input line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Add,
    Filter,
}

impl InputKind {
    /// The text before the input.
    pub fn label(self) -> &'static str {
        match self {
            InputKind::Add => "add URLs (space-separated): ",
            InputKind::Filter => "filter (status:S project:P text): ",
        }
    }
}

/// An open prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Confirm { question: String, answer: Confirmed },
    Input { kind: InputKind, text: String },
}

/// What a key did to a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Open(Prompt),
    Closed,
    Confirmed(Confirmed),
    Submitted(InputKind, String),
}

impl Prompt {
    /// Applies one key.
    pub fn on_key(self, key: KeyEvent) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match self {
            Prompt::Confirm { question, answer } => match key.code {
                KeyCode::Char('y' | 'Y') | KeyCode::Enter => Outcome::Confirmed(answer),
                KeyCode::Char('n' | 'N') | KeyCode::Esc => Outcome::Closed,
                KeyCode::Char('c') if ctrl => Outcome::Closed,
                _ => Outcome::Open(Prompt::Confirm { question, answer }),
            },
            Prompt::Input { kind, mut text } => match key.code {
                KeyCode::Enter => Outcome::Submitted(kind, text),
                KeyCode::Esc => Outcome::Closed,
                KeyCode::Char('c') if ctrl => Outcome::Closed,
                KeyCode::Char('u') if ctrl => Outcome::Open(Prompt::Input {
                    kind,
                    text: String::new(),
                }),
                KeyCode::Backspace => {
                    text.pop();
                    Outcome::Open(Prompt::Input { kind, text })
                }
                KeyCode::Char(c) if !ctrl && !c.is_control() => {
                    text.push(c);
                    Outcome::Open(Prompt::Input { kind, text })
                }
                _ => Outcome::Open(Prompt::Input { kind, text }),
            },
        }
    }
}

/// `status:failed project:pdfs words` → a history filter (words match name or project).
pub fn parse_filter(text: &str) -> Result<HistoryFilter, String> {
    let mut filter = HistoryFilter::default();
    let mut words = Vec::new();
    for token in text.split_whitespace() {
        if let Some(status) = token.strip_prefix("status:") {
            let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            filter.status = Some(Status::parse(status).ok_or_else(|| {
                format!("unknown status {status:?}; use one of {}", known.join(", "))
            })?);
        } else if let Some(project) = token.strip_prefix("project:") {
            filter.project = Some(project.to_owned());
        } else {
            words.push(token);
        }
    }
    if !words.is_empty() {
        filter.text = Some(words.join(" "));
    }
    Ok(filter)
}
