//! Row ↔ model mapping, with the column lists the queries select.

use rusqlite::Row;
use rusqlite::types::{FromSqlError, Type};

use super::from_ms;
use crate::model::{
    Attempt, ControlRequest, EventKind, FileEntry, Instance, InstanceId, Mode, Status, Task,
    TaskEvent, TaskId,
};

pub const TASK_COLUMNS: &str = "id, project, name, dest_dir, status, attempt, owner_id, \
    created_at, started_at, updated_at, progress_at, finished_at, error_message, control, \
    bytes_done, bytes_total, files_done, files_total, retries";

pub fn task(row: &Row<'_>) -> rusqlite::Result<Task> {
    let status = row.get_ref(4)?.as_str().map_err(|e| text_error(4, e))?;
    let control = row
        .get_ref(13)?
        .as_str_or_null()
        .map_err(|e| text_error(13, e))?;
    Ok(Task {
        id: TaskId(row.get(0)?),
        project: row.get(1)?,
        name: row.get(2)?,
        dest_dir: row.get(3)?,
        status: Status::parse(status).unwrap_or(Status::Failed),
        attempt: Attempt(row.get(5)?),
        owner: row.get::<_, Option<String>>(6)?.map(InstanceId),
        created_at: from_ms(row.get(7)?),
        started_at: row.get::<_, Option<i64>>(8)?.map(from_ms),
        updated_at: from_ms(row.get(9)?),
        progress_at: row.get::<_, Option<i64>>(10)?.map(from_ms),
        finished_at: row.get::<_, Option<i64>>(11)?.map(from_ms),
        error_message: row.get(12)?,
        control: (control == Some("cancel")).then_some(ControlRequest::Cancel),
        bytes_done: row.get::<_, i64>(14)?.max(0) as u64,
        bytes_total: row.get::<_, Option<i64>>(15)?.map(|b| b.max(0) as u64),
        files_done: row.get::<_, i64>(16)?.max(0) as u32,
        files_total: row.get::<_, i64>(17)?.max(0) as u32,
        retries: row.get::<_, i64>(18)?.max(0) as u32,
    })
}

/// Column `index` did not hold text.
fn text_error(index: usize, e: FromSqlError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e))
}

pub const FILE_COLUMNS: &str = "task_id, idx, url, name, dest_path, bytes_done, bytes_total, \
    etag, last_modified, sha256_expected, sha256, done";

pub fn file(row: &Row<'_>) -> rusqlite::Result<FileEntry> {
    Ok(FileEntry {
        task_id: TaskId(row.get(0)?),
        index: row.get::<_, i64>(1)?.max(0) as u32,
        url: row.get(2)?,
        name: row.get(3)?,
        dest_path: row.get(4)?,
        bytes_done: row.get::<_, i64>(5)?.max(0) as u64,
        bytes_total: row.get::<_, Option<i64>>(6)?.map(|b| b.max(0) as u64),
        etag: row.get(7)?,
        last_modified: row.get(8)?,
        sha256_expected: row.get(9)?,
        sha256: row.get(10)?,
        done: row.get(11)?,
    })
}

pub const EVENT_COLUMNS: &str = "id, task_id, at, attempt, kind, by_label, message";

pub fn event(row: &Row<'_>) -> rusqlite::Result<TaskEvent> {
    let kind: String = row.get(4)?;
    Ok(TaskEvent {
        id: row.get(0)?,
        task_id: TaskId(row.get(1)?),
        at: from_ms(row.get(2)?),
        attempt: Attempt(row.get(3)?),
        kind: EventKind::parse(&kind).unwrap_or(EventKind::Progress),
        by: row.get(5)?,
        message: row.get(6)?,
    })
}

pub const INSTANCE_COLUMNS: &str = "id, host, pid, mode, started_at, heartbeat_at, stopped_at";

pub fn instance(row: &Row<'_>) -> rusqlite::Result<Instance> {
    let mode: String = row.get(3)?;
    Ok(Instance {
        id: InstanceId(row.get(0)?),
        host: row.get(1)?,
        pid: row.get::<_, i64>(2)?.max(0) as u32,
        mode: Mode::parse(&mode),
        started_at: from_ms(row.get(4)?),
        heartbeat_at: from_ms(row.get(5)?),
        stopped_at: row.get::<_, Option<i64>>(6)?.map(from_ms),
    })
}
