//! Restart decisions: which exits of a child lead to a restart.
//!
//! OTP's three restart types, over an exit classified into a [`Reason`]. The classification is
//! separate from the decision because what counts as "normal" is the application's call
//! (MuonTrap's `exit_status_to_reason`): a daemon may use exit code 3 to mean "done, do not
//! restart me". A signal is a failure by default: a process that was killed did not finish.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// When a child is restarted after it ends on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum RestartPolicy {
    /// Always restarted, whatever the exit (OTP's `permanent`, the default).
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit: a failure code or a signal (OTP's `transient`).
    Transient,
    /// Never restarted (OTP's `temporary`). A temporary child that ends is removed from its
    /// supervisor, as in OTP.
    Temporary,
}

/// How a process ended, before the application's interpretation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitKind {
    /// Exit code 0.
    Normal,
    /// A non-zero exit code.
    Failure(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitKind {
    /// Classifies a wait status.
    pub fn of_status(status: ExitStatus) -> ExitKind {
        match (status.code(), status.signal()) {
            (Some(0), _) => ExitKind::Normal,
            (Some(code), _) => ExitKind::Failure(code),
            (None, Some(sig)) => ExitKind::Signal(sig),
            // Stopped/continued statuses are never final; treat anything else as a failure.
            (None, None) => ExitKind::Failure(-1),
        }
    }
}

/// What an exit means for the restart decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The child finished its work (a [`RestartPolicy::Transient`] child stays stopped).
    Normal,
    /// The child failed.
    Failure,
}

impl Reason {
    /// The default mapping: exit code 0 is normal; any other code and any signal is a failure.
    pub fn default_for(kind: ExitKind) -> Reason {
        match kind {
            ExitKind::Normal => Reason::Normal,
            ExitKind::Failure(_) | ExitKind::Signal(_) => Reason::Failure,
        }
    }
}

impl RestartPolicy {
    /// Whether a child with this policy that ended for `reason` is restarted.
    pub fn restarts_after(self, reason: Reason) -> bool {
        match self {
            RestartPolicy::Permanent => true,
            RestartPolicy::Transient => reason == Reason::Failure,
            RestartPolicy::Temporary => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }
    fn signalled(sig: i32) -> ExitStatus {
        ExitStatus::from_raw(sig)
    }

    #[test]
    fn statuses_classify_into_normal_failure_and_signal() {
        assert_eq!(ExitKind::of_status(exited(0)), ExitKind::Normal);
        assert_eq!(ExitKind::of_status(exited(1)), ExitKind::Failure(1));
        assert_eq!(ExitKind::of_status(exited(255)), ExitKind::Failure(255));
        assert_eq!(ExitKind::of_status(signalled(9)), ExitKind::Signal(9));
        assert_eq!(ExitKind::of_status(signalled(15)), ExitKind::Signal(15));
    }

    #[test]
    fn only_a_zero_exit_is_normal_by_default() {
        assert_eq!(Reason::default_for(ExitKind::Normal), Reason::Normal);
        assert_eq!(Reason::default_for(ExitKind::Failure(3)), Reason::Failure);
        assert_eq!(Reason::default_for(ExitKind::Signal(15)), Reason::Failure);
    }

    /// The full table: every policy × every exit kind, with the default classification.
    #[test]
    fn policy_by_exit_kind_table() {
        use RestartPolicy::*;
        let kinds = [ExitKind::Normal, ExitKind::Failure(1), ExitKind::Signal(9)];
        let expected = [
            (Permanent, [true, true, true]),
            (Transient, [false, true, true]),
            (Temporary, [false, false, false]),
        ];
        for (policy, want) in expected {
            for (kind, want) in kinds.iter().zip(want) {
                assert_eq!(
                    policy.restarts_after(Reason::default_for(*kind)),
                    want,
                    "{policy:?} after {kind:?}"
                );
            }
        }
    }

    #[test]
    fn a_custom_reason_overrides_the_default_for_transient() {
        // exit_status_to_reason mapping code 3 to "normal": a transient child stays down.
        let custom = |k: ExitKind| match k {
            ExitKind::Failure(3) => Reason::Normal,
            k => Reason::default_for(k),
        };
        assert!(!RestartPolicy::Transient.restarts_after(custom(ExitKind::Failure(3))));
        assert!(RestartPolicy::Transient.restarts_after(custom(ExitKind::Failure(4))));
        assert!(RestartPolicy::Permanent.restarts_after(custom(ExitKind::Failure(3))));
    }

    #[test]
    fn permanent_is_the_default() {
        assert_eq!(RestartPolicy::default(), RestartPolicy::Permanent);
    }
}
