//! The free space of a task's destination, shared by the task's files.
//!
//! One `statfs` per file was one system call in sixteen of a small file's (10,000 files of
//! 4 KiB as one task: 156,627 calls in all), and files that start together each saw the
//! whole free space, none of the others' needs. A reading is now kept for
//! `READING_LIFETIME`, and every file that starts takes what it needs off it, so files
//! started together are checked against each other, not only against the disk.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::part::{self, Volume};

/// How long one reading of the file system stands for it.
const READING_LIFETIME: Duration = Duration::from_secs(1);

/// A task's reading of its destination's volume, and the bytes its files took off it since.
#[derive(Debug, Default, Clone)]
pub struct SpaceBudget {
    reading: Arc<Mutex<Option<Reading>>>,
}

#[derive(Debug)]
struct Reading {
    at: Instant,
    volume: Volume,
    taken: u64,
}

/// What a file about to be written learnt of its volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grant {
    /// The volume (free space as read, before anything was taken off it).
    pub volume: Volume,
    /// Bytes free for this file after the others' shares; `None` when the volume would not say.
    pub free: Option<u64>,
}

impl SpaceBudget {
    /// The volume of `dir` and the space left for a file that needs `needed` more bytes, which
    /// are taken off the budget when they fit (and not when they do not: that file fails).
    pub fn take(&self, dir: &Path, needed: Option<u64>) -> Grant {
        let mut reading = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        if reading
            .as_ref()
            .is_some_and(|r| r.at.elapsed() >= READING_LIFETIME)
        {
            *reading = None;
        }
        let reading = reading.get_or_insert_with(|| Reading {
            at: Instant::now(),
            volume: part::volume(dir),
            taken: 0,
        });
        let free = reading
            .volume
            .free
            .map(|free| free.saturating_sub(reading.taken));
        let needed = needed.unwrap_or(0);
        if free.is_none_or(|free| free >= needed) {
            reading.taken = reading.taken.saturating_add(needed);
        }
        Grant {
            volume: reading.volume,
            free,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_started_together_share_one_reading_and_take_their_needs_off_it() {
        let dir = tempfile::tempdir().unwrap();
        let budget = SpaceBudget::default();
        let first = budget.take(dir.path(), Some(1000));
        let free = first
            .free
            .expect("a temporary directory's volume tells its free space");
        assert_eq!(
            first.free, first.volume.free,
            "nothing taken before the first"
        );
        assert_eq!(first.volume.in_memory, part::volume(dir.path()).in_memory);
        let second = budget.take(dir.path(), Some(free));
        assert_eq!(
            second.free,
            Some(free - 1000),
            "the first file's share is gone"
        );
        assert_eq!(second.volume, first.volume, "one reading");
        // The second did not fit, so it took nothing: a third sees the same space.
        let third = budget.take(dir.path(), None);
        assert_eq!(third.free, Some(free - 1000));
    }

    #[test]
    fn a_stale_reading_is_read_again_and_forgets_the_shares() {
        let dir = tempfile::tempdir().unwrap();
        let budget = SpaceBudget::default();
        let free = budget.take(dir.path(), None).free.expect("free space");
        assert_eq!(budget.take(dir.path(), Some(free / 2)).free, Some(free));
        assert_eq!(budget.take(dir.path(), None).free, Some(free - free / 2));
        budget
            .reading
            .lock()
            .unwrap()
            .as_mut()
            .expect("a reading")
            .at -= READING_LIFETIME;
        let seen = budget.take(dir.path(), None).free.expect("free space");
        // Read again: the disk's free space (give or take other writers), the half gone.
        assert!(seen.abs_diff(free) < free / 4, "seen {seen} of {free}");
    }

    #[test]
    fn a_volume_that_does_not_tell_its_free_space_grants_every_file() {
        let budget = SpaceBudget::default();
        let grant = budget.take(Path::new("/no/such/dir"), Some(u64::MAX));
        assert_eq!(grant.free, None);
        assert_eq!(grant.volume, Volume::default());
    }
}
