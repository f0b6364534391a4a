//! Carrying out operator actions in read-write mode: each [`Op`] runs through [`crate::ops`] on
//! the store thread (so it works on tasks other instances own), off the render loop, and its
//! outcome comes back to the loop as an [`Event::OpDone`]. Read-only dashboards have no
//! `Control` at all, so they cannot write by construction.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use chrono::Utc;

use super::action::Op;
use super::event::Event;
use crate::config::Config;
use crate::engine::{EngineCommand, EngineHandle};
use crate::error::Error;
use crate::instance::LivenessProbe;
use crate::ops::{self, AddRequest};
use crate::store::{Actor, CancelOutcome, StoreActor};

/// The project of tasks added from the dashboard.
const ADD_PROJECT: &str = "default";

/// What a read-write dashboard acts through.
#[derive(Clone)]
pub struct Control {
    pub store: StoreActor,
    pub engine: EngineHandle,
    pub probe: LivenessProbe,
    pub config: Arc<Config>,
    /// This process, as the event log names it.
    pub me: Actor,
    pub runtime: tokio::runtime::Handle,
}

impl Control {
    /// Starts `op`; its outcome arrives on `events` as [`Event::OpDone`].
    pub fn execute(&self, op: Op, events: Sender<Event>) {
        let control = self.clone();
        self.runtime.spawn(async move {
            let (ok, text) = match control.run(op).await {
                Ok(text) => (true, text),
                Err(e) => (false, e.to_string()),
            };
            let _ = events.send(Event::OpDone { ok, text });
        });
    }

    async fn run(self, op: Op) -> Result<String, Error> {
        let Control {
            store,
            engine,
            probe,
            config,
            me,
            ..
        } = self;
        let mine = me.instance.clone();
        match op {
            Op::Cancel(id) => {
                let outcome = store
                    .call(move |s| Ok(ops::cancel(s, &probe, id, &me, Utc::now())))
                    .await??;
                Ok(match outcome {
                    CancelOutcome::Cancelled => format!("task {id} cancelled"),
                    CancelOutcome::Requested { owner } if owner == mine => {
                        engine.send(EngineCommand::Cancel(id));
                        format!("task {id} cancelled here; its partial file is kept")
                    }
                    CancelOutcome::Requested { .. } => {
                        format!(
                            "cancel of task {id} requested; its owner stops within one heartbeat"
                        )
                    }
                    CancelOutcome::AlreadyFinal(status) => format!("task {id} is already {status}"),
                    CancelOutcome::NotFound => format!("task {id} not found"),
                })
            }
            Op::ForceRestart(id) | Op::Retry(id) => {
                let force = matches!(op, Op::ForceRestart(_));
                let text = store
                    .call(move |s| Ok(ops::restart(s, &probe, &config, id, force, &me, Utc::now())))
                    .await??;
                engine.send(EngineCommand::Wake);
                Ok(if text.is_empty() {
                    format!("task {id} queued again")
                } else {
                    text
                })
            }
            Op::Add(urls) => {
                let request = AddRequest {
                    urls: urls.into_iter().map(|u| (u, None)).collect(),
                    project: ADD_PROJECT.to_owned(),
                    dest: None,
                    force_restart: false,
                };
                let outcome = store
                    .call(move |s| Ok(ops::add(s, &probe, &config, &request, &me, Utc::now())))
                    .await??;
                engine.send(EngineCommand::Wake);
                let verb = if outcome.created { "added" } else { "reused" };
                let mut text = format!("task {} {verb}", outcome.task);
                for note in &outcome.notes {
                    text.push_str("; ");
                    text.push_str(note);
                }
                Ok(text)
            }
        }
    }
}
