//! Integration tests: the real binary, real HTTP on 127.0.0.1, real SQLite files.

// Test code may panic on a broken fixture; the lints guard the product code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod download;
mod faults_checks;
mod faults_crash;
mod faults_disk;
mod faults_evil;
mod faults_files;
mod faults_panic;
mod faults_secrets;
mod many_active;
mod ownership;
mod policy;
mod proxy;
mod resume;
mod tui_e2e;
mod watch;
