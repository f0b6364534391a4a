//! Judging tasks against their owners' liveness: the bridge between the store's rows, the OS
//! locks and the pure rules in [`crate::recovery`].

use std::collections::HashMap;
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
    pub owner: Option<Instance>,
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
    owners: HashMap<InstanceId, (Option<Instance>, OwnerState)>,
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
            owners: HashMap::new(),
        }
    }

    /// The owner row and its state (probed once per instance).
    pub fn owner(&mut self, id: &InstanceId) -> Result<(Option<Instance>, OwnerState), StoreError> {
        if let Some(known) = self.owners.get(id) {
            return Ok(known.clone());
        }
        let instance = self.reader.instance(id)?;
        let state = self.probe.owner_state(instance.as_ref(), self.now);
        self.owners
            .insert(id.clone(), (instance.clone(), state.clone()));
        Ok((instance, state))
    }

    /// Judges one task.
    pub fn assess(&mut self, task: Task) -> Result<Assessed, StoreError> {
        if task.status != Status::Running {
            let owner = match &task.owner {
                Some(id) => self.owner(id)?.0,
                None => None,
            };
            return Ok(Assessed {
                task,
                owner,
                verdict: Verdict::Healthy,
                since_update_secs: None,
            });
        }
        let (owner, state) = match &task.owner {
            Some(id) => self.owner(id)?,
            None => (None, OwnerState::Dead("it has no owner".into())),
        };
        let stale_after = self.config.stale_after(&task.project);
        let stall = Duration::from_secs(self.config.stall_timeout_secs);
        let verdict = verdict(&task, &state, self.now, stale_after, stall);
        let since_update_secs = age_secs(task.updated_at, self.now);
        Ok(Assessed {
            task,
            owner,
            verdict,
            since_update_secs,
        })
    }
}
