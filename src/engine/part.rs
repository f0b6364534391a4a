//! The `.part` file: opened under an exclusive lock (so two owners never write one file),
//! written in batches by short blocking calls that sync before they report a durable offset,
//! hashed, and finally renamed into place without overwriting anything.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::event::EngineEvent;
use super::fault::kill_point;
use crate::model::TaskId;
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

/// The most one download gathers for a single write. Nothing more is read while a batch is
/// on its way to the disk, so a download holds at most one batch (plus the chunk that filled
/// it) in memory, however many downloads run and however slow the disk is.
pub const BATCH_BYTES: usize = 128 * 1024;

/// Where the writer reports durable offsets.
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

/// Writes a body into a `.part` without holding a thread for the download: the chunks that
/// are ready are gathered into a batch (of at most [`BATCH_BYTES`]), which one short blocking
/// call writes; only then is more read. When a checkpoint is due, a sync of what is already
/// written runs on another blocking thread beside the next writes, so the download never
/// waits for the device mid-body. (Reading while a
/// batch is written would keep the connection's previous read buffer alive and make it
/// allocate a fresh one for every read; the socket buffers the data meanwhile, so the next
/// read is simply larger.) An offset is reported durable (`EngineEvent::Checkpoint`) only after
/// its data is synced; once the stop signal fires nothing more is written, and what was
/// written is synced.
pub struct BodyWriter {
    disk: Slot,
    /// The `.part`'s path, for messages while the file is on a blocking thread.
    path: PathBuf,
    gathered: Vec<Bytes>,
    gathered_len: usize,
    /// The durable offset as last seen from the disk side.
    durable: u64,
    last_sync: Instant,
    checkpoint_every: Duration,
    /// The checkpoint sync running beside the writes, if any: it makes the bytes written
    /// before it began durable, and reports them, and answers with that offset.
    syncing: Option<JoinHandle<Result<u64, WriteError>>>,
    /// The `.part` is on a memory-backed file system (see [`Volume::in_memory`]): the last
    /// call runs in place (see [`Self::in_memory`]).
    in_memory: bool,
}

/// Where the `.part` is: here between batches, or on a blocking thread writing one.
enum Slot {
    Idle(Disk),
    Writing(JoinHandle<(Disk, Result<(), WriteError>)>),
    /// The blocking thread died with the file (a bug, reported as an I/O error).
    Lost,
}

/// The `.part` with its offsets: the part of the writer that moves to a blocking thread.
struct Disk {
    part: PartFile,
    /// Bytes in the file (written, maybe not yet synced).
    written: u64,
    /// Bytes synced to disk and reported.
    durable: u64,
    stop: CancellationToken,
    report: WriterReport,
}

impl BodyWriter {
    /// A writer appending to `part`, whose first `offset` bytes are already durable.
    pub fn new(
        part: PartFile,
        offset: u64,
        stop: CancellationToken,
        report: WriterReport,
    ) -> BodyWriter {
        BodyWriter {
            checkpoint_every: report.checkpoint_every,
            path: part.path.clone(),
            disk: Slot::Idle(Disk {
                part,
                written: offset,
                durable: offset,
                stop,
                report,
            }),
            gathered: Vec::new(),
            gathered_len: 0,
            durable: offset,
            last_sync: Instant::now(),
            syncing: None,
            in_memory: false,
        }
    }

    /// Marks the `.part` as on a memory-backed file system: the last call (the last batch,
    /// the sync, the rename) then runs on the download's own thread, where none of it can
    /// wait for a device and a hop to a blocking thread would cost more than the calls
    /// (10,000 files of 4 KiB: a quarter less CPU). Batches before the last still go to a
    /// blocking thread, and so does a last call that reads the whole file back (a hash).
    pub fn in_memory(mut self, in_memory: bool) -> BodyWriter {
        self.in_memory = in_memory;
        self
    }

    /// Adds `chunk` to the batch being gathered (it is written by a later [`Self::start`]).
    pub fn gather(&mut self, chunk: Bytes) {
        self.gathered_len += chunk.len();
        self.gathered.push(chunk);
    }

    /// Whether another chunk may be read: no batch is being written, and the one being
    /// gathered is not full or holds the body's end (`rest`: the bytes still to come, when
    /// known; see [`Self::holds_rest`]).
    pub fn has_room(&self, rest: Option<u64>) -> bool {
        (self.gathered_len < BATCH_BYTES || self.holds_rest(rest)) && !self.is_writing()
    }

    /// Whether a batch is on its way to the disk (see [`Self::landed`]).
    pub fn is_writing(&self) -> bool {
        matches!(self.disk, Slot::Writing(_))
    }

    /// Whether [`Self::start`] should write now: bytes are gathered, the disk is free, and
    /// the batch is not holding the body's end for the last call.
    pub fn can_start(&self, rest: Option<u64>) -> bool {
        self.gathered_len > 0 && matches!(self.disk, Slot::Idle(_)) && !self.holds_rest(rest)
    }

    /// Whether the batch being gathered holds the body's end (nothing is still to come): then
    /// it goes to the disk in the last call ([`Self::finish_with`]), and writing earlier would
    /// only add a trip to a blocking thread (a small file is one call in all). Nothing is held
    /// while more is on its way: a held chunk keeps the connection's read buffer alive, so
    /// every read meanwhile takes a fresh one (a slow connection's last 16 KiB held 2-3 of
    /// hyper's 8 KiB buffers for a second, which 1,000 downloads near their end pay at once).
    fn holds_rest(&self, rest: Option<u64>) -> bool {
        rest == Some(0)
    }

    /// Whether the `.part` is on a memory-backed file system (see [`Self::in_memory`]).
    pub fn is_in_memory(&self) -> bool {
        self.in_memory
    }

    /// The `.part` being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The offset last reported durable.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// Hands the gathered batch to a blocking thread, which writes it; when a checkpoint is
    /// due (and none is running), first starts the sync of what is already written beside it.
    /// Does nothing while the previous batch is being written.
    pub fn start(&mut self) {
        let mut disk = match std::mem::replace(&mut self.disk, Slot::Lost) {
            Slot::Idle(disk) => disk,
            busy => {
                self.disk = busy;
                return;
            }
        };
        let batch = std::mem::take(&mut self.gathered);
        self.gathered_len = 0;
        if self.syncing.is_none()
            && disk.written > self.durable
            && self.last_sync.elapsed() >= self.checkpoint_every
        {
            self.last_sync = Instant::now();
            self.syncing = Some(disk.sync_beside());
        }
        self.disk = Slot::Writing(tokio::task::spawn_blocking(move || {
            let result = disk.write(&batch);
            (disk, result)
        }));
    }

    /// Waits until the batch being written (if any) is on disk; its error when it failed, in
    /// which case nothing more may be written. Cancel-safe: use it in `select!`.
    pub async fn landed(&mut self) -> Result<(), WriteError> {
        let Slot::Writing(writing) = &mut self.disk else {
            return Ok(());
        };
        let (disk, result) = match writing.await {
            Ok(landed) => landed,
            Err(e) => {
                self.disk = Slot::Lost;
                return Err(thread_lost(&e));
            }
        };
        // The disk goes back to its slot before the next await, so the future of every
        // download does not keep a second place for it.
        self.disk = Slot::Idle(disk);
        let synced = self.reap_sync(false).await;
        if let Slot::Idle(disk) = &mut self.disk {
            disk.durable = disk.durable.max(self.durable);
            self.durable = disk.durable;
        }
        result.and(synced)
    }

    /// The body ended before the file is complete: writes what was gathered (nothing once the
    /// stop signal fired) and syncs, so everything written is reported durable. Returns the
    /// durable offset and how it ended.
    pub async fn finish(self) -> (u64, Result<(), WriteError>) {
        let in_place = self.in_memory;
        let (durable, result) = self
            .last(in_place, |disk| {
                if disk.written > disk.durable {
                    disk.checkpoint()?;
                }
                if disk.stop.is_cancelled() {
                    return Err(WriteError::Stopped);
                }
                Ok(())
            })
            .await;
        (durable, result.map(|_| ()))
    }

    /// The body is complete: writes what was gathered and then, in the same call (on a
    /// blocking thread, or in place: see [`Self::in_memory`]) and without a checkpoint of its
    /// own, runs `then` on the file, which must sync it before it reports it placed (as
    /// [`finalize`] does). `reads_back`: whether `then` reads the
    /// whole file (to hash it), which is never done in place. Returns the durable offset, and
    /// the file (still locked) with what `then` returned.
    pub async fn finish_with<T: Send + 'static>(
        self,
        reads_back: bool,
        then: impl FnOnce(&mut PartFile) -> T + Send + 'static,
    ) -> (u64, Result<(PartFile, T), WriteError>) {
        let in_place = self.in_memory && !reads_back;
        let (durable, result) = self.last(in_place, |disk| Ok(then(&mut disk.part))).await;
        (durable, result.map(|(disk, out)| (disk.part, out)))
    }

    /// Takes the result of the checkpoint sync beside the writes: only when it is over, or
    /// (`wait`) once it is. Its error is the writer's.
    async fn reap_sync(&mut self, wait: bool) -> Result<(), WriteError> {
        let Some(syncing) = self.syncing.take_if(|s| wait || s.is_finished()) else {
            return Ok(());
        };
        let upto = syncing.await.unwrap_or_else(|e| Err(thread_lost(&e)))?;
        self.durable = self.durable.max(upto);
        Ok(())
    }

    /// Waits for the batch in flight and the checkpoint sync, then writes the gathered batch
    /// and runs `then`, all in one blocking call (or right here, `in_place`). Returns the
    /// durable offset, the disk and `then`'s result.
    async fn last<T: Send + 'static>(
        mut self,
        in_place: bool,
        then: impl FnOnce(&mut Disk) -> Result<T, WriteError> + Send + 'static,
    ) -> (u64, Result<(Disk, T), WriteError>) {
        if let Err(e) = self.landed().await {
            return (self.durable, Err(e));
        }
        if let Err(e) = self.reap_sync(true).await {
            return (self.durable, Err(e));
        }
        let Slot::Idle(mut disk) = std::mem::replace(&mut self.disk, Slot::Lost) else {
            return (
                self.durable,
                Err(WriteError::Io(std::io::Error::other(
                    "the writer lost its file",
                ))),
            );
        };
        disk.durable = disk.durable.max(self.durable);
        let batch = std::mem::take(&mut self.gathered);
        let work = move || {
            let result = disk.write(&batch).and_then(|()| then(&mut disk));
            (disk.durable, result.map(|out| (disk, out)))
        };
        if in_place {
            return work();
        }
        let joined = tokio::task::spawn_blocking(work).await;
        joined.unwrap_or_else(|e| (self.durable, Err(thread_lost(&e))))
    }
}

impl Disk {
    /// Appends `batch` (stopping before the next `writev` once the stop signal fires). A
    /// failed write keeps, durably, what reached the file (a disk-full write may be partial);
    /// a stop syncs what was written.
    fn write(&mut self, batch: &[Bytes]) -> Result<(), WriteError> {
        let (n, result) = write_batch(&mut self.part.file, batch, &self.stop);
        self.written += n;
        match result {
            Ok(()) => {
                if !batch.is_empty() {
                    kill_point("write");
                }
                Ok(())
            }
            Err(WriteError::Stopped) => {
                self.checkpoint()?;
                Err(WriteError::Stopped)
            }
            Err(WriteError::Io(e)) => {
                if let Ok(len) = self.part.len()
                    && self.part.file.set_len(len).is_ok()
                {
                    self.written = len;
                    let _ = self.checkpoint();
                }
                Err(WriteError::Io(e))
            }
        }
    }

    /// Starts a checkpoint on another blocking thread, through a second handle of the file:
    /// it syncs and then reports as durable the bytes written so far, while the writes go on.
    fn sync_beside(&self) -> JoinHandle<Result<u64, WriteError>> {
        let file = self.part.file.try_clone();
        let upto = self.written;
        let (events, task, index) = (
            self.report.events.clone(),
            self.report.task,
            self.report.index,
        );
        tokio::task::spawn_blocking(move || {
            file.and_then(|f| f.sync_data()).map_err(WriteError::Io)?;
            kill_point("synced");
            let _ = events.send(EngineEvent::Checkpoint {
                task,
                index,
                durable: upto,
            });
            Ok(upto)
        })
    }

    /// Syncs the data, then reports everything written as durable.
    fn checkpoint(&mut self) -> Result<(), WriteError> {
        self.part.file.sync_data().map_err(WriteError::Io)?;
        kill_point("synced");
        self.durable = self.written;
        let _ = self.report.events.send(EngineEvent::Checkpoint {
            task: self.report.task,
            index: self.report.index,
            durable: self.durable,
        });
        Ok(())
    }
}

/// Writes `batch` at the file's position with as few `writev` calls as it takes, checking
/// `stop` before each. Returns the bytes written and how it ended.
fn write_batch(
    file: &mut File,
    batch: &[Bytes],
    stop: &CancellationToken,
) -> (u64, Result<(), WriteError>) {
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|chunk| IoSlice::new(chunk)).collect();
    let mut rest = &mut slices[..];
    let mut written = 0;
    while !rest.is_empty() {
        if stop.is_cancelled() {
            return (written, Err(WriteError::Stopped));
        }
        match file.write_vectored(rest) {
            Ok(0) => return (written, Err(WriteError::Io(ErrorKind::WriteZero.into()))),
            Ok(n) => {
                written += n as u64;
                IoSlice::advance_slices(&mut rest, n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(WriteError::Io(e))),
        }
    }
    (written, Ok(()))
}

fn thread_lost(e: &tokio::task::JoinError) -> WriteError {
    WriteError::Io(std::io::Error::other(format!(
        "the writer thread failed: {e}"
    )))
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
    use futures_util::FutureExt;

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

    /// Where the last call of a writer ran: on the caller's thread or elsewhere.
    async fn last_call_thread(in_memory: bool, reads_back: bool) -> std::thread::ThreadId {
        let dir = tempfile::tempdir().unwrap();
        let part = create_new(&dir.path().join("f.bin")).unwrap();
        let (report, _inbox) = reporter();
        let mut writer =
            BodyWriter::new(part, 0, CancellationToken::new(), report).in_memory(in_memory);
        writer.gather(Bytes::from_static(b"body"));
        let (durable, result) = writer
            .finish_with(reads_back, |_| std::thread::current().id())
            .await;
        assert_eq!(durable, 0, "no checkpoint of its own");
        let (part, ran_on) = result.unwrap();
        assert_eq!(part.len().unwrap(), 4, "the last batch was written first");
        ran_on
    }

    #[tokio::test]
    async fn the_last_call_runs_in_place_only_in_memory_and_without_a_read_back() {
        let here = std::thread::current().id();
        assert_eq!(last_call_thread(true, false).await, here);
        assert_ne!(
            last_call_thread(true, true).await,
            here,
            "a hash reads the file"
        );
        assert_ne!(
            last_call_thread(false, false).await,
            here,
            "a disk may block"
        );
    }

    fn reporter() -> (WriterReport, mpsc::UnboundedReceiver<EngineEvent>) {
        let (events, inbox) = mpsc::unbounded_channel();
        let report = WriterReport {
            task: TaskId(1),
            index: 0,
            events,
            checkpoint_every: Duration::from_secs(60),
        };
        (report, inbox)
    }

    #[tokio::test]
    async fn a_full_disk_stops_the_writer_with_the_os_error() {
        // /dev/full answers every write with ENOSPC, like a disk that just filled up.
        let Ok(file) = OpenOptions::new().read(true).write(true).open("/dev/full") else {
            return;
        };
        let part = PartFile {
            file,
            path: PathBuf::from("/dev/full"),
        };
        let (report, _inbox) = reporter();
        let mut writer = BodyWriter::new(part, 0, CancellationToken::new(), report);
        writer.gather(Bytes::from_static(b"data"));
        let (durable, result) = writer.finish().await;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_stuck_disk_bounds_what_a_download_buffers() {
        // A FIFO nobody reads is a disk that stops taking data once its pipe buffer is full:
        // the writer must then refuse more chunks instead of buffering the whole body.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stuck");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        // Read-write, so opening needs no reader; the test reads it only at the end.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let mut drain = file.try_clone().unwrap();
        let part = PartFile { file, path: fifo };
        let (report, _inbox) = reporter();
        let mut writer = BodyWriter::new(part, 0, CancellationToken::new(), report);
        let chunk = Bytes::from(vec![7u8; 16 * 1024]);
        let mut accepted = 0usize;
        // The way `stream_body` drives it: gather while there is room, start a batch when
        // the disk is free, and otherwise take no more until the batch in flight has landed.
        while accepted < 64 << 20 {
            if writer.has_room(None) {
                writer.gather(chunk.clone());
                accepted += chunk.len();
            } else if writer.can_start(None) {
                writer.start();
            } else if writer.landed().now_or_never().is_none() {
                break;
            }
        }
        // What the pipe took (64 KiB on Linux), plus one batch with the chunk that filled it.
        let bound = (64 << 10) + BATCH_BYTES + chunk.len();
        assert!(
            accepted <= bound,
            "took {accepted} bytes into memory with the disk stuck (bound {bound})"
        );
        assert!(writer.is_writing(), "a batch is stuck on the full pipe");
        // Unstick the disk: read everything back while the writer finishes.
        let reader = std::thread::spawn(move || {
            let mut got = 0usize;
            let mut buf = vec![0u8; 1 << 16];
            while got < accepted {
                got += drain.read(&mut buf).unwrap();
            }
            got
        });
        // (A FIFO cannot be synced: finish as a complete body, whose sync is `then`'s.)
        let (_, result) = writer.finish_with(false, |_| ()).await;
        assert!(result.is_ok(), "{:?}", result.err());
        assert_eq!(
            reader.join().unwrap(),
            accepted,
            "every accepted byte written"
        );
    }

    fn checkpoints(inbox: &mut mpsc::UnboundedReceiver<EngineEvent>) -> Vec<u64> {
        std::iter::from_fn(|| inbox.try_recv().ok())
            .filter_map(|e| match e {
                EngineEvent::Checkpoint { durable, .. } => Some(durable),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn an_unfinished_body_is_synced_and_reported_a_complete_one_is_left_to_then() {
        let dir = tempfile::tempdir().unwrap();
        let (report, mut inbox) = reporter();
        let part = create_new(&dir.path().join("cut.bin")).unwrap();
        let mut writer = BodyWriter::new(part, 0, CancellationToken::new(), report);
        writer.gather(Bytes::from_static(b"first "));
        writer.start();
        writer.landed().await.unwrap();
        writer.gather(Bytes::from_static(b"second"));
        let (durable, result) = writer.finish().await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(durable, 12);
        assert_eq!(checkpoints(&mut inbox), vec![12], "synced once, at the end");
        assert_eq!(
            std::fs::read(dir.path().join("cut.bin.part")).unwrap(),
            b"first second"
        );

        let (report, mut inbox) = reporter();
        let part = create_new(&dir.path().join("whole.bin")).unwrap();
        let mut writer = BodyWriter::new(part, 0, CancellationToken::new(), report);
        writer.gather(Bytes::from_static(b"all of it"));
        let (durable, result) = writer.finish_with(false, |part| part.len().unwrap()).await;
        let (_part, len_seen_by_then) = result.unwrap();
        assert_eq!(len_seen_by_then, 9, "`then` runs after the last write");
        assert_eq!(durable, 0, "no checkpoint of its own: `then` syncs");
        assert!(checkpoints(&mut inbox).is_empty());
    }

    #[tokio::test]
    async fn a_checkpoint_syncs_beside_the_writes_and_reports_what_was_written_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut report, mut inbox) = reporter();
        report.checkpoint_every = Duration::ZERO;
        let part = create_new(&dir.path().join("beside.bin")).unwrap();
        let mut writer = BodyWriter::new(part, 0, CancellationToken::new(), report);
        for _ in 0..5 {
            writer.gather(Bytes::from_static(b"0123456789"));
            writer.start();
            writer.landed().await.unwrap();
        }
        let (durable, result) = writer.finish().await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(durable, 50);
        let reported = checkpoints(&mut inbox);
        // The second batch started the first sync, of the 10 bytes written before it; the
        // last one is the end's, after every sync beside the writes was over.
        assert!(reported.len() >= 2, "{reported:?}");
        assert_eq!(reported.first(), Some(&10), "{reported:?}");
        assert_eq!(reported.last(), Some(&50), "{reported:?}");
        assert!(
            reported.windows(2).all(|w| w[0] < w[1]),
            "each checkpoint moves the durable offset on: {reported:?}"
        );
    }

    #[tokio::test]
    async fn after_the_stop_signal_nothing_more_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (report, mut inbox) = reporter();
        let part = create_new(&dir.path().join("s.bin")).unwrap();
        let stop = CancellationToken::new();
        let mut writer = BodyWriter::new(part, 0, stop.clone(), report);
        writer.gather(Bytes::from_static(b"kept"));
        writer.start();
        writer.landed().await.unwrap();
        stop.cancel();
        writer.gather(Bytes::from_static(b" dropped"));
        let (durable, result) = writer.finish_with(false, |_| ()).await;
        assert!(
            matches!(result, Err(WriteError::Stopped)),
            "{:?}",
            result.err()
        );
        assert_eq!(durable, 4, "what was written is synced");
        assert_eq!(checkpoints(&mut inbox), vec![4]);
        assert_eq!(
            std::fs::read(dir.path().join("s.bin.part")).unwrap(),
            b"kept"
        );
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
