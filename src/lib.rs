//! haul: a download manager for operators.
//!
//! The data path: the [`store`] (SQLite, the single source of truth) ← the [`engine`] (tokio
//! tasks that claim work and stream bodies to `.part` files) → a snapshot that merges memory
//! and database → the dashboard that renders it. [`recovery`] holds the rules that decide which
//! tasks are stale or orphaned, as pure functions; [`sweep`] and [`ops`] apply them.

pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod health;
pub mod instance;
pub mod logging;
pub mod model;
pub mod names;
pub mod ops;
pub mod output;
pub mod recovery;
pub mod snapshot;
pub mod store;
pub mod sweep;
pub mod text;
pub mod tui;

pub use cli::Cli;
pub use error::{Error, Result};

/// Runs one command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    commands::dispatch(cli)
}
