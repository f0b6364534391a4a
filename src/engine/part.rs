//! The `.part` file: opened under an exclusive lock (so two owners never write one file),
//! written by a blocking writer thread that syncs before it reports a durable offset, hashed,
//! and finally renamed into place without overwriting anything.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
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

/// Creates a new `.part` for `final_path`, or for `name (n)` when the name is taken by a
/// finished file or another `.part`. Returns the final path chosen.
pub fn create_unique(dir: &Path, name: &str) -> std::io::Result<(PathBuf, PartFile)> {
    for n in 0..1000u32 {
        let candidate = if n == 0 {
            name.to_owned()
        } else {
            with_counter(name, n)
        };
        let final_path = dir.join(&candidate);
        if final_path.exists() {
            continue;
        }
        let path = part_path(&final_path);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                file.try_lock()
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                return Ok((final_path, PartFile { file, path }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "no free name for {name} in {}",
        dir.display()
    )))
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
    let dir = final_path.parent().unwrap_or(Path::new("."));
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut target = final_path.to_owned();
    for n in 1..1000u32 {
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &part.path,
            rustix::fs::CWD,
            &target,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {
                File::open(dir)?.sync_all()?;
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
        let (first, _p1) = create_unique(dir.path(), "a.bin").unwrap();
        assert_eq!(first, dir.path().join("a (1).bin"));
        let (second, _p2) = create_unique(dir.path(), "a.bin").unwrap();
        assert_eq!(second, dir.path().join("a (2).bin"));
    }

    #[test]
    fn finalize_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let (final_path, mut part) = create_unique(dir.path(), "x.txt").unwrap();
        part.file.write_all(b"new").unwrap();
        std::fs::write(&final_path, b"someone else's").unwrap();
        let placed = finalize(&part, &final_path).unwrap();
        assert_eq!(placed, dir.path().join("x (1).txt"));
        assert_eq!(std::fs::read(&final_path).unwrap(), b"someone else's");
        assert_eq!(std::fs::read(&placed).unwrap(), b"new");
        assert_eq!(sha256_hex(&mut part).unwrap().len(), 64);
    }

    #[tokio::test]
    async fn a_locked_part_waits_for_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let (_, held) = create_unique(dir.path(), "y.bin").unwrap();
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
