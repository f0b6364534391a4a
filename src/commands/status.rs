//! `haul status ID`: one task with `is_stale`, `time_since_update_seconds` and `warning`.

use chrono::Utc;
use serde::Serialize;

use super::{Context, print_json};
use crate::cli::StatusArgs;
use crate::error::{EXIT_OK, Error};
use crate::health::Assessor;
use crate::model::{Source, TaskId};
use crate::output::{FileJson, TaskJson, format_progress, task_table};

#[derive(Serialize)]
struct StatusJson {
    #[serde(flatten)]
    task: TaskJson,
    files: Vec<FileJson>,
}

pub fn run(ctx: &Context, args: &StatusArgs) -> Result<u8, Error> {
    let reader = ctx.reader()?;
    let id = TaskId(args.id);
    let task = reader.task(id)?.ok_or(Error::TaskNotFound(id))?;
    let probe = ctx.probe();
    let assessed = Assessor::new(&reader, &probe, &ctx.config, Utc::now()).assess(task)?;
    let files: Vec<FileJson> = reader.files(id)?.iter().map(FileJson::new).collect();
    let task = TaskJson::new(&assessed, Source::Database);
    if args.json {
        print_json(&StatusJson { task, files })?;
        return Ok(EXIT_OK);
    }
    print!("{}", task_table(std::slice::from_ref(&task)));
    if let Some(owner) = &task.owner {
        let age = task
            .time_since_update_seconds
            .map_or("?".into(), |s| format!("{s} s ago"));
        println!(
            "owner {}/{} ({}), last update {age}, attempt {}",
            owner.host, owner.pid, owner.mode, task.attempt
        );
    }
    for f in files {
        let mark = if f.done { "done" } else { "    " };
        println!(
            "  [{mark}] {}  {}  {}",
            f.name,
            format_progress(f.bytes_done, f.bytes_total),
            f.url
        );
    }
    Ok(EXIT_OK)
}
