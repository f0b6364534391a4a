//! Judging tasks against their owners' liveness: the bridge between the store's rows, the OS
//! locks and the pure rules in [`crate::recovery`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::instance::LivenessProbe;
use crate::model::{Instance, InstanceId, Status, Task};
use crate::recovery::{OwnerState, Verdict, age_secs, verdict};
use crate::store::{Reader, StoreError};

/// A task with what is known of its owner and how it looks.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessed {
    pub task: Task,
    /// The owner's row, shared by all its tasks.
    pub owner: Option<Arc<Instance>>,
    pub verdict: Verdict,
    /// Seconds since the last heartbeat, for running tasks (`None` if in the future).
    pub since_update_secs: Option<u64>,
}

/// Judges tasks, probing each owner once.
pub struct Assessor<'a> {
    reader: &'a Reader,
    probe: &'a LivenessProbe,
    config: &'a Config,
    now: DateTime<Utc>,
    /// Each owner asked for so far, with its row and state; the last one asked for first,
    /// since tasks by id come in runs of one owner.
    owners: Vec<(InstanceId, Option<Arc<Instance>>, OwnerState)>,
}

impl<'a> Assessor<'a> {
    pub fn new(
        reader: &'a Reader,
        probe: &'a LivenessProbe,
        config: &'a Config,
        now: DateTime<Utc>,
    ) -> Self {
        Assessor {
            reader,
            probe,
            config,
            now,
            owners: Vec::new(),
        }
    }

    /// The owner row and its state (probed once per instance).
    fn owner(
        &mut self,
        id: &InstanceId,
    ) -> Result<(&Option<Arc<Instance>>, &OwnerState), StoreError> {
        match self.owners.iter().position(|(known, ..)| known == id) {
            Some(i) => self.owners[..=i].rotate_right(1),
            None => {
                let instance = self.reader.instance(id)?;
                let state = self.probe.owner_state(instance.as_ref(), self.now);
                self.owners
                    .insert(0, (id.clone(), instance.map(Arc::new), state));
            }
        }
        let (_, instance, state) = &self.owners[0];
        Ok((instance, state))
    }

    /// Judges `a.task` (again) at this assessor's clock, with its owner's row and state now;
    /// the task is taken as it is.
    pub fn reassess(&mut self, a: &mut Assessed) -> Result<(), StoreError> {
        let (config, now) = (self.config, self.now);
        let dead;
        let state = match &a.task.owner {
            Some(id) => {
                let (row, state) = self.owner(id)?;
                a.owner = row.clone();
                state
            }
            None => {
                a.owner = None;
                dead = OwnerState::Dead("it has no owner".into());
                &dead
            }
        };
        if a.task.status != Status::Running {
            a.verdict = Verdict::Healthy;
            a.since_update_secs = None;
            return Ok(());
        }
        let stale_after = config.stale_after(&a.task.project);
        let stall = Duration::from_secs(config.stall_timeout_secs);
        a.verdict = verdict(&a.task, state, now, stale_after, stall);
        a.since_update_secs = age_secs(a.task.updated_at, now);
        Ok(())
    }

    /// Judges one task.
    pub fn assess(&mut self, task: Task) -> Result<Assessed, StoreError> {
        let mut assessed = Assessed {
            task,
            owner: None,
            verdict: Verdict::Healthy,
            since_update_secs: None,
        };
        self.reassess(&mut assessed)?;
        Ok(assessed)
    }
}
