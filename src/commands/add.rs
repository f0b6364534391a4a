//! `haul add`: queue a task (or reuse/recover the one already writing that destination).

use std::path::Path;

use chrono::Utc;
use serde_json::json;

use super::{Context, cli_actor, print_json};
use crate::cli::AddArgs;
use crate::error::{EXIT_OK, Error};
use crate::ops::{AddRequest, add};

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
    let outcome = add(
        &mut store,
        &ctx.probe(),
        &ctx.config,
        &request,
        &cli_actor(),
        Utc::now(),
    )?;
    for note in &outcome.notes {
        eprintln!("{note}");
    }
    if args.json {
        print_json(
            &json!({"task_id": outcome.task.0, "created": outcome.created, "notes": outcome.notes}),
        )?;
    } else {
        println!("{}", outcome.task);
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
