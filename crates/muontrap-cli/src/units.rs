//! Human durations (`500ms`, `1h30m`) and kernel-style sizes (`512M`, `max`).
//!
//! Durations are for the `run` mode flags. A bare number is refused rather than guessed at:
//! the port helper's `--delay-to-sigkill 500` means milliseconds while most tools mean seconds,
//! so `--timeout 5` is ambiguous to a reader and we ask for a unit instead.
//!
//! Sizes follow the kernel's `memparse()`, which is what `memory.max` and friends accept, so a
//! value that parses here means the same thing when written to a cgroup file:
//! * `max` means no limit;
//! * a plain number is bytes;
//! * a suffix `K`, `M`, `G` or `T` (either case) multiplies by 1024, 1024², 1024³ or 1024⁴.
//!
//! Unlike the kernel, decimal only (no `0x`), and no trailing `B`/`iB` (the kernel rejects
//! `1KB` too). Fractions (`1.5G`) and values that do not fit in 64 bits are errors.
//! Leading and trailing whitespace is ignored, as the kernel strips it.
//!
//! This module depends only on `humantime` and `thiserror`, so it can move into the library.

use std::time::Duration;

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

/// Why a size was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeProblem {
    /// Nothing but whitespace.
    #[error("expected a number of bytes, optionally with a K, M, G or T suffix, or 'max'")]
    Empty,
    /// The text does not start with a digit (or is not `max`).
    #[error("expected a number of bytes, optionally with a K, M, G or T suffix, or 'max'")]
    NotANumber,
    /// A fraction such as `1.5G`.
    #[error("fractions are not supported; use a smaller unit, e.g. 1536M instead of 1.5G")]
    Fractional,
    /// Something other than `K`, `M`, `G` or `T` after the number.
    #[error("unknown suffix '{0}'; use K, M, G or T (powers of 1024)")]
    UnknownSuffix(String),
    /// More than 2⁶⁴−1 bytes.
    #[error("too large; the limit is 18446744073709551615 bytes (use 'max' for no limit)")]
    TooLarge,
}

/// A memory-style limit as the kernel's cgroup files understand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// A number of bytes.
    Bytes(u64),
    /// No limit (`max`).
    Max,
}

impl SizeLimit {
    /// The text to write into a cgroup file such as `memory.max`: `max` or decimal bytes.
    pub fn to_kernel_string(self) -> String {
        match self {
            SizeLimit::Bytes(n) => n.to_string(),
            SizeLimit::Max => "max".to_owned(),
        }
    }
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

/// Parses a size the way the kernel's cgroup files do (see the module docs): `max`, `4096`,
/// `512K`, `64m`, `2G`, `1T`.
pub fn parse_size(s: &str) -> Result<SizeLimit, UnitError> {
    let error = |problem| UnitError::Size {
        input: s.to_owned(),
        problem,
    };
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(error(SizeProblem::Empty));
    }
    if trimmed == "max" {
        return Ok(SizeLimit::Max);
    }
    let digits_end = trimmed
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(trimmed.len());
    if digits_end == 0 {
        return Err(error(SizeProblem::NotANumber));
    }
    let (number, suffix) = trimmed.split_at(digits_end);
    if suffix.starts_with('.') {
        return Err(error(SizeProblem::Fractional));
    }
    let shift = match suffix {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        other => return Err(error(SizeProblem::UnknownSuffix(other.to_owned()))),
    };
    let number: u64 = number.parse().map_err(|_| error(SizeProblem::TooLarge))?;
    number
        .checked_mul(1u64 << shift)
        .map(SizeLimit::Bytes)
        .ok_or_else(|| error(SizeProblem::TooLarge))
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
    fn sizes_use_kernel_powers_of_1024() {
        assert_eq!(parse_size("max"), Ok(SizeLimit::Max));
        assert_eq!(parse_size("0"), Ok(SizeLimit::Bytes(0)));
        assert_eq!(parse_size("4096"), Ok(SizeLimit::Bytes(4096)));
        assert_eq!(parse_size("512K"), Ok(SizeLimit::Bytes(512 << 10)));
        assert_eq!(parse_size("512k"), Ok(SizeLimit::Bytes(512 << 10)));
        assert_eq!(parse_size("64M"), Ok(SizeLimit::Bytes(64 << 20)));
        assert_eq!(parse_size("2g"), Ok(SizeLimit::Bytes(2 << 30)));
        assert_eq!(parse_size("1T"), Ok(SizeLimit::Bytes(1 << 40)));
        assert_eq!(parse_size(" 1M\n"), Ok(SizeLimit::Bytes(1 << 20)));
    }

    #[test]
    fn bad_sizes_are_rejected_with_the_input_named() {
        let cases = [
            ("", SizeProblem::Empty),
            ("MAX", SizeProblem::NotANumber),
            ("-1", SizeProblem::NotANumber),
            ("0x10", SizeProblem::UnknownSuffix("x10".into())),
            ("1.5G", SizeProblem::Fractional),
            ("1KB", SizeProblem::UnknownSuffix("KB".into())),
            ("1KiB", SizeProblem::UnknownSuffix("KiB".into())),
            ("1P", SizeProblem::UnknownSuffix("P".into())),
            ("18446744073709551616", SizeProblem::TooLarge),
            ("16777216T", SizeProblem::TooLarge),
        ];
        for (input, problem) in cases {
            let err = parse_size(input).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid size '{input}': "))
            );
            assert_eq!(
                err,
                UnitError::Size {
                    input: input.into(),
                    problem
                }
            );
        }
        assert_eq!(
            parse_size("18446744073709551615"),
            Ok(SizeLimit::Bytes(u64::MAX))
        );
    }

    #[test]
    fn kernel_string_round_trips() {
        assert_eq!(SizeLimit::Max.to_kernel_string(), "max");
        assert_eq!(parse_size("1K").unwrap().to_kernel_string(), "1024");
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
