//! Writing a body into its `.part`: chunks gathered into batches that short blocking calls
//! write, checkpoints that sync beside the writes before they report a durable offset, and a
//! last call (the finish) that runs after the last batch.

use std::fs::File;
use std::io::{ErrorKind, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::event::EngineEvent;
use super::fault::kill_point;
use super::part::PartFile;
use crate::model::TaskId;

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
    /// The `.part` is on a memory-backed file system (see [`super::part::Volume::in_memory`]): the last
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::part::create_new;
    use futures_util::FutureExt;
    use std::fs::OpenOptions;
    use std::io::Read;

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
}
