//! `haul demo`: a loopback sample server and a temporary database behind the dashboard.

pub mod server;
