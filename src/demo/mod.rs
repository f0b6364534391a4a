//! `haul demo`: a loopback sample server and a temporary database behind the dashboard.
//!
//! [`Demo::start`] serves generated files on `127.0.0.1` (an ephemeral port): a few fast ones,
//! a large throttled one, one that answers 404, and one whose connection drops mid-body so it
//! is resumed with `Range`. [`Demo::queue`] adds them as tasks with [`crate::ops::add`] in a
//! fresh database inside a temporary directory, which is removed when the demo is dropped.

pub mod server;

use std::path::{Path, PathBuf};

use chrono::Utc;
use tempfile::TempDir;

use crate::config::Config;
use crate::error::Error;
use crate::instance::LivenessProbe;
use crate::model::TaskId;
use crate::ops::{self, AddRequest};
use crate::store::{Actor, Store};
use server::{Route, SampleServer, sample_bytes};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The sample tasks: project and the paths of its files.
const TASKS: &[(&str, &[&str])] = &[
    (
        "samples",
        &[
            "/samples/alpha.bin",
            "/samples/beta.bin",
            "/samples/gamma.bin",
        ],
    ),
    ("large", &["/large/dataset.tar"]),
    ("flaky", &["/flaky/archive.zip"]),
    ("reports", &["/reports/missing.pdf"]),
];

/// The sample server's routes.
fn routes() -> Vec<(String, Route)> {
    vec![
        (
            "/samples/alpha.bin".into(),
            Route::file(sample_bytes(1, 256 * KIB)),
        ),
        (
            "/samples/beta.bin".into(),
            Route::file(sample_bytes(2, MIB)),
        ),
        (
            "/samples/gamma.bin".into(),
            Route::file(sample_bytes(3, 4 * MIB)),
        ),
        (
            "/large/dataset.tar".into(),
            Route::file(sample_bytes(4, 40 * MIB)).throttle(2 * MIB as u64),
        ),
        (
            "/flaky/archive.zip".into(),
            Route::file(sample_bytes(5, 12 * MIB))
                .throttle(MIB as u64)
                .drop_after(4 * MIB as u64, 1),
        ),
        ("/reports/missing.pdf".into(), Route::status(404)),
    ]
}

/// A running demo: the server and the temporary directory (database, downloads, log).
pub struct Demo {
    server: SampleServer,
    dir: TempDir,
}

impl Demo {
    /// Starts the sample server (call inside a tokio runtime) and makes the temporary directory.
    pub async fn start() -> Result<Demo, Error> {
        let dir = tempfile::Builder::new()
            .prefix("haul-demo-")
            .tempdir()
            .map_err(|e| Error::io("create demo directory", std::env::temp_dir(), e))?;
        let server = SampleServer::start(routes())
            .await
            .map_err(|e| Error::Other(format!("cannot start the demo server on 127.0.0.1: {e}")))?;
        Ok(Demo { server, dir })
    }

    /// The temporary directory; removed with the demo.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The demo's database.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("haul.db")
    }

    /// Defaults, with downloads going into the temporary directory.
    pub fn config(&self) -> Config {
        Config {
            download_dir: self.dir.path().join("downloads"),
            ..Config::default()
        }
    }

    /// Adds the sample tasks to the demo database as `by`; returns their ids.
    pub fn queue(&self, by: &Actor) -> Result<Vec<TaskId>, Error> {
        let config = self.config();
        let db = self.db_path();
        let mut store = Store::open(&db)?;
        let probe =
            LivenessProbe::new(&db, std::time::Duration::from_secs(config.stale_after_secs));
        let mut ids = Vec::new();
        for (project, paths) in TASKS {
            let request = AddRequest {
                urls: paths.iter().map(|p| (self.server.url(p), None)).collect(),
                project: (*project).to_owned(),
                dest: None,
                force_restart: false,
            };
            ids.push(ops::add(&mut store, &probe, &config, &request, by, Utc::now())?.task);
        }
        Ok(ids)
    }
}
