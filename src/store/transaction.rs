//! Transactions: every write is one `BEGIN IMMEDIATE` transaction, or, inside a group commit
//! ([`Store::batch`]), one savepoint of the batch's transaction.

use rusqlite::Connection;

use super::{Store, StoreError, execute_cached};

impl Store {
    /// Runs `f` inside a `BEGIN IMMEDIATE` transaction and commits it; inside a
    /// [`Store::batch`], as a savepoint of the batch's transaction instead, so a failed write
    /// undoes only itself and the batch commits the rest.
    pub(super) fn write<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // After SQLite rolled a batch back by itself, a savepoint would open (and commit) a
        // transaction of its own: refuse instead, the batch is lost.
        if self.batch_open && self.reader.conn.is_autocommit() {
            return Err(StoreError::RolledBack);
        }
        let (begin, commit, undo) = if self.batch_open {
            (
                "SAVEPOINT write",
                "RELEASE write",
                "ROLLBACK TO write; RELEASE write",
            )
        } else {
            ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
        };
        let conn = &self.reader.conn;
        let run = || -> Result<T, StoreError> {
            // Cached: these run thousands of times a second when many small files finish.
            conn.prepare_cached(begin)?.execute([])?;
            let value = f(conn).and_then(|value| {
                conn.prepare_cached(commit)?.execute([])?;
                Ok(value)
            });
            if value.is_err() && !conn.is_autocommit() {
                let _ = conn.execute_batch(undo);
            }
            value
        };
        run().map_err(|e| e.at(&self.reader.path))
    }

    /// Group commit: every write `f` makes lands in one `BEGIN IMMEDIATE` transaction, made
    /// durable by one commit. Commits when `f` returns `Ok`, rolls everything back on `Err`.
    /// Nothing `f` wrote may be acted on before this returns `Ok`. A batch inside a batch is
    /// a savepoint of its own.
    pub fn batch<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.batch_open {
            return self.nested_batch(f);
        }
        let path = self.reader.path.clone();
        let sql = |conn: &Connection, sql: &str| {
            execute_cached(conn, sql, [])
                .map(drop)
                .map_err(|e| e.at(&path))
        };
        sql(&self.reader.conn, "BEGIN IMMEDIATE")?;
        self.batch_open = true;
        let result = f(self);
        self.batch_open = false;
        if self.reader.conn.is_autocommit() {
            // SQLite rolled the transaction back itself (disk full, I/O error): nothing
            // written since BEGIN is kept.
            return match result {
                Err(e) => Err(e),
                Ok(_) => Err(StoreError::RolledBack.into()),
            };
        }
        match result {
            Ok(value) => match sql(&self.reader.conn, "COMMIT") {
                Ok(()) => Ok(value),
                Err(e) => {
                    let _ = self.reader.conn.execute_batch("ROLLBACK");
                    Err(e.into())
                }
            },
            Err(e) => {
                sql(&self.reader.conn, "ROLLBACK")?;
                Err(e)
            }
        }
    }

    /// A batch inside a batch: a savepoint of its own, so its `Err` undoes all of its writes
    /// (and only those) while the outer batch goes on.
    fn nested_batch<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let path = self.reader.path.clone();
        let sql = |conn: &Connection, sql: &str| {
            conn.execute_batch(sql)
                .map_err(|e| StoreError::from(e).at(&path))
        };
        sql(&self.reader.conn, "SAVEPOINT batch")?;
        let result = f(self);
        if self.reader.conn.is_autocommit() {
            return result.and(Err(StoreError::RolledBack.into()));
        }
        match result {
            Ok(value) => {
                sql(&self.reader.conn, "RELEASE batch")?;
                Ok(value)
            }
            Err(e) => {
                sql(&self.reader.conn, "ROLLBACK TO batch; RELEASE batch")?;
                Err(e)
            }
        }
    }

    /// True while a [`Store::batch`] transaction is open and has not been rolled back by
    /// SQLite itself (after which nothing written in it is kept).
    pub fn batch_intact(&self) -> bool {
        !self.batch_open || !self.reader.conn.is_autocommit()
    }
}
