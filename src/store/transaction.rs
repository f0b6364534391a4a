//! Transactions: every write is one `BEGIN IMMEDIATE` transaction, or, inside a group commit
//! ([`Store::batch`]), one savepoint of the batch's transaction.

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
    /// undoes only itself and the batch commits the rest.
    pub(super) fn write<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = &self.reader.conn;
        let result = if self.batch_open && conn.is_autocommit() {
            // SQLite rolled the batch back by itself; a savepoint now would open (and commit)
            // a transaction of its own.
            Err(StoreError::RolledBack)
        } else {
            let scope = if self.batch_open {
                &WRITE_IN_BATCH
            } else {
                &TRANSACTION
            };
            let path = &self.reader.path;
            scope
                .open(conn)
                .and_then(|()| scope.close(conn, path, f(conn)))
        };
        result.map_err(|e| e.at(&self.reader.path))
    }

    /// Group commit: every write `f` makes lands in one `BEGIN IMMEDIATE` transaction, made
    /// durable by one commit. Commits when `f` returns `Ok`, rolls everything back on `Err`.
    /// Nothing `f` wrote may be acted on before this returns `Ok`. A batch inside a batch is
    /// a savepoint of its own: its `Err` undoes its writes only.
    pub fn batch<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let outer = !self.batch_open;
        let scope = if outer { &TRANSACTION } else { &BATCH_IN_BATCH };
        let path = self.reader.path.clone();
        scope.open(&self.reader.conn).map_err(|e| e.at(&path))?;
        self.batch_open = true;
        let result = f(self);
        self.batch_open = !outer;
        scope.close(&self.reader.conn, &path, result)
    }

    /// True while a [`Store::batch`] transaction is open and has not been rolled back by
    /// SQLite itself (after which nothing written in it is kept).
    pub fn batch_intact(&self) -> bool {
        !self.batch_open || !self.reader.conn.is_autocommit()
    }
}
