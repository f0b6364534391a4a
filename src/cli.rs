//! The command line: global options and one subcommand per mode.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// haul: a download manager for operators. Tasks live in SQLite; crashes are recovered,
/// partial files resumed, stuck tasks flagged.
#[derive(Debug, Parser)]
#[command(name = "haul", version, about, propagate_version = true)]
pub struct Cli {
    /// State database (default: the platform data directory, haul/haul.db).
    #[arg(long, global = true, env = "HAUL_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Config file (default: the platform config directory, haul/config.toml, if present).
    #[arg(long, global = true, env = "HAUL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do (no subcommand: the dashboard).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The dashboard; also runs downloads in this process.
    Tui(TuiArgs),
    /// The read-only dashboard: never writes, runs nothing.
    Watch(WatchArgs),
    /// Headless worker: run queued tasks until stopped (SIGINT/SIGTERM leave them resumable).
    Run(RunArgs),
    /// Queue a download task; prints its id.
    Add(AddArgs),
    /// List tasks, newest first.
    List(ListArgs),
    /// One task, with stale detection.
    Status(StatusArgs),
    /// Active tasks: this process's memory merged with the database.
    Tasks(JsonArgs),
    /// Cancel a task (a running one stops within one heartbeat, wherever it runs).
    Cancel(IdArgs),
    /// Queue a task again; --force takes a running one from its owner.
    Restart(RestartArgs),
    /// Run the recovery sweep now (or show what it would change).
    Recover(RecoverArgs),
    /// A task's append-only event log.
    Events(EventsArgs),
    /// Every stale or orphaned task across projects, with the command that recovers it.
    Stale(JsonArgs),
    /// Prometheus text metrics, one shot (for a node-exporter textfile collector).
    Metrics,
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// A one-minute tour, offline: a local sample server, a temporary database, the dashboard.
    Demo(DemoArgs),
}

#[derive(Debug, Args, Default)]
pub struct TuiArgs {
    /// Show only; never write (same as `haul watch`).
    #[arg(long)]
    pub read_only: bool,
    /// Screen refresh period in milliseconds.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(20..=10_000))]
    pub refresh_ms: u64,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Screen refresh period in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(20..=10_000))]
    pub refresh_ms: u64,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Exit once nothing runs here and nothing waits in the database.
    #[arg(long)]
    pub exit_when_idle: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// URLs of the task's files (one task of many files when several are given).
    pub urls: Vec<String>,
    /// Project (group) of the task.
    #[arg(long, short, default_value = "default")]
    pub project: String,
    /// Destination directory (default: the project's or the global download_dir).
    #[arg(long, short, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Expected SHA-256 of the file (only with a single URL).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Read URLs from a file: one per line, optionally followed by a sha256; '#' comments.
    #[arg(long, short, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// One task per URL instead of one task of many files (all added in one transaction).
    #[arg(long)]
    pub each: bool,
    /// Take over a colliding running task even when its owner is alive.
    #[arg(long)]
    pub force_restart: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks with this status (queued, running, completed, failed, cancelled, interrupted).
    #[arg(long, short)]
    pub status: Option<String>,
    #[arg(long, short)]
    pub project: Option<String>,
    /// At most this many rows.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
    /// With --json: keep running and print one NDJSON line per change.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub id: i64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    pub id: i64,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    pub id: i64,
    /// Reset it even if its owner is alive (the old owner stops writing at its next heartbeat).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// List what would change and why, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    pub id: i64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Screen refresh period in milliseconds.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(20..=10_000))]
    pub refresh_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and print the effective settings (secrets masked).
    Check {
        /// The file (default: --config, HAUL_CONFIG or the default location).
        file: Option<PathBuf>,
    },
}
