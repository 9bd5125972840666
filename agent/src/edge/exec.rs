//! Running a program at the host edge, with one error type for every way
//! it can go wrong.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why running a program did not give its output.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// It could not be started (`NotFound`: not installed).
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// It ran and failed; `detail` is the last line of its stderr.
    #[error("{program} failed ({status}): {detail}")]
    Failed {
        program: String,
        status: ExitStatus,
        detail: String,
    },
    /// It printed something that is not UTF-8.
    #[error("{program} printed output that is not UTF-8")]
    NotUtf8 { program: String },
    /// It did not finish within the time it was given, and was killed.
    #[error("{program} did not finish within {timeout:?}")]
    TimedOut {
        program: String,
        timeout: std::time::Duration,
    },
}

impl ExecError {
    /// The program is not installed (or not on the agent's `PATH`).
    pub fn is_missing(&self) -> bool {
        matches!(self, ExecError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Runs `cmd` (named `program` in errors) and returns its stdout.
pub fn output(cmd: &mut Command, program: &str) -> Result<String, ExecError> {
    let out = cmd.output().map_err(|source| ExecError::Spawn {
        program: program.to_owned(),
        source,
    })?;
    if !out.status.success() {
        return Err(ExecError::Failed {
            program: program.to_owned(),
            status: out.status,
            detail: last_line(&out.stderr),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| ExecError::NotUtf8 {
        program: program.to_owned(),
    })
}

/// Like [`output`], but a program still running after `timeout` is killed
/// and reported as [`ExecError::TimedOut`]: a hung `chronyc` or
/// `timedatectl` (a daemon that does not answer) must not hold a domain's
/// run until the probe timeout.
pub fn output_within(
    cmd: &mut Command,
    program: &str,
    timeout: Duration,
) -> Result<String, ExecError> {
    let spawn_err = |source| ExecError::Spawn {
        program: program.to_owned(),
        source,
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    // Drained on threads so a chatty program cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(spawn_err)? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ExecError::TimedOut {
                    program: program.to_owned(),
                    timeout,
                });
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        // Some tools print their error on stdout (`chronyc`: "506 Cannot
        // talk to daemon").
        let detail = match last_line(&stderr) {
            d if d.is_empty() => last_line(&stdout),
            d => d,
        };
        return Err(ExecError::Failed {
            program: program.to_owned(),
            status,
            detail,
        });
    }
    String::from_utf8(stdout).map_err(|_| ExecError::NotUtf8 {
        program: program.to_owned(),
    })
}

fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_failing_and_working_programs_are_told_apart() {
        let missing = output(&mut Command::new("/nonexistent/tool"), "tool").unwrap_err();
        assert!(missing.is_missing(), "{missing}");
        let failing = output(
            Command::new("sh").args(["-c", "echo first >&2; echo 'the cause' >&2; exit 3"]),
            "sh",
        )
        .unwrap_err();
        assert!(!failing.is_missing());
        match &failing {
            ExecError::Failed { status, detail, .. } => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(detail, "the cause");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            output(Command::new("sh").args(["-c", "echo ok"]), "sh").expect("ok"),
            "ok\n"
        );
    }

    #[test]
    fn a_program_past_its_time_is_killed_and_told_apart() {
        let started = Instant::now();
        let e = output_within(
            Command::new("sh").args(["-c", "echo partial; sleep 30"]),
            "sh",
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(e, ExecError::TimedOut { .. }), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "killed, not waited for"
        );
        let failing = output_within(
            Command::new("sh").args(["-c", "echo 'the cause' >&2; exit 2"]),
            "sh",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(&failing, ExecError::Failed { detail, .. } if detail == "the cause"));
        assert_eq!(
            output_within(
                Command::new("sh").args(["-c", "echo ok"]),
                "sh",
                Duration::from_secs(5)
            )
            .expect("ok"),
            "ok\n"
        );
    }
}
