//! haul: a download manager for operators.
//!
//! The data path: the [`store`] (SQLite, the single source of truth) ← the [`engine`] (tokio
//! tasks that claim work and stream bodies to `.part` files) → a [`snapshot`] that merges
//! memory and database → the [`tui`] that renders it. [`recovery`] holds the rules that decide
//! which tasks are stale or orphaned, as pure functions.

pub mod config;
pub mod error;
pub mod instance;
pub mod model;
pub mod names;
pub mod recovery;
pub mod store;
pub mod text;
