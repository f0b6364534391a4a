//! `haul stale [--json]`: the admin overview of every stale or orphaned task, across projects,
//! with its owner, age and the command that recovers it.

use chrono::Utc;
use serde::Serialize;

use super::{Context, print_json};
use crate::cli::JsonArgs;
use crate::error::{EXIT_OK, Error};
use crate::health::{Assessed, Assessor};
use crate::model::Source;
use crate::output::{TaskJson, format_secs};
use crate::recovery::Verdict;

#[derive(Serialize)]
struct StaleJson {
    #[serde(flatten)]
    task: TaskJson,
    /// The command that recovers it.
    recover_command: String,
}

/// The command an operator runs to recover a task in this state.
pub fn recover_command(a: &Assessed) -> String {
    match a.verdict {
        Verdict::Orphaned { .. } => "haul recover".to_owned(),
        _ => format!("haul restart {} --force", a.task.id),
    }
}

pub fn run(ctx: &Context, args: &JsonArgs) -> Result<u8, Error> {
    let reader = ctx.reader()?;
    let probe = ctx.probe();
    let mut assessor = Assessor::new(&reader, &probe, &ctx.config, Utc::now());
    let mut rows = Vec::new();
    for task in reader.running()? {
        let assessed = assessor.assess(task)?;
        if assessed.verdict.needs_recovery() {
            rows.push(StaleJson {
                recover_command: recover_command(&assessed),
                task: TaskJson::new(&assessed, Source::Database),
            });
        }
    }
    if args.json {
        print_json(&rows)?;
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        println!("No stale or orphaned tasks");
    }
    for r in &rows {
        let owner = r
            .task
            .owner
            .as_ref()
            .map_or("none".to_owned(), |o| format!("{}/{}", o.host, o.pid));
        let age = r
            .task
            .time_since_update_seconds
            .map_or("?".to_owned(), format_secs);
        println!(
            "{:>6}  {:<9} {:<12} owner {owner}, no update for {age}: {}\n        recover: {}",
            r.task.task_id, r.task.state, r.task.project, r.task.name, r.recover_command
        );
    }
    Ok(EXIT_OK)
}
