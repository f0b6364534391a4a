//! Instance rows: which processes have the database open.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Store, StoreError, execute_cached, to_ms};

impl Store {
    /// Marks instances stopped whose heartbeat is older than `before` and that hold no running
    /// task, so the registry does not grow without bound. Returns how many were closed.
    pub fn close_silent_instances(&mut self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.write(|tx| {
            let n = execute_cached(
                tx,
                "UPDATE instances SET stopped_at = heartbeat_at \
                 WHERE stopped_at IS NULL AND heartbeat_at < ?1 \
                 AND id NOT IN (SELECT owner_id FROM tasks WHERE status = 'running' \
                                AND owner_id IS NOT NULL)",
                params![to_ms(before)],
            )?;
            Ok(n)
        })
    }
}
