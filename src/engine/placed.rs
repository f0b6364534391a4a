//! Files renamed into place whose end is not recorded yet.
//!
//! Recording a file's end is a commit of its own. When another write of the same task follows
//! at once (the next file's target, a retry note, the task's end), the record rides with that
//! write instead, in the same transaction: a task of many small files makes one commit per
//! file instead of two, a one-file task one commit less. Until the record lands a crash is
//! safe: the file is in place with the size its target recorded, and the next attempt finds it
//! there (`download::already_placed`) and records it without fetching it again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::model::{Lease, PlacedFile};
use crate::store::{Store, StoreError};

/// A task's placed-but-unrecorded files, and how many of its files are still to come.
#[derive(Debug, Default, Clone)]
pub struct Unrecorded {
    files: Arc<Mutex<Vec<PlacedFile>>>,
    waiting: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
}

impl Unrecorded {
    /// `n` files wait to start.
    pub fn expect(&self, n: usize) {
        self.waiting.store(n, Ordering::SeqCst);
    }

    /// A file leaves the queue and starts; [`Unrecorded::end`] when its transfer is over.
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _ = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// A file's transfer is over (whatever its outcome).
    pub fn end(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Adds a placed file. True when another write of the task is sure to follow at once,
    /// so the record may wait for it: a file is about to start (its target is recorded
    /// before its `.part` exists), or this was the last file in flight (the task's end).
    pub fn defer(&self, file: PlacedFile) -> bool {
        self.lock().push(file);
        let waiting = self.waiting.load(Ordering::SeqCst);
        waiting > 0 || self.in_flight.load(Ordering::SeqCst) <= 1
    }

    /// Takes the files to record with the next write.
    pub fn take(&self) -> Vec<PlacedFile> {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back files whose write failed, so the next write carries them.
    pub fn restore(&self, files: Vec<PlacedFile>) {
        self.lock().splice(0..0, files);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PlacedFile>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records `files` as done under `lease` (on the store thread, inside the caller's
/// transaction). False as soon as the claim is gone.
pub fn record(
    store: &mut Store,
    lease: Lease,
    files: &[PlacedFile],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    for file in files {
        if !store.file_done(lease, file, now)? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(index: u32) -> PlacedFile {
        PlacedFile {
            index,
            bytes: 1,
            sha256: None,
            dest: format!("/d/{index}"),
        }
    }

    #[test]
    fn a_record_waits_only_when_a_write_follows_at_once() {
        let u = Unrecorded::default();
        u.expect(3);
        u.start();
        u.start();
        // One file still waits to start: its target write will carry the record.
        assert!(u.defer(placed(0)));
        u.end();
        u.start();
        // Nothing waits and a sibling is still in flight: no write is sure to follow.
        assert!(!u.defer(placed(1)));
        assert_eq!(u.take(), vec![placed(0), placed(1)]);
        u.end();
        // The last file in flight: the task's end follows.
        assert!(u.defer(placed(2)));
        u.end();
        assert_eq!(u.take(), vec![placed(2)]);
        assert!(u.take().is_empty());
    }

    #[test]
    fn files_of_a_failed_write_go_first_with_the_next_one() {
        let u = Unrecorded::default();
        u.defer(placed(2));
        let carried = vec![placed(0), placed(1)];
        u.restore(carried);
        assert_eq!(u.take(), vec![placed(0), placed(1), placed(2)]);
    }
}
