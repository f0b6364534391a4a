//! How tasks, files and events are printed: the JSON contract (field names are stable; add,
//! never rename) and the human tables. Every string is escaped of control characters.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::health::Assessed;
use crate::model::{FileEntry, Source, TaskEvent};
use crate::text::{escape_controls, redact_url};

/// A task as scripts see it (`list --json`, `status --json`, `tasks --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskJson {
    pub task_id: i64,
    pub project: String,
    pub name: String,
    pub status: String,
    /// healthy, stalled, stale or orphaned.
    pub state: String,
    pub attempt: i64,
    pub owner: Option<OwnerJson>,
    pub start_time: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub files_done: u32,
    pub files_total: u32,
    pub retries: u32,
    pub error_message: Option<String>,
    pub dest_dir: String,
    pub is_stale: bool,
    pub time_since_update_seconds: Option<u64>,
    pub warning: Option<String>,
    pub source: Source,
}

/// The owner of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnerJson {
    pub instance_id: String,
    pub host: String,
    pub pid: u32,
    pub mode: String,
    pub heartbeat_at: String,
}

/// A file of a task (`status --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileJson {
    pub index: u32,
    pub url: String,
    pub name: String,
    pub dest_path: Option<String>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub sha256_expected: Option<String>,
    pub sha256: Option<String>,
    pub done: bool,
}

/// An event (`events --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventJson {
    pub id: i64,
    pub task_id: i64,
    pub at: String,
    pub attempt: i64,
    pub kind: String,
    pub by: Option<String>,
    pub message: String,
}

pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl TaskJson {
    pub fn new(a: &Assessed, source: Source) -> TaskJson {
        let t = &a.task;
        TaskJson {
            task_id: t.id.0,
            project: escape_controls(&t.project),
            name: escape_controls(&t.name),
            status: t.status.as_str().to_owned(),
            state: a.verdict.label().to_owned(),
            attempt: t.attempt.0,
            owner: a.owner.as_ref().map(|o| OwnerJson {
                instance_id: o.id.0.clone(),
                host: escape_controls(&o.host),
                pid: o.pid,
                mode: o.mode.as_str().to_owned(),
                heartbeat_at: time(o.heartbeat_at),
            }),
            start_time: t.started_at.map(time),
            created_at: time(t.created_at),
            updated_at: time(t.updated_at),
            finished_at: t.finished_at.map(time),
            bytes_done: t.bytes_done,
            bytes_total: t.bytes_total,
            files_done: t.files_done,
            files_total: t.files_total,
            retries: t.retries,
            error_message: t.error_message.as_deref().map(escape_controls),
            dest_dir: escape_controls(&t.dest_dir),
            is_stale: a.verdict.needs_recovery(),
            time_since_update_seconds: a.since_update_secs,
            warning: a.verdict.warning(),
            source,
        }
    }
}

impl FileJson {
    pub fn new(f: &FileEntry) -> FileJson {
        FileJson {
            index: f.index,
            url: redact_url(&f.url),
            name: escape_controls(&f.name),
            dest_path: f.dest_path.as_deref().map(escape_controls),
            bytes_done: f.bytes_done,
            bytes_total: f.bytes_total,
            etag: f.etag.as_deref().map(escape_controls),
            last_modified: f.last_modified.as_deref().map(escape_controls),
            sha256_expected: f.sha256_expected.clone(),
            sha256: f.sha256.clone(),
            done: f.done,
        }
    }
}

impl EventJson {
    pub fn new(e: &TaskEvent) -> EventJson {
        EventJson {
            id: e.id,
            task_id: e.task_id.0,
            at: time(e.at),
            attempt: e.attempt.0,
            kind: e.kind.as_str().to_owned(),
            by: e.by.as_deref().map(escape_controls),
            message: escape_controls(&e.message),
        }
    }
}

/// `1.5 MiB`, `812 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `42s`, `3m05s`, `2h01m`, `3d04h`.
pub fn format_secs(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d{:02}h", secs / 86400, (secs % 86400) / 3600),
    }
}

/// `done/total` bytes with a percentage when the total is known.
pub fn format_progress(done: u64, total: Option<u64>) -> String {
    match total {
        Some(t) if t > 0 => format!(
            "{} / {} ({:.0}%)",
            format_bytes(done),
            format_bytes(t),
            done as f64 * 100.0 / t as f64
        ),
        _ => format_bytes(done),
    }
}

/// A plain table of tasks for humans.
pub fn task_table(rows: &[TaskJson]) -> String {
    let mut out = format!(
        "{:>6}  {:<12} {:<11} {:<9} {:<28} {}\n",
        "ID", "PROJECT", "STATUS", "STATE", "PROGRESS", "NAME"
    );
    for r in rows {
        let progress = format_progress(r.bytes_done, r.bytes_total);
        out.push_str(&format!(
            "{:>6}  {:<12} {:<11} {:<9} {:<28} {}\n",
            r.task_id,
            crate::text::ellipsize(&r.project, 12),
            r.status,
            r.state,
            progress,
            r.name
        ));
        if let Some(w) = &r.warning {
            out.push_str(&format!("        ! {w}\n"));
        } else if let Some(e) = r.error_message.as_ref().filter(|_| r.status != "completed") {
            out.push_str(&format!("        {e}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(format_bytes(812), "812 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(1 << 30), "1.0 GiB");
        assert_eq!(format_secs(42), "42s");
        assert_eq!(format_secs(185), "3m05s");
        assert_eq!(format_secs(7260), "2h01m");
        assert_eq!(format_progress(512, Some(1024)), "512 B / 1.0 KiB (50%)");
    }
}
