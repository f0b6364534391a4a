//! Keys in normal mode and in prompts: the keymap gives an [`Action`], and the app decides what
//! it means here (move, open, ask, refuse in read-only mode, or a [`Command`] for the loop).

use crossterm::event::KeyEvent;

use super::action::{Action, Command, Op};
use super::app::{Access, App, DetailView, HistoryView, Level, Pane};
use super::keymap;
use super::nav::Move;
use super::prompt::{self, Confirmed, InputKind, Outcome, Prompt};
use crate::snapshot::{HistoryAnchor, HistoryOrder};

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if let Some(prompt) = self.prompt.take() {
            return self.on_prompt_key(prompt, key);
        }
        let Some(action) = keymap::action_for(&key) else {
            return Vec::new();
        };
        if self.help {
            self.help = !matches!(action, Action::Back | Action::Help | Action::Quit);
            return Vec::new();
        }
        if action.writes() && self.access == Access::ReadOnly {
            self.say(Level::Warn, keymap::refusal(action));
            return Vec::new();
        }
        self.status = None;
        self.apply(action)
    }

    fn apply(&mut self, action: Action) -> Vec<Command> {
        let page = self.page() as i64;
        match action {
            Action::Up => self.go(Move::By(-1)),
            Action::Down => self.go(Move::By(1)),
            Action::PageUp => self.go(Move::By(-page)),
            Action::PageDown => self.go(Move::By(page)),
            Action::Top => self.go(Move::Top),
            Action::Bottom => self.go(Move::Bottom),
            Action::NextPane | Action::PrevPane => {
                self.pane = self.pane.step(action == Action::NextPane);
                self.detail = None;
                self.sync_request()
            }
            Action::Open => match self.selected() {
                Some((id, _)) if self.detail.is_none() => {
                    self.detail = Some(DetailView { id, scroll: 0 });
                    self.sync_request()
                }
                Some(_) => Vec::new(),
                None => self.nothing_selected(),
            },
            Action::Back => {
                if self.detail.take().is_some() {
                    return self.sync_request();
                }
                Vec::new()
            }
            Action::Cancel | Action::ForceRestart => self.ask_about_selected(action),
            Action::Retry => match self.selected() {
                Some((id, _)) => {
                    self.say(Level::Info, format!("restarting task {id}…"));
                    vec![Command::Run(Op::Retry(id))]
                }
                None => self.nothing_selected(),
            },
            Action::Add => self.open_input(InputKind::Add, String::new()),
            Action::Filter => self.open_input(InputKind::Filter, self.history.filter_text.clone()),
            Action::Sort => self.cycle_sort(),
            Action::Help => {
                self.help = true;
                Vec::new()
            }
            Action::Quit if self.access == Access::ReadWrite && self.snapshot.local_running > 0 => {
                let n = self.snapshot.local_running;
                let question = format!(
                    "{n} download(s) run in this process. Quit? They stop cleanly and stay \
                     resumable."
                );
                self.prompt = Some(Prompt::Confirm {
                    question,
                    answer: Confirmed::Quit,
                });
                Vec::new()
            }
            Action::Quit | Action::Interrupt => vec![Command::Quit],
        }
    }

    fn ask_about_selected(&mut self, action: Action) -> Vec<Command> {
        let Some((id, name)) = self.selected() else {
            return self.nothing_selected();
        };
        let what = if name.is_empty() {
            format!("task {id}")
        } else {
            format!("task {id} ({})", crate::text::escape_controls(&name))
        };
        let (question, op) = if action == Action::Cancel {
            (format!("Cancel {what}?"), Op::Cancel(id))
        } else {
            let question =
                format!("Force restart {what}? Its owner stops writing; it is queued again.");
            (question, Op::ForceRestart(id))
        };
        self.prompt = Some(Prompt::Confirm {
            question,
            answer: Confirmed::Op(op),
        });
        Vec::new()
    }

    fn open_input(&mut self, kind: InputKind, text: String) -> Vec<Command> {
        self.prompt = Some(Prompt::Input { kind, text });
        Vec::new()
    }

    fn nothing_selected(&mut self) -> Vec<Command> {
        self.say(Level::Warn, "no task selected");
        Vec::new()
    }

    fn cycle_sort(&mut self) -> Vec<Command> {
        match self.pane {
            Pane::Active => {
                self.sort = self.sort.next();
                self.follow_selections();
                self.say(
                    Level::Info,
                    format!("Active sorted by {}", self.sort.label()),
                );
                Vec::new()
            }
            Pane::History => {
                self.history.order = match self.history.order {
                    HistoryOrder::NewestFirst => HistoryOrder::OldestFirst,
                    HistoryOrder::OldestFirst => HistoryOrder::NewestFirst,
                };
                self.history.top = HistoryAnchor::First;
                self.history.selected = 0;
                self.sync_request()
            }
            Pane::Stale | Pane::Log => {
                self.say(Level::Info, "this pane has one order");
                Vec::new()
            }
        }
    }

    fn on_prompt_key(&mut self, prompt: Prompt, key: KeyEvent) -> Vec<Command> {
        match prompt.on_key(key) {
            Outcome::Open(prompt) => {
                self.prompt = Some(prompt);
                Vec::new()
            }
            Outcome::Closed => Vec::new(),
            Outcome::Confirmed(Confirmed::Quit) => vec![Command::Quit],
            Outcome::Confirmed(Confirmed::Op(op)) => {
                let text = match &op {
                    Op::Cancel(id) => format!("cancelling task {id}…"),
                    Op::ForceRestart(id) => format!("force-restarting task {id}…"),
                    Op::Retry(id) => format!("restarting task {id}…"),
                    Op::Add(urls) => format!("adding {} URL(s)…", urls.len()),
                };
                self.say(Level::Info, text);
                vec![Command::Run(op)]
            }
            Outcome::Submitted(kind, text) => self.submit(kind, text),
        }
    }

    fn submit(&mut self, kind: InputKind, text: String) -> Vec<Command> {
        match kind {
            InputKind::Add => {
                let urls: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
                if urls.is_empty() {
                    return Vec::new();
                }
                self.say(Level::Info, format!("adding {} URL(s)…", urls.len()));
                vec![Command::Run(Op::Add(urls))]
            }
            InputKind::Filter => match prompt::parse_filter(&text) {
                Ok(filter) => {
                    self.history = HistoryView {
                        filter_text: text.trim().to_owned(),
                        filter,
                        order: self.history.order,
                        top: HistoryAnchor::First,
                        selected: 0,
                    };
                    self.pane = Pane::History;
                    self.detail = None;
                    self.sync_request()
                }
                Err(why) => {
                    self.say(Level::Error, why);
                    self.prompt = Some(Prompt::Input { kind, text });
                    Vec::new()
                }
            },
        }
    }
}
