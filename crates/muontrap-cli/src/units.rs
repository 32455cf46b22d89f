//! Human durations (`500ms`, `1h30m`) and kernel-style sizes (`512M`, `max`).
//!
//! Durations are for the `run` mode flags. A bare number is refused rather than guessed at:
//! the port helper's `--delay-to-sigkill 500` means milliseconds while most tools mean seconds,
//! so `--timeout 5` is ambiguous to a reader and we ask for a unit instead.
//!
//! Sizes are parsed by the library ([`muontrap::cgroup::parse_size`], the kernel's
//! `memparse()` rules: `max`, bytes, `K`/`M`/`G`/`T` as powers of 1024), so a flag and a
//! library call accept exactly the same text; this module only gives the error the CLI's shape.

use std::time::Duration;

pub use muontrap::cgroup::{SizeLimit, SizeProblem};

/// A size or duration that could not be parsed. The message names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// A duration was rejected.
    #[error("invalid duration '{input}': {problem}")]
    Duration {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        problem: DurationProblem,
    },
    /// A size was rejected.
    #[error("invalid size '{input}': {problem}")]
    Size {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        problem: SizeProblem,
    },
}

/// Why a duration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationProblem {
    /// A bare number such as `5`: seconds or milliseconds? We do not guess.
    #[error("add a unit, e.g. 500ms or 30s")]
    MissingUnit,
    /// Anything else, described by the duration parser.
    #[error("{0}")]
    Malformed(String),
}

/// Parses a human duration: `500ms`, `30s`, `2m`, `1h30m`, `1h 30m` (the `humantime` forms).
///
/// A bare number (`5`, `0.5`) is an error whose message suggests a unit.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let error = |problem| UnitError::Duration {
        input: s.to_owned(),
        problem,
    };
    let trimmed = s.trim();
    if is_bare_number(trimmed) {
        return Err(error(DurationProblem::MissingUnit));
    }
    humantime::parse_duration(trimmed).map_err(|e| error(DurationProblem::Malformed(e.to_string())))
}

/// `5`, `10`, `0.5`: digits with at most one `.` inside.
fn is_bare_number(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match frac {
        None => digits(whole),
        Some(frac) => digits(whole) && digits(frac),
    }
}

/// Parses a size with the library's parser (see the module docs): `max`, `4096`, `512K`,
/// `64m`, `2G`, `1T`.
pub fn parse_size(s: &str) -> Result<SizeLimit, UnitError> {
    muontrap::cgroup::parse_size(s).map_err(|e| UnitError::Size {
        input: e.input,
        problem: e.problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_take_humantime_forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bare_number_duration_asks_for_a_unit() {
        for bare in ["5", "0", " 10 ", "0.5"] {
            let err = parse_duration(bare).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid duration '{bare}': add a unit, e.g. 500ms or 30s")
            );
        }
    }

    #[test]
    fn malformed_duration_names_input() {
        for bad in ["", "abc", "5 parsecs", "-1s", "1.5.5s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid duration '{bad}': ")),
                "{err}"
            );
            assert!(matches!(
                err,
                UnitError::Duration {
                    problem: DurationProblem::Malformed(_),
                    ..
                }
            ));
        }
    }

    #[test]
    fn sizes_come_from_the_library_parser_with_the_input_named() {
        assert_eq!(parse_size("64M"), Ok(SizeLimit::Bytes(64 << 20)));
        assert_eq!(parse_size("max"), Ok(SizeLimit::Max));
        let err = parse_size("1.5G").unwrap_err();
        assert_eq!(
            err,
            UnitError::Size {
                input: "1.5G".into(),
                problem: SizeProblem::Fractional
            }
        );
        assert!(err.to_string().starts_with("invalid size '1.5G': "));
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,12}") {
            let _ = parse_size(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn any_byte_count_round_trips(n in any::<u64>()) {
            let s = SizeLimit::Bytes(n).to_kernel_string();
            prop_assert_eq!(parse_size(&s), Ok(SizeLimit::Bytes(n)));
        }
    }
}
