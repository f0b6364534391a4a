//! Transactions: every write is one `BEGIN IMMEDIATE` transaction; inside a group commit
//! ([`Store::batch`]), one savepoint of the batch's transaction; inside an all-or-nothing unit
//! ([`Store::atomic`]), part of the unit without a savepoint of its own.

use std::path::Path;

use rusqlite::Connection;

use super::{Store, StoreError, execute_cached};

/// The statements that open, keep and undo one unit of writes.
struct Scope {
    begin: &'static str,
    keep: &'static str,
    undo: &'static str,
}

/// A whole transaction, the unit outside a batch (and the batch itself).
const TRANSACTION: Scope = Scope {
    begin: "BEGIN IMMEDIATE",
    keep: "COMMIT",
    undo: "ROLLBACK",
};
/// One write inside a batch.
const WRITE_IN_BATCH: Scope = Scope {
    begin: "SAVEPOINT write",
    keep: "RELEASE write",
    undo: "ROLLBACK TO write; RELEASE write",
};
/// A batch inside a batch.
const BATCH_IN_BATCH: Scope = Scope {
    begin: "SAVEPOINT batch",
    keep: "RELEASE batch",
    undo: "ROLLBACK TO batch; RELEASE batch",
};
/// An all-or-nothing unit inside a batch.
const ATOMIC_IN_BATCH: Scope = Scope {
    begin: "SAVEPOINT atomic",
    keep: "RELEASE atomic",
    undo: "ROLLBACK TO atomic; RELEASE atomic",
};

/// The unit of writes open on a [`Store`], which decides how the next write joins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Group {
    /// None: every write is a transaction of its own.
    Alone,
    /// A [`Store::batch`]: every write is a savepoint and fails alone.
    Batch,
    /// A [`Store::atomic`] unit: writes join it as they are; `failed` once any of them failed,
    /// and then the unit keeps nothing.
    Atomic { failed: bool },
}

impl Scope {
    /// Opens the unit. Cached: units open thousands of times a second when small files finish.
    fn open(&self, conn: &Connection) -> Result<(), StoreError> {
        execute_cached(conn, self.begin, []).map(drop)
    }

    /// Keeps what the unit wrote when `result` is `Ok`, undoes it otherwise. When SQLite has
    /// already rolled the transaction back itself (disk full, I/O error), nothing is kept and
    /// an `Ok` becomes [`StoreError::RolledBack`].
    fn close<T, E: From<StoreError>>(
        &self,
        conn: &Connection,
        path: &Path,
        result: Result<T, E>,
    ) -> Result<T, E> {
        if conn.is_autocommit() {
            return result.and(Err(StoreError::RolledBack.into()));
        }
        let kept = result.and_then(|value| {
            execute_cached(conn, self.keep, []).map_err(|e| e.at(path))?;
            Ok(value)
        });
        if kept.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch(self.undo);
        }
        kept
    }
}

impl Store {
    /// Runs `f` inside a `BEGIN IMMEDIATE` transaction and commits it; inside a
    /// [`Store::batch`], as a savepoint of the batch's transaction instead, so a failed write
    /// undoes only itself and the batch commits the rest; inside a [`Store::atomic`] unit, as
    /// part of it (a failed write fails the whole unit).
    pub(super) fn write<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = &self.reader.conn;
        let result = if self.group != Group::Alone && conn.is_autocommit() {
            // SQLite rolled the group back by itself; a savepoint now would open (and commit)
            // a transaction of its own.
            Err(StoreError::RolledBack)
        } else if let Group::Atomic { .. } = self.group {
            f(conn)
        } else {
            let scope = if self.group == Group::Batch {
                &WRITE_IN_BATCH
            } else {
                &TRANSACTION
            };
            let path = &self.reader.path;
            scope
                .open(conn)
                .and_then(|()| scope.close(conn, path, f(conn)))
        };
        self.note_failure(&result);
        result.map_err(|e| e.at(&self.reader.path))
    }

    /// Group commit: every write `f` makes lands in one `BEGIN IMMEDIATE` transaction, made
    /// durable by one commit. Commits when `f` returns `Ok`, rolls everything back on `Err`.
    /// Nothing `f` wrote may be acted on before this returns `Ok`. A batch inside a batch is
    /// a savepoint of its own: its `Err` undoes its writes only. Inside a [`Store::atomic`]
    /// unit, a batch is part of the unit.
    pub fn batch<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let scope = match self.group {
            Group::Alone => &TRANSACTION,
            Group::Batch => &BATCH_IN_BATCH,
            Group::Atomic { .. } => return self.join(f),
        };
        self.open_group(scope, Group::Batch, f)
    }

    /// All or nothing: every write `f` makes joins one unit without a savepoint of its own
    /// (cheaper than [`Store::batch`] when no write may fail alone). The unit is one
    /// transaction, or one savepoint inside a batch. It keeps nothing when `f` returns `Err`
    /// or when any write in it failed, even one whose error `f` did not pass on.
    pub fn atomic<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let scope = match self.group {
            Group::Alone => &TRANSACTION,
            Group::Batch => &ATOMIC_IN_BATCH,
            Group::Atomic { .. } => return self.join(f),
        };
        self.open_group(scope, Group::Atomic { failed: false }, |s| {
            let result = f(s);
            match s.group {
                Group::Atomic { failed: true } => result.and(Err(StoreError::WriteFailed.into())),
                _ => result,
            }
        })
    }

    /// Opens `scope` as a unit of kind `group` around `f`, then keeps or undoes it.
    fn open_group<T, E: From<StoreError>>(
        &mut self,
        scope: &Scope,
        group: Group,
        f: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let path = self.reader.path.clone();
        if self.group != Group::Alone && self.reader.conn.is_autocommit() {
            // SQLite rolled the outer group back by itself: a savepoint now would open (and
            // commit) a transaction of its own.
            return Err(StoreError::RolledBack.at(&path).into());
        }
        scope.open(&self.reader.conn).map_err(|e| e.at(&path))?;
        let outer = std::mem::replace(&mut self.group, group);
        let result = f(self);
        self.group = outer;
        scope.close(&self.reader.conn, &path, result)
    }

    /// Runs `f` as part of the open [`Store::atomic`] unit: its `Err` fails the unit.
    fn join<T, E>(&mut self, f: impl FnOnce(&mut Store) -> Result<T, E>) -> Result<T, E> {
        let result = f(self);
        self.note_failure(&result);
        result
    }

    /// Marks the open atomic unit failed when `result` is an error.
    fn note_failure<T, E>(&mut self, result: &Result<T, E>) {
        if let (Group::Atomic { failed }, Err(_)) = (&mut self.group, result) {
            *failed = true;
        }
    }

    /// Runs `f`; should it panic (a bug), rolls the open transaction back (a batch's too: its
    /// other jobs then get [`StoreError::RolledBack`]), restores the group it was called in
    /// and returns [`StoreError::Internal`], so the store thread goes on serving.
    pub(super) fn catching_panics<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let group = self.group;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(result) => result,
            Err(panic) => {
                if !self.reader.conn.is_autocommit() {
                    let _ = self.reader.conn.execute_batch("ROLLBACK");
                }
                self.group = group;
                let message = crate::text::panic_message(panic.as_ref());
                tracing::error!("a database write panicked: {message}");
                Err(StoreError::Internal(message.to_owned()))
            }
        }
    }

    /// True while a [`Store::batch`] transaction is open and has not been rolled back by
    /// SQLite itself (after which nothing written in it is kept).
    pub fn batch_intact(&self) -> bool {
        self.group == Group::Alone || !self.reader.conn.is_autocommit()
    }
}
