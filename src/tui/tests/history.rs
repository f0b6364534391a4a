//! History on a real database: the snapshot reads windows by task id, and the keys scroll
//! through them (both orders, filters, Home and End, tiny histories, rows added meanwhile),
//! with the row position in the title exact where it can be and marked "≈" where not.

use std::sync::Arc;

use chrono::{Offset, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::now;
use crate::config::Config;
use crate::instance::LivenessProbe;
use crate::model::{InstanceId, NewFile, NewTask, TaskId};
use crate::snapshot::{
    HistoryAnchor, HistoryOrder, HistoryQuery, RowPosition, SnapshotSource, ViewRequest,
};
use crate::store::{Actor, ReadOnlyStore, Store};
use crate::tui::Event;
use crate::tui::action::Command;
use crate::tui::app::{Access, App, Pane};
use crate::tui::theme::Theme;
use crate::tui::ui;

/// Rows a History page shows at 80×24.
const PAGE: usize = 16;

fn me() -> Actor {
    Actor {
        instance: InstanceId("me".into()),
        label: "here/1".into(),
    }
}

/// A database, the snapshot source over it, and a dashboard on the History pane, wired the
/// way the feed wires them (every request is built and handed back as a snapshot).
struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    source: SnapshotSource,
    app: App,
    request: ViewRequest,
}

impl Rig {
    fn new(tasks: usize) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("haul.db");
        let store = Store::open(&db).unwrap();
        let reader = ReadOnlyStore::open(&db).unwrap();
        let probe = LivenessProbe::new(&db, std::time::Duration::from_secs(300));
        let source = SnapshotSource::new(reader, probe, Arc::new(Config::default()), None);
        let app = App::new(Access::ReadOnly, "db".into(), (80, 24), now(), Utc.fix());
        let mut rig = Rig {
            _dir: dir,
            store,
            source,
            app,
            request: ViewRequest::default(),
        };
        rig.add(tasks);
        rig.app.pane = Pane::History;
        assert_eq!(rig.app.page(), PAGE);
        let commands = rig.app.sync_request();
        rig.serve(commands);
        rig
    }

    /// Adds tasks alternately to projects `a` and `b`.
    fn add(&mut self, n: usize) {
        for _ in 0..n {
            let next = self.store.history_count(&Default::default()).unwrap();
            let project = if next.is_multiple_of(2) { "a" } else { "b" };
            let new = NewTask {
                project: project.into(),
                dest_dir: "/d".into(),
                files: vec![NewFile {
                    url: format!("http://x/{next}.bin"),
                    name: format!("{next}.bin"),
                    sha256_expected: None,
                }],
            };
            self.store.add_task(&new, "x", Utc::now(), &me()).unwrap();
        }
    }

    fn serve(&mut self, commands: Vec<Command>) {
        for command in commands {
            if let Command::Request(request) = command {
                self.request = request;
                self.refresh();
            }
        }
    }

    /// Builds the current request again, as the feed does when the database changed.
    fn refresh(&mut self) {
        let snapshot = self.source.build(&self.request, Utc::now()).unwrap();
        let more = self.app.update(Event::Snapshot(Arc::new(snapshot)));
        self.serve(more);
    }

    fn press(&mut self, code: KeyCode) {
        let modifiers = match code {
            KeyCode::Char(c) if c.is_ascii_uppercase() => KeyModifiers::SHIFT,
            _ => KeyModifiers::NONE,
        };
        let commands = self.app.update(Event::Key(KeyEvent::new(code, modifiers)));
        self.serve(commands);
    }

    /// Replaces the filter through the `/` prompt.
    fn filter(&mut self, text: &str) {
        self.press(KeyCode::Char('/'));
        for _ in 0..self.app.history.filter_text.len() {
            self.press(KeyCode::Backspace);
        }
        for c in text.chars() {
            self.press(KeyCode::Char(c));
        }
        self.press(KeyCode::Enter);
    }

    fn selected(&self) -> Option<i64> {
        self.app.selected().map(|(id, _)| id.0)
    }

    /// The ids on screen, top to bottom.
    fn visible(&self) -> Vec<i64> {
        self.app.history_rows().iter().map(|t| t.id.0).collect()
    }

    fn screen(&self) -> String {
        let area = Rect::new(0, 0, self.app.size.0, self.app.size.1);
        let mut buf = Buffer::empty(area);
        ui::draw(&self.app, &Theme::mono(), area, &mut buf);
        (0..area.height)
            .map(|y| {
                (0..area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Presses `code` until the selection stops moving; every id selected on the way.
    fn walk(&mut self, code: KeyCode) -> Vec<i64> {
        let mut seen: Vec<i64> = self.selected().into_iter().collect();
        loop {
            self.press(code);
            match self.selected() {
                Some(id) if seen.last() != Some(&id) => seen.push(id),
                _ => return seen,
            }
        }
    }
}

#[test]
fn the_window_holds_a_page_either_side_of_the_visible_rows() {
    let mut rig = Rig::new(50);
    let mut query = HistoryQuery {
        top: HistoryAnchor::At(TaskId(30)),
        rows: 5,
        ..HistoryQuery::default()
    };
    let request = |history: &HistoryQuery| ViewRequest {
        history: history.clone(),
        detail: Some(TaskId(7)),
    };
    let ids = |s: &crate::snapshot::Snapshot| -> Vec<i64> {
        s.history.rows.iter().map(|t| t.id.0).collect()
    };
    let s = rig.source.build(&request(&query), Utc::now()).unwrap();
    assert_eq!(s.history.total, 50);
    assert_eq!(ids(&s), (21..=35).rev().collect::<Vec<_>>(), "newest first");
    assert_eq!(s.history.start, RowPosition::Exact(15));
    assert_eq!(s.history.locate(query.top, 5), Some(5));
    assert!(!s.history.at_end);
    assert_eq!(s.active.len(), 50, "queued tasks are active");
    assert_eq!(s.detail.as_ref().map(|d| d.files.len()), Some(1));

    query.order = HistoryOrder::OldestFirst;
    let s = rig.source.build(&request(&query), Utc::now()).unwrap();
    assert_eq!(ids(&s), (25..=39).collect::<Vec<_>>(), "oldest first");
    assert_eq!(s.history.start, RowPosition::Exact(24));

    query.top = HistoryAnchor::Last;
    let s = rig.source.build(&request(&query), Utc::now()).unwrap();
    assert_eq!(ids(&s), (41..=50).collect::<Vec<_>>());
    assert_eq!(s.history.start, RowPosition::Exact(40));
    assert!(s.history.at_end);
    assert_eq!(s.history.locate(HistoryAnchor::Last, 5), Some(5));

    query.order = HistoryOrder::NewestFirst;
    query.top = HistoryAnchor::First;
    let s = rig.source.build(&request(&query), Utc::now()).unwrap();
    assert_eq!(ids(&s), (41..=50).rev().collect::<Vec<_>>());
    assert!(s.history.at_start());
}

#[test]
fn j_and_k_walk_every_row_in_both_orders() {
    let mut rig = Rig::new(50);
    assert_eq!(
        rig.walk(KeyCode::Char('j')),
        (1..=50).rev().collect::<Vec<_>>()
    );
    assert_eq!(rig.walk(KeyCode::Char('k')), (1..=50).collect::<Vec<_>>());
    rig.press(KeyCode::Char('s'));
    assert_eq!(rig.app.history.order, HistoryOrder::OldestFirst);
    assert_eq!(rig.walk(KeyCode::Down), (1..=50).collect::<Vec<_>>());
    assert_eq!(rig.walk(KeyCode::Up), (1..=50).rev().collect::<Vec<_>>());
}

#[test]
fn pages_home_and_end_land_where_they_say_with_exact_positions() {
    let mut rig = Rig::new(50);
    assert!(rig.screen().contains("newest first · 1–16 of 50"));
    assert_eq!(rig.walk(KeyCode::PageDown), [50, 34, 18, 2, 1]);
    assert!(rig.screen().contains("35–50 of 50"), "{}", rig.screen());
    assert_eq!(rig.app.history.top, HistoryAnchor::Last);
    assert_eq!(rig.walk(KeyCode::PageUp), [1, 17, 33, 49, 50]);
    rig.press(KeyCode::Char('G'));
    assert_eq!(rig.selected(), Some(1));
    assert_eq!(rig.visible(), (1..=16).rev().collect::<Vec<_>>());
    rig.press(KeyCode::Char('g'));
    assert_eq!(rig.selected(), Some(50));
    assert!(rig.screen().contains("1–16 of 50"));
    rig.press(KeyCode::PageDown);
    rig.press(KeyCode::PageDown);
    assert!(rig.screen().contains("18–33 of 50"), "{}", rig.screen());
    rig.press(KeyCode::Char('s'));
    rig.press(KeyCode::End);
    assert_eq!(rig.selected(), Some(50), "oldest first, End is the newest");
    rig.press(KeyCode::Home);
    assert_eq!(rig.selected(), Some(1));
}

#[test]
fn tiny_histories_exactly_a_page_fewer_rows_and_none() {
    let mut rig = Rig::new(PAGE);
    assert_eq!(rig.walk(KeyCode::PageDown), [16, 1]);
    rig.press(KeyCode::Char('G'));
    assert_eq!(rig.visible(), (1..=16).rev().collect::<Vec<_>>());
    assert!(rig.screen().contains("1–16 of 16"));

    let mut rig = Rig::new(5);
    rig.press(KeyCode::Char('G'));
    assert_eq!(
        rig.selected(),
        Some(1),
        "End selects the last row, not past it"
    );
    assert_eq!(rig.walk(KeyCode::Char('k')), [1, 2, 3, 4, 5]);
    assert!(rig.screen().contains("1–5 of 5"));

    let mut rig = Rig::new(0);
    rig.press(KeyCode::PageDown);
    rig.press(KeyCode::Char('G'));
    assert_eq!(rig.selected(), None);
    let screen = rig.screen();
    assert!(screen.contains("0 of 0") && screen.contains("No task matches."));
}

#[test]
fn a_filter_scrolls_by_key_and_an_estimated_position_says_so() {
    let mut rig = Rig::new(300);
    rig.press(KeyCode::PageDown);
    rig.press(KeyCode::PageDown);
    assert!(
        rig.screen().contains("18–33 of 300"),
        "all of history: ids have no gaps, so the position is exact\n{}",
        rig.screen()
    );
    rig.filter("project:a");
    assert!(rig.screen().contains("1–16 of 150"), "{}", rig.screen());
    let walked = rig.walk(KeyCode::Char('j'));
    let odd: Vec<i64> = (1..=300).rev().filter(|id| id % 2 == 1).collect();
    assert_eq!(walked, odd, "project a has the odd ids");
    assert!(rig.screen().contains("135–150 of 150"), "{}", rig.screen());
    rig.press(KeyCode::Char('g'));
    rig.press(KeyCode::PageDown);
    rig.press(KeyCode::PageDown);
    let screen = rig.screen();
    assert!(
        screen.contains("≈") && screen.contains(" of 150"),
        "{screen}"
    );
    rig.filter("status:failed");
    assert_eq!(rig.selected(), None);
    assert!(rig.screen().contains("0 of 0"));
}

#[test]
fn rows_added_while_scrolling_leave_the_view_on_its_rows() {
    let mut rig = Rig::new(100);
    rig.press(KeyCode::PageDown);
    rig.press(KeyCode::PageDown);
    let before = rig.visible();
    let selected = rig.selected();
    assert!(rig.screen().contains("18–33 of 100"));
    rig.add(5);
    rig.refresh();
    assert_eq!(
        rig.visible(),
        before,
        "anchored on a task, not a row number"
    );
    assert_eq!(rig.selected(), selected);
    assert!(rig.screen().contains("23–38 of 105"), "{}", rig.screen());
    rig.press(KeyCode::Char('g'));
    rig.add(2);
    rig.refresh();
    assert_eq!(
        rig.selected(),
        Some(107),
        "at the top, new tasks show up first"
    );
}
