//! `haul` / `haul tui` / `haul watch`: the dashboard.
//!
//! Read-write, this process registers as an instance, runs its own download engine and acts on
//! tasks through the store thread. Read-only, it opens the database read-only (and
//! `query_only`), registers nothing, runs nothing, and cannot write by construction: it has no
//! write handle at all.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use chrono::Utc;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use super::{Context, runtime};
use crate::cli::TuiArgs;
use crate::engine::{Engine, EngineOptions};
use crate::error::{EXIT_OK, Error};
use crate::instance::LocalInstance;
use crate::logging::{self, Target};
use crate::model::Mode;
use crate::snapshot::SnapshotSource;
use crate::store::StoreActor;
use crate::tui::{self, Control, Event, Session};

/// The refresh period when none is given.
const DEFAULT_REFRESH: Duration = Duration::from_millis(250);
/// How long shutdown waits for leftover runtime tasks after the engine stopped.
const RUNTIME_GRACE: Duration = Duration::from_secs(2);

/// Whether the dashboard may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardMode {
    /// Runs downloads in this process; keys act on tasks.
    ReadWrite,
    /// Opens the database read-only; runs nothing; mutating keys refuse.
    ReadOnly,
}

/// Runs the dashboard until the operator quits.
pub fn run_dashboard(ctx: &Context, mode: DashboardMode, args: &TuiArgs) -> Result<u8, Error> {
    let runtime = runtime()?;
    let log = default_log_path(mode);
    run_session(ctx, mode, refresh(args.refresh_ms), runtime, &log, 0)?;
    Ok(EXIT_OK)
}

/// The refresh period: `refresh_ms` within 20 ms..10 s, and the default for 0 (plain `haul`
/// builds its arguments with `TuiArgs::default()`, which leaves it 0).
fn refresh(refresh_ms: u64) -> Duration {
    match refresh_ms {
        0 => DEFAULT_REFRESH,
        ms => Duration::from_millis(ms.clamp(20, 10_000)),
    }
}

/// One dashboard session on `runtime` (consumed: it is shut down at the end). Logs go to
/// `log` while the dashboard owns the screen.
pub(crate) fn run_session(
    ctx: &Context,
    mode: DashboardMode,
    refresh: Duration,
    runtime: Runtime,
    log: &Path,
    verbose: u8,
) -> Result<(), Error> {
    logging::init(Target::File(log.to_owned(), verbose));
    let db_label = ctx.db_path.display().to_string();
    if mode == DashboardMode::ReadOnly {
        let source = SnapshotSource::new(ctx.reader()?, ctx.probe(), ctx.config.clone(), None);
        let session = Session {
            source,
            control: None,
            db_label,
            refresh,
            runtime: runtime.handle().clone(),
        };
        let result = tui::run(session, mpsc::channel());
        runtime.shutdown_timeout(RUNTIME_GRACE);
        return result;
    }
    let mut store = ctx.store()?;
    let me = LocalInstance::start(&ctx.db_path, Mode::Tui, Utc::now())?;
    store.register_instance(&me.info)?;
    let (actor, store_thread) = StoreActor::spawn(store)?;
    let options = EngineOptions {
        config: ctx.config.clone(),
        db_path: ctx.db_path.clone(),
        exit_when_idle: false,
    };
    let (engine, handle) = Engine::new(actor.clone(), me.actor(), options)?;
    let (tx, rx) = mpsc::channel();
    let shutdown = CancellationToken::new();
    let engine_task = {
        let (tx, shutdown) = (tx.clone(), shutdown.clone());
        runtime.spawn(async move {
            let result = engine.run(shutdown).await;
            if let Err(e) = &result {
                let _ = tx.send(Event::EngineStopped(e.to_string()));
            }
            result
        })
    };
    let source = SnapshotSource::new(
        ctx.reader()?,
        ctx.probe(),
        ctx.config.clone(),
        Some((handle.state.clone(), me.actor())),
    );
    let control = Control {
        store: actor,
        engine: handle.clone(),
        probe: ctx.probe(),
        config: ctx.config.clone(),
        me: me.actor(),
        runtime: runtime.handle().clone(),
    };
    let session = Session {
        source,
        control: Some(control),
        db_label,
        refresh,
        runtime: runtime.handle().clone(),
    };
    let result = tui::run(session, (tx, rx));
    let left = handle.state.borrow().tasks.len();
    if left > 0 {
        // The terminal may be gone (SIGHUP): a failed write is not worth a panic.
        let _ = writeln!(
            std::io::stderr(),
            "haul: stopping {left} download(s); they stay resumable"
        );
    }
    shutdown.cancel();
    let stopped = runtime.block_on(engine_task);
    runtime.shutdown_timeout(RUNTIME_GRACE);
    let _ = store_thread.join();
    drop(me);
    result?;
    match stopped {
        Ok(engine_result) => engine_result,
        Err(e) => Err(Error::Other(format!("the download engine failed: {e}"))),
    }
}

/// `haul/dashboard.log` (or `watch.log`) in the platform's state or cache directory.
fn default_log_path(mode: DashboardMode) -> PathBuf {
    let name = match mode {
        DashboardMode::ReadWrite => "dashboard.log",
        DashboardMode::ReadOnly => "watch.log",
    };
    let dir = dirs::state_dir()
        .or_else(dirs::cache_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("haul");
    let _ = std::fs::create_dir_all(&dir);
    dir.join(name)
}
