//! A bug in a download (a panic on its task's own future, armed by `HAUL_TEST_PANIC_AT`):
//! that task fails with an "internal error" recorded in the database, the other downloads
//! finish, the worker still exits when idle, and no task is left `running` with no one
//! working on it.

use haul::demo::server::sample_bytes;

use crate::faults_checks::{assert_integrity, assert_no_running_without_live_owner};
use crate::support::{Env, FAST_CONFIG, Server, sha256, wait_exit};

#[test]
fn a_download_that_panics_fails_its_task_and_the_worker_still_ends() {
    let bodies = vec![sample_bytes(1, 64 * 1024), sample_bytes(2, 64 * 1024)];
    let server = Server::files(&["/bug.bin".to_owned(), "/fine.bin".to_owned()], &bodies);
    // One download at a time, in the order added: the first response head panics.
    let env = Env::with_config(&format!("max_concurrent = 1\n{FAST_CONFIG}"));
    let buggy = env.add(&[&server.url("/bug.bin")], &[]);
    let fine = env.add(&[&server.url("/fine.bin")], &[]);

    let mut worker = env.cmd();
    worker
        .args(["run", "--exit-when-idle"])
        .env("HAUL_TEST_PANIC_AT", "head:1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let status = wait_exit(&mut worker.spawn().expect("spawn worker"));

    assert!(status.success(), "the worker ends as usual: {status:?}");
    assert_eq!(env.status(buggy), "failed");
    let error = env.query_string(&format!(
        "SELECT error_message FROM tasks WHERE id = {buggy}"
    ));
    assert!(
        error.starts_with("internal error:") && error.contains("panicking at head"),
        "the panic is the task's recorded error: {error}"
    );
    assert_eq!(
        env.status(fine),
        "completed",
        "the next download is not hurt"
    );
    assert_eq!(sha256(&env.file("fine.bin")), sha256(&bodies[1]));
    assert_no_running_without_live_owner(&env, 0);
    assert_integrity(&env);
}
