//! Downloads. The engine claims queued work within the limits (global, per host, per project,
//! counted across every instance), runs each task as a tokio task, writes one heartbeat
//! transaction per tick for all of them, stops any task whose claim was lost or cancelled, and
//! sweeps dead owners' tasks. It knows the store and the model, never the dashboard.

mod client;
mod connect;
mod download;
pub mod event;
mod fault;
pub mod http;
mod notify;
mod part;
mod placed;
mod proxy;
mod space;
mod worker;
mod writer;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::error::Error;
use crate::instance::LivenessProbe;
use crate::model::{FileEntry, Task, TaskId};
use crate::store::{Actor, ClaimRules, HeartbeatReply, StoreActor, TaskProgress};
pub use event::{EngineEvent, Finish, Phase, TaskView};
use notify::Notifier;
use placed::Unrecorded;
use space::SpaceBudget;
use worker::{StopReason, StopSignal, TaskCtx};

/// The sweep for dead owners runs every this many heartbeats.
const SWEEP_EVERY_TICKS: u64 = 5;
/// How many log lines the engine keeps for the dashboard.
const NOTICE_CAPACITY: usize = 200;
/// How long shutdown waits for workers to flush before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// While tasks run, their events are folded in this often (and whenever one of them ends):
/// being woken for each event cost thousands of thread wake-ups a second with many small
/// files, for a state nobody looks at more often.
const EVENTS_EVERY: Duration = Duration::from_millis(100);

/// A line for the dashboard's Log pane, from this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub at: DateTime<Utc>,
    pub task: Option<TaskId>,
    pub text: String,
}

/// What this process runs now: published whole after changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineState {
    pub tasks: BTreeMap<TaskId, TaskView>,
    pub notices: VecDeque<Notice>,
}

/// Requests to a running engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineCommand {
    /// Stop a task this process runs (after the database recorded the cancel request).
    Cancel(TaskId),
    /// Look for work now (a task was just added or requeued).
    Wake,
}

/// A handle to talk to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    commands: mpsc::UnboundedSender<EngineCommand>,
    pub state: watch::Receiver<Arc<EngineState>>,
}

impl EngineHandle {
    pub fn send(&self, command: EngineCommand) {
        let _ = self.commands.send(command);
    }
}

/// How an engine runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub config: Arc<Config>,
    pub db_path: PathBuf,
    /// Return once nothing is running here and nothing is waiting in the database.
    pub exit_when_idle: bool,
}

/// The download engine of one process.
pub struct Engine {
    store: StoreActor,
    me: Actor,
    options: EngineOptions,
    probe: LivenessProbe,
    client: client::Client,
    rules: ClaimRules,
    running: HashMap<TaskId, StopSignal>,
    state: EngineState,
    state_tx: watch::Sender<Arc<EngineState>>,
    events_tx: mpsc::UnboundedSender<EngineEvent>,
    events_rx: mpsc::UnboundedReceiver<EngineEvent>,
    commands_rx: mpsc::UnboundedReceiver<EngineCommand>,
    workers: JoinSet<Finish>,
}

impl Engine {
    /// Builds an engine and the handle to talk to it.
    pub fn new(
        store: StoreActor,
        me: Actor,
        options: EngineOptions,
    ) -> Result<(Engine, EngineHandle), Error> {
        let config = &options.config;
        let client = client::build(
            Duration::from_secs(config.connect_timeout_secs),
            config.max_redirects,
        )
        .map_err(|e| Error::Other(format!("cannot build the HTTP client: {e}")))?;
        let probe = LivenessProbe::new(
            &options.db_path,
            Duration::from_secs(config.stale_after_secs),
        );
        let (state_tx, state_rx) = watch::channel(Arc::new(EngineState::default()));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let engine = Engine {
            store,
            me,
            rules: claim_rules(config),
            probe,
            client,
            running: HashMap::new(),
            state: EngineState::default(),
            state_tx,
            events_tx,
            events_rx,
            commands_rx,
            workers: JoinSet::new(),
            options,
        };
        let handle = EngineHandle {
            commands: commands_tx,
            state: state_rx,
        };
        Ok((engine, handle))
    }

    /// Runs until `shutdown` fires (or, with `exit_when_idle`, until there is nothing to do).
    /// On shutdown every task is left resumable, its progress flushed.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), Error> {
        let recovered = self.sweep().await?;
        let summary = if recovered == 0 {
            "No orphaned running tasks".to_owned()
        } else {
            format!("Recovered {recovered} orphaned running tasks")
        };
        tracing::info!("{summary}");
        self.notice(None, summary);
        let notifier = Notifier::new(
            &self.options.config.notify,
            self.store.clone(),
            self.me.instance.clone(),
            self.client.clone(),
        );
        let notify_stop = CancellationToken::new();
        let notify_task = notifier
            .clone()
            .map(|n| tokio::spawn(notify_loop(n, notify_stop.clone())));
        let mut tick = tokio::time::interval(self.options.config.heartbeat_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        let mut fold = tokio::time::interval(EVENTS_EVERY);
        fold.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.fill_slots().await?;
        loop {
            if self.options.exit_when_idle
                && self.running.is_empty()
                && !self.has_waiting_work().await.unwrap_or(true)
            {
                break;
            }
            let mut slot_freed = false;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // A task ended: its last events are in (folded below).
                Some(_) = self.workers.join_next() => {}
                _ = fold.tick(), if !self.workers.is_empty() => {}
                Some(command) = self.commands_rx.recv() => match command {
                    EngineCommand::Cancel(task) => {
                        if let Some(stop) = self.running.get(&task) {
                            stop.stop(StopReason::Cancel);
                        }
                    }
                    EngineCommand::Wake => slot_freed = true,
                },
                _ = tick.tick() => {
                    ticks += 1;
                    self.fold_events();
                    let beat = self.heartbeat().await;
                    self.survive("heartbeat", beat);
                    if ticks.is_multiple_of(SWEEP_EVERY_TICKS) {
                        let swept = self.sweep().await.map(|_| ());
                        self.survive("recovery sweep", swept);
                    }
                    slot_freed = true;
                }
            }
            slot_freed |= self.fold_events();
            if slot_freed {
                let filled = self.fill_slots().await;
                self.survive("claiming work", filled);
            }
            self.publish();
        }
        let result = self.shut_down().await;
        notify_stop.cancel();
        if let Some(task) = notify_task {
            let _ = task.await;
        }
        if let Some(notifier) = notifier {
            // Deliver what the last moments produced (bounded: one round).
            let grace =
                Duration::from_secs(self.options.config.notify.timeout_secs.saturating_mul(2));
            let _ = tokio::time::timeout(grace, notifier.round()).await;
        }
        result
    }

    async fn shut_down(&mut self) -> Result<(), Error> {
        for stop in self.running.values() {
            stop.stop(StopReason::Shutdown);
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.workers.is_empty() {
            match tokio::time::timeout_at(deadline, self.workers.join_next()).await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.fold_events();
        self.publish();
        let id = self.me.instance.clone();
        self.store
            .call(move |s| s.stop_instance(&id, Utc::now()))
            .await?;
        Ok(())
    }

    /// Folds the events that came in into the state; true when a slot became free.
    fn fold_events(&mut self) -> bool {
        let mut slot_freed = false;
        while let Ok(event) = self.events_rx.try_recv() {
            slot_freed |= self.on_event(event);
        }
        slot_freed
    }

    /// Folds a worker's event into the state; true when a slot became free.
    fn on_event(&mut self, event: EngineEvent) -> bool {
        match &event {
            EngineEvent::Started {
                lease,
                project,
                name,
                files_total,
                bytes_already_done,
                at,
            } => {
                let view = TaskView::new(
                    *lease,
                    project.clone(),
                    name.clone(),
                    *files_total,
                    *bytes_already_done,
                    *at,
                );
                self.state.tasks.insert(lease.task, view);
                false
            }
            EngineEvent::Finished { task, outcome } => {
                if let Some(view) = self.state.tasks.get_mut(task) {
                    view.apply(&event);
                }
                self.state.tasks.remove(task);
                self.running.remove(task);
                let text = match outcome {
                    Finish::Completed => format!("task {task} completed"),
                    Finish::Failed(m) => format!("task {task} failed: {m}"),
                    Finish::Cancelled => format!("task {task} cancelled"),
                    Finish::Interrupted => format!("task {task} interrupted (resumable)"),
                    Finish::Lost => {
                        format!("task {task}: claim lost (restarted elsewhere); stopped writing")
                    }
                };
                self.notice(Some(*task), text);
                true
            }
            EngineEvent::Retrying {
                task,
                reason,
                delay,
            } => {
                let text = format!(
                    "task {task}: {reason}; retry in {:.1} s",
                    delay.as_secs_f64()
                );
                self.notice(Some(*task), text);
                if let Some(view) = self.state.tasks.get_mut(task) {
                    view.apply(&event);
                }
                false
            }
            EngineEvent::FileStarted { task, .. }
            | EngineEvent::Progress { task, .. }
            | EngineEvent::Checkpoint { task, .. }
            | EngineEvent::FileDone { task, .. } => {
                if let Some(view) = self.state.tasks.get_mut(task) {
                    view.apply(&event);
                }
                false
            }
        }
    }

    /// Keeps running through a failed database round (busy, full): downloads go on, their
    /// progress stays in memory and is written at a later tick.
    fn survive(&mut self, what: &str, result: Result<(), Error>) {
        if let Err(e) = result {
            tracing::warn!("{what} failed: {e}; retrying at the next tick");
            self.notice(None, format!("{what} failed: {e}"));
        }
    }

    fn notice(&mut self, task: Option<TaskId>, text: String) {
        if self.state.notices.len() >= NOTICE_CAPACITY {
            self.state.notices.pop_front();
        }
        self.state.notices.push_back(Notice {
            at: Utc::now(),
            task,
            text,
        });
    }

    /// Hands a copy of the state to whoever watches (the dashboard); a headless worker has no
    /// watcher and skips the copy, which thousands of small files a second would pay for.
    fn publish(&self) {
        if self.state_tx.receiver_count() > 0 {
            self.state_tx.send_replace(Arc::new(self.state.clone()));
        }
    }

    /// Claims work, in one transaction, until the local slots are full or nothing may run.
    async fn fill_slots(&mut self) -> Result<(), Error> {
        let free = (self.options.config.max_concurrent as usize).saturating_sub(self.running.len());
        if free > 0 {
            let mut rules = self.rules.clone();
            rules.skip = self.running.keys().copied().collect();
            let me = self.me.clone();
            let claimed = self
                .store
                .call(move |s| s.claim_up_to(free, &rules, &me, Utc::now()))
                .await?;
            for (task, files) in claimed {
                self.start_worker(task, files);
            }
        }
        Ok(())
    }

    /// Runs a claimed task as its own tokio task.
    fn start_worker(&mut self, task: Task, files: Vec<FileEntry>) {
        let policy = self.options.config.policy(&task.project);
        let stop = StopSignal::default();
        let ctx = TaskCtx {
            lease: task.lease(),
            dest_dir: task.dest_dir.clone(),
            client: self.client.clone(),
            store: self.store.clone(),
            actor: self.me.clone(),
            stop: stop.clone(),
            events: self.events_tx.clone(),
            checkpoint_interval: self.options.config.heartbeat_interval(),
            stall_timeout: Duration::from_secs(self.options.config.stall_timeout_secs),
            max_file_size: self.options.config.max_file_size_bytes,
            retry: policy.retry,
            headers: header_map(&policy.headers),
            files_in_parallel: self.options.config.files_in_parallel as usize,
            unrecorded: Unrecorded::default(),
            space: SpaceBudget::default(),
        };
        // Each claim is in the task's event log; a line per task on stderr (4 % of the
        // instructions of 2,000 one-file tasks, and a write each) is for `-v`.
        tracing::debug!(task = %task.id, attempt = %task.attempt, "claimed {}", task.name);
        self.running.insert(task.id, stop);
        let span = tracing::info_span!("task", id = %task.id, attempt = %task.attempt);
        worker::announce(&ctx, &task, &files);
        self.workers
            .spawn(async move { worker::run_task(&ctx, files).await }.instrument(span));
    }

    /// One transaction: the instance heartbeat and every running task's heartbeat and durable
    /// offsets. Stops tasks whose claim was lost or whose cancel was requested.
    async fn heartbeat(&mut self) -> Result<(), Error> {
        let progress: Vec<TaskProgress> = self
            .state
            .tasks
            .values_mut()
            .filter(|v| !matches!(v.phase, Phase::Finished(_)))
            .map(|view| {
                let (files, progressed, milestone) = view.take_tick();
                TaskProgress {
                    lease: view.lease,
                    files,
                    progressed,
                    milestone,
                }
            })
            .collect();
        let me = self.me.clone();
        let replies = self
            .store
            .call(move |s| s.heartbeat(&me, &progress, Utc::now()))
            .await?;
        for reply in replies {
            match reply {
                HeartbeatReply::Lost { lease } => {
                    if let Some(stop) = self.running.get(&lease.task) {
                        stop.stop(StopReason::Lost);
                    }
                }
                HeartbeatReply::Held {
                    lease,
                    cancel: true,
                } => {
                    if let Some(stop) = self.running.get(&lease.task) {
                        stop.stop(StopReason::Cancel);
                    }
                }
                HeartbeatReply::Held { .. } => {}
            }
        }
        Ok(())
    }

    /// Recovers dead owners' tasks (returns how many) and records newly stale ones.
    async fn sweep(&mut self) -> Result<usize, Error> {
        let (probe, me) = (self.probe.clone(), self.me.clone());
        let config = self.options.config.clone();
        let recovered = self
            .store
            .call(move |s| {
                let recovered = crate::sweep::run(s, &probe, &me, Utc::now())?;
                if config.notify.kinds().stale {
                    crate::sweep::note_stale(s, &probe, &config, Utc::now())?;
                }
                Ok(recovered)
            })
            .await?;
        for item in &recovered {
            let text = format!(
                "recovered task {} ({}): {}",
                item.task, item.name, item.reason
            );
            self.notice(Some(item.task), text);
        }
        Ok(recovered.len())
    }

    async fn has_waiting_work(&self) -> Result<bool, Error> {
        let resume = self.rules.auto_resume;
        Ok(self.store.call(move |s| s.has_waiting_work(resume)).await?)
    }
}

/// Sends notifications every half second until `stop` fires.
async fn notify_loop(notifier: Notifier, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        notifier.round().await;
    }
}

/// A project's extra headers; names and values were validated with the config.
fn header_map(headers: &std::collections::BTreeMap<String, String>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(mut value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            value.set_sensitive(true);
            map.insert(name, value);
        }
    }
    map
}

/// The claim limits a config sets.
pub fn claim_rules(config: &Config) -> ClaimRules {
    let mut project_limits = HashMap::new();
    let mut auto_resume_exceptions = HashSet::new();
    for name in config.projects.keys() {
        let policy = config.policy(name);
        if let Some(limit) = policy.max_concurrent {
            project_limits.insert(name.clone(), limit);
        }
        if policy.auto_resume != config.auto_resume {
            auto_resume_exceptions.insert(name.clone());
        }
    }
    ClaimRules {
        max_concurrent: config.max_concurrent,
        per_host_limit: config.per_host_limit,
        project_limits,
        auto_resume: config.auto_resume,
        auto_resume_exceptions,
        skip: HashSet::new(),
    }
}
