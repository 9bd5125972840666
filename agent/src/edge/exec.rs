//! Running a program at the host edge, with one error type for every way
//! it can go wrong.

use std::process::{Command, ExitStatus};

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
            detail: String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_owned(),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| ExecError::NotUtf8 {
        program: program.to_owned(),
    })
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
}
