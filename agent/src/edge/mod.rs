//! The host edges that more than one domain uses: programs the agent runs
//! (containerd, systemctl) and kernel state (routes, addresses), each behind a small trait whose real
//! implementation lives here and whose fakes live in the tests. Errors are
//! typed, so a caller can tell a missing program from a failing one; text is
//! made only where an error becomes a check's summary or a log line.

pub mod containerd;
pub mod exec;
pub mod route;
pub mod systemctl;
pub mod units;

pub use exec::ExecError;
