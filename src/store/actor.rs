//! The store thread: it owns the process's one write connection, so no SQLite call ever runs
//! on tokio's worker threads or in the render loop. Work goes in as closures; replies come back
//! on oneshot channels.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{Store, StoreError};

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A cloneable handle to the store thread. The thread ends when every handle is dropped.
#[derive(Clone)]
pub struct StoreActor {
    jobs: mpsc::Sender<Job>,
}

impl StoreActor {
    /// Moves `store` onto its own thread.
    pub fn spawn(mut store: Store) -> Result<(StoreActor, JoinHandle<()>), StoreError> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("haul-store".into())
            .spawn(move || {
                while let Ok(job) = inbox.recv() {
                    job(&mut store);
                }
            })
            .map_err(|e| StoreError::Unsupported(format!("cannot start the store thread: {e}")))?;
        Ok((StoreActor { jobs }, thread))
    }

    /// Runs `f` on the store thread and awaits its result.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move |store| {
                let _ = reply.send(f(store));
            }))
            .map_err(|_| StoreError::ActorGone)?;
        answer.await.map_err(|_| StoreError::ActorGone)?
    }

    /// Runs `f` on the store thread and blocks until it is done (for code off the runtime).
    pub fn call_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(Box::new(move |store| {
                let _ = reply.send(f(store));
            }))
            .map_err(|_| StoreError::ActorGone)?;
        answer.recv().map_err(|_| StoreError::ActorGone)?
    }
}
