//! Operator actions shared by the CLI and the dashboard: add (with collision handling and
//! automatic recovery of stale tasks), cancel, restart and force restart. Synchronous: they run
//! on the caller's store connection (the store thread, in long-running modes).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::error::Error;
use crate::health::Assessor;
use crate::instance::LivenessProbe;
use crate::model::{NewFile, NewTask, Status, Task, TaskId};
use crate::names::name_from_url;
use crate::recovery::Verdict;
use crate::store::{Actor, CancelOutcome, RestartOutcome, Store};
use crate::text::redact_url;

/// A request to download some URLs.
#[derive(Debug, Clone, PartialEq)]
pub struct AddRequest {
    /// URLs, each with an optional expected sha256 (hex).
    pub urls: Vec<(String, Option<String>)>,
    pub project: String,
    pub dest: Option<PathBuf>,
    pub force_restart: bool,
}

/// What an add did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOutcome {
    pub task: TaskId,
    /// False when an existing task for the same destination was reused.
    pub created: bool,
    /// Recovery and reuse actions taken, for the operator.
    pub notes: Vec<String>,
}

/// Adds a task, or reuses/recovers the one already writing the same destination.
pub fn add(
    store: &mut Store,
    probe: &LivenessProbe,
    config: &Config,
    request: &AddRequest,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<AddOutcome, Error> {
    let dest_dir = writable_dest(config, request)?;
    add_into(store, probe, config, request, &dest_dir, by, now)
}

/// Adds one task per URL of `request` (each as [`add`] would), all or nothing: one
/// transaction, so ten thousand URLs cost one commit, and a bad URL or a collision adds none.
pub fn add_each(
    store: &mut Store,
    probe: &LivenessProbe,
    config: &Config,
    request: &AddRequest,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<Vec<AddOutcome>, Error> {
    let dest_dir = writable_dest(config, request)?;
    store.atomic(|store| {
        request
            .urls
            .iter()
            .map(|url| {
                let one = AddRequest {
                    urls: vec![url.clone()],
                    project: request.project.clone(),
                    dest: request.dest.clone(),
                    force_restart: request.force_restart,
                };
                add_into(store, probe, config, &one, &dest_dir, by, now)
            })
            .collect()
    })
}

/// The request's destination directory, absolute, created and checked writable; an error
/// when the request has no URL.
fn writable_dest(config: &Config, request: &AddRequest) -> Result<PathBuf, Error> {
    let policy = config.policy(&request.project);
    let dest_dir = absolute(request.dest.as_deref().unwrap_or(&policy.download_dir))?;
    check_writable(&dest_dir)?;
    if request.urls.is_empty() {
        return Err(Error::Usage(
            "no URL given (pass URLs or --input FILE)".into(),
        ));
    }
    Ok(dest_dir)
}

/// [`add`] into a checked destination directory.
fn add_into(
    store: &mut Store,
    probe: &LivenessProbe,
    config: &Config,
    request: &AddRequest,
    dest_dir: &Path,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<AddOutcome, Error> {
    let policy = config.policy(&request.project);
    let mut files = Vec::with_capacity(request.urls.len());
    let mut host = String::new();
    for (raw, sha) in &request.urls {
        let url = parse_url(raw)?;
        if host.is_empty() {
            host = url.host_str().unwrap_or_default().to_owned();
        }
        let sha256_expected = sha.as_deref().map(parse_sha256).transpose()?;
        files.push(NewFile {
            url: raw.trim().to_owned(),
            name: name_from_url(&url),
            sha256_expected,
        });
    }
    let dest_str = dest_dir.to_string_lossy().into_owned();
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let mut notes = Vec::new();

    let same_dest = store.unfinished_with_names(&dest_str, &names)?;
    let same_project = if policy.exclusive {
        store.running_in_project(&request.project)?
    } else {
        Vec::new()
    };
    let mut reuse = None;
    for task in same_dest.iter().chain(same_project.iter()) {
        let is_same_dest = same_dest.iter().any(|t| t.id == task.id);
        let what = if is_same_dest {
            format!("{}", Path::new(&dest_str).join(&task.name).display())
        } else {
            format!("project {}", request.project)
        };
        match task.status {
            Status::Running => {
                clear_running(
                    store,
                    probe,
                    config,
                    task,
                    &what,
                    request.force_restart,
                    by,
                    now,
                    &mut notes,
                )?;
                if is_same_dest {
                    reuse = Some(task.id);
                }
            }
            _ if is_same_dest => {
                if task.status == Status::Interrupted {
                    store.requeue(
                        task.id,
                        Some(task.attempt),
                        "requeued by a new start for the same destination",
                        by,
                        now,
                    )?;
                }
                notes.push(format!(
                    "task {} already downloads {what}; reusing it",
                    task.id
                ));
                reuse = Some(task.id);
            }
            _ => {}
        }
    }
    if let Some(task) = reuse {
        return Ok(AddOutcome {
            task,
            created: false,
            notes,
        });
    }
    let new = NewTask {
        project: request.project.clone(),
        dest_dir: dest_str,
        files,
    };
    let task = store.add_task(&new, &host, now, by)?;
    Ok(AddOutcome {
        task,
        created: true,
        notes,
    })
}

/// A running task in the way of a new start: recovered when stale or orphaned, force-restarted
/// when asked, else a collision error.
#[allow(clippy::too_many_arguments)]
fn clear_running(
    store: &mut Store,
    probe: &LivenessProbe,
    config: &Config,
    task: &Task,
    what: &str,
    force: bool,
    by: &Actor,
    now: DateTime<Utc>,
    notes: &mut Vec<String>,
) -> Result<(), Error> {
    let assessed = Assessor::new(store, probe, config, now).assess(task.clone())?;
    let owner = assessed
        .owner
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), |o| o.label());
    if force {
        let reason = format!("force restart requested by {}", by.label);
        store.requeue(task.id, Some(task.attempt), &reason, by, now)?;
        notes.push(format!(
            "task {} force-restarted (was owned by {owner})",
            task.id
        ));
        return Ok(());
    }
    match &assessed.verdict {
        Verdict::Stale { .. } | Verdict::Orphaned { .. } => {
            let reason = format!(
                "recovered because a new start collided: {}",
                assessed.verdict.warning().unwrap_or_default()
            );
            store.interrupt(task.lease(), &reason, by, now)?;
            store.requeue(task.id, None, "resumed after automatic recovery", by, now)?;
            tracing::warn!(task = %task.id, "{reason}");
            notes.push(format!(
                "task {} was {} and has been recovered",
                task.id,
                assessed.verdict.label()
            ));
            Ok(())
        }
        Verdict::Healthy | Verdict::Stalled { .. } => Err(Error::AlreadyInProgress {
            what: what.to_owned(),
            task: task.id,
            owner,
        }),
    }
}

/// Cancels a task from any instance.
pub fn cancel(
    store: &mut Store,
    probe: &LivenessProbe,
    id: TaskId,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<CancelOutcome, Error> {
    let instances = store.live_instances()?;
    let owner_alive = move |owner: &crate::model::InstanceId| {
        let row = instances.iter().find(|i| &i.id == owner);
        matches!(
            probe.owner_state(row, now),
            crate::recovery::OwnerState::Alive
        )
    };
    let outcome = store.cancel(id, by, now, &owner_alive)?;
    if outcome == CancelOutcome::NotFound {
        return Err(Error::TaskNotFound(id));
    }
    Ok(outcome)
}

/// Restarts a task: finished ones are queued again; a running one only with `force`, or when
/// it is stale or orphaned (then it is recovered first).
pub fn restart(
    store: &mut Store,
    probe: &LivenessProbe,
    config: &Config,
    id: TaskId,
    force: bool,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    let task = store.task(id)?.ok_or(Error::TaskNotFound(id))?;
    match task.status {
        Status::Completed if !force => Err(Error::WrongState {
            task: id,
            status: "completed".into(),
            hint: "its files are in place; add the URL again to fetch a new copy".into(),
        }),
        Status::Queued => Ok(format!("task {id} is already queued")),
        Status::Running => {
            let mut notes = Vec::new();
            let what = format!("task {id} ({})", task.name);
            clear_running(
                store, probe, config, &task, &what, force, by, now, &mut notes,
            )?;
            Ok(notes.join("; "))
        }
        _ => {
            let reason = format!("restart requested by {}", by.label);
            match store.requeue(id, Some(task.attempt), &reason, by, now)? {
                RestartOutcome::Requeued { .. } => Ok(format!("task {id} queued again")),
                RestartOutcome::Changed => Err(Error::Other(format!(
                    "task {id} changed meanwhile; try again"
                ))),
                RestartOutcome::NotFound => Err(Error::TaskNotFound(id)),
            }
        }
    }
}

fn parse_url(raw: &str) -> Result<url::Url, Error> {
    // The URL as shown in an error, made only for one: redacting parses it again.
    let invalid = |reason: String| Error::InvalidUrl {
        url: redact_url(raw.trim()),
        reason,
    };
    let url = url::Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(invalid(format!(
                "unsupported scheme {other} (only http and https)"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    Ok(url)
}

fn parse_sha256(hex: &str) -> Result<String, Error> {
    let hex = hex.trim().to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(Error::Usage(format!(
            "invalid sha256 {hex:?}: expected 64 hex digits"
        )))
    }
}

fn absolute(dir: &Path) -> Result<PathBuf, Error> {
    if dir.is_absolute() {
        return Ok(dir.to_owned());
    }
    let cwd =
        std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?;
    Ok(cwd.join(dir))
}

fn check_writable(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create destination directory", dir, e))?;
    tempfile::tempfile_in(dir).map_err(|e| Error::io("write to destination directory", dir, e))?;
    Ok(())
}
