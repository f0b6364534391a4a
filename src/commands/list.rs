//! `haul list`: history, newest first; `--json --watch` streams one NDJSON line per change.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;

use super::{Context, print_json};
use crate::cli::ListArgs;
use crate::error::{EXIT_OK, Error};
use crate::health::Assessor;
use crate::model::{Source, Status};
use crate::output::{TaskJson, task_table};
use crate::store::{HistoryFilter, PageKey, ReadOnlyStore};

/// How often `--watch` looks for changes.
const WATCH_POLL: Duration = Duration::from_millis(500);

pub fn run(ctx: &Context, args: &ListArgs) -> Result<u8, Error> {
    let status = match &args.status {
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            Error::Usage(format!(
                "unknown status {s:?}; expected one of queued, running, completed, failed, cancelled, interrupted"
            ))
        })?),
        None => None,
    };
    let filter = HistoryFilter {
        status,
        project: args.project.clone(),
        text: None,
    };
    let reader = ctx.reader()?;
    if args.watch {
        if !args.json {
            return Err(Error::Usage(
                "--watch streams NDJSON; use it with --json".into(),
            ));
        }
        return watch(ctx, &reader, &filter, args.limit);
    }
    let rows = rows(ctx, &reader, &filter, args.limit)?;
    if args.json {
        print_json(&rows)?;
    } else {
        print!("{}", task_table(&rows));
    }
    Ok(EXIT_OK)
}

fn rows(
    ctx: &Context,
    reader: &ReadOnlyStore,
    filter: &HistoryFilter,
    limit: usize,
) -> Result<Vec<TaskJson>, Error> {
    let probe = ctx.probe();
    let mut assessor = Assessor::new(reader, &probe, &ctx.config, Utc::now());
    let mut rows = Vec::new();
    for task in reader.history_page(filter, PageKey::Newest, limit)? {
        rows.push(TaskJson::new(&assessor.assess(task)?, Source::Database));
    }
    Ok(rows)
}

/// Prints every row once, then a line for each row whose fields changed (heartbeat times and
/// ages aside, so an idle queue prints nothing).
fn watch(
    ctx: &Context,
    reader: &ReadOnlyStore,
    filter: &HistoryFilter,
    limit: usize,
) -> Result<u8, Error> {
    let mut seen: HashMap<i64, serde_json::Value> = HashMap::new();
    loop {
        let mut current = rows(ctx, reader, filter, limit)?;
        current.reverse();
        for row in current {
            let mut key = serde_json::to_value(&row).map_err(|e| Error::Other(e.to_string()))?;
            if let Some(obj) = key.as_object_mut() {
                obj.remove("updated_at");
                obj.remove("time_since_update_seconds");
                obj.remove("owner");
            }
            if seen.get(&row.task_id) != Some(&key) {
                seen.insert(row.task_id, key);
                print_json(&row)?;
            }
        }
        std::thread::sleep(WATCH_POLL);
    }
}
