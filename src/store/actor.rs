//! The store thread: it owns the process's one write connection, so no SQLite call ever runs
//! on tokio's worker threads or in the render loop. Work goes in as closures; replies come back
//! on oneshot channels.
//!
//! Group commit: jobs that queued up while the thread was busy run together inside one
//! transaction ([`Store::batch`]), with those that queue up while the batch runs, each write
//! of theirs a savepoint, and one commit makes them all durable. Replies are sent only after
//! that commit, so no caller acts on a write before it is on disk; if the commit fails, every
//! job of the batch gets the error.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{Store, StoreError};

/// Sends a job's reply once its batch's fate is known (`Some` when the batch was lost).
type Deliver = Box<dyn FnOnce(Option<&StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut Store) -> Deliver + Send>;

/// Most jobs sharing one commit: bounds how long other processes wait for the write lock.
const MAX_BATCH: usize = 128;

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
            .spawn(move || serve(&mut store, &inbox))
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
        self.submit(f, move |result| {
            let _ = reply.send(result);
        })?;
        answer.await.map_err(|_| StoreError::ActorGone)?
    }

    /// Runs `f` on the store thread and blocks until it is done (for code off the runtime).
    pub fn call_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::channel();
        self.submit(f, move |result| {
            let _ = reply.send(result);
        })?;
        answer.recv().map_err(|_| StoreError::ActorGone)?
    }

    fn submit<T, F, R>(&self, f: F, reply: R) -> Result<(), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
        R: FnOnce(Result<T, StoreError>) + Send + 'static,
    {
        let job: Job = Box::new(move |store| {
            let result = store.catching_panics(f);
            Box::new(move |lost: Option<&StoreError>| match (result, lost) {
                (Ok(_), Some(error)) => reply(Err(error.replicate())),
                (result, _) => reply(result),
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::ActorGone)
    }
}

/// The thread's loop: one job alone, or everything queued behind it as one batch.
fn serve(store: &mut Store, inbox: &mpsc::Receiver<Job>) {
    while let Ok(first) = inbox.recv() {
        let Ok(second) = inbox.try_recv() else {
            first(store)(None);
            continue;
        };
        run_batch(store, vec![first, second], inbox);
    }
}

/// Runs `jobs`, and the jobs that queue up while they run (up to [`MAX_BATCH`] in all), in one
/// transaction and replies after its commit. If the batch cannot start or SQLite rolls it back
/// midway, the jobs not yet run go one by one, as without batching.
fn run_batch(store: &mut Store, jobs: Vec<Job>, inbox: &mpsc::Receiver<Job>) {
    let mut ran: Vec<Deliver> = Vec::with_capacity(jobs.len());
    let mut waiting = jobs.into_iter();
    let outcome = store.batch(|s| {
        loop {
            let job = match waiting.next() {
                Some(job) => job,
                None if ran.len() < MAX_BATCH => match inbox.try_recv() {
                    Ok(job) => job,
                    Err(_) => return Ok(()),
                },
                None => return Ok(()),
            };
            ran.push(job(s));
            if !s.batch_intact() {
                return Err(StoreError::RolledBack);
            }
        }
    });
    let lost = outcome.err();
    for deliver in ran {
        deliver(lost.as_ref());
    }
    for job in waiting {
        job(store)(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Instance, InstanceId, Mode};
    use chrono::Utc;

    fn instance(n: usize) -> Instance {
        let now = Utc::now();
        Instance {
            id: InstanceId(format!("batch-{n}")),
            host: "h".into(),
            pid: n as u32,
            mode: Mode::Worker,
            started_at: now,
            heartbeat_at: now,
            stopped_at: None,
        }
    }

    /// One column of every instance row, by pid, read from the database reopened.
    fn instances<T: rusqlite::types::FromSql>(path: &std::path::Path, column: &str) -> Vec<T> {
        Store::open(path)
            .unwrap()
            .conn
            .prepare(&format!("SELECT {column} FROM instances ORDER BY pid"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Holds the store thread with a job until the returned sender sends, so the jobs queued
    /// meanwhile run as one batch; the handle answers once the blocking job is done.
    async fn hold(
        actor: &StoreActor,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), StoreError>>,
    ) {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let a = actor.clone();
        let blocker = tokio::spawn(async move {
            a.call(move |_| {
                let _ = gate.recv();
                Ok(())
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        (release, blocker)
    }

    /// A job that panics (a bug) fails alone, or with the batch it was in (whose jobs are
    /// told their writes were rolled back), and the thread goes on serving.
    #[tokio::test]
    async fn a_panicking_job_is_rolled_back_and_the_thread_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haul.db");
        let (actor, _thread) = StoreActor::spawn(Store::open(&path).unwrap()).unwrap();
        let alone = actor
            .call(|_| -> Result<(), StoreError> { panic!("bug in a lone job") })
            .await;
        assert!(
            matches!(&alone, Err(StoreError::Internal(m)) if m == "bug in a lone job"),
            "{alone:?}"
        );

        let (release, blocker) = hold(&actor).await;
        let mut calls = Vec::new();
        for n in 0..3 {
            let a = actor.clone();
            calls.push(tokio::spawn(async move {
                a.call(move |s| {
                    s.register_instance(&instance(n))?;
                    if n == 1 {
                        panic!("bug in a batch");
                    }
                    Ok(())
                })
                .await
            }));
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let results: Vec<_> = futures_util::future::join_all(calls).await;
        let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        assert!(
            matches!(results[0], Err(StoreError::RolledBack)),
            "{:?}",
            results[0]
        );
        assert!(
            matches!(results[1], Err(StoreError::Internal(_))),
            "{:?}",
            results[1]
        );
        assert!(
            results[2].is_ok(),
            "the job after the batch runs: {:?}",
            results[2]
        );
        actor
            .call(|s| s.register_instance(&instance(9)))
            .await
            .unwrap();
        drop(actor);
        let pids: Vec<u32> = instances(&path, "pid");
        assert_eq!(pids, vec![2, 9], "only what was reported kept is kept");
    }

    /// A job queued while a batch runs joins that batch (one commit) instead of waiting for
    /// it and then committing alone.
    #[tokio::test]
    async fn a_job_queued_while_a_batch_runs_joins_it() {
        let dir = tempfile::tempdir().unwrap();
        let (actor, _thread) =
            StoreActor::spawn(Store::open(&dir.path().join("haul.db")).unwrap()).unwrap();
        let (release, blocker) = hold(&actor).await;
        // Two jobs queued behind the blocker make a batch; its first job runs long.
        let batch: Vec<_> = (0..2)
            .map(|n| {
                let a = actor.clone();
                tokio::spawn(async move {
                    a.call(move |s| {
                        if n == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(300));
                        }
                        Ok(s.group == crate::store::transaction::Group::Batch)
                    })
                    .await
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        // Queued while the batch's first job runs, alone in the queue.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let late = actor
            .call(|s| Ok(s.group == crate::store::transaction::Group::Batch))
            .await
            .unwrap();
        for job in batch {
            assert!(
                job.await.unwrap().unwrap(),
                "the queued jobs ran as a batch"
            );
        }
        assert!(late, "the job queued during the batch ran inside it");
    }

    /// Many callers at once: every write is kept, each caller gets its own answer, and a
    /// failing job undoes only itself.
    #[tokio::test]
    async fn queued_jobs_share_a_commit_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haul.db");
        let (actor, _thread) = StoreActor::spawn(Store::open(&path).unwrap()).unwrap();
        // Hold the thread so the next jobs queue up behind it and run as one batch.
        let (release, blocker) = hold(&actor).await;
        let mut calls = Vec::new();
        for n in 0..20 {
            let a = actor.clone();
            calls.push(tokio::spawn(async move {
                a.call(move |s| {
                    s.register_instance(&instance(n))?;
                    if n == 7 {
                        s.write(|tx| {
                            tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                            Ok(())
                        })?;
                    }
                    Ok((n, s.group == crate::store::transaction::Group::Batch))
                })
                .await
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let mut batched = 0;
        for (n, call) in calls.into_iter().enumerate() {
            let result = call.await.unwrap();
            if n == 7 {
                assert!(result.is_err(), "job 7 must report its own failure");
            } else {
                let (got, in_batch) = result.unwrap();
                assert_eq!(got, n);
                batched += usize::from(in_batch);
            }
        }
        assert!(
            batched >= 2,
            "jobs queued behind a busy thread share a batch"
        );
        drop(actor);
        let ids: Vec<String> = instances(&path, "id");
        // Job 7 registered its instance before its failing write; that first write was its
        // own savepoint and is kept, exactly as it would be without batching.
        assert_eq!(
            ids.len(),
            20,
            "every committed write survives a reopen: {ids:?}"
        );
    }
}
