//! Shared test harness: a temp workspace (database, config, download dir), the real `haul`
//! binary, a loopback sample server, read-only database queries, and polling with deadlines.

#![allow(dead_code)]

pub mod evil;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod receiver;

use haul::demo::server::{Route, SampleServer};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

/// How long any wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A test workspace: temp dir with a database, a config and a download directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub config: PathBuf,
    pub out: PathBuf,
    /// Workers started here, killed when the test ends (even by a panic).
    spawned: std::cell::RefCell<Vec<u32>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for pid in self.spawned.borrow().iter() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// The environment variables that name proxies, in both cases.
pub const PROXY_VARS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// A config with fast heartbeats and backoff, so tests run quickly.
pub const FAST_CONFIG: &str = "heartbeat_interval_ms = 100\nstale_after_secs = 300\n\
stall_timeout_secs = 5\n[retry]\nmax_attempts = 4\nbase_delay_ms = 20\nmax_delay_ms = 200\n";

impl Env {
    pub fn new() -> Env {
        Env::with_config(FAST_CONFIG)
    }

    pub fn with_config(config: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("haul.db");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("write config");
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).expect("out dir");
        Env {
            dir,
            db,
            config: config_path,
            out,
            spawned: Default::default(),
        }
    }

    /// The binary with `--db` and `--config` set.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_haul"));
        cmd.arg("--db")
            .arg(&self.db)
            .arg("--config")
            .arg(&self.config);
        cmd.env_remove("HAUL_DB")
            .env_remove("HAUL_CONFIG")
            .env("NO_COLOR", "1");
        // Loopback servers are reached directly unless a test names a proxy itself.
        for name in PROXY_VARS {
            cmd.env_remove(name);
        }
        cmd
    }

    /// Runs `haul ARGS` to completion.
    pub fn haul(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run haul")
    }

    /// Runs `haul add URL... --dest out` and returns the task id.
    pub fn add(&self, urls: &[&str], extra: &[&str]) -> i64 {
        let mut args = vec!["add"];
        args.extend_from_slice(urls);
        let out = self.out.to_string_lossy().into_owned();
        args.extend_from_slice(&["--dest", &out]);
        args.extend_from_slice(extra);
        let output = self.haul(&args);
        assert!(
            output.status.success(),
            "add failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("task id")
    }

    /// Starts a worker (`haul run`), its stderr going to `name.log` in the workspace.
    pub fn spawn_worker(&self, name: &str, extra: &[&str]) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log");
        let child = self
            .cmd()
            .arg("run")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn worker");
        self.spawned.borrow_mut().push(child.id());
        child
    }

    /// A worker's log so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Runs a worker until idle and asserts it exited 0.
    pub fn run_until_idle(&self) {
        let output = self.haul(&["run", "--exit-when-idle"]);
        assert!(
            output.status.success(),
            "run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A read-only connection to the database.
    pub fn db(&self) -> Connection {
        let conn = Connection::open_with_flags(&self.db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn
    }

    pub fn query_i64(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    pub fn query_string(&self, sql: &str) -> String {
        self.db()
            .query_row(sql, [], |r| r.get::<_, Option<String>>(0))
            .expect(sql)
            .unwrap_or_default()
    }

    pub fn status(&self, task: i64) -> String {
        self.query_string(&format!("SELECT status FROM tasks WHERE id = {task}"))
    }

    pub fn attempt(&self, task: i64) -> i64 {
        self.query_i64(&format!("SELECT attempt FROM tasks WHERE id = {task}"))
    }

    /// The database, read as haul reads it: rows with their owners' last heartbeat on top
    /// (while a task runs, its durable offsets live in its owner's `task_beats`, not its row).
    pub fn reader(&self) -> haul::store::ReadOnlyStore {
        haul::store::ReadOnlyStore::open(&self.db).expect("open db read-only")
    }

    /// Durable bytes of a task, as the database records them.
    pub fn durable(&self, task: i64) -> i64 {
        let task = self
            .reader()
            .task(haul::model::TaskId(task))
            .expect("read task")
            .expect("task exists");
        task.bytes_done as i64
    }

    /// Durable bytes of every task together.
    pub fn durable_total(&self) -> i64 {
        let projects = self.reader().bytes_by_project().expect("bytes by project");
        projects.iter().map(|(_, bytes)| *bytes as i64).sum()
    }

    /// Event kinds of a task, in order.
    pub fn events(&self, task: i64) -> Vec<(String, i64, String)> {
        let conn = self.db();
        let mut stmt = conn
            .prepare(
                "SELECT kind, attempt, message FROM task_events WHERE task_id = ?1 ORDER BY id",
            )
            .expect("prepare");
        stmt.query_map([task], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("events")
            .map(|r| r.expect("row"))
            .collect()
    }

    /// `haul status ID --json`, parsed.
    pub fn status_json(&self, task: i64) -> serde_json::Value {
        let output = self.haul(&["status", &task.to_string(), "--json"]);
        assert!(
            output.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("status json")
    }

    pub fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.out.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// Names in the download directory, sorted.
    pub fn out_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.out)
            .expect("read out")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Polls `condition` until it holds; panics with `what` after the deadline.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a child to exit within the deadline.
pub fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(start.elapsed() < DEADLINE, "process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Freezes a worker (SIGSTOP) at a moment it holds no database lock: a process frozen inside
/// a write transaction would block every other writer, which no database can help.
pub fn freeze(child: &Child, db: &Path) {
    loop {
        signal(child, "STOP");
        let conn = Connection::open(db).expect("open db");
        conn.busy_timeout(Duration::from_millis(200))
            .expect("busy timeout");
        if conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").is_ok() {
            return;
        }
        signal(child, "CONT");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends a signal to a child.
pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A sample server on its own runtime (kept alive as long as this value).
pub struct Server {
    pub server: SampleServer,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(routes: Vec<(&str, Route)>) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let routes = routes.into_iter().map(|(p, r)| (p.to_owned(), r)).collect();
        let server = runtime
            .block_on(SampleServer::start(routes))
            .expect("start server");
        Server {
            server,
            _runtime: runtime,
        }
    }

    /// A server with one plain file route per path, `paths[i]` serving `bodies[i]`.
    pub fn files(paths: &[String], bodies: &[bytes::Bytes]) -> Server {
        let routes = paths
            .iter()
            .zip(bodies)
            .map(|(p, b)| (p.as_str(), Route::file(b.clone())))
            .collect();
        Server::start(routes)
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }
}

/// True when `path` exists.
pub fn exists(path: &Path) -> bool {
    path.exists()
}
