//! `haul tasks --json`: active tasks, `{"active_tasks": N, "tasks": [...]}`. A one-shot process
//! runs nothing itself, so every row comes from the database (`source = database`).

use chrono::Utc;
use serde_json::json;

use super::{Context, print_json};
use crate::cli::JsonArgs;
use crate::error::{EXIT_OK, Error};
use crate::health::Assessor;
use crate::model::Source;
use crate::output::{TaskJson, task_table};

pub fn run(ctx: &Context, args: &JsonArgs) -> Result<u8, Error> {
    let reader = ctx.reader()?;
    let probe = ctx.probe();
    let mut assessor = Assessor::new(&reader, &probe, &ctx.config, Utc::now());
    let mut rows = Vec::new();
    for task in reader
        .unfinished()?
        .into_iter()
        .filter(|t| t.status.is_active())
    {
        rows.push(TaskJson::new(&assessor.assess(task)?, Source::Database));
    }
    if args.json {
        print_json(&json!({"active_tasks": rows.len(), "tasks": rows}))?;
    } else {
        print!("{}", task_table(&rows));
        println!(
            "{} active tasks (0 from memory, {} from database)",
            rows.len(),
            rows.len()
        );
    }
    Ok(EXIT_OK)
}
