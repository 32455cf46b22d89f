//! Exit codes of the `muontrap` binary, as one documented type.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// What `muontrap` exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The command's own exit code, or 128 + N when it was killed by signal N.
    Command(u8),
    /// `run` mode: `--timeout` fired (like `timeout(1)`).
    TimedOut,
    /// `run` mode: muontrap itself failed (bad flags, setup error), like `timeout(1)`'s 125.
    RunFailure,
    /// `run` mode: the program exists but could not be executed.
    NotExecutable,
    /// `run` mode: the program was not found.
    NotFound,
    /// Port mode: any failure, the port closing, and usage errors (the C helper's 1).
    PortFailure,
    /// Success of muontrap's own action (`--help`).
    Ok,
}

impl ExitCode {
    /// The status of a command's main process, mapped as shells do.
    pub fn of_status(status: ExitStatus) -> ExitCode {
        match (status.code(), status.signal()) {
            (Some(c), _) => ExitCode::Command(c as u8),
            (None, Some(s)) => ExitCode::Command((128 + s) as u8),
            _ => ExitCode::Command(1),
        }
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Command(c) => c,
            ExitCode::TimedOut => 124,
            ExitCode::RunFailure => 125,
            ExitCode::NotExecutable => 126,
            ExitCode::NotFound => 127,
            ExitCode::PortFailure => 1,
            ExitCode::Ok => 0,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_like_shells() {
        assert_eq!(ExitCode::of_status(ExitStatus::from_raw(3 << 8)).code(), 3);
        assert_eq!(ExitCode::of_status(ExitStatus::from_raw(15)).code(), 143);
        assert_eq!(ExitCode::of_status(ExitStatus::from_raw(9)).code(), 137);
    }
}
