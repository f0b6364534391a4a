//! Claiming work: one immediate transaction checks the limits across every instance and moves
//! tasks to running with `attempt + 1`. Two instances never both win a claim.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::writes::{Actor, insert_event};
use super::{Store, StoreError, execute_cached, rows, to_ms};
use crate::model::{EventKind, FileEntry, Status, Task, TaskId};

/// Candidates looked at per claim; enough to skip past tasks blocked by a limit.
const CANDIDATE_WINDOW: i64 = 256;

/// The limits a claim must respect, counted across the whole database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimRules {
    pub max_concurrent: u32,
    pub per_host_limit: u32,
    /// Projects with their own limit (exclusive projects have 1).
    pub project_limits: HashMap<String, u32>,
    /// Resume interrupted tasks unless their project says otherwise.
    pub auto_resume: bool,
    /// Projects whose `auto_resume` differs from the default.
    pub auto_resume_exceptions: HashSet<String>,
    /// Tasks the claiming process still winds down (a restart requeued them while their old
    /// worker stops): claimed again only once that worker is gone.
    pub skip: HashSet<TaskId>,
}

impl ClaimRules {
    fn resumes(&self, project: &str) -> bool {
        self.auto_resume != self.auto_resume_exceptions.contains(project)
    }
}

impl Store {
    /// Claims the oldest runnable task for `by`, or `None` when nothing may run now.
    pub fn claim_next(
        &mut self,
        rules: &ClaimRules,
        by: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Option<(Task, Vec<FileEntry>)>, StoreError> {
        Ok(self.claim_up_to(1, rules, by, now)?.pop())
    }

    /// Claims up to `max` of the oldest runnable tasks for `by` in one transaction, within the
    /// limits; fewer (or none) when the queue or the limits say so.
    pub fn claim_up_to(
        &mut self,
        max: usize,
        rules: &ClaimRules,
        by: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Task, Vec<FileEntry>)>, StoreError> {
        self.write(|tx| {
            let mut running = Running::count(tx, rules)?;
            let mut claimed = Vec::new();
            if max == 0 || running.total >= rules.max_concurrent {
                return Ok(claimed);
            }
            // Most claims want a slot or two: read just past what they need first, and the
            // whole window only when limits or the skip list turned those rows down.
            let mut window = (max + 1).min(CANDIDATE_WINDOW as usize);
            let mut looked_up_to: Option<TaskId> = None;
            loop {
                for candidate in candidates(tx, rules, window)? {
                    if claimed.len() >= max || running.total >= rules.max_concurrent {
                        break;
                    }
                    if looked_up_to.is_some_and(|seen| candidate.id <= seen) {
                        continue;
                    }
                    looked_up_to = Some(candidate.id);
                    if !running.admits(&candidate, rules) {
                        continue;
                    }
                    if let Some(one) = claim(tx, &candidate, by, now)? {
                        running.add(&candidate);
                        claimed.push(one);
                    }
                }
                let full = claimed.len() >= max || running.total >= rules.max_concurrent;
                if full || window >= CANDIDATE_WINDOW as usize {
                    break;
                }
                window = CANDIDATE_WINDOW as usize;
            }
            Ok(claimed)
        })
    }
}

/// A queued or interrupted task that may be claimed.
struct Candidate {
    id: TaskId,
    project: String,
    host: String,
    resumed: bool,
}

/// Running tasks across every instance, by project and by host.
struct Running {
    total: u32,
    per_project: HashMap<String, u32>,
    per_host: HashMap<String, u32>,
}

impl Running {
    /// The running tasks the limits of `rules` need counted. When no project has a limit and
    /// the host limit is no tighter than the global one (the defaults), only the total can
    /// turn a claim down: one count over the status index, no task row read.
    fn count(tx: &Connection, rules: &ClaimRules) -> Result<Running, StoreError> {
        let mut running = Running {
            total: 0,
            per_project: HashMap::new(),
            per_host: HashMap::new(),
        };
        if rules.project_limits.is_empty() && rules.per_host_limit >= rules.max_concurrent {
            let n: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM tasks WHERE status = 'running'")?
                .query_row([], |r| r.get(0))?;
            running.total = n.max(0) as u32;
            return Ok(running);
        }
        let mut stmt = tx.prepare_cached(
            "SELECT project, host, COUNT(*) FROM tasks WHERE status = 'running' \
             GROUP BY project, host",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let project: String = row.get(0)?;
            let host: String = row.get(1)?;
            let n = row.get::<_, i64>(2)?.max(0) as u32;
            running.total += n;
            *running.per_project.entry(project).or_default() += n;
            *running.per_host.entry(host).or_default() += n;
        }
        Ok(running)
    }

    /// True when neither its project's nor its host's limit is reached.
    fn admits(&self, c: &Candidate, rules: &ClaimRules) -> bool {
        let project_full = rules
            .project_limits
            .get(&c.project)
            .is_some_and(|limit| self.per_project.get(&c.project).copied().unwrap_or(0) >= *limit);
        let host_full = self.per_host.get(&c.host).copied().unwrap_or(0) >= rules.per_host_limit;
        !project_full && !host_full
    }

    fn add(&mut self, c: &Candidate) {
        self.total += 1;
        *self.per_project.entry(c.project.clone()).or_default() += 1;
        *self.per_host.entry(c.host.clone()).or_default() += 1;
    }
}

/// The oldest `window` claimable tasks, by id. Queued and interrupted rows are read by two
/// queries that each walk the `(status, id)` index in order and stop at the window, so a
/// claim never reads the whole queue.
fn candidates(
    tx: &Connection,
    rules: &ClaimRules,
    window: usize,
) -> Result<Vec<Candidate>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, project, host FROM tasks WHERE status = ?1 ORDER BY id LIMIT ?2",
    )?;
    let mut all = Vec::new();
    for status in [Status::Queued, Status::Interrupted] {
        let resumed = status == Status::Interrupted;
        let mut rows = stmt.query(params![status.as_str(), window as i64])?;
        while let Some(row) = rows.next()? {
            let candidate = Candidate {
                id: TaskId(row.get(0)?),
                project: row.get(1)?,
                host: row.get(2)?,
                resumed,
            };
            let skipped = rules.skip.contains(&candidate.id)
                || (resumed && !rules.resumes(&candidate.project));
            if !skipped {
                all.push(candidate);
            }
        }
    }
    all.sort_by_key(|c| c.id);
    all.truncate(window);
    Ok(all)
}

/// Moves one candidate to running for `by` (attempt + 1), logs the claim, and returns the task
/// with its files; `None` if it is no longer claimable.
fn claim(
    tx: &Connection,
    candidate: &Candidate,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<Option<(Task, Vec<FileEntry>)>, StoreError> {
    // The row is read back by a SELECT of its own: as `UPDATE ... RETURNING`, SQLite passes
    // the returned row through a temporary table (about a tenth of a claim's cost).
    let moved = execute_cached(
        tx,
        "UPDATE tasks SET status = 'running', attempt = attempt + 1, owner_id = ?2, \
         started_at = COALESCE(started_at, ?3), updated_at = ?3, progress_at = ?3, \
         finished_at = NULL, error_message = NULL, control = NULL \
         WHERE id = ?1 AND status IN ('queued', 'interrupted')",
        params![candidate.id.0, by.instance.0, to_ms(now)],
    )?;
    if moved == 0 {
        return Ok(None);
    }
    let sql = format!("SELECT {} FROM tasks WHERE id = ?1", rows::TASK_COLUMNS);
    let task = tx
        .prepare_cached(&sql)?
        .query_row([candidate.id.0], rows::task)?;
    let message = if candidate.resumed {
        format!("claimed by {} (resuming after interruption)", by.label)
    } else {
        format!("claimed by {}", by.label)
    };
    insert_event(
        tx,
        task.id,
        task.attempt,
        EventKind::Claimed,
        Some(by),
        &message,
        now,
    )?;
    let sql = format!(
        "SELECT {} FROM files WHERE task_id = ?1 ORDER BY idx",
        rows::FILE_COLUMNS
    );
    let mut files = tx
        .prepare_cached(&sql)?
        .query_map([task.id.0], rows::file)?
        .collect::<Result<Vec<_>, _>>()?;
    // Held by the running task to its end (1,000 at a time): no spare room for more rows.
    files.shrink_to_fit();
    Ok(Some((task, files)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceId, NewFile, NewTask};
    use crate::store::Outcome;

    fn actor() -> Actor {
        Actor {
            instance: InstanceId("claim-test".into()),
            label: "h/1".into(),
        }
    }

    fn add(store: &mut Store, host: &str, n: usize) -> TaskId {
        let task = NewTask {
            project: "p".into(),
            dest_dir: "/tmp".into(),
            files: vec![NewFile {
                url: format!("http://{host}/f{n}"),
                name: format!("f{n}"),
                sha256_expected: None,
            }],
        };
        store.add_task(&task, host, Utc::now(), &actor()).unwrap()
    }

    fn open(rules: ClaimRules) -> (tempfile::TempDir, Store, ClaimRules) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("haul.db")).unwrap();
        (dir, store, rules)
    }

    #[test]
    fn one_claim_takes_the_oldest_tasks_within_the_limits() {
        let (_dir, mut store, rules) = open(ClaimRules {
            max_concurrent: 5,
            per_host_limit: 2,
            auto_resume: true,
            ..ClaimRules::default()
        });
        let a: Vec<TaskId> = (0..3).map(|n| add(&mut store, "a", n)).collect();
        let b: Vec<TaskId> = (0..3).map(|n| add(&mut store, "b", 10 + n)).collect();
        let claimed = store.claim_up_to(10, &rules, &actor(), Utc::now()).unwrap();
        let ids: Vec<TaskId> = claimed.iter().map(|(t, _)| t.id).collect();
        assert_eq!(
            ids,
            vec![a[0], a[1], b[0], b[1]],
            "two per host, oldest first"
        );
        assert!(
            claimed
                .iter()
                .all(|(t, files)| t.attempt.0 == 1 && files.len() == 1)
        );
        // One slot is left globally, but both hosts are full.
        assert!(
            store
                .claim_up_to(10, &rules, &actor(), Utc::now())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn with_no_tighter_limit_than_the_global_one_every_instances_running_tasks_count() {
        let (_dir, mut store, rules) = open(ClaimRules {
            max_concurrent: 3,
            per_host_limit: 3,
            auto_resume: true,
            ..ClaimRules::default()
        });
        for n in 0..3 {
            add(&mut store, "a", n);
            add(&mut store, "b", 10 + n);
        }
        let other = Actor {
            instance: InstanceId("claim-test-other".into()),
            label: "h/2".into(),
        };
        let theirs = store.claim_up_to(2, &rules, &other, Utc::now()).unwrap();
        assert_eq!(theirs.len(), 2);
        let mine = store.claim_up_to(10, &rules, &actor(), Utc::now()).unwrap();
        assert_eq!(mine.len(), 1, "3 at most across both instances");
        assert!(
            store
                .claim_up_to(10, &rules, &actor(), Utc::now())
                .unwrap()
                .is_empty()
        );
        store
            .finish(
                theirs[0].0.lease(),
                &Outcome::Completed,
                &[],
                &[],
                &other,
                Utc::now(),
            )
            .unwrap();
        let next = store.claim_up_to(10, &rules, &actor(), Utc::now()).unwrap();
        assert_eq!(next.len(), 1, "the freed slot, and only it");
    }

    #[test]
    fn interrupted_tasks_are_claimed_in_id_order_with_queued_ones() {
        let (_dir, mut store, rules) = open(ClaimRules {
            max_concurrent: 100,
            per_host_limit: 100,
            auto_resume: true,
            ..ClaimRules::default()
        });
        let ids: Vec<TaskId> = (0..4).map(|n| add(&mut store, "a", n)).collect();
        let first = store.claim_up_to(2, &rules, &actor(), Utc::now()).unwrap();
        assert_eq!(first.len(), 2);
        // The first claimed task is interrupted (its owner died): it is older than the two
        // still queued, so the next claim takes it first.
        let lease = first[0].0.lease();
        assert!(
            store
                .interrupt(lease, "owner died", &actor(), Utc::now())
                .unwrap()
        );
        let mut skip_rules = rules.clone();
        skip_rules.skip.insert(ids[3]);
        let next = store
            .claim_up_to(10, &skip_rules, &actor(), Utc::now())
            .unwrap();
        let got: Vec<(TaskId, i64)> = next.iter().map(|(t, _)| (t.id, t.attempt.0)).collect();
        assert_eq!(
            got,
            vec![(ids[0], 2), (ids[2], 1)],
            "skipped task left queued"
        );
        let mut no_resume = rules;
        no_resume.auto_resume = false;
        assert!(
            store
                .interrupt(next[0].0.lease(), "again", &actor(), Utc::now())
                .unwrap()
        );
        let last = store
            .claim_up_to(10, &no_resume, &actor(), Utc::now())
            .unwrap();
        let got: Vec<TaskId> = last.iter().map(|(t, _)| t.id).collect();
        assert_eq!(
            got,
            vec![ids[3]],
            "without auto_resume, interrupted tasks wait"
        );
    }

    #[test]
    fn a_full_project_ahead_in_the_queue_does_not_hide_other_work() {
        let mut project_limits = std::collections::HashMap::new();
        project_limits.insert("busy".to_owned(), 1);
        let (_dir, mut store, rules) = open(ClaimRules {
            max_concurrent: 10,
            per_host_limit: 100,
            project_limits,
            auto_resume: true,
            ..ClaimRules::default()
        });
        // 40 tasks of a project limited to one at a time, then one of another project.
        for n in 0..40 {
            let task = NewTask {
                project: "busy".into(),
                dest_dir: "/tmp".into(),
                files: vec![NewFile {
                    url: format!("http://a/b{n}"),
                    name: format!("b{n}"),
                    sha256_expected: None,
                }],
            };
            store.add_task(&task, "a", Utc::now(), &actor()).unwrap();
        }
        let other = add(&mut store, "a", 99);
        let claimed = store.claim_up_to(3, &rules, &actor(), Utc::now()).unwrap();
        let ids: Vec<TaskId> = claimed.iter().map(|(t, _)| t.id).collect();
        assert_eq!(
            ids.len(),
            2,
            "one of the limited project, and the other task: {ids:?}"
        );
        assert_eq!(ids[1], other);
    }
}
