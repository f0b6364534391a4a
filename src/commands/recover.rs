//! `haul recover [--dry-run]`: the startup sweep, on demand.

use chrono::Utc;

use super::{Context, cli_actor};
use crate::cli::RecoverArgs;
use crate::error::{EXIT_OK, Error};
use crate::sweep;

pub fn run(ctx: &Context, args: &RecoverArgs) -> Result<u8, Error> {
    let probe = ctx.probe();
    let now = Utc::now();
    let items = if args.dry_run {
        let reader = ctx.reader()?;
        sweep::plan(&reader, &probe, now)?
    } else {
        let mut store = ctx.store()?;
        sweep::run(&mut store, &probe, &cli_actor(), now)?
    };
    let verb = if args.dry_run {
        "would recover"
    } else {
        "recovered"
    };
    for item in &items {
        println!(
            "{verb} task {} ({}): {}",
            item.task,
            crate::text::escape_controls(&item.name),
            item.reason
        );
    }
    match (items.len(), args.dry_run) {
        (0, _) => println!("No orphaned running tasks"),
        (n, false) => println!("Recovered {n} orphaned running tasks"),
        (n, true) => println!("{n} orphaned running tasks would be recovered"),
    }
    Ok(EXIT_OK)
}
