//! `haul demo`: a newcomer's first minute, offline. A loopback sample server, a temporary
//! database with sample tasks, and the read-write dashboard; `q` ends it and removes all of it.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::runtime;
use super::tui::{DashboardMode, run_session};
use super::{Context, cli_actor};
use crate::cli::DemoArgs;
use crate::demo::Demo;
use crate::error::{EXIT_OK, Error};

/// Runs the demo until the operator quits the dashboard.
pub fn run(args: &DemoArgs, verbose: u8) -> Result<u8, Error> {
    let runtime = runtime()?;
    let demo = runtime.block_on(Demo::start())?;
    let ctx = Context {
        db_path: demo.db_path(),
        config: Arc::new(demo.config()),
    };
    demo.queue(&cli_actor())?;
    let log = demo.dir().join("haul.log");
    let refresh = Duration::from_millis(args.refresh_ms);
    let result = run_session(
        &ctx,
        DashboardMode::ReadWrite,
        refresh,
        runtime,
        &log,
        verbose,
    );
    let dir = demo.dir().display().to_string();
    drop(demo);
    result?;
    // The terminal may be gone (SIGHUP): a failed write is not worth a panic.
    let _ = writeln!(std::io::stdout(), "haul demo finished; removed {dir}");
    Ok(EXIT_OK)
}
