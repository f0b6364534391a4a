//! The narrow half of the heartbeat: what an owner last said about each task it runs, kept in a
//! few packed rows per owner instead of in the wide `tasks` and `files` rows.
//!
//! DESIGN.md defines the heartbeat as "the owner's periodic write of `updated_at` (and progress)
//! for the tasks it runs". A tick still writes exactly that, in two narrow places:
//!
//! - **When**: the owner's own `instances.heartbeat_at`, one row per process. A running task whose
//!   current claim has a beat in its owner's rows was heartbeated by that tick, so its effective
//!   `updated_at` is the later of its row's `updated_at` and the owner's `heartbeat_at`. When the
//!   owner stops reporting a task, its next tick removes the beat and stamps the last tick that
//!   reported it into `tasks.updated_at`; when the owner dies, its `heartbeat_at` stops. Either
//!   way the task's effective update stops moving, and it turns stale as before.
//! - **What**: each task's last progress time and the durable offsets of its files in flight,
//!   in `task_beats` rows keyed `(owner_id, bucket)` with bucket = task id mod [`BUCKETS`], each
//!   a compact blob of that bucket's beats. A tick rewrites only the buckets that changed:
//!   10,000 moving tasks are 64 small rows, not 20,000 scattered wide ones.
//!
//! Readers add beats on top of rows ([`super::overlay`]): every `Task` and `FileEntry` the store
//! returns carries the effective values. A beat is folded back into `files`/`tasks` and removed
//! ([`fold`]) before any other write changes its claim or its files: the owner's file done, file
//! restart and finish, and recovery, restart and cancel from anywhere. So a beat is always newer
//! than the rows it shadows, and a claim that ended has no beat left to lose.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, execute_cached};
use crate::model::Lease;

/// Rows per owner: task id mod this. Part of the stored format (readers must agree).
pub(super) const BUCKETS: i64 = 64;
/// The first byte of every bucket blob.
const FORMAT: u8 = 1;

/// An owner's last word on one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Beat {
    pub task: i64,
    pub attempt: i64,
    /// When bytes last arrived (ms since the epoch), if they did since the beat began.
    pub progress_at: Option<i64>,
    pub files: Vec<BeatFile>,
}

/// One file in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BeatFile {
    pub index: u32,
    /// The durable offset the owner reported.
    pub offset: u64,
    /// The file row's `bytes_done` when the beat took the file up: what the row still says.
    pub base: u64,
}

impl Beat {
    /// How far the task's byte total runs ahead of its row.
    pub fn bytes_ahead(&self) -> i64 {
        self.files
            .iter()
            .map(|f| (f.offset as i64).saturating_sub(f.base as i64))
            .sum()
    }
}

pub(super) fn bucket_of(task: i64) -> i64 {
    task.rem_euclid(BUCKETS)
}

// ------------------------------------------------------------------ stored format

/// `FORMAT`, then per beat (by task id): task, attempt, `files << 1 | has progress`,
/// [progress_at], then per file: index, offset, base. Integers are LEB128 varints, signed ones
/// zigzagged.
fn encode(beats: &[Beat]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + beats.len() * 24);
    out.push(FORMAT);
    for beat in beats {
        put_signed(&mut out, beat.task);
        put_signed(&mut out, beat.attempt);
        put(
            (beat.files.len() as u64) << 1 | u64::from(beat.progress_at.is_some()),
            &mut out,
        );
        if let Some(at) = beat.progress_at {
            put_signed(&mut out, at);
        }
        for f in &beat.files {
            put(u64::from(f.index), &mut out);
            put(f.offset, &mut out);
            put(f.base, &mut out);
        }
    }
    out
}

fn decode(bytes: &[u8], owner: &str) -> Result<Vec<Beat>, StoreError> {
    let malformed = || {
        StoreError::Unsupported(format!(
            "a heartbeat row of instance {owner} in task_beats is malformed; \
             run `haul recover` from a haul of the same version"
        ))
    };
    let (&format, mut rest) = bytes.split_first().ok_or_else(malformed)?;
    if format != FORMAT {
        return Err(malformed());
    }
    let mut beats = Vec::new();
    while !rest.is_empty() {
        let mut next = || take(&mut rest).ok_or_else(malformed);
        let task = unzig(next()?);
        let attempt = unzig(next()?);
        let header = next()?;
        let progress_at = if header & 1 == 1 {
            Some(unzig(next()?))
        } else {
            None
        };
        let count = header >> 1;
        let mut files = Vec::with_capacity(count.min(1024) as usize);
        for _ in 0..count {
            let index = u32::try_from(next()?).map_err(|_| malformed())?;
            files.push(BeatFile {
                index,
                offset: next()?,
                base: next()?,
            });
        }
        beats.push(Beat {
            task,
            attempt,
            progress_at,
            files,
        });
    }
    Ok(beats)
}

fn put(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put(((v << 1) ^ (v >> 63)) as u64, out);
}

fn take(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn unzig(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

// ------------------------------------------------------------------ rows

pub(super) fn load_bucket(
    conn: &Connection,
    owner: &str,
    bucket: i64,
) -> Result<Vec<Beat>, StoreError> {
    let blob: Option<Vec<u8>> = conn
        .prepare_cached("SELECT beats FROM task_beats WHERE owner_id = ?1 AND bucket = ?2")?
        .query_row(params![owner, bucket], |r| r.get(0))
        .optional()?;
    blob.map_or(Ok(Vec::new()), |b| decode(&b, owner))
}

fn save_bucket(
    conn: &Connection,
    owner: &str,
    bucket: i64,
    beats: &[Beat],
) -> Result<(), StoreError> {
    if beats.is_empty() {
        execute_cached(
            conn,
            "DELETE FROM task_beats WHERE owner_id = ?1 AND bucket = ?2",
            params![owner, bucket],
        )?;
    } else {
        execute_cached(
            conn,
            "INSERT INTO task_beats (owner_id, bucket, beats) VALUES (?1, ?2, ?3) \
             ON CONFLICT (owner_id, bucket) DO UPDATE SET beats = excluded.beats",
            params![owner, bucket, encode(beats)],
        )?;
    }
    Ok(())
}

/// An instance's last heartbeat (ms), if it is registered.
pub(super) fn heartbeat_at(conn: &Connection, owner: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT heartbeat_at FROM instances WHERE id = ?1")?
        .query_row([owner], |r| r.get(0))
        .optional()?)
}

/// Writes a beat into the rows it shadows: each file's durable offset (moving the task's byte
/// total by the difference, as the tick once did), the progress time, and `updated_at` moved
/// up to `at` (the owner's last tick that reported it).
pub(super) fn write_back(
    conn: &Connection,
    beat: &Beat,
    at: Option<i64>,
) -> Result<(), StoreError> {
    let mut total = conn.prepare_cached(
        "UPDATE tasks SET bytes_done = tasks.bytes_done + (?3 - f.bytes_done) \
         FROM (SELECT bytes_done FROM files WHERE task_id = ?1 AND idx = ?2 AND done = 0) AS f \
         WHERE tasks.id = ?1",
    )?;
    let mut offset = conn.prepare_cached(
        "UPDATE files SET bytes_done = ?3 WHERE task_id = ?1 AND idx = ?2 AND done = 0",
    )?;
    for f in &beat.files {
        let row = params![beat.task, i64::from(f.index), f.offset as i64];
        total.execute(row)?;
        offset.execute(row)?;
    }
    execute_cached(
        conn,
        "UPDATE tasks SET updated_at = MAX(updated_at, COALESCE(?2, updated_at)), \
           progress_at = CASE WHEN ?3 IS NULL THEN progress_at \
             ELSE MAX(COALESCE(progress_at, ?3), ?3) END \
         WHERE id = ?1",
        params![beat.task, at, beat.progress_at],
    )?;
    Ok(())
}

/// Folds the beat of `lease` (if it is the task's running claim and has one) into the rows and
/// removes it. Every write that ends a claim or changes its files' offsets calls this first.
pub(super) fn fold(conn: &Connection, lease: Lease) -> Result<(), StoreError> {
    let claim: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT owner_id, attempt FROM tasks \
             WHERE id = ?1 AND status = 'running' AND owner_id IS NOT NULL",
        )?
        .query_row([lease.task.0], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((owner, attempt)) = claim.filter(|(_, a)| *a == lease.attempt.0) else {
        return Ok(());
    };
    let bucket = bucket_of(lease.task.0);
    let mut beats = load_bucket(conn, &owner, bucket)?;
    let Ok(i) = beats.binary_search_by_key(&lease.task.0, |b| b.task) else {
        return Ok(());
    };
    let beat = beats.remove(i);
    if beat.attempt == attempt {
        write_back(conn, &beat, heartbeat_at(conn, &owner)?)?;
    }
    save_bucket(conn, &owner, bucket, &beats)
}

// ------------------------------------------------------------------ the tick's side

/// All beats of one owner, for one tick to change and save.
pub(super) struct Book {
    owner: String,
    /// By bucket, each sorted by task id.
    buckets: Vec<Vec<Beat>>,
    dirty: Vec<bool>,
}

impl Book {
    pub fn load(conn: &Connection, owner: &str) -> Result<Book, StoreError> {
        let mut book = Book {
            owner: owner.to_owned(),
            buckets: vec![Vec::new(); BUCKETS as usize],
            dirty: vec![false; BUCKETS as usize],
        };
        let mut stmt =
            conn.prepare_cached("SELECT bucket, beats FROM task_beats WHERE owner_id = ?1")?;
        let mut rows = stmt.query([owner])?;
        while let Some(row) = rows.next()? {
            let bucket: i64 = row.get(0)?;
            let blob = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            let beats = decode(blob, owner)?;
            match book.buckets.get_mut(bucket as usize) {
                Some(slot) if (0..BUCKETS).contains(&bucket) => *slot = beats,
                _ => {
                    return Err(StoreError::Unsupported(format!(
                        "bad heartbeat bucket {bucket}"
                    )));
                }
            }
        }
        Ok(book)
    }

    /// Records this tick's word on a claim the owner holds: progress, and the durable offsets
    /// of files that moved (a file met for the first time takes its row's offset as its base;
    /// a finished file is ignored, as its row is final).
    pub fn beat(
        &mut self,
        conn: &Connection,
        lease: Lease,
        offsets: &[(u32, u64)],
        progress_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let (task, attempt) = (lease.task.0, lease.attempt.0);
        let b = bucket_of(task) as usize;
        let fresh = || Beat {
            task,
            attempt,
            progress_at: None,
            files: Vec::new(),
        };
        let bucket = &mut self.buckets[b];
        let i = match bucket.binary_search_by_key(&task, |x| x.task) {
            Ok(i) if bucket[i].attempt == attempt => i,
            Ok(i) => {
                // A beat of an older claim: the write that ended it folded it already.
                bucket[i] = fresh();
                self.dirty[b] = true;
                i
            }
            Err(i) => {
                bucket.insert(i, fresh());
                self.dirty[b] = true;
                i
            }
        };
        let beat = &mut bucket[i];
        if progress_at.is_some() {
            beat.progress_at = progress_at;
            self.dirty[b] = true;
        }
        for &(index, offset) in offsets {
            if let Some(f) = beat.files.iter_mut().find(|f| f.index == index) {
                if f.offset != offset {
                    f.offset = offset;
                    self.dirty[b] = true;
                }
            } else if let Some(base) = file_base(conn, task, index)? {
                beat.files.push(BeatFile {
                    index,
                    offset,
                    base,
                });
                self.dirty[b] = true;
            }
        }
        Ok(())
    }

    /// Takes out the beats of claims this tick did not report.
    pub fn take_unreported(&mut self, reported: &HashSet<i64>) -> Vec<Beat> {
        let mut gone = Vec::new();
        for (bucket, dirty) in self.buckets.iter_mut().zip(self.dirty.iter_mut()) {
            let before = bucket.len();
            bucket.retain(|b| {
                let keep = reported.contains(&b.task);
                if !keep {
                    gone.push(b.clone());
                }
                keep
            });
            *dirty |= bucket.len() != before;
        }
        gone
    }

    /// Writes the buckets that changed.
    pub fn save(&self, conn: &Connection) -> Result<(), StoreError> {
        for (bucket, beats) in self.buckets.iter().enumerate() {
            if self.dirty[bucket] {
                save_bucket(conn, &self.owner, bucket as i64, beats)?;
            }
        }
        Ok(())
    }
}

/// A file's durable offset in its row, unless it is finished (or unknown).
fn file_base(conn: &Connection, task: i64, index: u32) -> Result<Option<u64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT bytes_done FROM files WHERE task_id = ?1 AND idx = ?2 AND done = 0",
        )?
        .query_row(params![task, i64::from(index)], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|b| b.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_survive_their_encoding() {
        let beats = vec![
            Beat {
                task: 1,
                attempt: 1,
                progress_at: None,
                files: Vec::new(),
            },
            Beat {
                task: 65,
                attempt: 300,
                progress_at: Some(1_790_000_000_123),
                files: vec![
                    BeatFile {
                        index: 0,
                        offset: 5 << 30,
                        base: 4096,
                    },
                    BeatFile {
                        index: 70_000,
                        offset: u64::MAX >> 1,
                        base: 0,
                    },
                ],
            },
            Beat {
                task: -7,
                attempt: i64::MAX,
                progress_at: Some(-1),
                files: Vec::new(),
            },
        ];
        let bytes = encode(&beats);
        assert_eq!(decode(&bytes, "x").unwrap(), beats);
        assert_eq!(decode(&encode(&[]), "x").unwrap(), Vec::new());
        // Cut short, or of another format: an error, never a guess.
        assert!(decode(&bytes[..bytes.len() - 1], "x").is_err());
        assert!(decode(&[2], "x").is_err());
        assert!(decode(&[], "x").is_err());
    }
}
