//! The only users of SQLite. [`Store`] reads and writes; [`ReadOnlyStore`] can only read (it is
//! opened read-only and `query_only`). Both read through [`Reader`]. Methods speak in domain terms
//! and return `model` types; no rusqlite type leaves this folder.

mod actor;
mod beats;
mod claim;
mod control;
mod heartbeat;
#[cfg(test)]
mod heartbeat_tests;
mod instances;
mod kept;
mod notifications;
mod overlay;
mod reads;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod transaction;
mod writes;

use std::fs::OpenOptions;
use std::ops::Deref;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags};

pub use actor::StoreActor;
pub use claim::ClaimRules;
pub use control::{CancelOutcome, RestartOutcome};
pub use heartbeat::{HeartbeatReply, TaskProgress};
pub use kept::KeptTasks;
pub use notifications::{Notification, NotifyKind};
pub use reads::{HistoryExtent, HistoryFilter, PageKey, StatusCount};
pub use writes::{Actor, Outcome};

/// Prepared statements kept per connection: more than the store has distinct statements, so
/// none is parsed again (rusqlite keeps 16 by default).
const STATEMENT_CACHE: usize = 128;

/// Why a database operation failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "state database {path} is not a haul database or is corrupt ({detail}); haul changed \
         nothing: move it aside (e.g. to {path}.corrupt) to start a fresh one, the .part files \
         stay for re-adding"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("state database {path} is busy (locked by another process for too long); try again")]
    Busy { path: PathBuf },
    #[error("state database {path} is full")]
    Full { path: PathBuf },
    #[error("no state database at {0}; add a task first (haul add URL)")]
    Missing(PathBuf),
    #[error("cannot open state database {path}: {detail}")]
    Open { path: PathBuf, detail: String },
    #[error("state database is read-only here")]
    ReadOnly,
    #[error("{0}")]
    Unsupported(String),
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database thread has stopped")]
    ActorGone,
    #[error(
        "the state database rolled back a transaction (disk full or I/O error); none of it was kept"
    )]
    RolledBack,
    #[error("a write of an all-or-nothing unit failed; none of the unit was kept")]
    WriteFailed,
    /// A job on the store thread panicked (a bug in haul); its transaction was rolled back.
    #[error("internal error in a database write ({0}); none of its transaction was kept")]
    Internal(String),
}

impl StoreError {
    /// The same error for another caller (the one commit of a batch fails for all its jobs).
    pub(crate) fn replicate(&self) -> StoreError {
        match self {
            StoreError::Corrupt { path, detail } => StoreError::Corrupt {
                path: path.clone(),
                detail: detail.clone(),
            },
            StoreError::Busy { path } => StoreError::Busy { path: path.clone() },
            StoreError::Full { path } => StoreError::Full { path: path.clone() },
            StoreError::Missing(path) => StoreError::Missing(path.clone()),
            StoreError::Open { path, detail } => StoreError::Open {
                path: path.clone(),
                detail: detail.clone(),
            },
            StoreError::ReadOnly => StoreError::ReadOnly,
            StoreError::ActorGone => StoreError::ActorGone,
            StoreError::RolledBack => StoreError::RolledBack,
            StoreError::WriteFailed => StoreError::WriteFailed,
            StoreError::Internal(m) => StoreError::Internal(m.clone()),
            StoreError::Unsupported(m) => StoreError::Unsupported(m.clone()),
            StoreError::Sqlite(e) => StoreError::Unsupported(format!("state database error: {e}")),
        }
    }

    /// Adds the database path to errors that lack it.
    fn at(self, path: &Path) -> StoreError {
        let StoreError::Sqlite(err) = &self else {
            return self;
        };
        let path = path.to_owned();
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase)
            | Some(rusqlite::ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                path,
                detail: err.to_string(),
            },
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy { path }
            }
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full { path },
            Some(rusqlite::ErrorCode::ReadOnly) => StoreError::ReadOnly,
            Some(rusqlite::ErrorCode::CannotOpen) | Some(rusqlite::ErrorCode::PermissionDenied) => {
                StoreError::Open {
                    path,
                    detail: err.to_string(),
                }
            }
            _ => self,
        }
    }
}

/// Read access shared by [`Store`] and [`ReadOnlyStore`].
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

impl Reader {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A read-write handle: one per process, owned by the store thread in long-running modes.
pub struct Store {
    reader: Reader,
    /// Transitions recorded in the notification outbox.
    notify: crate::config::NotifyKinds,
    /// The unit of writes open now, if any.
    group: transaction::Group,
}

impl Deref for Store {
    type Target = Reader;
    fn deref(&self) -> &Reader {
        &self.reader
    }
}

/// A handle that can only read: the database is opened read-only and `query_only`.
pub struct ReadOnlyStore {
    reader: Reader,
}

impl Deref for ReadOnlyStore {
    type Target = Reader;
    fn deref(&self) -> &Reader {
        &self.reader
    }
}

impl Store {
    /// Opens (creating it with mode 0600 when missing) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_inner(path).map_err(|e| e.at(path))
    }

    fn open_inner(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                detail: format!("cannot create directory {}: {e}", dir.display()),
            })?;
        }
        // Create the file ourselves so its mode is 0600 from the first byte: it stores URLs,
        // which may carry tokens.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
        let mut conn = Connection::open(path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::configure_writer(&conn)?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            reader: Reader {
                conn,
                path: path.to_owned(),
            },
            notify: crate::config::NotifyKinds::default(),
            group: transaction::Group::Alone,
        })
    }
}

impl ReadOnlyStore {
    /// Opens an existing database for reading only; never creates or changes a byte.
    pub fn open(path: &Path) -> Result<ReadOnlyStore, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_owned()));
        }
        let open = || -> Result<ReadOnlyStore, StoreError> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            schema::configure_reader(&conn)?;
            let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version != schema::latest_version() {
                return Err(StoreError::Unsupported(format!(
                    "state database {} has schema version {version}, this haul reads {}; \
                     open it once with a writing command (haul run) to migrate it",
                    path.display(),
                    schema::latest_version()
                )));
            }
            Ok(ReadOnlyStore {
                reader: Reader {
                    conn,
                    path: path.to_owned(),
                },
            })
        };
        open().map_err(|e| e.at(path))
    }
}

/// Runs one statement from the connection's statement cache (`Connection::execute` parses
/// its SQL every time). Returns the rows changed.
pub(crate) fn execute_cached(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

/// Milliseconds since the Unix epoch, how times are stored.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
