//! What each command does (besides `run`, the daemon): `app` parses and
//! dispatches, these do the work.

pub mod check;
pub mod error;
pub mod reload;
pub mod render;
