//! `haul events ID`: who did what to a task, when and why.

use super::{Context, print_json};
use crate::cli::EventsArgs;
use crate::error::{EXIT_OK, Error};
use crate::model::TaskId;
use crate::output::EventJson;

pub fn run(ctx: &Context, args: &EventsArgs) -> Result<u8, Error> {
    let reader = ctx.reader()?;
    let id = TaskId(args.id);
    if reader.task(id)?.is_none() {
        return Err(Error::TaskNotFound(id));
    }
    let events: Vec<EventJson> = reader.events(id)?.iter().map(EventJson::new).collect();
    if args.json {
        print_json(&events)?;
        return Ok(EXIT_OK);
    }
    for e in events {
        println!(
            "{}  #{:<3} {:<17} {:<20} {}",
            e.at,
            e.attempt,
            e.kind,
            e.by.unwrap_or_default(),
            e.message
        );
    }
    Ok(EXIT_OK)
}
