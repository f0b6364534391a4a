//! What workers report, as values, and the one reducer that folds them into this process's
//! live view of its tasks. Unit-tested without tokio.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::model::{Lease, TaskId};

/// One report from a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    Started {
        lease: Lease,
        project: String,
        name: String,
        files_total: u32,
        /// Bytes of files finished in earlier attempts.
        bytes_already_done: u64,
        at: Instant,
    },
    /// A file's transfer begins at `offset` (a resume when > 0).
    FileStarted {
        task: TaskId,
        index: u32,
        offset: u64,
        total: Option<u64>,
        at: Instant,
    },
    /// Bytes of file `index` received so far.
    Progress {
        task: TaskId,
        index: u32,
        offset: u64,
        at: Instant,
    },
    /// Bytes of a file synced to disk: safe to record as the durable offset.
    Checkpoint {
        task: TaskId,
        index: u32,
        durable: u64,
    },
    FileDone {
        task: TaskId,
        index: u32,
        bytes: u64,
    },
    /// A transfer failed and will be tried again after `delay`.
    Retrying {
        task: TaskId,
        reason: String,
        delay: Duration,
    },
    Finished {
        task: TaskId,
        outcome: Finish,
    },
}

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Completed,
    Failed(String),
    Cancelled,
    /// Stopped by shutdown; resumable.
    Interrupted,
    /// The claim was taken over; nothing more was written.
    Lost,
}

/// What a task is doing, as this process sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Starting,
    Transferring { index: u32 },
    Retrying { reason: String, until: Instant },
    Finished(Finish),
}

/// The live view of one task run by this process.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    pub lease: Lease,
    pub project: String,
    pub name: String,
    pub phase: Phase,
    pub files_total: u32,
    pub files_done: u32,
    /// Bytes of finished files plus the current file's received bytes.
    pub bytes_received: u64,
    bytes_finished_files: u64,
    pub current_total: Option<u64>,
    /// Files being transferred: offset received and size when known.
    in_flight: BTreeMap<u32, (u64, Option<u64>)>,
    /// Durable offsets not yet written to the database: `(file index, offset)`.
    pub pending_durable: Vec<(u32, u64)>,
    /// Bytes arrived since the last heartbeat.
    pub progressed: bool,
    /// Bytes per second, smoothed.
    pub speed_bps: f64,
    last_sample: Option<(Instant, u64)>,
    /// A progress milestone to log at the next heartbeat.
    pub pending_milestone: Option<String>,
    last_quarter: u8,
    pub started: Instant,
}

/// How much a new speed sample weighs against the smoothed value.
const SPEED_SMOOTHING: f64 = 0.3;
/// Samples closer together than this are merged, so speed does not jitter.
const MIN_SAMPLE_GAP: Duration = Duration::from_millis(200);

impl TaskView {
    /// The view created by a `Started` event.
    pub fn new(
        lease: Lease,
        project: String,
        name: String,
        files_total: u32,
        bytes_already_done: u64,
        at: Instant,
    ) -> TaskView {
        TaskView {
            lease,
            project,
            name,
            phase: Phase::Starting,
            files_total,
            files_done: 0,
            bytes_received: bytes_already_done,
            bytes_finished_files: bytes_already_done,
            current_total: None,
            in_flight: BTreeMap::new(),
            pending_durable: Vec::new(),
            progressed: false,
            speed_bps: 0.0,
            last_sample: None,
            pending_milestone: None,
            last_quarter: 0,
            started: at,
        }
    }

    /// Seconds left at the current speed, when the size is known.
    pub fn eta_secs(&self) -> Option<u64> {
        let total = self.current_total?;
        let current: u64 = self.in_flight.values().map(|(offset, _)| offset).sum();
        (self.speed_bps > 1.0)
            .then(|| (total.saturating_sub(current) as f64 / self.speed_bps) as u64)
    }

    /// Recomputes the received bytes and the in-flight size from the files in flight.
    fn refresh_in_flight(&mut self) {
        let received: u64 = self.in_flight.values().map(|(offset, _)| offset).sum();
        let received = self.bytes_finished_files + received;
        if received > self.bytes_received {
            self.progressed = true;
        }
        self.bytes_received = received;
        self.current_total = self
            .in_flight
            .values()
            .map(|(_, total)| *total)
            .sum::<Option<u64>>()
            .filter(|_| !self.in_flight.is_empty());
    }

    /// Folds one event into the view.
    pub fn apply(&mut self, event: &EngineEvent) {
        match event {
            EngineEvent::Started { .. } => {}
            EngineEvent::FileStarted {
                index,
                offset,
                total,
                at,
                ..
            } => {
                self.phase = Phase::Transferring { index: *index };
                self.in_flight.insert(*index, (*offset, *total));
                // Bytes resumed from disk are not new progress.
                let progressed = self.progressed;
                self.refresh_in_flight();
                self.progressed = progressed;
                if self.last_sample.is_none() {
                    self.last_sample = Some((*at, self.bytes_received));
                }
            }
            EngineEvent::Progress {
                index, offset, at, ..
            } => {
                if let Some(entry) = self.in_flight.get_mut(index) {
                    entry.0 = *offset;
                }
                self.refresh_in_flight();
                self.sample_speed(*at);
                self.note_milestone();
            }
            EngineEvent::Checkpoint { index, durable, .. } => {
                self.pending_durable.retain(|(i, _)| i != index);
                self.pending_durable.push((*index, *durable));
            }
            EngineEvent::FileDone { index, bytes, .. } => {
                self.pending_durable.retain(|(i, _)| i != index);
                self.in_flight.remove(index);
                self.files_done += 1;
                self.bytes_finished_files += bytes;
                self.refresh_in_flight();
                self.progressed = true;
            }
            EngineEvent::Retrying { reason, delay, .. } => {
                let now = Instant::now();
                self.phase = Phase::Retrying {
                    reason: reason.clone(),
                    until: now + *delay,
                };
                self.speed_bps = 0.0;
            }
            EngineEvent::Finished { outcome, .. } => {
                self.phase = Phase::Finished(outcome.clone());
                self.speed_bps = 0.0;
            }
        }
    }

    fn sample_speed(&mut self, at: Instant) {
        let Some((then, bytes_then)) = self.last_sample else {
            self.last_sample = Some((at, self.bytes_received));
            return;
        };
        let gap = at.saturating_duration_since(then);
        if gap < MIN_SAMPLE_GAP {
            return;
        }
        let rate = self.bytes_received.saturating_sub(bytes_then) as f64 / gap.as_secs_f64();
        self.speed_bps = if self.speed_bps == 0.0 {
            rate
        } else {
            SPEED_SMOOTHING * rate + (1.0 - SPEED_SMOOTHING) * self.speed_bps
        };
        self.last_sample = Some((at, self.bytes_received));
    }

    fn note_milestone(&mut self) {
        let Some(total) = self
            .current_total
            .filter(|t| *t > 0 && self.files_total == 1)
        else {
            return;
        };
        let quarter = (self.bytes_received.saturating_mul(4) / total).min(4) as u8;
        if quarter > self.last_quarter && quarter < 4 {
            self.last_quarter = quarter;
            self.pending_milestone = Some(format!("{}% of {} bytes", quarter * 25, total));
        }
    }

    /// Takes what the next heartbeat must write, resetting the per-tick flags.
    pub fn take_tick(&mut self) -> (Vec<(u32, u64)>, bool, Option<String>) {
        let durable = std::mem::take(&mut self.pending_durable);
        let progressed = std::mem::replace(&mut self.progressed, false);
        (durable, progressed, self.pending_milestone.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attempt;

    fn view(at: Instant) -> TaskView {
        let lease = Lease {
            task: TaskId(1),
            attempt: Attempt(1),
        };
        TaskView::new(lease, "p".into(), "a.bin".into(), 1, 0, at)
    }

    #[test]
    fn progress_moves_bytes_speed_and_milestones() {
        let t0 = Instant::now();
        let mut v = view(t0);
        let task = TaskId(1);
        v.apply(&EngineEvent::FileStarted {
            task,
            index: 0,
            offset: 0,
            total: Some(1000),
            at: t0,
        });
        v.apply(&EngineEvent::Progress {
            task,
            index: 0,
            offset: 300,
            at: t0 + Duration::from_secs(1),
        });
        assert_eq!(v.bytes_received, 300);
        assert!((v.speed_bps - 300.0).abs() < 1.0, "{}", v.speed_bps);
        assert_eq!(v.eta_secs(), Some(2));
        let (durable, progressed, milestone) = v.take_tick();
        assert!(durable.is_empty());
        assert!(progressed);
        assert_eq!(milestone.as_deref(), Some("25% of 1000 bytes"));
        let (_, progressed, milestone) = v.take_tick();
        assert!(!progressed);
        assert_eq!(milestone, None);
    }

    #[test]
    fn checkpoints_keep_only_the_latest_offset_per_file() {
        let t0 = Instant::now();
        let mut v = view(t0);
        let task = TaskId(1);
        v.apply(&EngineEvent::Checkpoint {
            task,
            index: 0,
            durable: 10,
        });
        v.apply(&EngineEvent::Checkpoint {
            task,
            index: 0,
            durable: 20,
        });
        assert_eq!(v.take_tick().0, vec![(0, 20)]);
        v.apply(&EngineEvent::Checkpoint {
            task,
            index: 0,
            durable: 30,
        });
        v.apply(&EngineEvent::FileDone {
            task,
            index: 0,
            bytes: 40,
        });
        assert!(
            v.take_tick().0.is_empty(),
            "a finished file needs no checkpoint"
        );
        assert_eq!(v.files_done, 1);
        assert_eq!(v.bytes_received, 40);
    }

    #[test]
    fn files_in_flight_add_up() {
        let t0 = Instant::now();
        let lease = Lease {
            task: TaskId(1),
            attempt: Attempt(1),
        };
        let mut v = TaskView::new(lease, "p".into(), "3 files".into(), 3, 100, t0);
        let task = TaskId(1);
        for index in [1, 2] {
            v.apply(&EngineEvent::FileStarted {
                task,
                index,
                offset: 0,
                total: Some(50),
                at: t0,
            });
        }
        v.apply(&EngineEvent::Progress {
            task,
            index: 1,
            offset: 20,
            at: t0,
        });
        v.apply(&EngineEvent::Progress {
            task,
            index: 2,
            offset: 30,
            at: t0,
        });
        assert_eq!(v.bytes_received, 150);
        assert_eq!(v.current_total, Some(100));
        v.apply(&EngineEvent::FileDone {
            task,
            index: 1,
            bytes: 50,
        });
        assert_eq!(v.bytes_received, 180);
        assert_eq!(v.current_total, Some(50));
        assert_eq!(v.files_done, 1);
    }

    #[test]
    fn a_resume_starts_from_its_offset() {
        let t0 = Instant::now();
        let mut v = view(t0);
        v.apply(&EngineEvent::FileStarted {
            task: TaskId(1),
            index: 0,
            offset: 500,
            total: Some(1000),
            at: t0,
        });
        assert_eq!(v.bytes_received, 500);
        assert!(!v.progressed, "a resume is not progress");
        v.apply(&EngineEvent::Finished {
            task: TaskId(1),
            outcome: Finish::Completed,
        });
        assert_eq!(v.phase, Phase::Finished(Finish::Completed));
    }
}
