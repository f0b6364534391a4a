//! Fault points for the crash and bug tests, inert unless armed through the environment:
//! `HAUL_TEST_KILL_AT=POINT[:N]` sends this process SIGKILL the N-th time (default the first)
//! it reaches `POINT`, a `kill -9` landing exactly there (no destructor runs, nothing is
//! flushed); `HAUL_TEST_PANIC_AT=POINT[:N]` panics there instead, as a bug in haul would.
//! Never set them outside tests.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms [`kill_point`].
pub const KILL_AT_VAR: &str = "HAUL_TEST_KILL_AT";
/// The environment variable that arms [`panic_point`].
pub const PANIC_AT_VAR: &str = "HAUL_TEST_PANIC_AT";

/// One armed point: its name, the hit that fires, the hits so far.
struct Armed {
    point: String,
    nth: u64,
    hits: AtomicU64,
}

impl Armed {
    /// Reads `var` once (`None`: unset or not `POINT[:N]`).
    fn from_env(var: &str) -> Option<Armed> {
        let value = std::env::var(var).ok()?;
        let (point, nth) = match value.split_once(':') {
            Some((point, n)) => (point.to_owned(), n.parse().ok()?),
            None => (value, 1),
        };
        Some(Armed {
            point,
            nth,
            hits: AtomicU64::new(0),
        })
    }

    /// Counts a pass through `point`; true for the N-th pass only.
    fn fires(&self, point: &str) -> bool {
        self.point == point && self.hits.fetch_add(1, Ordering::SeqCst) + 1 == self.nth
    }
}

/// Kills the process at `point` when `HAUL_TEST_KILL_AT` says so. Points: `write` (a batch
/// written to the `.part`, not yet synced), `synced` (a checkpoint synced, its offset not yet
/// reported or committed), `before_rename` (verified and synced, not yet renamed) and
/// `renamed` (renamed and the directory synced, not yet recorded in the database).
pub fn kill_point(point: &str) {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    if ARMED
        .get_or_init(|| Armed::from_env(KILL_AT_VAR))
        .as_ref()
        .is_some_and(|armed| armed.fires(point))
    {
        eprintln!("{KILL_AT_VAR}: killing this process at {point}");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        std::process::abort();
    }
}

/// Panics at `point` when `HAUL_TEST_PANIC_AT` says so. Points: `head` (a download's response
/// head received, on the task's own future).
pub fn panic_point(point: &str) {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    if ARMED
        .get_or_init(|| Armed::from_env(PANIC_AT_VAR))
        .as_ref()
        .is_some_and(|armed| armed.fires(point))
    {
        panic!("{PANIC_AT_VAR}: panicking at {point}");
    }
}
