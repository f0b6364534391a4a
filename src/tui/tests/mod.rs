//! Dashboard tests over a fixed snapshot: rendering (insta, TestBackend), keys, and the
//! memory ∪ database merge. The clock is fixed, so no frame holds a changing time.

mod history;
mod keys;
mod merge;
mod render;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::model::{
    Attempt, EventKind, FileEntry, InstanceId, Source, Status, Task, TaskEvent, TaskId,
};
use crate::recovery::Verdict;
use crate::snapshot::{
    ActiveRow, AttentionRow, Detail, HistoryAnchor, HistoryOrder, HistoryWindow, LogLine,
    LogOrigin, Recovery, RowPosition, Snapshot,
};
use crate::store::HistoryFilter;

/// The fixed "now" of every fixture.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

fn ago(secs: i64) -> DateTime<Utc> {
    now() - Duration::seconds(secs)
}

/// A name a hostile server could send: ESC sequences, BEL and a bidi override.
pub const EVIL_NAME: &str = "evil\u{1b}]0;pwned\u{7}\u{202e}gpj.exe";

/// A task row.
pub fn task(id: i64, status: Status, name: &str) -> Task {
    Task {
        id: TaskId(id),
        project: if id % 2 == 0 {
            "isos".into()
        } else {
            "pdfs".into()
        },
        name: name.into(),
        dest_dir: "/srv/downloads".into(),
        status,
        attempt: Attempt(1),
        owner: None,
        created_at: ago(3600 + id % 600),
        started_at: Some(ago(3000)),
        updated_at: ago(5),
        progress_at: Some(ago(5)),
        finished_at: status.is_final().then(|| ago(60)),
        error_message: (status == Status::Failed)
            .then(|| "HTTP 404 Not Found from example.org".into()),
        control: None,
        bytes_done: 1 << 20,
        bytes_total: Some(4 << 20),
        files_done: 0,
        files_total: 1,
        retries: 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn active(
    id: i64,
    name: &str,
    source: Source,
    owner: Option<&str>,
    heartbeat: Option<i64>,
    done: u64,
    total: Option<u64>,
    speed: Option<f64>,
) -> ActiveRow {
    ActiveRow {
        id: TaskId(id),
        project: if id % 2 == 0 {
            "isos".into()
        } else {
            "pdfs".into()
        },
        name: name.into(),
        status: if speed.is_some() || heartbeat.is_some() {
            Status::Running
        } else {
            Status::Queued
        },
        source,
        owner: owner.map(str::to_owned),
        heartbeat_at: heartbeat.map(ago),
        bytes_done: done,
        bytes_total: total,
        files_done: 0,
        files_total: 1,
        speed_bps: speed,
        eta_secs: speed
            .filter(|s| *s > 1.0)
            .zip(total)
            .map(|(s, t)| ((t - done) as f64 / s) as u64),
        verdict: Verdict::Healthy,
        phase: (source == Source::Memory).then(|| "file 1/1".into()),
        disagreement: None,
    }
}

/// The fixed snapshot every render test draws.
pub fn fixture() -> Arc<Snapshot> {
    const MIB: u64 = 1 << 20;
    let stale = Verdict::Stale {
        since_secs: 412,
        reason: "no heartbeat for over 300 s".into(),
    };
    let orphaned = Verdict::Orphaned {
        reason: "its process lock was released (process died)".into(),
    };
    let mut rows = vec![
        active(
            101,
            "report-2024.pdf",
            Source::Memory,
            Some("build-01/4242"),
            Some(1),
            6 * MIB,
            Some(10 * MIB),
            Some(2.0 * MIB as f64),
        ),
        active(
            102,
            "ubuntu-24.04-desktop-amd64.iso",
            Source::Database,
            Some("worker-7/911"),
            Some(3),
            1536 * MIB,
            Some(5836 * MIB),
            Some(11.5 * MIB as f64),
        ),
        active(
            103,
            EVIL_NAME,
            Source::Database,
            Some("worker-7/911"),
            Some(412),
            300 * MIB,
            Some(700 * MIB),
            Some(0.0),
        ),
        active(
            104,
            "paper.pdf",
            Source::Memory,
            Some("build-01/4242"),
            Some(2),
            2 * MIB,
            Some(3 * MIB),
            Some(512.0 * 1024.0),
        ),
        active(
            105,
            "queued.zip",
            Source::Database,
            None,
            None,
            0,
            None,
            None,
        ),
        active(
            106,
            "data.tar",
            Source::Database,
            Some("old-host/123"),
            Some(30),
            80 * MIB,
            None,
            None,
        ),
    ];
    rows[2].verdict = stale.clone();
    rows[3].disagreement = Some("the database says cancelled".into());
    rows[5].verdict = orphaned.clone();
    let attention = vec![
        AttentionRow {
            id: TaskId(103),
            project: "isos".into(),
            name: EVIL_NAME.into(),
            owner: Some("worker-7/911".into()),
            heartbeat_at: ago(412),
            warning: stale.warning().unwrap(),
            recovery: Recovery::ForceRestart,
            verdict: stale,
        },
        AttentionRow {
            id: TaskId(106),
            project: "isos".into(),
            name: "data.tar".into(),
            owner: Some("old-host/123".into()),
            heartbeat_at: ago(30),
            warning: orphaned.warning().unwrap(),
            recovery: Recovery::Restart,
            verdict: orphaned,
        },
    ];
    let statuses = [
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
        Status::Interrupted,
        Status::Completed,
    ];
    let history_rows: Vec<Task> = (0..60)
        .map(|i| {
            let id = 1_000_000 - i;
            let name = if i == 2 {
                EVIL_NAME.to_owned()
            } else {
                format!("file-{id}.bin")
            };
            task(id, statuses[(i % 5) as usize], &name)
        })
        .collect();
    let history = HistoryWindow {
        filter: HistoryFilter::default(),
        order: HistoryOrder::NewestFirst,
        top: HistoryAnchor::First,
        total: 1_000_000,
        start: RowPosition::Exact(0),
        at_end: false,
        rows: history_rows,
    };
    let log = vec![
        line(
            2,
            Some(103),
            LogOrigin::Database,
            Some(EventKind::CancelRequested),
            Some("build-01/4242"),
            "cancel requested by build-01/4242",
        ),
        line(
            5,
            Some(106),
            LogOrigin::Here,
            None,
            None,
            "recovered task 106 (data.tar): owner died: its lock file is gone",
        ),
        line(
            9,
            Some(99),
            LogOrigin::Database,
            Some(EventKind::Failed),
            Some("worker-7/911"),
            "HTTP 404 Not Found from example.org",
        ),
        line(
            12,
            Some(103),
            LogOrigin::Database,
            Some(EventKind::Retry),
            Some("worker-7/911"),
            EVIL_NAME,
        ),
        line(
            20,
            None,
            LogOrigin::Here,
            None,
            None,
            "No orphaned running tasks",
        ),
    ];
    let mut detail_task = task(103, Status::Running, EVIL_NAME);
    detail_task.owner = Some(InstanceId("abc".into()));
    detail_task.attempt = Attempt(3);
    detail_task.updated_at = ago(412);
    detail_task.bytes_done = 300 * MIB;
    detail_task.bytes_total = Some(700 * MIB);
    let detail = Detail {
        task: detail_task,
        owner: Some("worker-7/911".into()),
        verdict: Verdict::Stale {
            since_secs: 412,
            reason: "no heartbeat for over 300 s".into(),
        },
        files: vec![FileEntry {
            task_id: TaskId(103),
            index: 0,
            url: "https://mirror.example.org/isos/evil.iso?token=s3cret".into(),
            name: EVIL_NAME.into(),
            dest_path: None,
            bytes_done: 300 * MIB,
            bytes_total: Some(700 * MIB),
            etag: Some("\"5f3a-\u{1b}[2J\"".into()),
            last_modified: Some("Mon, 01 Jan 2024 00:00:00 GMT".into()),
            sha256_expected: Some("ab".repeat(32)),
            sha256: None,
            done: false,
        }],
        events: vec![
            event(1, 3600, EventKind::Added, "1 file(s) into /srv/downloads"),
            event(2, 3000, EventKind::Claimed, "claimed by worker-7/911"),
            event(
                3,
                600,
                EventKind::Retry,
                "try 1/5 failed: connection reset; retrying in 0.5 s",
            ),
        ],
        live: None,
    };
    Arc::new(Snapshot {
        active: rows,
        attention,
        history,
        log,
        detail: Some(detail),
        local_running: 2,
        error: None,
    })
}

fn line(
    secs: i64,
    task: Option<i64>,
    origin: LogOrigin,
    kind: Option<EventKind>,
    by: Option<&str>,
    text: &str,
) -> LogLine {
    LogLine {
        at: ago(secs),
        task: task.map(TaskId),
        origin,
        kind,
        by: by.map(str::to_owned),
        text: text.into(),
    }
}

fn event(id: i64, secs: i64, kind: EventKind, message: &str) -> TaskEvent {
    TaskEvent {
        id,
        task_id: TaskId(103),
        at: ago(secs),
        attempt: Attempt(id),
        kind,
        by: Some("worker-7/911".into()),
        message: message.into(),
    }
}
