//! Everything the dashboard loop reacts to, as one enum on one channel: keys and resizes from
//! the terminal thread, snapshots from the feed, outcomes of operator actions, the engine's end
//! and signals. The loop drains all pending events before it draws once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;

use crate::snapshot::Snapshot;

/// One input to [`App::update`](super::app::App::update).
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
    Resize(u16, u16),
    /// The wall clock moved (heartbeat ages change).
    Tick(DateTime<Utc>),
    Snapshot(Arc<Snapshot>),
    /// How an operator action ended, in a sentence; `ok` is false for errors.
    OpDone {
        ok: bool,
        text: String,
    },
    /// This process's download engine stopped on its own, with why.
    EngineStopped(String),
    /// SIGTERM, SIGINT or SIGHUP: quit cleanly.
    Signal,
}
