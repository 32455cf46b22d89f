//! Kernel-style sizes (`512M`, `max`): the one parser for memory limits, used by the library
//! and by the CLI flags.
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

use std::fmt;
use std::str::FromStr;

/// A size that could not be parsed. The message names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size '{input}': {problem}")]
pub struct SizeError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub problem: SizeProblem,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeLimit {
    /// A number of bytes.
    Bytes(u64),
    /// No limit (`max`).
    Max,
}

impl SizeLimit {
    /// The text to write into a cgroup v2 file such as `memory.max`: `max` or decimal bytes.
    pub fn to_kernel_string(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SizeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeLimit::Bytes(n) => write!(f, "{n}"),
            SizeLimit::Max => f.write_str("max"),
        }
    }
}

impl From<u64> for SizeLimit {
    fn from(n: u64) -> Self {
        SizeLimit::Bytes(n)
    }
}

impl FromStr for SizeLimit {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Self, SizeError> {
        parse_size(s)
    }
}

/// Parses a size the way the kernel's cgroup files do (see the module docs): `max`, `4096`,
/// `512K`, `64m`, `2G`, `1T`.
pub fn parse_size(s: &str) -> Result<SizeLimit, SizeError> {
    let error = |problem| SizeError {
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
        assert_eq!("2M".parse::<SizeLimit>(), Ok(SizeLimit::Bytes(2 << 20)));
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
                SizeError {
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
        for n in [0, 1, 4095, u64::MAX / 3, u64::MAX] {
            let s = SizeLimit::Bytes(n).to_kernel_string();
            assert_eq!(parse_size(&s), Ok(SizeLimit::Bytes(n)));
        }
    }
}
