//! The snapshot feed: a blocking thread that owns the [`SnapshotSource`] (and so its read-only
//! connection), rebuilds a snapshot when the database, the engine or the view request changed,
//! and publishes it only when it differs from the last one. Idle, it does one cheap
//! `PRAGMA data_version` per refresh period and nothing else.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::model::{Source, Status, TaskId};
use crate::snapshot::{ActiveRow, Snapshot, SnapshotSource, ViewRequest};

/// Verdicts depend on the clock and on owners' locks, which change no database row: while
/// tasks are active they are judged again this often even when nothing was written.
const REASSESS_EVERY: Duration = Duration::from_secs(1);

/// Starts the feed. It ends when `requests` is closed or `publish` returns false.
pub fn spawn(
    mut source: SnapshotSource,
    requests: Receiver<ViewRequest>,
    refresh: Duration,
    publish: impl Fn(Arc<Snapshot>) -> bool + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("haul-snapshot".into())
        .spawn(move || {
            let mut request: Option<ViewRequest> = None;
            let mut last = Arc::new(Snapshot::default());
            let mut version = None;
            let mut built_at = Instant::now();
            let mut rates = RateEstimator::default();
            loop {
                let asked = match requests.recv_timeout(refresh) {
                    Ok(first) => Some(requests.try_iter().last().unwrap_or(first)),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                };
                let forced = asked.is_some();
                if asked.is_some() {
                    request = asked;
                }
                let Some(request) = &request else { continue };
                let now_version = source.data_version().ok();
                let live = !last.active.is_empty() || !last.attention.is_empty();
                let due = forced
                    || now_version.is_none()
                    || now_version != version
                    || source.engine_changed()
                    || (live && built_at.elapsed() >= REASSESS_EVERY);
                if !due {
                    continue;
                }
                version = now_version;
                built_at = Instant::now();
                let snapshot = match source.build(request, Utc::now()) {
                    Ok(mut s) => {
                        rates.fill(&mut s.active, Instant::now());
                        s
                    }
                    Err(e) => Snapshot {
                        error: Some(format!("refresh failed: {e}")),
                        ..(*last).clone()
                    },
                };
                if snapshot != *last {
                    last = Arc::new(snapshot);
                    if !publish(Arc::clone(&last)) {
                        return;
                    }
                }
            }
        })
}

/// Speeds of tasks run elsewhere, estimated from how their stored bytes move.
#[derive(Debug, Default)]
struct RateEstimator {
    seen: HashMap<TaskId, (Instant, u64, Option<f64>)>,
}

impl RateEstimator {
    fn fill(&mut self, rows: &mut [ActiveRow], now: Instant) {
        let present: HashSet<TaskId> = rows.iter().map(|r| r.id).collect();
        self.seen.retain(|id, _| present.contains(id));
        for row in rows.iter_mut().filter(|r| r.source == Source::Database) {
            let entry = self
                .seen
                .entry(row.id)
                .or_insert((now, row.bytes_done, None));
            let elapsed = now.saturating_duration_since(entry.0).as_secs_f64();
            if row.bytes_done != entry.1 && elapsed >= 0.5 {
                let rate = row.bytes_done.saturating_sub(entry.1) as f64 / elapsed;
                *entry = (now, row.bytes_done, Some(rate));
            } else if row.bytes_done == entry.1 && elapsed >= 5.0 {
                entry.2 = Some(0.0);
            }
            row.speed_bps = entry.2.filter(|_| row.status == Status::Running);
            row.eta_secs = match (row.speed_bps, row.bytes_total) {
                (Some(speed), Some(total)) if speed > 1.0 => {
                    Some((total.saturating_sub(row.bytes_done) as f64 / speed) as u64)
                }
                _ => None,
            };
        }
    }
}
