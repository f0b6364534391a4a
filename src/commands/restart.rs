//! `haul restart ID [--force]`.

use chrono::Utc;

use super::{Context, cli_actor};
use crate::cli::RestartArgs;
use crate::error::{EXIT_OK, Error};
use crate::model::TaskId;
use crate::ops::restart;

pub fn run(ctx: &Context, args: &RestartArgs) -> Result<u8, Error> {
    let mut store = ctx.store()?;
    let id = TaskId(args.id);
    let message = restart(
        &mut store,
        &ctx.probe(),
        &ctx.config,
        id,
        args.force,
        &cli_actor(),
        Utc::now(),
    )?;
    println!("{message}");
    Ok(EXIT_OK)
}
