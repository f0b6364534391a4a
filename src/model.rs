//! Plain data shared by the store, the engine, the snapshot and the dashboard. No I/O here.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A task's id in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub i64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The fencing token of one claim: raised by every claim, checked by every owner write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Attempt(pub i64);

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One claim of a task: the pair every owner write is fenced on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub task: TaskId,
    pub attempt: Attempt,
}

/// An instance's id (random, unique per process start).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub String);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stored lifecycle state of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    Interrupted,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
        Status::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Ending states stay until an explicit restart.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }

    /// Queued or running: the task still wants a worker (interrupted waits for resume).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Queued | Status::Running)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an instance is doing with the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Worker,
    Tui,
    Watch,
    Cli,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Worker => "worker",
            Mode::Tui => "tui",
            Mode::Watch => "watch",
            Mode::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Mode {
        match s {
            "worker" => Mode::Worker,
            "tui" => Mode::Tui,
            "watch" => Mode::Watch,
            _ => Mode::Cli,
        }
    }
}

/// A registered instance (a process that opened the database).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    pub id: InstanceId,
    pub host: String,
    pub pid: u32,
    pub mode: Mode,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

impl Instance {
    /// "host/pid", how operators name an owner.
    pub fn label(&self) -> String {
        format!("{}/{}", self.host, self.pid)
    }
}

/// A pending request from an operator to the owner of a running task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlRequest {
    Cancel,
}

/// One task row.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub project: String,
    /// Display name, already free of control characters.
    pub name: String,
    pub dest_dir: String,
    pub status: Status,
    pub attempt: Attempt,
    pub owner: Option<InstanceId>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub progress_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub control: Option<ControlRequest>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub files_done: u32,
    pub files_total: u32,
    pub retries: u32,
}

impl Task {
    pub fn lease(&self) -> Lease {
        Lease {
            task: self.id,
            attempt: self.attempt,
        }
    }
}

/// One file renamed into place at its destination, whose end is not recorded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedFile {
    pub index: u32,
    pub bytes: u64,
    pub sha256: Option<String>,
    pub dest: String,
}

/// One file of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileEntry {
    pub task_id: TaskId,
    pub index: u32,
    /// The URL as given (may hold credentials: display only through `redact_url`).
    #[serde(skip)]
    pub url: String,
    /// The planned file name (from the URL), sanitized.
    pub name: String,
    /// Where the finished file lives (set once the name is decided).
    pub dest_path: Option<String>,
    /// Durable offset: bytes synced to disk in the `.part` file.
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub sha256_expected: Option<String>,
    pub sha256: Option<String>,
    pub done: bool,
}

/// One entry of a task's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskEvent {
    pub id: i64,
    pub task_id: TaskId,
    pub at: DateTime<Utc>,
    pub attempt: Attempt,
    pub kind: EventKind,
    /// "host/pid" of the instance that wrote the event, when known.
    pub by: Option<String>,
    pub message: String,
}

/// What happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Added,
    Claimed,
    Progress,
    Retry,
    RestartFromZero,
    Interrupted,
    Recovered,
    Requeued,
    CancelRequested,
    Cancelled,
    Restarted,
    LeaseLost,
    Completed,
    Failed,
}

impl EventKind {
    pub const ALL: [EventKind; 14] = [
        EventKind::Added,
        EventKind::Claimed,
        EventKind::Progress,
        EventKind::Retry,
        EventKind::RestartFromZero,
        EventKind::Interrupted,
        EventKind::Recovered,
        EventKind::Requeued,
        EventKind::CancelRequested,
        EventKind::Cancelled,
        EventKind::Restarted,
        EventKind::LeaseLost,
        EventKind::Completed,
        EventKind::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "added",
            EventKind::Claimed => "claimed",
            EventKind::Progress => "progress",
            EventKind::Retry => "retry",
            EventKind::RestartFromZero => "restart_from_zero",
            EventKind::Interrupted => "interrupted",
            EventKind::Recovered => "recovered",
            EventKind::Requeued => "requeued",
            EventKind::CancelRequested => "cancel_requested",
            EventKind::Cancelled => "cancelled",
            EventKind::Restarted => "restarted",
            EventKind::LeaseLost => "lease_lost",
            EventKind::Completed => "completed",
            EventKind::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a row of the Active list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Run by this process; figures are live.
    Memory,
    /// Seen only in the database; owned by another instance (or by nobody).
    Database,
}

/// A new task to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub project: String,
    pub dest_dir: String,
    pub files: Vec<NewFile>,
}

/// One file of a new task.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFile {
    pub url: String,
    pub name: String,
    pub sha256_expected: Option<String>,
}
