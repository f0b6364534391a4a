//! `haul run`: the headless worker. SIGINT/SIGTERM stop it cleanly: progress flushed, tasks
//! left resumable.

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::engine::{Engine, EngineOptions};
use crate::error::{EXIT_OK, Error};
use crate::instance::LocalInstance;
use crate::logging::{self, Target};
use crate::model::Mode;
use crate::store::StoreActor;

/// Runs downloads until stopped (or until idle with `exit_when_idle`).
pub fn run_worker(ctx: &Context, exit_when_idle: bool, log: Target) -> Result<u8, Error> {
    logging::init(log);
    let runtime = super::runtime()?;
    let mut store = ctx.store()?;
    let me = LocalInstance::start(&ctx.db_path, Mode::Worker, Utc::now())?;
    store.register_instance(&me.info)?;
    let (actor, thread) = StoreActor::spawn(store)?;
    let options = EngineOptions {
        config: ctx.config.clone(),
        db_path: ctx.db_path.clone(),
        exit_when_idle,
    };
    let result = runtime.block_on(async {
        // Nothing here watches the engine's state or sends it commands.
        let (engine, handle) = Engine::new(actor, me.actor(), options)?;
        drop(handle);
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        engine.run(shutdown).await
    });
    drop(runtime);
    let _ = thread.join();
    drop(me);
    result.map(|()| EXIT_OK)
}

/// Fires `shutdown` on SIGINT or SIGTERM.
pub async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping: flushing progress, tasks stay resumable");
    shutdown.cancel();
}
