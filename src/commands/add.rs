//! `haul add`: queue a task (or reuse/recover the one already writing that destination).

use std::path::Path;

use chrono::Utc;
use serde_json::json;

use super::{Context, cli_actor, print_json};
use crate::cli::AddArgs;
use crate::error::{EXIT_OK, Error};
use crate::ops::{AddOutcome, AddRequest, add, add_each};

pub fn run(ctx: &Context, args: &AddArgs) -> Result<u8, Error> {
    let mut urls: Vec<(String, Option<String>)> = Vec::new();
    if args.sha256.is_some() && args.urls.len() + usize::from(args.input.is_some()) != 1 {
        return Err(Error::Usage(
            "--sha256 goes with exactly one URL (use --input FILE for several)".into(),
        ));
    }
    for url in &args.urls {
        urls.push((url.clone(), args.sha256.clone()));
    }
    if let Some(path) = &args.input {
        urls.extend(read_input(path)?);
    }
    let request = AddRequest {
        urls,
        project: args.project.clone(),
        dest: args.dest.clone(),
        force_restart: args.force_restart,
    };
    let mut store = ctx.store()?;
    let (probe, by, now) = (ctx.probe(), cli_actor(), Utc::now());
    let outcomes = if args.each {
        add_each(&mut store, &probe, &ctx.config, &request, &by, now)?
    } else {
        vec![add(&mut store, &probe, &ctx.config, &request, &by, now)?]
    };
    for note in outcomes.iter().flat_map(|o| &o.notes) {
        eprintln!("{note}");
    }
    let describe =
        |o: &AddOutcome| json!({"task_id": o.task.0, "created": o.created, "notes": o.notes});
    match (args.json, args.each) {
        (true, true) => {
            print_json(&json!({"tasks": outcomes.iter().map(describe).collect::<Vec<_>>()}))?
        }
        (true, false) => {
            for outcome in &outcomes {
                print_json(&describe(outcome))?;
            }
        }
        (false, _) => {
            // One write for all the ids: stdout to a pipe is flushed at every line.
            let ids: String = outcomes.iter().map(|o| format!("{}\n", o.task)).collect();
            print!("{ids}");
        }
    }
    Ok(EXIT_OK)
}

/// Lines of `URL [sha256]`; blank lines and `#` comments skipped.
fn read_input(path: &Path) -> Result<Vec<(String, Option<String>)>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read URL list", path, e))?;
    let mut urls = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let url = parts.next().unwrap_or_default().to_owned();
        let sha = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return Err(Error::Usage(format!(
                "{}:{}: expected `URL [sha256]`",
                path.display(),
                n + 1
            )));
        }
        urls.push((url, sha));
    }
    Ok(urls)
}
