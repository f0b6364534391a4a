//! One task: its files in order (finished ones skipped), each retried with exponential backoff
//! and jitter, then the fenced final state. Reports progress as [`EngineEvent`]s.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::download::{FileError, fetch};
use super::event::{EngineEvent, Finish};
use super::placed::{self, Unrecorded};
use super::space::SpaceBudget;
use crate::config::RetryPolicy;
use crate::model::{FileEntry, Lease, PlacedFile, Task};
use crate::store::{Actor, Outcome, Store, StoreActor, StoreError};
use crate::text::panic_message;

/// Tries to record a task's end when the database refuses the write (busy, full).
const FINISH_TRIES: u32 = 8;
const FINISH_RETRY_FIRST: Duration = Duration::from_millis(250);
const FINISH_RETRY_MAX: Duration = Duration::from_secs(5);

/// Why a worker was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An operator cancelled the task.
    Cancel = 1,
    /// Another claim replaced ours: write nothing more.
    Lost = 2,
    /// This process is shutting down; leave the task resumable.
    Shutdown = 3,
}

/// A cancellation token that also says why.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    pub token: CancellationToken,
    reason: Arc<AtomicU8>,
}

impl StopSignal {
    /// Fires the signal; the first reason given wins.
    pub fn stop(&self, reason: StopReason) {
        let _ = self
            .reason
            .compare_exchange(0, reason as u8, Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        match self.reason.load(Ordering::SeqCst) {
            1 => Some(StopReason::Cancel),
            2 => Some(StopReason::Lost),
            3 => Some(StopReason::Shutdown),
            _ => None,
        }
    }
}

/// Everything one task's worker needs.
#[derive(Clone)]
pub struct TaskCtx {
    pub lease: Lease,
    pub dest_dir: String,
    pub client: super::client::Client,
    pub store: StoreActor,
    pub actor: Actor,
    pub stop: StopSignal,
    pub events: mpsc::UnboundedSender<EngineEvent>,
    pub checkpoint_interval: Duration,
    pub stall_timeout: Duration,
    pub max_file_size: u64,
    pub retry: RetryPolicy,
    /// The project's extra request headers.
    pub headers: hyper::header::HeaderMap,
    /// Files of one task transferred at once.
    pub files_in_parallel: usize,
    /// Placed files whose record rides with the task's next write.
    pub unrecorded: Unrecorded,
    /// The free space of `dest_dir`, read once for the files that start together.
    pub space: SpaceBudget,
}

impl TaskCtx {
    /// Runs the fenced write `f` on the store thread, in one transaction with the records of
    /// the files placed since the last write. False when the claim is gone. When the write
    /// fails, those records wait for the next one.
    pub async fn write<F>(&self, f: F) -> Result<bool, StoreError>
    where
        F: FnOnce(&mut Store) -> Result<bool, StoreError> + Send + 'static,
    {
        let lease = self.lease;
        self.write_placed(move |s, files| {
            if files.is_empty() {
                return f(s);
            }
            s.atomic(|s| {
                if placed::record(s, lease, files, chrono::Utc::now())? {
                    f(s)
                } else {
                    Ok(false)
                }
            })
        })
        .await
    }

    /// Runs the fenced write `f` on the store thread with the files placed since the last
    /// write, which `f` records itself (a write that already checks the fence and recounts
    /// the task records them for less). When the write fails, they wait for the next one.
    pub async fn write_placed<F>(&self, f: F) -> Result<bool, StoreError>
    where
        F: FnOnce(&mut Store, &[PlacedFile]) -> Result<bool, StoreError> + Send + 'static,
    {
        let carried = self.unrecorded.take();
        let files = carried.clone();
        let result = self.store.call(move |s| f(s, &files)).await;
        if result.is_err() {
            self.unrecorded.restore(carried);
        }
        result
    }

    /// Records now the files placed since the last write (a write with nothing of its own).
    /// False when the claim is gone.
    pub async fn record_placed(&self) -> Result<bool, StoreError> {
        self.write(|_| Ok(true)).await
    }
}

/// Announces a claimed task's start (before it is spawned, so the task's own future does not
/// hold the claimed row for the whole download).
pub fn announce(ctx: &TaskCtx, task: &Task, files: &[FileEntry]) {
    let already: u64 = files.iter().filter(|f| f.done).map(|f| f.bytes_done).sum();
    let _ = ctx.events.send(EngineEvent::Started {
        lease: ctx.lease,
        project: task.project.clone(),
        name: task.name.clone(),
        files_total: files.len() as u32,
        bytes_already_done: already,
        at: Instant::now(),
    });
}

/// Runs a claimed task (announced) to its end and records that end (fenced). The caller's
/// future owns `ctx`: an `async fn` keeps an owned argument twice, as argument and as local.
pub async fn run_task(ctx: &TaskCtx, mut files: Vec<FileEntry>) -> Finish {
    let result = fetch_all_caught(ctx, &mut files).await;
    let offsets: Vec<(u32, u64)> = files
        .iter()
        .filter(|f| !f.done)
        .map(|f| (f.index, f.bytes_done))
        .collect();
    let (finish, outcome) = match result {
        Ok(()) => (Finish::Completed, Some(Outcome::Completed)),
        Err(FileError::Fatal(message)) => {
            tracing::warn!("failed: {message}");
            (
                Finish::Failed(message.clone()),
                Some(Outcome::Failed(message)),
            )
        }
        Err(FileError::Retry { message, .. }) => (
            Finish::Failed(message.clone()),
            Some(Outcome::Failed(message)),
        ),
        Err(FileError::Stopped) => match ctx.stop.reason() {
            Some(StopReason::Cancel) => (
                Finish::Cancelled,
                Some(Outcome::Cancelled("cancelled on operator request".into())),
            ),
            Some(StopReason::Shutdown) => (
                Finish::Interrupted,
                Some(Outcome::Interrupted(
                    "worker stopped; the task resumes from its saved offset".into(),
                )),
            ),
            Some(StopReason::Lost) | None => (Finish::Lost, None),
        },
    };
    let finish = match outcome {
        Some(outcome) => match record_finish(ctx, outcome, offsets).await {
            Some(false) => Finish::Lost,
            Some(true) | None => finish,
        },
        None => finish,
    };
    if finish == Finish::Lost {
        tracing::warn!(
            "lease lost: task {} was taken over; stopped writing",
            ctx.lease.task
        );
    }
    let _ = ctx.events.send(EngineEvent::Finished {
        task: ctx.lease.task,
        outcome: finish.clone(),
    });
    finish
}

/// Tries to write the end of the claim with the files placed since the last write (the
/// end's own statements cover them: one fence, one recount), riding out a busy or full
/// database for a while (`None`: it could not be recorded; the task turns stale and is
/// recovered later, and its next attempt finds the placed files).
async fn record_finish(ctx: &TaskCtx, outcome: Outcome, offsets: Vec<(u32, u64)>) -> Option<bool> {
    let mut delay = FINISH_RETRY_FIRST;
    for _ in 0..FINISH_TRIES {
        let (lease, by, outcome, offsets) = (
            ctx.lease,
            ctx.actor.clone(),
            outcome.clone(),
            offsets.clone(),
        );
        let now = chrono::Utc::now();
        match ctx
            .write_placed(move |s, placed| s.finish(lease, &outcome, &offsets, placed, &by, now))
            .await
        {
            Ok(held) => return Some(held),
            Err(e) => {
                tracing::error!(
                    "could not record the end of task {}: {e}; trying again",
                    lease.task
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(FINISH_RETRY_MAX);
            }
        }
    }
    None
}

/// [`fetch_all`], with a panic in it (a bug in haul) turned into the task's failure, so the
/// task ends recorded instead of staying `running` under fresh heartbeats forever. The files'
/// state is not trusted after a panic: they are dropped, so no offset is reported and the
/// ones the heartbeats saved stay.
async fn fetch_all_caught(ctx: &TaskCtx, files: &mut Vec<FileEntry>) -> Result<(), FileError> {
    match AssertUnwindSafe(fetch_all(ctx, files)).catch_unwind().await {
        Ok(verdict) => verdict,
        Err(panic) => {
            files.clear();
            let message = format!("internal error: {}", panic_message(panic.as_ref()));
            tracing::error!("task {}: {message}", ctx.lease.task);
            Err(FileError::Fatal(message))
        }
    }
}

/// Fetches the unfinished files, up to `files_in_parallel` at once, updating them. Returns the
/// task's verdict: stopped wins over a failure, a failure over success.
async fn fetch_all(ctx: &TaskCtx, files: &mut Vec<FileEntry>) -> Result<(), FileError> {
    let pending = files.iter().filter(|f| !f.done).count();
    ctx.unrecorded.expect(pending);
    // One file (most tasks) is fetched where it is, alone: a copy would be held across the
    // whole download, and a stream of one would hold its future twice (the stream keeps a
    // spare slot the size of one); 1,000 downloads pay either 1,000 times.
    if pending == 1
        && let Some(file) = files.iter_mut().find(|f| !f.done)
    {
        return fetch_tracked(ctx, file).await;
    }
    let (done, pending): (Vec<FileEntry>, Vec<FileEntry>) =
        std::mem::take(files).into_iter().partition(|f| f.done);
    let outcomes: Vec<(FileEntry, Result<(), FileError>)> = futures_util::stream::iter(pending)
        .map(|mut file| async move {
            let result = fetch_tracked(ctx, &mut file).await;
            (file, result)
        })
        .buffer_unordered(ctx.files_in_parallel.max(1))
        .collect()
        .await;
    *files = done;
    let mut verdict = Ok(());
    for (file, result) in outcomes {
        verdict = match (verdict, result) {
            (Err(FileError::Stopped), _) | (_, Err(FileError::Stopped)) => Err(FileError::Stopped),
            (Err(first), _) => Err(first),
            (Ok(()), other) => other,
        };
        files.push(file);
    }
    files.sort_by_key(|f| f.index);
    verdict
}

/// One file with its retries, counted in flight for the placed-file records (`Unrecorded`).
async fn fetch_tracked(ctx: &TaskCtx, file: &mut FileEntry) -> Result<(), FileError> {
    ctx.unrecorded.start();
    let result = fetch_with_retries(ctx, file).await;
    ctx.unrecorded.end();
    result
}

async fn fetch_with_retries(ctx: &TaskCtx, file: &mut FileEntry) -> Result<(), FileError> {
    let mut tries = 0u32;
    loop {
        tries += 1;
        let error = match fetch(ctx, file).await {
            Ok(()) => return Ok(()),
            Err(FileError::Retry {
                message,
                retry_after,
            }) => (message, retry_after),
            Err(other) => return Err(other),
        };
        let (message, retry_after) = error;
        if tries >= ctx.retry.max_attempts {
            return Err(FileError::Fatal(format!(
                "{message} (gave up after {tries} tries)"
            )));
        }
        let delay = backoff(&ctx.retry, tries, retry_after);
        let note = format!(
            "try {tries}/{} failed: {message}; retrying in {:.1} s",
            ctx.retry.max_attempts,
            delay.as_secs_f64()
        );
        tracing::info!("{note}");
        let (lease, by, text) = (ctx.lease, ctx.actor.clone(), note.clone());
        let held = ctx
            .write(move |s| s.note_retry(lease, &text, &by, chrono::Utc::now()))
            .await
            .unwrap_or(true);
        if !held {
            ctx.stop.stop(StopReason::Lost);
            return Err(FileError::Stopped);
        }
        let _ = ctx.events.send(EngineEvent::Retrying {
            task: ctx.lease.task,
            reason: message,
            delay,
        });
        tokio::select! {
            _ = ctx.stop.token.cancelled() => return Err(FileError::Stopped),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Delay before try `tries + 1`: `Retry-After` when the server gave one (capped), else
/// exponential from the base with equal jitter, capped at the maximum.
pub fn backoff(policy: &RetryPolicy, tries: u32, retry_after: Option<Duration>) -> Duration {
    let cap = Duration::from_millis(policy.max_delay_ms);
    if let Some(after) = retry_after {
        return after.min(cap);
    }
    let exp = policy
        .base_delay_ms
        .saturating_mul(1u64 << tries.saturating_sub(1).min(20))
        .min(policy.max_delay_ms);
    let half = exp / 2;
    Duration::from_millis(
        half + rand::thread_rng()
            .gen_range(0..=half.max(1))
            .min(exp - half),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_its_bounds_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay_ms: 100,
            max_delay_ms: 1000,
        };
        for tries in 1..10 {
            let d = backoff(&policy, tries, None).as_millis() as u64;
            let exp = (100u64 << (tries - 1)).min(1000);
            assert!(d >= exp / 2 && d <= exp, "try {tries}: {d} ms");
        }
        assert_eq!(
            backoff(&policy, 1, Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
        assert_eq!(
            backoff(&policy, 1, Some(Duration::from_secs(60))),
            Duration::from_millis(1000)
        );
    }

    #[test]
    fn the_first_stop_reason_wins() {
        let stop = StopSignal::default();
        assert_eq!(stop.reason(), None);
        stop.stop(StopReason::Lost);
        stop.stop(StopReason::Cancel);
        assert_eq!(stop.reason(), Some(StopReason::Lost));
        assert!(stop.token.is_cancelled());
    }
}
