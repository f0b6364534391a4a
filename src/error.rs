//! The library's error type and how each error maps to an exit code.

use std::path::PathBuf;

use crate::model::TaskId;
use crate::store::StoreError;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for other errors.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad usage: bad arguments, bad config, bad input.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a conflict: the download is already in progress.
pub const EXIT_CONFLICT: u8 = 3;

/// Everything a haul command can fail with; each message is one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("{0}")]
    Usage(String),

    #[error("invalid URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("task {0} not found")]
    TaskNotFound(TaskId),

    #[error(
        "Download already in progress for {what} (task {task}, owner {owner}). \
         If it appears stuck, force restart it: haul restart {task} --force (or press F)"
    )]
    AlreadyInProgress {
        what: String,
        task: TaskId,
        owner: String,
    },

    #[error("task {task} is {status}: {hint}")]
    WrongState {
        task: TaskId,
        status: String,
        hint: String,
    },

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } | Error::Usage(_) | Error::InvalidUrl { .. } => EXIT_USAGE,
            Error::AlreadyInProgress { .. } => EXIT_CONFLICT,
            _ => EXIT_FAILURE,
        }
    }

    /// Builds an [`Error::Io`] naming the path and what was being done to it.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
