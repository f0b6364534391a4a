//! This process's identity and the liveness of others. An instance holds an exclusive OS lock
//! (flock) on its own lock file for as long as it lives; the kernel drops it when the process
//! dies, however it dies. The heartbeat is only the fallback for owners on other hosts, so a
//! clock jump alone never makes a live owner look dead.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::error::Error;
use crate::model::{Instance, InstanceId, Mode};
use crate::recovery::{OwnerState, age_secs};
use crate::store::Actor;

/// This process, registered with its lock held.
pub struct LocalInstance {
    pub info: Instance,
    lock_path: PathBuf,
    /// Held (locked) until drop; the lock is what tells others we live.
    _lock: File,
}

impl LocalInstance {
    /// Creates the lock file beside the database and takes its lock.
    pub fn start(db_path: &Path, mode: Mode, now: DateTime<Utc>) -> Result<LocalInstance, Error> {
        let dir = lock_dir(db_path);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create lock directory", &dir, e))?;
        let id = InstanceId(format!("{:016x}", rand::thread_rng().r#gen::<u64>()));
        let lock_path = dir.join(format!("{id}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("create instance lock", &lock_path, e))?;
        lock.try_lock()
            .map_err(|e| Error::Other(format!("cannot lock {}: {e}", lock_path.display())))?;
        let info = Instance {
            id,
            host: host_name(),
            pid: std::process::id(),
            mode,
            started_at: now,
            heartbeat_at: now,
            stopped_at: None,
        };
        Ok(LocalInstance {
            info,
            lock_path,
            _lock: lock,
        })
    }

    /// Who this instance is, for the event log.
    pub fn actor(&self) -> Actor {
        Actor {
            instance: self.info.id.clone(),
            label: self.info.label(),
        }
    }
}

impl Drop for LocalInstance {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// `<db>.instances/`, where instance lock files live.
pub fn lock_dir(db_path: &Path) -> PathBuf {
    let mut name = db_path.file_name().unwrap_or_default().to_os_string();
    name.push(".instances");
    db_path.with_file_name(name)
}

/// This machine's host name.
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    uname.nodename().to_string_lossy().into_owned()
}

/// Decides whether owners are alive. Reads lock files; never creates or writes anything.
#[derive(Debug, Clone)]
pub struct LivenessProbe {
    lock_dir: PathBuf,
    host: String,
    /// Owners on other hosts are dead after this long without a heartbeat.
    remote_timeout: Duration,
}

impl LivenessProbe {
    pub fn new(db_path: &Path, remote_timeout: Duration) -> LivenessProbe {
        LivenessProbe {
            lock_dir: lock_dir(db_path),
            host: host_name(),
            remote_timeout,
        }
    }

    /// The state of the owner `instance` (`None`: no such instance row).
    pub fn owner_state(&self, instance: Option<&Instance>, now: DateTime<Utc>) -> OwnerState {
        let Some(instance) = instance else {
            return OwnerState::Dead("no record of its instance".into());
        };
        if instance.host == self.host {
            return self.local_state(&instance.id);
        }
        if let Some(stopped) = instance.stopped_at {
            return OwnerState::Dead(format!("it stopped at {}", stopped.format("%F %T")));
        }
        match age_secs(instance.heartbeat_at, now) {
            Some(age) if age > self.remote_timeout.as_secs() => OwnerState::Dead(format!(
                "{} on {} sent no heartbeat for {age} s",
                instance.pid, instance.host
            )),
            _ => OwnerState::Alive,
        }
    }

    fn local_state(&self, id: &InstanceId) -> OwnerState {
        let path = self.lock_dir.join(format!("{id}.lock"));
        let Ok(file) = File::open(&path) else {
            return OwnerState::Dead("its lock file is gone (process exited)".into());
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                OwnerState::Dead("its process lock was released (process died)".into())
            }
            Err(TryLockError::WouldBlock) => OwnerState::Alive,
            // Cannot tell (odd file system): never take over on a guess.
            Err(TryLockError::Error(_)) => OwnerState::Alive,
        }
    }

    /// Removes the lock file of an instance found dead (best effort; writers only).
    pub fn forget(&self, id: &InstanceId) {
        let _ = std::fs::remove_file(self.lock_dir.join(format!("{id}.lock")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_means_alive_and_a_dropped_one_dead() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("haul.db");
        let now = Utc::now();
        let me = LocalInstance::start(&db, Mode::Worker, now).unwrap();
        let probe = LivenessProbe::new(&db, Duration::from_secs(300));
        assert_eq!(probe.owner_state(Some(&me.info), now), OwnerState::Alive);
        let info = me.info.clone();
        drop(me);
        assert!(matches!(
            probe.owner_state(Some(&info), now),
            OwnerState::Dead(_)
        ));
    }

    #[test]
    fn a_remote_owner_is_judged_by_its_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let probe = LivenessProbe::new(&dir.path().join("haul.db"), Duration::from_secs(300));
        let now = Utc::now();
        let mut other = Instance {
            id: InstanceId("x".into()),
            host: "elsewhere".into(),
            pid: 7,
            mode: Mode::Worker,
            started_at: now,
            heartbeat_at: now - chrono::Duration::seconds(10),
            stopped_at: None,
        };
        assert_eq!(probe.owner_state(Some(&other), now), OwnerState::Alive);
        other.heartbeat_at = now - chrono::Duration::seconds(400);
        assert!(matches!(
            probe.owner_state(Some(&other), now),
            OwnerState::Dead(_)
        ));
    }
}
