//! Disk full mid-body (RELIABILITY row 7) and simulated power loss (row 28).
//!
//! Disk full without root: the worker runs under `ulimit -f` (RLIMIT_FSIZE) with SIGXFSZ
//! ignored, so a write past the limit fails with EFBIG, as a full disk fails with ENOSPC (the
//! ENOSPC branch itself is unit-tested against /dev/full in `engine::part`).

use std::process::{Command, Stdio};

use haul::demo::server::{Route, sample_bytes};

use crate::faults_checks::{assert_durable_not_ahead, assert_integrity};
use crate::support::{Env, Server, sha256, wait_exit, wait_until};

/// The file-size limit, in the 512-byte blocks of POSIX `ulimit -f`: 6 MiB (the database
/// and its WAL stay far below it).
const LIMIT_BLOCKS: u64 = 12 * 1024;

#[test]
fn disk_full_mid_body_fails_the_task_keeps_its_part_and_a_later_resume_completes() {
    let big = sample_bytes(81, 16 << 20);
    let small = sample_bytes(82, 1 << 20);
    let server = Server::start(vec![
        ("/big.iso", Route::file(big.clone())),
        ("/small.bin", Route::file(small.clone())),
    ]);
    let env = Env::new();
    let big_task = env.add(&[&server.url("/big.iso")], &["--sha256", &sha256(&big)]);
    let small_task = env.add(&[&server.url("/small.bin")], &[]);

    // `sh` ignores SIGXFSZ (ignored signals stay ignored across exec) and sets the limit.
    let log = std::fs::File::create(env.dir.path().join("full.log")).unwrap();
    let mut worker = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {LIMIT_BLOCKS}; exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_haul"))
        .arg("--db")
        .arg(&env.db)
        .arg("--config")
        .arg(&env.config)
        .args(["run", "--exit-when-idle"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    assert!(wait_exit(&mut worker).success(), "{}", env.log("full"));

    assert_eq!(env.status(big_task), "failed");
    let error = env.query_string(&format!(
        "SELECT error_message FROM tasks WHERE id = {big_task}"
    ));
    assert!(
        error.contains("disk full") && error.contains("kept"),
        "{error}"
    );
    assert_eq!(
        env.status_json(big_task)["retries"],
        0,
        "disk full is not retried blindly"
    );
    let part = env.out.join("big.iso.part");
    let kept = std::fs::metadata(&part).expect(".part kept").len();
    assert!(kept > 0 && kept < big.len() as u64, "{kept}");
    let durable = env.durable(big_task) as u64;
    assert!(
        durable > 0 && durable <= kept,
        "durable {durable}, on disk {kept}"
    );
    assert_eq!(
        std::fs::read(&part).unwrap()[..durable as usize],
        big[..durable as usize],
        "the kept bytes are right"
    );
    assert!(!env.out.join("big.iso").exists());
    // The other task was not affected.
    assert_eq!(env.status(small_task), "completed");
    assert_eq!(env.file("small.bin"), small.to_vec());
    assert_integrity(&env);

    // Space freed: a restart resumes from the kept offset and completes correctly.
    let out = env.haul(&["restart", &big_task.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.run_until_idle();
    assert_eq!(env.status(big_task), "completed");
    assert_eq!(sha256(&env.file("big.iso")), sha256(&big));
    let resume = server
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/big.iso")
        .nth(1)
        .expect("a second request");
    assert_eq!(resume.status, 206, "{resume:?}");
    assert_eq!(resume.range.as_deref(), Some(&*format!("bytes={durable}-")));
}

#[test]
fn a_power_loss_that_zeroes_the_unsynced_tail_is_repaired_by_the_resume() {
    let len = 6 << 20;
    let body = sample_bytes(83, len);
    let server = Server::start(vec![(
        "/p.bin",
        Route::file(body.clone()).throttle(3 << 20),
    )]);
    let env = Env::new();
    let task = env.add(&[&server.url("/p.bin")], &[]);
    let mut worker = env.spawn_worker("w", &[]);
    wait_until("1 MiB durable", || env.durable(task) >= 1 << 20);
    worker.kill().unwrap();
    wait_exit(&mut worker);
    assert_durable_not_ahead(&env);

    // What a lost page cache looks like: everything past the durable offset reads as zeros,
    // and the file may even be longer than what was written.
    let durable = env.durable(task) as u64;
    let part = env.out.join("p.bin.part");
    let on_disk = std::fs::metadata(&part).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&part).unwrap();
    file.set_len(durable).unwrap();
    file.set_len(on_disk.max(durable) + 4096).unwrap();
    drop(file);

    env.run_until_idle();
    assert_eq!(env.status(task), "completed");
    assert_eq!(
        sha256(&env.file("p.bin")),
        sha256(&body),
        "no zeroed byte survived"
    );
    assert_integrity(&env);
}
