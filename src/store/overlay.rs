//! The readers' side of the heartbeat: every `Task` and `FileEntry` the store returns carries
//! its owner's last word on top of its row (see [`super::beats`] for where that word is kept):
//! the effective `updated_at`, progress time, byte total and durable offsets. Reads only.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};

use super::beats::{Beat, bucket_of, heartbeat_at, load_bucket};
use super::{StoreError, from_ms};
use crate::model::{FileEntry, Status, Task, TaskId};

/// Adds beats to rows as they are read: each owner's heartbeat and bucket read once.
pub(super) struct Overlay<'c> {
    conn: &'c Connection,
    buckets: HashMap<(String, i64), Vec<Beat>>,
    heartbeats: HashMap<String, Option<i64>>,
}

impl<'c> Overlay<'c> {
    /// An overlay that reads on `conn`, inside the caller's transaction (if any).
    pub fn new(conn: &'c Connection) -> Overlay<'c> {
        Overlay {
            conn,
            buckets: HashMap::new(),
            heartbeats: HashMap::new(),
        }
    }

    /// The beat of the task's claim, if the task is running and its owner holds one.
    fn beat(
        &mut self,
        id: TaskId,
        status: Status,
        owner: Option<&str>,
        attempt: i64,
    ) -> Result<Option<&Beat>, StoreError> {
        let Some(owner) = owner.filter(|_| status == Status::Running) else {
            return Ok(None);
        };
        let key = (owner.to_owned(), bucket_of(id.0));
        if !self.buckets.contains_key(&key) {
            let beats = load_bucket(self.conn, owner, key.1)?;
            self.buckets.insert(key.clone(), beats);
        }
        let beats = &self.buckets[&key];
        Ok(beats
            .binary_search_by_key(&id.0, |b| b.task)
            .ok()
            .map(|i| &beats[i])
            .filter(|b| b.attempt == attempt))
    }

    /// The owner's last heartbeat (ms), read once per overlay.
    fn heartbeat(&mut self, owner: &str) -> Result<Option<i64>, StoreError> {
        if let Some(known) = self.heartbeats.get(owner) {
            return Ok(*known);
        }
        let at = heartbeat_at(self.conn, owner)?;
        self.heartbeats.insert(owner.to_owned(), at);
        Ok(at)
    }

    /// The task with its owner's last word: bytes, progress time, and `updated_at` moved to
    /// the owner's last heartbeat while the owner reports it.
    pub fn task(&mut self, task: &mut Task) -> Result<(), StoreError> {
        let owner = task.owner.as_ref().map(|o| o.0.clone());
        let Some(beat) = self.beat(task.id, task.status, owner.as_deref(), task.attempt.0)? else {
            return Ok(());
        };
        let (ahead, progress_at) = (beat.bytes_ahead(), beat.progress_at);
        task.bytes_done = (task.bytes_done as i64).saturating_add(ahead).max(0) as u64;
        if let Some(at) = progress_at.map(from_ms) {
            task.progress_at = Some(task.progress_at.map_or(at, |p| p.max(at)));
        }
        if let Some(at) = owner
            .as_deref()
            .map(|o| self.heartbeat(o))
            .transpose()?
            .flatten()
        {
            task.updated_at = task.updated_at.max(from_ms(at));
        }
        Ok(())
    }

    /// [`Overlay::task`] on `live`, a copy of `row` (as stored) that may carry an older beat:
    /// the fields a beat moves are taken from `row` first.
    pub fn task_again(&mut self, row: &Task, live: &mut Task) -> Result<(), StoreError> {
        live.bytes_done = row.bytes_done;
        live.progress_at = row.progress_at;
        live.updated_at = row.updated_at;
        self.task(live)
    }

    /// [`Overlay::task`] for each of `tasks`.
    pub fn tasks(&mut self, tasks: &mut [Task]) -> Result<(), StoreError> {
        tasks.iter_mut().try_for_each(|t| self.task(t))
    }

    /// How far each project's byte total runs ahead of its rows, from its running claims.
    pub fn bytes_ahead_by_project(&mut self) -> Result<HashMap<String, i64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, project, owner_id, attempt FROM tasks WHERE status = 'running'",
        )?;
        let mut claims = stmt.query([])?;
        let mut ahead: HashMap<String, i64> = HashMap::new();
        while let Some(row) = claims.next()? {
            let owner: Option<String> = row.get(2)?;
            let id = TaskId(row.get(0)?);
            let bytes = self
                .beat(id, Status::Running, owner.as_deref(), row.get(3)?)?
                .map_or(0, Beat::bytes_ahead);
            *ahead.entry(row.get(1)?).or_default() += bytes;
        }
        Ok(ahead)
    }

    /// The files of one task with the durable offsets its owner reported.
    pub fn files(&mut self, id: TaskId, files: &mut [FileEntry]) -> Result<(), StoreError> {
        let claim: Option<(Option<String>, i64)> = self
            .conn
            .prepare_cached(
                "SELECT owner_id, attempt FROM tasks WHERE id = ?1 AND status = 'running'",
            )?
            .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((owner, attempt)) = claim else {
            return Ok(());
        };
        let Some(beat) = self.beat(id, Status::Running, owner.as_deref(), attempt)? else {
            return Ok(());
        };
        for file in files.iter_mut().filter(|f| !f.done) {
            if let Some(f) = beat.files.iter().find(|f| f.index == file.index) {
                file.bytes_done = f.offset;
            }
        }
        Ok(())
    }
}
