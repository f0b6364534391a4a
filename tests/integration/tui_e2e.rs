//! The dashboard end to end: the real binary in a real terminal (tmux), a worker on the same
//! database, keys sent with `tmux send-keys`, the screen read with `capture-pane`, and the
//! database read to prove what the keys did.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use haul::demo::server::{Route, sample_bytes};
use haul::instance::host_name;

use crate::support::{DEADLINE, Env, Server, wait_exit, wait_until};

/// A tmux server on a socket of its own (in the test's directory) running one haul command;
/// killed when dropped.
pub struct Tmux {
    socket: PathBuf,
    /// Where the shell around haul writes its exit status.
    status: PathBuf,
    /// haul's pid.
    pid: u32,
}

impl Tmux {
    /// Runs `haul --db DB --config CONFIG ARGS` in a `width`×`height` terminal.
    pub fn start(env: &Env, args: &str, size: (u16, u16)) -> Tmux {
        Tmux::start_with(env, &[], args, size)
    }

    /// [`Tmux::start`] with `vars` (`NAME=value`) in haul's environment.
    pub fn start_with(env: &Env, vars: &[String], args: &str, (width, height): (u16, u16)) -> Tmux {
        let mut tmux = Tmux {
            socket: env.dir.path().join("tmux.sock"),
            status: env.dir.path().join("tmux.status"),
            pid: 0,
        };
        let (w, h) = (width.to_string(), height.to_string());
        let session = [
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &w,
            "-y",
            &h,
        ];
        tmux.run(&session);
        tmux.run(&["set-option", "-t", "t", "remain-on-exit", "on"]);
        // tmux 3.3 does not always know a dead pane's exit status: the shell records it.
        let command = format!(
            "{} --db '{}' --config '{}' {args}; echo $? > '{}'",
            env!("CARGO_BIN_EXE_haul"),
            env.db.display(),
            env.config.display(),
            tmux.status.display()
        );
        let mut respawn = vec!["respawn-pane", "-k", "-t", "t", "-e", "NO_COLOR=1"];
        for var in vars {
            respawn.extend(["-e", var]);
        }
        respawn.push(&command);
        tmux.run(&respawn);
        let shell: u32 = tmux.pane("#{pane_pid}").parse().expect("pane pid");
        let children = format!("/proc/{shell}/task/{shell}/children");
        let start = Instant::now();
        tmux.pid = loop {
            let found = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(pid) = found.split_whitespace().next().and_then(|p| p.parse().ok()) {
                break pid;
            }
            assert!(start.elapsed() < DEADLINE, "haul did not start in tmux");
            std::thread::sleep(Duration::from_millis(10));
        };
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// Types one key (a tmux key name such as `Tab`, `Enter` or `Escape`, or a character).
    pub fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "t", key]);
    }

    /// Types text literally.
    pub fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]);
    }

    fn pane(&self, format: &str) -> String {
        let out = self
            .run(&["display-message", "-p", "-t", "t", format])
            .stdout;
        String::from_utf8_lossy(&out).trim().to_owned()
    }

    /// haul's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// haul's exit status, once it exited.
    pub fn exit_status(&self) -> Option<i32> {
        let status = std::fs::read_to_string(&self.status).ok()?;
        status.trim().parse().ok()
    }

    /// Polls the screen until `condition` holds; fails with the last screen after the deadline.
    pub fn wait_for(&self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if condition(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the program to exit; returns its status.
    pub fn wait_exit(&self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the dashboard did not exit:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// The line of the Active pane that shows `name`, if any.
fn row<'s>(screen: &'s str, name: &str) -> Option<&'s str> {
    screen
        .lines()
        .find(|l| l.starts_with('│') && l.contains(name) && !l.contains("task "))
}

#[test]
fn cancel_and_force_restart_from_the_dashboard_act_on_a_workers_tasks() {
    let body = sample_bytes(11, 64 << 20);
    let server = Server::start(vec![
        ("/a.bin", Route::file(body.clone()).throttle(256 << 10)),
        ("/b.bin", Route::file(body).throttle(256 << 10)),
    ]);
    let env = Env::new();
    let a = env.add(&[&server.url("/a.bin")], &[]);
    let b = env.add(&[&server.url("/b.bin")], &[]);
    let mut worker = env.spawn_worker("worker", &[]);
    let worker_label = format!("{}/{}", host_name(), worker.id());
    wait_until("the worker runs both", || {
        env.status(a) == "running" && env.status(b) == "running"
    });

    let tmux = Tmux::start(&env, "tui", (120, 40));
    let me = format!("{}/{}", host_name(), tmux.pid());
    let screen = tmux.wait_for("both downloads, owned by the worker", |s| {
        [("a.bin"), ("b.bin")]
            .iter()
            .all(|n| row(s, n).is_some_and(|r| r.contains("running") && r.contains("database")))
    });
    assert!(
        screen.contains(&format!("owner {worker_label}")),
        "{screen}"
    );

    tmux.key("c");
    tmux.wait_for("the cancel question", |s| {
        s.contains(&format!("Cancel task {a} (a.bin)?"))
    });
    tmux.key("y");
    wait_until("the cancel request in the event log", || {
        env.events(a)
            .iter()
            .any(|(kind, _, message)| kind == "cancel_requested" && message.contains(&me))
    });
    wait_until("the worker honours it", || env.status(a) == "cancelled");
    let screen = tmux.wait_for("a leaves Active", |s| row(s, "a.bin").is_none());
    assert!(
        screen.contains(&format!("cancel of task {a} requested")),
        "{screen}"
    );

    let attempt = env.attempt(b);
    tmux.key("F");
    tmux.wait_for("the force-restart question", |s| {
        s.contains(&format!("Force restart task {b} (b.bin)?"))
    });
    tmux.key("y");
    wait_until("the force restart in the event log", || {
        let reason = format!("force restart requested by {me}");
        env.events(b)
            .iter()
            .any(|(kind, _, message)| kind == "restarted" && message.contains(&reason))
    });
    tmux.wait_for("the outcome on the status line", |s| {
        s.contains(&format!("task {b} force-restarted"))
    });
    wait_until("b claimed again under a new attempt", || {
        env.attempt(b) >= attempt + 2 && env.status(b) == "running"
    });

    tmux.key("Tab");
    tmux.key("Tab");
    tmux.key("Tab");
    tmux.wait_for("the Log pane with both actions", |s| {
        s.contains("cancel_requested") && s.contains("restarted")
    });

    tmux.key("q");
    tmux.wait_for("a question, or the exit", |s| {
        s.contains("Quit?") || tmux.exit_status().is_some()
    });
    if tmux.exit_status().is_none() {
        tmux.key("y");
    }
    let status = tmux.wait_exit();
    assert_eq!(status, 0, "the dashboard exits cleanly:\n{}", tmux.screen());
    let pid = tmux.pid();
    let stopped = env.query_i64(&format!("SELECT COUNT(*) FROM instances WHERE pid = {pid} AND mode = 'tui' AND stopped_at IS NOT NULL"));
    assert_eq!(stopped, 1, "the dashboard's instance says it stopped");
    let failed = env.query_i64("SELECT COUNT(*) FROM tasks WHERE status = 'failed'");
    assert_eq!(failed, 0, "quitting left every task resumable");
    worker.kill().expect("stop the worker");
    wait_exit(&mut worker);
}

#[test]
fn a_download_that_panics_inside_the_dashboard_fails_its_task_and_the_screen_stays() {
    let server = Server::start(vec![("/bug.bin", Route::file(sample_bytes(12, 64 << 10)))]);
    let env = Env::new();
    let task = env.add(&[&server.url("/bug.bin")], &[]);
    let state = env.dir.path().join("state");
    let vars = [
        "HAUL_TEST_PANIC_AT=head:1".to_owned(),
        format!("XDG_STATE_HOME={}", state.display()),
    ];
    let tmux = Tmux::start_with(&env, &vars, "tui", (120, 40));
    wait_until("the panic recorded as the task's failure", || {
        env.status(task) == "failed"
    });
    let screen = tmux.wait_for("a frame without the task in Active", |s| {
        s.contains("Active") && row(s, "bug.bin").is_none()
    });
    assert!(
        screen.contains("Active") && !screen.contains("panicked"),
        "the dashboard still owns the screen, nothing printed over it:\n{screen}"
    );
    assert_eq!(tmux.exit_status(), None, "the dashboard goes on");
    let log = std::fs::read_to_string(state.join("haul/dashboard.log")).unwrap_or_default();
    assert!(
        log.contains("panicking at head"),
        "the panic is reported in the dashboard's log: {log}"
    );

    tmux.key("q");
    tmux.wait_for("a question, or the exit", |s| {
        s.contains("Quit?") || tmux.exit_status().is_some()
    });
    if tmux.exit_status().is_none() {
        tmux.key("y");
    }
    assert_eq!(tmux.wait_exit(), 0, "the dashboard exits cleanly");
}
