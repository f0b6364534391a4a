//! Integration tests: the real binary, real HTTP on 127.0.0.1, real SQLite files.

// Test code may panic on a broken fixture; the lints guard the product code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod download;
mod ownership;
mod policy;
mod resume;
