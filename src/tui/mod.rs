//! The dashboard: the only user of ratatui and crossterm.
//!
//! One loop, one [`Event`] channel: the terminal thread sends keys and resizes, the snapshot
//! feed sends whole snapshots, operator actions send their outcomes. The loop blocks until an
//! event arrives (or the clock's second turns), drains everything pending, folds it into the
//! [`app::App`] state, carries out the resulting commands, and draws once, only if something
//! visible changed. Rendering is a pure function of the state ([`render_frame`]).

pub mod action;
pub mod app;
mod control;
pub mod event;
mod feed;
pub mod keymap;
mod keys;
mod nav;
mod panes;
mod prompt;
mod terminal;
pub mod theme;
mod ui;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use chrono::{DateTime, Offset, Utc};
use crossterm::event::{self as term, Event as TermEvent};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

pub use app::{Access, Pane};
pub use control::Control;
pub use event::Event;

use action::Command;
use app::{App, Level};
use terminal::TerminalGuard;
use theme::Theme;

use crate::error::Error;
use crate::snapshot::{Snapshot, SnapshotSource};

/// How long the terminal thread waits for input before it checks whether to stop.
const INPUT_POLL: Duration = Duration::from_millis(500);

/// What one dashboard session runs on.
pub struct Session {
    pub source: SnapshotSource,
    /// `None`: read-only; no key can write.
    pub control: Option<Control>,
    /// The database, as the header names it.
    pub db_label: String,
    /// How often the feed looks for changes.
    pub refresh: Duration,
    /// Where signal handlers run.
    pub runtime: tokio::runtime::Handle,
}

/// Runs the dashboard until the operator quits (or a signal arrives). `events` is the loop's
/// channel; callers keep a sender to report, for example, that the engine stopped.
pub fn run(session: Session, events: (Sender<Event>, Receiver<Event>)) -> Result<(), Error> {
    let (tx, rx) = events;
    let Session {
        source,
        control,
        db_label,
        refresh,
        runtime,
    } = session;
    let (requests, feed_requests) = mpsc::channel();
    let publish = {
        let tx = tx.clone();
        move |s: Arc<Snapshot>| tx.send(Event::Snapshot(s)).is_ok()
    };
    let feed = feed::spawn(source, feed_requests, refresh, publish)
        .map_err(|e| Error::Other(format!("cannot start the snapshot thread: {e}")))?;
    let mut guard = TerminalGuard::enter()
        .map_err(|e| Error::Other(format!("the dashboard needs a terminal: {e}")))?;
    let stop_input = Arc::new(AtomicBool::new(false));
    spawn_input(tx.clone(), Arc::clone(&stop_input))?;
    let signals = runtime.spawn(forward_signals(tx.clone()));
    let size = guard
        .size()
        .map_err(|e| Error::Other(format!("cannot read the terminal size: {e}")))?;
    let access = if control.is_some() {
        Access::ReadWrite
    } else {
        Access::ReadOnly
    };
    let tz = chrono::Local::now().offset().fix();
    let mut app = App::new(access, db_label, (size.width, size.height), Utc::now(), tz);
    let theme = Theme::from_env();
    let mut pending = app.sync_request();
    let result = loop {
        if carry_out(&mut app, pending, &requests, control.as_ref(), &tx) {
            break Ok(());
        }
        if feed.is_finished() {
            break Err(Error::Other("the snapshot thread stopped".into()));
        }
        if app.take_dirty()
            && let Err(e) = guard.draw(|f| ui::draw(&app, &theme, f.area(), f.buffer_mut()))
        {
            break Err(Error::Other(format!("cannot draw the dashboard: {e}")));
        }
        let now = Utc::now();
        let to_next_second =
            Duration::from_millis(1000 - u64::from(now.timestamp_subsec_millis().min(999)));
        let first = match rx.recv_timeout(to_next_second) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => Event::Tick(Utc::now()),
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        };
        pending = app.update(first);
        for event in rx.try_iter() {
            pending.extend(app.update(event));
        }
        pending.extend(app.update(Event::Tick(Utc::now())));
    };
    stop_input.store(true, Ordering::Relaxed);
    signals.abort();
    drop(guard);
    drop(requests);
    let _ = feed.join();
    result
}

/// Does what the app asked; true when it asked to quit.
fn carry_out(
    app: &mut App,
    commands: Vec<Command>,
    requests: &Sender<crate::snapshot::ViewRequest>,
    control: Option<&Control>,
    events: &Sender<Event>,
) -> bool {
    for command in commands {
        match command {
            Command::Quit => return true,
            Command::Request(request) => {
                let _ = requests.send(request);
            }
            Command::Run(op) => match control {
                Some(control) => control.execute(op, events.clone()),
                None => app.say(Level::Warn, "read-only mode: nothing is written"),
            },
        }
    }
    false
}

/// Reads keys and resizes on their own thread until `stop` is set or the loop is gone.
fn spawn_input(tx: Sender<Event>, stop: Arc<AtomicBool>) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("haul-input".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match term::poll(INPUT_POLL) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(_) => return,
                }
                let event = match term::read() {
                    Ok(TermEvent::Key(key)) => Event::Key(key),
                    Ok(TermEvent::Resize(w, h)) => Event::Resize(w, h),
                    Ok(_) => continue,
                    Err(_) => return,
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| Error::Other(format!("cannot start the input thread: {e}")))
}

/// Turns SIGTERM, SIGINT and SIGHUP into [`Event::Signal`].
async fn forward_signals(tx: Sender<Event>) {
    use tokio::signal::unix::{SignalKind, signal};
    let kinds = [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ];
    let mut streams: Vec<_> = kinds.into_iter().filter_map(|k| signal(k).ok()).collect();
    if streams.is_empty() {
        return;
    }
    let waits = streams.iter_mut().map(|s| Box::pin(s.recv()));
    futures_util::future::select_all(waits).await;
    let _ = tx.send(Event::Signal);
}

/// How [`render_frame`] draws.
#[derive(Debug, Clone)]
pub struct FrameSpec {
    pub width: u16,
    pub height: u16,
    pub pane: Pane,
    pub access: Access,
    pub colour: bool,
    /// The clock heartbeat ages are measured against.
    pub now: DateTime<Utc>,
    pub db_label: String,
}

/// Renders one frame of `snapshot` into a new buffer, exactly as the dashboard would show it
/// with `spec.pane` in front (times in UTC), History at the anchor its window was read for.
/// For render tests and frame-time benchmarks.
pub fn render_frame(snapshot: Arc<Snapshot>, spec: &FrameSpec) -> Buffer {
    let size = (spec.width, spec.height);
    let mut app = App::new(
        spec.access,
        spec.db_label.clone(),
        size,
        spec.now,
        Utc.fix(),
    );
    app.pane = spec.pane;
    let window = &snapshot.history;
    app.history.filter = window.filter.clone();
    app.history.order = window.order;
    app.history.top = window.top;
    app.history.selected = 0;
    app.update(Event::Snapshot(snapshot));
    let theme = if spec.colour {
        Theme::colour()
    } else {
        Theme::mono()
    };
    let area = Rect::new(0, 0, spec.width, spec.height);
    let mut buf = Buffer::empty(area);
    ui::draw(&app, &theme, area, &mut buf);
    buf
}
