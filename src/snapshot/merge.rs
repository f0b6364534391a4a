//! The pure merges of a snapshot: memory ∪ database into the Active rows, the rows needing
//! attention, and the log.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::{ActiveRow, AttentionRow, LOG_LINES, LogLine, LogOrigin, Recovery};
use crate::engine::{Notice, Phase, TaskView};
use crate::health::Assessed;
use crate::model::{Instance, InstanceId, Source, Status, TaskEvent, TaskId};
use crate::recovery::Verdict;
use crate::store::Actor;

/// A database row claiming this process runs it, while memory does not, is flagged only after
/// this long without an update (a fresh claim takes a moment to reach memory).
const CLAIM_GRACE_SECS: u64 = 2;

/// Merges what this process runs (`memory`) with the database's unfinished rows (assessed),
/// one row per id. `me` is this process, when it runs downloads.
pub fn merge_active(
    memory: &BTreeMap<TaskId, TaskView>,
    database: &[Assessed],
    me: Option<&Actor>,
) -> Vec<ActiveRow> {
    let mut in_memory: HashMap<TaskId, &Assessed> = HashMap::with_capacity(memory.len());
    let mut rows: Vec<ActiveRow> = Vec::with_capacity(database.len() + memory.len());
    let mut labels = Labels::default();
    for a in database {
        let task = &a.task;
        if memory.contains_key(&task.id) {
            in_memory.insert(task.id, a);
            continue;
        }
        if !task.status.is_active() {
            continue;
        }
        let mine = me.is_some_and(|me| task.owner.as_ref() == Some(&me.instance));
        let disagreement = (mine
            && task.status == Status::Running
            && a.since_update_secs.is_some_and(|s| s >= CLAIM_GRACE_SECS))
        .then(|| "the database says this process runs it, but it does not".to_owned());
        rows.push(ActiveRow {
            id: task.id,
            project: task.project.clone(),
            name: task.name.clone(),
            status: task.status,
            source: Source::Database,
            owner: a.owner.as_ref().map(|o| labels.of(o)),
            heartbeat_at: (task.status == Status::Running).then_some(task.updated_at),
            bytes_done: task.bytes_done,
            bytes_total: task.bytes_total,
            files_done: task.files_done,
            files_total: task.files_total,
            speed_bps: None,
            eta_secs: None,
            verdict: a.verdict.clone(),
            phase: None,
            disagreement,
        });
    }
    rows.extend(
        memory
            .values()
            .map(|view| memory_row(view, in_memory.get(&view.lease.task).copied(), me)),
    );
    // Two runs by id (the database's and memory's): a merge, not a sort.
    rows.sort_by_key(|r| r.id);
    rows
}

/// Owners' labels, each made once per merge (rows by id come in runs of one owner).
#[derive(Default)]
struct Labels {
    last: Option<(InstanceId, String)>,
}

impl Labels {
    fn of(&mut self, owner: &Instance) -> String {
        match &self.last {
            Some((id, label)) if *id == owner.id => label.clone(),
            _ => {
                let label = owner.label();
                self.last = Some((owner.id.clone(), label.clone()));
                label
            }
        }
    }
}

fn memory_row(view: &TaskView, db: Option<&Assessed>, me: Option<&Actor>) -> ActiveRow {
    let disagreement = match db {
        None => Some("not in the database".to_owned()),
        Some(a) if a.task.status != Status::Running => {
            Some(format!("the database says {}", a.task.status))
        }
        Some(a) if a.task.attempt != view.lease.attempt => Some(format!(
            "the database is at attempt {}, this process at {}",
            a.task.attempt, view.lease.attempt
        )),
        Some(a) if me.is_some_and(|me| a.task.owner.as_ref() != Some(&me.instance)) => {
            let owner = a
                .owner
                .as_ref()
                .map_or_else(|| "nobody".to_owned(), |o| o.label());
            Some(format!("the database says {owner} owns it"))
        }
        Some(_) => None,
    };
    let phase = match &view.phase {
        Phase::Starting => "starting".to_owned(),
        Phase::Transferring { index } => format!("file {}/{}", index + 1, view.files_total),
        Phase::Retrying { reason, .. } => format!("retrying: {reason}"),
        Phase::Finished(_) => "finishing".to_owned(),
    };
    let single_file_total = view.current_total.filter(|_| view.files_total == 1);
    ActiveRow {
        id: view.lease.task,
        project: view.project.clone(),
        name: view.name.clone(),
        status: Status::Running,
        source: Source::Memory,
        owner: me.map(|me| me.label.clone()),
        heartbeat_at: db.map(|a| a.task.updated_at),
        bytes_done: view.bytes_received,
        bytes_total: db.and_then(|a| a.task.bytes_total).or(single_file_total),
        files_done: view.files_done,
        files_total: view.files_total,
        speed_bps: Some(view.speed_bps),
        eta_secs: view.eta_secs(),
        verdict: db.map_or(Verdict::Healthy, |a| a.verdict.clone()),
        phase: Some(phase),
        disagreement,
    }
}

/// Stale and orphaned tasks, with the action that recovers each.
pub fn attention_rows(database: &[Assessed]) -> Vec<AttentionRow> {
    database
        .iter()
        .filter(|a| a.verdict.needs_recovery())
        .map(|a| AttentionRow {
            id: a.task.id,
            project: a.task.project.clone(),
            name: a.task.name.clone(),
            owner: a.owner.as_ref().map(|o| o.label()),
            heartbeat_at: a.task.updated_at,
            warning: a.verdict.warning().unwrap_or_default(),
            recovery: match a.verdict {
                Verdict::Orphaned { .. } => Recovery::Restart,
                _ => Recovery::ForceRestart,
            },
            verdict: a.verdict.clone(),
        })
        .collect()
}

/// This process's notices and the database's events, newest first.
pub fn merge_log(notices: &VecDeque<Notice>, events: &VecDeque<TaskEvent>) -> Vec<LogLine> {
    let here = notices.iter().map(|n| LogLine {
        at: n.at,
        task: n.task,
        origin: LogOrigin::Here,
        kind: None,
        by: None,
        text: n.text.clone(),
    });
    let database = events.iter().map(|e| LogLine {
        at: e.at,
        task: Some(e.task_id),
        origin: LogOrigin::Database,
        kind: Some(e.kind),
        by: e.by.clone(),
        text: e.message.clone(),
    });
    let mut lines: Vec<LogLine> = here.chain(database).collect();
    lines.sort_by_key(|l| std::cmp::Reverse(l.at));
    lines.truncate(LOG_LINES);
    lines
}
