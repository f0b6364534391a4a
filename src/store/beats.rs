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
use serde::{Deserialize, Serialize};

use super::writes::{FileChange, TaskTotals};
use super::{StoreError, execute_cached};
use crate::model::{Lease, TaskId};

/// Rows per owner: task id mod this. Part of the stored format (readers must agree).
pub(super) const BUCKETS: i64 = 64;
/// The first byte of every bucket blob: bump it when the encoding of [`Beat`] changes, so an
/// older or newer haul refuses the rows instead of misreading them (2: postcard).
const FORMAT: u8 = 2;

/// An owner's last word on one claim. Its fields, in this order, and [`BeatFile`]'s are the
/// stored format (postcard writes fields in order, unnamed): a change bumps [`FORMAT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Beat {
    /// The claim: the task's id and the attempt that holds it.
    pub task: i64,
    pub attempt: i64,
    /// When bytes last arrived (ms since the epoch), if they did since the beat began.
    pub progress_at: Option<i64>,
    pub files: Vec<BeatFile>,
}

/// One file in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// The `task_beats` bucket of a task: its id mod [`BUCKETS`].
pub(super) fn bucket_of(task: i64) -> i64 {
    task.rem_euclid(BUCKETS)
}

// ------------------------------------------------------------------ stored format

/// `FORMAT`, then the bucket's beats (by task id) in postcard's wire format
/// (<https://postcard.jamesmunns.com/wire-format>): integers as varints, signed ones zigzagged,
/// a sequence as its length and then its items, an option as a 0/1 tag and then its value.
fn encode(beats: &[Beat], owner: &str) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(1 + beats.len() * 24);
    out.push(FORMAT);
    postcard::to_extend(beats, out).map_err(|e| {
        StoreError::Unsupported(format!(
            "cannot encode the heartbeat of instance {owner} for task_beats ({e})"
        ))
    })
}

/// The beats of one bucket blob. Another format, a cut or garbled blob, or bytes left over are
/// all an error that names the owner, never a guess.
fn decode(bytes: &[u8], owner: &str) -> Result<Vec<Beat>, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => match postcard::take_from_bytes::<Vec<Beat>>(rest) {
            Ok((beats, [])) => Ok(beats),
            Ok((_, left)) => Err(malformed(
                owner,
                format_args!("{} bytes left over", left.len()),
            )),
            Err(e) => Err(malformed(owner, e)),
        },
        Some((&format, _)) => Err(malformed(
            owner,
            format_args!("format {format}, not {FORMAT}"),
        )),
        None => Err(malformed(owner, "empty")),
    }
}

/// A `task_beats` row this haul cannot read: it changes nothing and says so.
fn malformed(owner: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Unsupported(format!(
        "a heartbeat row of instance {owner} in task_beats is malformed ({why}): a haul of \
         another version wrote it, or it is damaged; haul changed nothing, so use the haul \
         version that wrote it"
    ))
}

// ------------------------------------------------------------------ rows

/// The beats of one owner's bucket, by task id (none when it has no row).
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

/// Writes one owner's bucket, or removes its row when no beat is left in it.
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
            params![owner, bucket, encode(beats, owner)?],
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
    let mut offset = conn.prepare_cached(
        "UPDATE files SET bytes_done = ?3 WHERE task_id = ?1 AND idx = ?2 AND done = 0",
    )?;
    let mut totals = TaskTotals::default();
    for f in &beat.files {
        let change = FileChange {
            done: Some(f.offset),
            ..FileChange::default()
        };
        totals.add(conn, TaskId(beat.task), f.index, change)?;
        offset.execute(params![beat.task, i64::from(f.index), f.offset as i64])?;
    }
    totals.apply(conn, TaskId(beat.task), None)?;
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
/// True when `lease` is the task's running claim (the fence, read on the way).
pub(super) fn fold(conn: &Connection, lease: Lease) -> Result<bool, StoreError> {
    let claim: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT owner_id, attempt FROM tasks \
             WHERE id = ?1 AND status = 'running' AND owner_id IS NOT NULL",
        )?
        .query_row([lease.task.0], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((owner, attempt)) = claim.filter(|(_, a)| *a == lease.attempt.0) else {
        return Ok(false);
    };
    let bucket = bucket_of(lease.task.0);
    let mut beats = load_bucket(conn, &owner, bucket)?;
    let Ok(i) = beats.binary_search_by_key(&lease.task.0, |b| b.task) else {
        return Ok(true);
    };
    let beat = beats.remove(i);
    if beat.attempt == attempt {
        write_back(conn, &beat, heartbeat_at(conn, &owner)?)?;
    }
    save_bucket(conn, &owner, bucket, &beats)?;
    Ok(true)
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
    /// Reads every bucket row of `owner`, in the tick's transaction.
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
            let slot = usize::try_from(bucket)
                .ok()
                .and_then(|b| book.buckets.get_mut(b))
                .ok_or_else(|| malformed(owner, format_args!("bucket {bucket} of {BUCKETS}")))?;
            *slot = beats;
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
        let bytes = encode(&beats, "x").unwrap();
        assert_eq!(bytes[0], FORMAT);
        assert_eq!(decode(&bytes, "x").unwrap(), beats);
        let none = encode(&[], "x").unwrap();
        assert_eq!(decode(&none, "x").unwrap(), Vec::new());
    }

    #[test]
    fn a_cut_garbled_or_foreign_blob_is_a_clear_error_never_a_panic() {
        let beats = vec![Beat {
            task: 3,
            attempt: 2,
            progress_at: Some(1_790_000_000_123),
            files: vec![BeatFile {
                index: 1,
                offset: 1 << 40,
                base: 7,
            }],
        }];
        let bytes = encode(&beats, "x").unwrap();
        let mut bad: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
        bad.push([&bytes[..], &[0]].concat()); // a byte left over
        bad.push(vec![FORMAT + 1]); // another format
        bad.push([&[FORMAT][..], &[0xff; 12]].concat()); // a varint that never ends
        bad.push(vec![FORMAT, 1, 2, 2, 2]); // an option tag that is neither 0 nor 1
        for blob in bad {
            let err = decode(&blob, "owner-a").unwrap_err().to_string();
            assert!(
                err.starts_with("a heartbeat row of instance owner-a in task_beats is malformed (")
                    && err.ends_with("use the haul version that wrote it"),
                "{blob:?}: {err}"
            );
        }
    }
}
