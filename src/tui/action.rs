//! What keys mean ([`Action`]) and what the loop must do about them ([`Command`]). Plain values:
//! the app decides, the loop carries out, so every decision is testable without a terminal.

use crate::model::TaskId;
use crate::snapshot::ViewRequest;

/// What a key asks for, independent of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextPane,
    PrevPane,
    /// Open the detail of the selected task.
    Open,
    /// Close the detail, the help or the status message.
    Back,
    Cancel,
    ForceRestart,
    Retry,
    Add,
    Filter,
    Sort,
    Help,
    /// Quit; asks first while this process runs downloads.
    Quit,
    /// Quit now (Ctrl-C); downloads still stop cleanly and stay resumable.
    Interrupt,
}

impl Action {
    /// True for actions that change the database: refused in read-only mode.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Action::Cancel | Action::ForceRestart | Action::Retry | Action::Add
        )
    }
}

/// An operator action on tasks, carried out through `ops` on the store thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Cancel(TaskId),
    ForceRestart(TaskId),
    /// Restart a failed, cancelled or interrupted task, or recover a stale or orphaned one.
    Retry(TaskId),
    Add(Vec<String>),
}

/// What the loop must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Op),
    /// Ask the snapshot feed for another history window or detail.
    Request(ViewRequest),
    Quit,
}
