//! The recovery sweep: running tasks whose owner is dead become `interrupted` (and are resumed
//! by any live worker when `auto_resume` is on). Tasks of live owners are never touched.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::health::Assessor;
use crate::instance::LivenessProbe;
use crate::model::{Instance, InstanceId, Lease, Task, TaskId};
use crate::recovery::{OwnerState, Verdict, sweep_plan};
use crate::store::{Actor, Reader, Store, StoreError};

/// One task the sweep recovered (or, in a dry run, would recover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub task: TaskId,
    pub lease: Lease,
    pub name: String,
    pub reason: String,
}

/// What the sweep would change, without changing anything.
pub fn plan(
    reader: &Reader,
    probe: &LivenessProbe,
    now: DateTime<Utc>,
) -> Result<Vec<Recovered>, StoreError> {
    let running = reader.running()?;
    let owners = owner_states(reader, probe, &running, now)?;
    Ok(sweep_plan(&running, |t| owner_of(&owners, t))
        .into_iter()
        .map(|(task, lease, reason)| Recovered {
            task: task.id,
            lease,
            name: task.name.clone(),
            reason,
        })
        .collect())
}

/// Runs the sweep: marks every dead owner's running task interrupted (fenced on its attempt).
pub fn run(
    store: &mut Store,
    probe: &LivenessProbe,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<Vec<Recovered>, StoreError> {
    let planned = plan(store, probe, now)?;
    let mut done = Vec::with_capacity(planned.len());
    for item in planned {
        if store.interrupt(item.lease, &item.reason, by, now)? {
            tracing::warn!(task = %item.task, "recovered: {}", item.reason);
            done.push(item);
        }
    }
    Ok(done)
}

/// Records a stale notification for every running task that is stale now (once per attempt;
/// the outbox ignores repeats from later sweeps and other instances).
pub fn note_stale(
    store: &mut Store,
    probe: &LivenessProbe,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let running = store.running()?;
    let mut stale = Vec::new();
    {
        let mut assessor = Assessor::new(store, probe, config, now);
        for task in running {
            let assessed = assessor.assess(task)?;
            if matches!(assessed.verdict, Verdict::Stale { .. }) {
                stale.push(assessed.task.lease());
            }
        }
    }
    for lease in &stale {
        store.note_stale(*lease, now)?;
    }
    Ok(stale.len())
}

/// The state of every owner of `running`, each instance probed once.
pub fn owner_states(
    reader: &Reader,
    probe: &LivenessProbe,
    running: &[Task],
    now: DateTime<Utc>,
) -> Result<HashMap<InstanceId, (Option<Instance>, OwnerState)>, StoreError> {
    let mut states = HashMap::new();
    for owner in running.iter().filter_map(|t| t.owner.as_ref()) {
        if states.contains_key(owner) {
            continue;
        }
        let instance = reader.instance(owner)?;
        let state = probe.owner_state(instance.as_ref(), now);
        states.insert(owner.clone(), (instance, state));
    }
    Ok(states)
}

fn owner_of(
    owners: &HashMap<InstanceId, (Option<Instance>, OwnerState)>,
    task: &Task,
) -> OwnerState {
    match task.owner.as_ref().and_then(|o| owners.get(o)) {
        Some((_, state)) => state.clone(),
        None => OwnerState::Dead("it has no owner".into()),
    }
}
