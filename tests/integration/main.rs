//! Integration tests: the real binary, real HTTP on 127.0.0.1, real SQLite files.

mod support;

mod download;
mod ownership;
mod policy;
mod resume;
