//! `haul` / `haul tui` / `haul watch`: the dashboard.

use super::Context;
use crate::cli::TuiArgs;
use crate::error::Error;

/// Whether the dashboard may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardMode {
    /// Runs downloads in this process; keys act on tasks.
    ReadWrite,
    /// Opens the database read-only; runs nothing; mutating keys refuse.
    ReadOnly,
}

/// Runs the dashboard until the operator quits.
pub fn run_dashboard(_ctx: &Context, _mode: DashboardMode, _args: &TuiArgs) -> Result<u8, Error> {
    Err(Error::Other("the dashboard is not built yet".into()))
}
