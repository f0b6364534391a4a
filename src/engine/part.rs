//! The `.part` file: opened under an exclusive lock (so two owners never write one file),
//! written by a blocking writer thread that syncs before it reports a durable offset, hashed,
//! and finally renamed into place without overwriting anything.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::event::EngineEvent;
use crate::model::TaskId;
use crate::names::with_counter;

/// How often a waiting owner retries the lock of a `.part` held by a previous owner.
const LOCK_POLL: Duration = Duration::from_millis(100);
/// Names tried for one file: `name`, then `name (1)` … `name (999)`.
const MAX_COUNTER: u32 = 1000;

/// The environment variable that arms a [`kill_point`]. Test-only: see there.
pub const KILL_AT_VAR: &str = "HAUL_TEST_KILL_AT";

/// Crash points for the crash-loop tests, inert unless `HAUL_TEST_KILL_AT=POINT[:N]` is set:
/// then the N-th time (default the first) this process reaches `POINT`, it sends itself
/// SIGKILL: a `kill -9` landing exactly there (no destructor runs, nothing is flushed). Points:
/// `write` (a chunk written to the `.part`, not yet synced), `synced` (a checkpoint synced,
/// its offset not yet reported or committed), `before_rename` (verified and synced, not yet
/// renamed) and `renamed` (renamed and the directory synced, not yet recorded in the
/// database). Never set it outside tests.
pub fn kill_point(point: &str) {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let armed = ARMED.get_or_init(|| {
        let value = std::env::var(KILL_AT_VAR).ok()?;
        let (name, nth) = match value.split_once(':') {
            Some((name, n)) => (name.to_owned(), n.parse().ok()?),
            None => (value, 1),
        };
        Some((name, nth))
    });
    if let Some((name, nth)) = armed
        && name == point
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 >= *nth
    {
        eprintln!("{KILL_AT_VAR}: killing this process at {point}");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        std::process::abort();
    }
}

/// `final.ext` → `final.ext.part`.
pub fn part_path(final_path: &Path) -> PathBuf {
    let mut name = final_path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    final_path.with_file_name(name)
}

/// An open, exclusively locked `.part` file.
pub struct PartFile {
    pub file: File,
    pub path: PathBuf,
}

/// The first name from `name`, `name (1)`, `name (2)`… (starting at counter `from`) for which
/// neither the finished file nor its `.part` exists in `dir`, with its counter.
pub fn free_name(dir: &Path, name: &str, from: u32) -> Option<(u32, PathBuf)> {
    (from..MAX_COUNTER).find_map(|n| {
        let candidate = if n == 0 {
            name.to_owned()
        } else {
            with_counter(name, n)
        };
        let final_path = dir.join(candidate);
        let taken = final_path.exists() || part_path(&final_path).exists();
        (!taken).then_some((n, final_path))
    })
}

/// Creates the `.part` of `final_path`, failing with `AlreadyExists` when someone else has
/// (never opens an existing file or follows a symlink), and takes its lock.
pub fn create_new(final_path: &Path) -> std::io::Result<PartFile> {
    let path = part_path(final_path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.try_lock()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(PartFile { file, path })
}

/// Opens an existing (or recreates a missing) `.part` and waits for its lock: a previous owner
/// that lost its claim releases it as soon as it notices. `None` when `stop` fires first.
pub async fn open_locked(
    path: &Path,
    stop: &CancellationToken,
) -> std::io::Result<Option<PartFile>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    loop {
        match file.try_lock() {
            Ok(()) => {
                return Ok(Some(PartFile {
                    file,
                    path: path.to_owned(),
                }));
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(e),
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(None),
            _ = tokio::time::sleep(LOCK_POLL) => {}
        }
    }
}

impl PartFile {
    /// Cuts the file to `offset` bytes and positions writes there.
    pub fn truncate_to(&mut self, offset: u64) -> std::io::Result<()> {
        self.file.set_len(offset)?;
        self.file.seek(SeekFrom::Start(offset))?;
        Ok(())
    }

    pub fn len(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

/// Where the writer thread reports.
pub struct WriterReport {
    pub task: TaskId,
    pub index: u32,
    pub events: mpsc::UnboundedSender<EngineEvent>,
    pub checkpoint_every: Duration,
}

/// Why the writer stopped early.
#[derive(Debug)]
pub enum WriteError {
    Io(std::io::Error),
    /// The stop signal fired: nothing more was written.
    Stopped,
}

/// Writes chunks from `chunks` at the current position until the channel closes. Syncs the data
/// every `checkpoint_every` and at the end, and only then reports the offset as durable. Stops
/// at once, before the next write, when `stop` fires (syncing what it already wrote). Runs on a
/// blocking thread. Returns the durable offset (bytes synced to disk), and how writing ended.
pub fn write_chunks(
    part: &mut PartFile,
    start: u64,
    mut chunks: mpsc::Receiver<Bytes>,
    stop: &CancellationToken,
    report: &WriterReport,
) -> (u64, Result<(), WriteError>) {
    let mut offset = start;
    let mut durable = start;
    let mut last_sync = Instant::now();
    let checkpoint = |part: &mut PartFile, offset: u64| -> Result<(), WriteError> {
        part.file.sync_data().map_err(WriteError::Io)?;
        kill_point("synced");
        let _ = report.events.send(EngineEvent::Checkpoint {
            task: report.task,
            index: report.index,
            durable: offset,
        });
        Ok(())
    };
    while let Some(chunk) = chunks.blocking_recv() {
        if stop.is_cancelled() {
            break;
        }
        if let Err(e) = part.file.write_all(&chunk) {
            // Keep what did reach the file (a disk-full write may be partial), durably.
            if let Ok(len) = part.len()
                && part.file.set_len(len).is_ok()
                && checkpoint(part, len).is_ok()
            {
                durable = len;
            }
            return (durable, Err(WriteError::Io(e)));
        }
        offset += chunk.len() as u64;
        kill_point("write");
        if last_sync.elapsed() >= report.checkpoint_every {
            if let Err(e) = checkpoint(part, offset) {
                return (durable, Err(e));
            }
            durable = offset;
            last_sync = Instant::now();
        }
    }
    if let Err(e) = checkpoint(part, offset) {
        return (durable, Err(e));
    }
    if stop.is_cancelled() {
        return (offset, Err(WriteError::Stopped));
    }
    (offset, Ok(()))
}

/// The SHA-256 of the whole file, hex.
pub fn sha256_hex(part: &mut PartFile) -> std::io::Result<String> {
    part.file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = part.file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Moves the synced `.part` into place without replacing anything (a taken name gets ` (n)`),
/// then syncs the directory. Returns the final path.
pub fn finalize(part: &PartFile, final_path: &Path) -> std::io::Result<PathBuf> {
    part.file.sync_all()?;
    kill_point("before_rename");
    let dir = final_path.parent().unwrap_or(Path::new("."));
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut target = final_path.to_owned();
    for n in 1..MAX_COUNTER {
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &part.path,
            rustix::fs::CWD,
            &target,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {
                File::open(dir)?.sync_all()?;
                kill_point("renamed");
                return Ok(target);
            }
            Err(rustix::io::Errno::EXIST) => target = dir.join(with_counter(&name, n)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::other(format!(
        "no free name for {name} in {}",
        dir.display()
    )))
}

/// Bytes free for an unprivileged writer on the file system holding `dir`.
pub fn free_space(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_skip_finished_files_and_other_parts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), b"done").unwrap();
        let (n, first) = free_name(dir.path(), "a.bin", 0).unwrap();
        assert_eq!((n, first.clone()), (1, dir.path().join("a (1).bin")));
        let _p1 = create_new(&first).unwrap();
        let (_, second) = free_name(dir.path(), "a.bin", 0).unwrap();
        assert_eq!(second, dir.path().join("a (2).bin"));
        let err = create_new(&first).err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn finalize_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let final_path = dir.path().join("x.txt");
        let mut part = create_new(&final_path).unwrap();
        part.file.write_all(b"new").unwrap();
        std::fs::write(&final_path, b"someone else's").unwrap();
        let placed = finalize(&part, &final_path).unwrap();
        assert_eq!(placed, dir.path().join("x (1).txt"));
        assert_eq!(std::fs::read(&final_path).unwrap(), b"someone else's");
        assert_eq!(std::fs::read(&placed).unwrap(), b"new");
        assert_eq!(sha256_hex(&mut part).unwrap().len(), 64);
    }

    #[test]
    fn a_full_disk_stops_the_writer_with_the_os_error() {
        // /dev/full answers every write with ENOSPC, like a disk that just filled up.
        let Ok(file) = OpenOptions::new().read(true).write(true).open("/dev/full") else {
            return;
        };
        let mut part = PartFile {
            file,
            path: PathBuf::from("/dev/full"),
        };
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Bytes::from_static(b"data")).unwrap();
        drop(tx);
        let (events, _inbox) = mpsc::unbounded_channel();
        let report = WriterReport {
            task: TaskId(1),
            index: 0,
            events,
            checkpoint_every: Duration::from_secs(60),
        };
        let (durable, result) = write_chunks(&mut part, 0, rx, &CancellationToken::new(), &report);
        assert_eq!(durable, 0, "nothing reached the disk");
        match result {
            Err(WriteError::Io(e)) => {
                assert_eq!(
                    e.raw_os_error(),
                    Some(rustix::io::Errno::NOSPC.raw_os_error())
                );
            }
            other => panic!("expected ENOSPC, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_locked_part_waits_for_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = create_new(&dir.path().join("y.bin")).unwrap();
        let stop = CancellationToken::new();
        let path = held.path.clone();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { open_locked(&path, &stop).await.unwrap().is_some() }
        });
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!waiter.is_finished(), "must wait while the lock is held");
        drop(held);
        assert!(waiter.await.unwrap());
    }
}
