//! The `.part` file: named, opened under an exclusive lock (so two owners never write one
//! file), hashed, and finally renamed into place without overwriting anything; what the file
//! system it is on allows (`statfs`). Its body is written by [`super::writer::BodyWriter`].

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::fault::kill_point;
use crate::names::with_counter;

/// How often a waiting owner retries the lock of a `.part` held by a previous owner.
const LOCK_POLL: Duration = Duration::from_millis(100);
/// Names tried for one file: `name`, then `name (1)` … `name (999)`.
const MAX_COUNTER: u32 = 1000;

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

/// Syncs the `.part` and moves it into place without replacing anything (a taken name gets
/// ` (n)`), then syncs the directory; `in_memory` (see [`Volume::in_memory`]) skips both
/// syncs, which do nothing there. Returns the final path.
pub fn finalize(part: &PartFile, final_path: &Path, in_memory: bool) -> std::io::Result<PathBuf> {
    if !in_memory {
        part.file.sync_all()?;
    }
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
                if !in_memory {
                    File::open(dir)?.sync_all()?;
                }
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

/// What a download needs to know of the file system it writes to, from one `statfs`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Volume {
    /// Bytes free for an unprivileged writer; `None` when the file system would not say.
    pub free: Option<u64>,
    /// Memory-backed (tmpfs, ramfs): writes never wait for a device and a sync does nothing.
    pub in_memory: bool,
}

/// `statfs` magic numbers of the memory-backed file systems (linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// The file system holding `dir`.
#[allow(clippy::unnecessary_cast)] // `statfs`'s field types differ between architectures
pub fn volume(dir: &Path) -> Volume {
    let Ok(stat) = rustix::fs::statfs(dir) else {
        return Volume::default();
    };
    let block = if stat.f_frsize > 0 {
        stat.f_frsize
    } else {
        stat.f_bsize
    };
    let kind = stat.f_type as i64;
    Volume {
        free: Some((stat.f_bavail as u64).saturating_mul(block as u64)),
        in_memory: kind == TMPFS_MAGIC || kind == RAMFS_MAGIC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
        let placed = finalize(&part, &final_path, false).unwrap();
        assert_eq!(placed, dir.path().join("x (1).txt"));
        assert_eq!(std::fs::read(&final_path).unwrap(), b"someone else's");
        assert_eq!(std::fs::read(&placed).unwrap(), b"new");
        assert_eq!(sha256_hex(&mut part).unwrap().len(), 64);
    }

    #[test]
    fn memory_backed_volumes_are_told_apart() {
        // Linux mounts /dev/shm as tmpfs; /proc is not memory a file can be written to.
        if Path::new("/dev/shm").is_dir() {
            let shm = volume(Path::new("/dev/shm"));
            assert!(shm.in_memory, "{shm:?}");
            assert!(shm.free.is_some());
        }
        assert!(!volume(Path::new("/proc")).in_memory);
        assert_eq!(volume(Path::new("/no/such/dir")), Volume::default());
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
