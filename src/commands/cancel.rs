//! `haul cancel ID`: from any instance; a running task stops within one heartbeat.

use chrono::Utc;

use super::{Context, cli_actor};
use crate::error::{EXIT_OK, Error};
use crate::model::TaskId;
use crate::ops::cancel;
use crate::store::CancelOutcome;

pub fn run(ctx: &Context, id: TaskId) -> Result<u8, Error> {
    let mut store = ctx.store()?;
    match cancel(&mut store, &ctx.probe(), id, &cli_actor(), Utc::now())? {
        CancelOutcome::Cancelled => println!("task {id} cancelled"),
        CancelOutcome::Requested { owner } => {
            println!(
                "task {id}: cancel requested; its owner ({owner}) stops it within one heartbeat"
            )
        }
        CancelOutcome::AlreadyFinal(status) => println!("task {id} is already {status}"),
        CancelOutcome::NotFound => return Err(Error::TaskNotFound(id)),
    }
    Ok(EXIT_OK)
}
