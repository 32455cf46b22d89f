//! The port helper's command line (the contract's section 2), validated into [`PortArgs`].
//!
//! The Elixir library starts `muontrap [OPTION] -- PROGRAM ARGS` as an Erlang port, and its
//! tests sometimes leave out the `--`, so the options are parsed with GNU `getopt_long` rules
//! (see [`crate::getopt`]) and every number with C `strtoul`/`strtol` rules, quirks included:
//! `--uid -1` is uid 4294967295, `--uid 4294967296` is uid 0 (and refused), `--uid 123abc` is a
//! user name. Those quirks are what the original accepted, so a drop-in must accept them too.
//!
//! Options act in command-line order, as the C `while (getopt_long(...))` loop did: the first
//! failing option wins, and `-h` prints help even if later options are broken. After the
//! options come the contract's checks 3–5 (program, `-g` without `-c`, `-c` without `-g`). The
//! cgroup v2 mount check (check 6) touches the file system and is left to the caller.
//!
//! The credential ([`Credentials`]) and cgroup-limit ([`CgroupLimits`]) parsing here is shared
//! with `muontrap run` ([`crate::run_args`]): one implementation of each flag.
//!
//! [`SystemAccounts`] reads the real user database through the library's linux layer
//! (`muontrap::sys::accounts`); this crate has no `unsafe` code.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::getopt::{Getopt, GetoptError, OptSpec, usage_lines};
use crate::units::{SizeLimit, parse_size};

// ---------------------------------------------------------------------------------------------
// C number parsing
// ---------------------------------------------------------------------------------------------

/// The result of scanning a C integer: sign, magnitude (if it fit in 64 bits) and where it ended.
struct CInteger {
    negative: bool,
    magnitude: Option<u64>,
    end: usize,
}

/// `isspace()` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Scans like glibc's `strto*l(s, &end, 0)`; `None` when no digits were found.
fn scan_c_integer(s: &[u8]) -> Option<CInteger> {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut negative = false;
    if let Some(&sign @ (b'+' | b'-')) = s.get(i) {
        negative = sign == b'-';
        i += 1;
    }
    // "0x" counts as a prefix only when a hex digit follows; "0x" alone is the number 0
    // followed by the text "x". A lone leading 0 selects octal and is itself a digit.
    let base: u32 = if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 2;
        16
    } else if s.get(i) == Some(&b'0') {
        8
    } else {
        10
    };
    let start = i;
    let mut magnitude = Some(0u64);
    while let Some(digit) = s.get(i).and_then(|&b| (b as char).to_digit(base)) {
        magnitude = magnitude
            .and_then(|m| m.checked_mul(u64::from(base)))
            .and_then(|m| m.checked_add(u64::from(digit)));
        i += 1;
    }
    (i > start).then_some(CInteger {
        negative,
        magnitude,
        end: i,
    })
}

/// C `strtoul(s, &end, 0)` with a 64-bit `unsigned long`: returns the value and the number of
/// bytes used (`end - s`).
///
/// Leading whitespace and a sign are accepted; `0x`/`0X` selects hex and a leading `0` octal;
/// a negative number wraps (`-1` is `u64::MAX`); overflow gives `u64::MAX`. When there are no
/// digits the result is `(0, 0)`, so `""` parses completely as 0 while `" "` does not.
pub fn strtoul(s: &[u8]) -> (u64, usize) {
    match scan_c_integer(s) {
        None => (0, 0),
        Some(CInteger {
            magnitude: None,
            end,
            ..
        }) => (u64::MAX, end),
        Some(CInteger {
            negative,
            magnitude: Some(m),
            end,
        }) => (if negative { m.wrapping_neg() } else { m }, end),
    }
}

/// C `strtol(s, &end, 0)` with a 64-bit `long`: like [`strtoul`], but out-of-range values clamp
/// to `i64::MAX` / `i64::MIN` instead of wrapping.
pub fn strtol(s: &[u8]) -> (i64, usize) {
    let Some(n) = scan_c_integer(s) else {
        return (0, 0);
    };
    let limit = if n.negative {
        i64::MIN.unsigned_abs()
    } else {
        i64::MAX.unsigned_abs()
    };
    let value = match n.magnitude {
        Some(m) if m <= limit => {
            // `m as i64` is i64::MIN exactly when m == 2^63, whose negation is itself.
            if n.negative {
                (m as i64).wrapping_neg()
            } else {
                m as i64
            }
        }
        _ if n.negative => i64::MIN,
        _ => i64::MAX,
    };
    (value, n.end)
}

/// `--delay-to-sigkill`: the C helper stored `strtoul(s, NULL, 0)` in an `int` without any
/// check, so `abc` is 0 and `-5` is -5. A negative delay made the original wait forever (the
/// contract's 10.11), so it is clamped to 0 here; 0 keeps its meaning, "SIGKILL at once".
pub fn delay_to_sigkill_ms(s: &OsStr) -> i64 {
    let as_c_int = strtoul(s.as_bytes()).0 as u32 as i32;
    i64::from(as_c_int.max(0))
}

/// `--stdio-window`: `strtol(s, NULL, 0)` without any check; anything below 16 (garbage and
/// negatives included) becomes 16.
pub fn stdio_window(s: &OsStr) -> usize {
    let value = strtol(s.as_bytes()).0.max(MIN_STDIO_WINDOW as i64);
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// The default `--stdio-window`, in bytes.
pub const DEFAULT_STDIO_WINDOW: usize = 10240;
/// The smallest `--stdio-window`; smaller values are raised to it.
pub const MIN_STDIO_WINDOW: usize = 16;
/// The default `--delay-to-sigkill`, in milliseconds.
pub const DEFAULT_DELAY_TO_SIGKILL_MS: i64 = 500;
/// The most supplementary groups `--groups` may list.
pub const MAX_SUPPLEMENTARY_GROUPS: usize = 256;

// ---------------------------------------------------------------------------------------------
// Users and groups
// ---------------------------------------------------------------------------------------------

/// The user and group database, injected so parsing is testable without `/etc/passwd`.
pub trait Accounts {
    /// Looks up a user name: its uid and primary gid, or `None` if there is no such user.
    fn user(&self, name: &str) -> Option<(u32, u32)>;
    /// Looks up a group name: its gid, or `None` if there is no such group.
    fn group(&self, name: &str) -> Option<u32>;
}

/// The system's user and group database (`getpwnam_r(3)`, `getgrnam_r(3)`, so NSS applies).
///
/// A failed lookup (no such entry, or an NSS error) is reported as `None`, as the C helper's
/// `getpwnam`/`getgrnam` did.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn user(&self, name: &str) -> Option<(u32, u32)> {
        muontrap::sys::accounts::user_by_name(name)
            .ok()
            .flatten()
            .map(|u| (u.uid, u.gid))
    }

    fn group(&self, name: &str) -> Option<u32> {
        muontrap::sys::accounts::group_by_name(name).ok().flatten()
    }
}

/// A `--uid` given by name: what `initgroups(3)` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name as given.
    pub name: String,
    /// The user's primary gid from the passwd entry.
    pub primary_gid: u32,
}

/// The result of `--uid` (after every `--uid` on the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserArg {
    /// The uid to switch to: from the **last** `--uid`. Never 0.
    pub uid: u32,
    /// The most recent `--uid` that was a name, even if a later `--uid` was numeric (the C
    /// helper kept it, and it still drives `initgroups`). `None` if every `--uid` was numeric.
    pub login: Option<Login>,
}

/// A group from `--gid` or `--groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupArg {
    /// The gid.
    pub gid: u32,
    /// The group name, if it was given by name.
    pub name: Option<String>,
}

/// `--uid`, `--gid` and `--groups`, as parsed so far. Shared by the port helper and `run`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `--uid`, if given.
    pub uid: Option<UserArg>,
    /// `--gid` (the last one), if given. Never 0.
    pub gid: Option<GroupArg>,
    /// `--groups` (the last one), if given: explicit supplementary groups, possibly none.
    /// `Some` means "set exactly these groups" and overrides `initgroups`.
    pub groups: Option<Vec<GroupArg>>,
}

/// A bad `--uid`, `--gid` or `--groups`. The messages are the C helper's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// `--uid` named a user that does not exist.
    #[error("Unknown user '{0}'")]
    UnknownUser(String),
    /// `--gid` or a `--groups` entry named a group that does not exist.
    #[error("Unknown group '{0}'")]
    UnknownGroup(String),
    /// `--uid` resolved to 0.
    #[error("Setting the user to root or uid 0 is not allowed")]
    RootUser,
    /// `--gid` resolved to 0.
    #[error("Setting the group to root or gid 0 is not allowed")]
    RootGroup,
    /// A numeric `--groups` entry does not fit in 32 bits.
    #[error("Group id '{0}' is out of range")]
    GroupIdOutOfRange(String),
    /// A `--groups` entry resolved to 0.
    #[error("Supplementary group id 0 is not allowed")]
    SupplementaryRoot,
    /// `--groups` listed more than [`MAX_SUPPLEMENTARY_GROUPS`] groups.
    #[error("Too many supplementary groups (max 256)")]
    TooManyGroups,
}

impl Credentials {
    /// Applies one `--uid`: a number if the whole argument parses with [`strtoul`] (cut to 32
    /// bits), otherwise a user name. Refuses uid 0. A later `--uid` replaces the uid but keeps
    /// the last user name for `initgroups`.
    pub fn set_uid(&mut self, arg: &OsStr, accounts: &dyn Accounts) -> Result<(), CredentialError> {
        let (uid, login) = match numeric_id(arg) {
            Some(uid) => (uid, None),
            None => {
                let name = arg.to_str();
                let (uid, primary_gid) = name
                    .and_then(|n| accounts.user(n))
                    .ok_or_else(|| CredentialError::UnknownUser(lossy(arg)))?;
                let name = lossy(arg);
                (uid, Some(Login { name, primary_gid }))
            }
        };
        if uid == 0 {
            return Err(CredentialError::RootUser);
        }
        let login = login.or_else(|| self.uid.take().and_then(|earlier| earlier.login));
        self.uid = Some(UserArg { uid, login });
        Ok(())
    }

    /// Applies one `--gid`, parsed like `--uid`. Refuses gid 0. The last one wins.
    pub fn set_gid(&mut self, arg: &OsStr, accounts: &dyn Accounts) -> Result<(), CredentialError> {
        let group = match numeric_id(arg) {
            Some(gid) => GroupArg { gid, name: None },
            None => GroupArg {
                gid: arg
                    .to_str()
                    .and_then(|n| accounts.group(n))
                    .ok_or_else(|| CredentialError::UnknownGroup(lossy(arg)))?,
                name: Some(lossy(arg)),
            },
        };
        if group.gid == 0 {
            return Err(CredentialError::RootGroup);
        }
        self.gid = Some(group);
        Ok(())
    }

    /// Applies one `--groups`: a comma-separated list in which empty entries are skipped,
    /// all-digit entries are base-10 gids and anything else (`-1`, `+5`) is a group name.
    /// Replaces any earlier `--groups`; an empty list means "no supplementary groups".
    pub fn set_groups(
        &mut self,
        arg: &OsStr,
        accounts: &dyn Accounts,
    ) -> Result<(), CredentialError> {
        let mut groups = Vec::new();
        for token in arg.as_bytes().split(|&b| b == b',') {
            if token.is_empty() {
                continue;
            }
            if groups.len() == MAX_SUPPLEMENTARY_GROUPS {
                return Err(CredentialError::TooManyGroups);
            }
            let token = OsStr::from_bytes(token);
            let group = if token.as_bytes().iter().all(u8::is_ascii_digit) {
                let gid = token
                    .to_str()
                    .and_then(|t| t.parse::<u32>().ok())
                    .ok_or_else(|| CredentialError::GroupIdOutOfRange(lossy(token)))?;
                GroupArg { gid, name: None }
            } else {
                GroupArg {
                    gid: token
                        .to_str()
                        .and_then(|n| accounts.group(n))
                        .ok_or_else(|| CredentialError::UnknownGroup(lossy(token)))?,
                    name: Some(lossy(token)),
                }
            };
            if group.gid == 0 {
                return Err(CredentialError::SupplementaryRoot);
            }
            groups.push(group);
        }
        self.groups = Some(groups);
        Ok(())
    }
}

/// `Some(id)` when the whole argument is a C number (the empty string is 0).
fn numeric_id(arg: &OsStr) -> Option<u32> {
    let (value, end) = strtoul(arg.as_bytes());
    // Cutting to 32 bits is what storing into a uid_t/gid_t did.
    (end == arg.len()).then_some(value as u32)
}

fn lossy(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------
// cgroup limit flags (extensions shared with `muontrap run`)
// ---------------------------------------------------------------------------------------------

/// The cgroup limit flags that extend the original command line (long names only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupOpt {
    /// `--cgroup-base PATH`
    Base,
    /// `--cgroup-path PATH`
    Path,
    /// `--memory-max SIZE`
    MemoryMax,
    /// `--memory-high SIZE`
    MemoryHigh,
    /// `--cpu-max "QUOTA [PERIOD]"`
    CpuMax,
    /// `--cpus N`
    Cpus,
    /// `--cpu-weight N`
    CpuWeight,
    /// `--pids-max N`
    PidsMax,
    /// `--cgroup-set FILE=VALUE`
    Set,
}

/// The option table entries for [`CgroupOpt`], wrapped into the caller's option id type.
pub fn cgroup_options<Id: Copy>(wrap: fn(CgroupOpt) -> Id) -> [OptSpec<Id>; 9] {
    [
        OptSpec::value(
            wrap(CgroupOpt::Base),
            "cgroup-base",
            None,
            "PATH",
            "run in a new, uniquely named cgroup under PATH; PATH is relative\n\
             to the cgroup mount root in every hierarchy, ./PATH to\n\
             muontrap's own cgroup (.. is refused; limits alone mean .)",
        ),
        OptSpec::value(
            wrap(CgroupOpt::Path),
            "cgroup-path",
            None,
            "PATH",
            "run in the new cgroup PATH (must not exist; removed at the end);\n\
             relative to the cgroup mount root, ./PATH to muontrap's own cgroup",
        ),
        OptSpec::value(
            wrap(CgroupOpt::MemoryMax),
            "memory-max",
            None,
            "SIZE",
            "memory.max: hard memory limit (bytes, K/M/G/T = powers of 1024, or max)",
        ),
        OptSpec::value(
            wrap(CgroupOpt::MemoryHigh),
            "memory-high",
            None,
            "SIZE",
            "memory.high: memory throttling threshold (like --memory-max)",
        ),
        OptSpec::value(
            wrap(CgroupOpt::CpuMax),
            "cpu-max",
            None,
            "QUOTA [PERIOD]",
            "cpu.max: CPU microseconds per period, e.g. '50000 100000' or 'max'",
        ),
        OptSpec::value(
            wrap(CgroupOpt::Cpus),
            "cpus",
            None,
            "N",
            "CPU limit as a number of CPUs, e.g. 1.5 (sets cpu.max)",
        ),
        OptSpec::value(
            wrap(CgroupOpt::CpuWeight),
            "cpu-weight",
            None,
            "N",
            "cpu.weight: relative CPU share, 1-10000",
        ),
        OptSpec::value(
            wrap(CgroupOpt::PidsMax),
            "pids-max",
            None,
            "N",
            "pids.max: most processes and threads in the cgroup (or max)",
        ),
        OptSpec::value(
            wrap(CgroupOpt::Set),
            "cgroup-set",
            None,
            "FILE=VALUE",
            "write VALUE to the cgroup file FILE (may be given more than once)",
        ),
    ]
}

/// A `cpu.max` value: quota and period in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    /// The quota per period; `None` is `max` (no limit).
    pub quota_us: Option<u64>,
    /// The period; `None` keeps the kernel's current period (100000 by default).
    pub period_us: Option<u64>,
}

impl CpuMax {
    /// The text for the `cpu.max` file: `"max"`, `"50000"`, `"max 100000"` or `"50000 100000"`.
    pub fn to_kernel_string(self) -> String {
        let quota = self
            .quota_us
            .map_or_else(|| "max".to_owned(), |q| q.to_string());
        match self.period_us {
            Some(period) => format!("{quota} {period}"),
            None => quota,
        }
    }
}

/// A CPU limit given as a number of CPUs (`--cpus 1.5`), in thousandths of a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus {
    /// Thousandths of a CPU; `1.5` is 1500. Never 0.
    pub millis: u64,
}

impl Cpus {
    /// The equivalent `cpu.max` for the given period (microseconds).
    pub fn to_cpu_max(self, period_us: u64) -> CpuMax {
        CpuMax {
            quota_us: Some(self.millis.saturating_mul(period_us) / 1000),
            period_us: Some(period_us),
        }
    }
}

/// A `pids.max` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidsLimit {
    /// At most this many tasks.
    Count(u64),
    /// No limit.
    Max,
}

impl PidsLimit {
    /// The text for the `pids.max` file.
    pub fn to_kernel_string(self) -> String {
        match self {
            PidsLimit::Count(n) => n.to_string(),
            PidsLimit::Max => "max".to_owned(),
        }
    }
}

/// A cgroup file write: `key` is the file name inside the cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The file name, for example `memory.max`. Not checked (it may contain `/`).
    pub key: String,
    /// The text to write.
    pub value: String,
}

impl Setting {
    /// Splits `key=value` at the first `=`; `None` if there is none.
    fn split(s: &str) -> Option<Self> {
        let (key, value) = s.split_once('=')?;
        Some(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// The cgroup limit flags as given (stored, not yet applied). For repeated flags the last one
/// wins, except `--cgroup-set`, which accumulates in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// `--cgroup-base`.
    pub base: Option<String>,
    /// `--cgroup-path`.
    pub path: Option<String>,
    /// `--memory-max`.
    pub memory_max: Option<SizeLimit>,
    /// `--memory-high`.
    pub memory_high: Option<SizeLimit>,
    /// `--cpu-max`.
    pub cpu_max: Option<CpuMax>,
    /// `--cpus`.
    pub cpus: Option<Cpus>,
    /// `--cpu-weight` (1–10000).
    pub cpu_weight: Option<u16>,
    /// `--pids-max`.
    pub pids_max: Option<PidsLimit>,
    /// `--cgroup-set`, in command-line order.
    pub sets: Vec<Setting>,
}

/// A bad value for a cgroup flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupArgError {
    /// The value does not have the flag's format.
    #[error("invalid value '{value}' for --{flag}: {problem}")]
    Invalid {
        /// The flag's long name.
        flag: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// `--cgroup-set` without `=`.
    #[error("--cgroup-set expects FILE=VALUE, got '{0}'")]
    SetWithoutEquals(String),
    /// A cgroup name, path or setting that is not UTF-8.
    #[error("--{flag} needs UTF-8 text, got '{value}'")]
    NotUnicode {
        /// The flag's long name.
        flag: &'static str,
        /// The value, with invalid bytes replaced.
        value: String,
    },
}

fn utf8(flag: &'static str, value: &OsStr) -> Result<String, CgroupArgError> {
    value
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| CgroupArgError::NotUnicode {
            flag,
            value: lossy(value),
        })
}

impl CgroupLimits {
    /// Parses and stores one cgroup limit flag.
    pub fn set(&mut self, opt: CgroupOpt, value: &OsStr) -> Result<(), CgroupArgError> {
        let flag = match opt {
            CgroupOpt::Base => "cgroup-base",
            CgroupOpt::Path => "cgroup-path",
            CgroupOpt::MemoryMax => "memory-max",
            CgroupOpt::MemoryHigh => "memory-high",
            CgroupOpt::CpuMax => "cpu-max",
            CgroupOpt::Cpus => "cpus",
            CgroupOpt::CpuWeight => "cpu-weight",
            CgroupOpt::PidsMax => "pids-max",
            CgroupOpt::Set => "cgroup-set",
        };
        let text = utf8(flag, value)?;
        let invalid = |problem: &str| CgroupArgError::Invalid {
            flag,
            value: text.clone(),
            problem: problem.to_owned(),
        };
        let size = |text: &str| match parse_size(text) {
            Ok(size) => Ok(size),
            Err(crate::units::UnitError::Size { problem, .. }) => {
                Err(invalid(&problem.to_string()))
            }
            Err(other) => Err(invalid(&other.to_string())),
        };
        match opt {
            CgroupOpt::Base => self.base = Some(text),
            CgroupOpt::Path => self.path = Some(text),
            CgroupOpt::MemoryMax => self.memory_max = Some(size(&text)?),
            CgroupOpt::MemoryHigh => self.memory_high = Some(size(&text)?),
            CgroupOpt::CpuMax => self.cpu_max = Some(parse_cpu_max(&text).map_err(invalid)?),
            CgroupOpt::Cpus => self.cpus = Some(parse_cpus(&text).map_err(invalid)?),
            CgroupOpt::CpuWeight => {
                let weight = text
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|w| (1..=10000).contains(w))
                    .ok_or_else(|| invalid("expected a whole number from 1 to 10000"))?;
                self.cpu_weight = Some(weight);
            }
            CgroupOpt::PidsMax => {
                let limit = match text.trim() {
                    "max" => PidsLimit::Max,
                    n => PidsLimit::Count(
                        n.parse()
                            .map_err(|_| invalid("expected a whole number or 'max'"))?,
                    ),
                };
                self.pids_max = Some(limit);
            }
            CgroupOpt::Set => {
                let setting = Setting::split(&text)
                    .filter(|s| !s.key.is_empty())
                    .ok_or(CgroupArgError::SetWithoutEquals(text))?;
                self.sets.push(setting);
            }
        }
        Ok(())
    }
}

/// `max`, `max PERIOD`, `QUOTA` or `QUOTA PERIOD`, all in microseconds, both positive.
fn parse_cpu_max(text: &str) -> Result<CpuMax, &'static str> {
    const FORMAT: &str = "expected 'QUOTA [PERIOD]' in microseconds, or 'max [PERIOD]'";
    let positive = |s: &str| s.parse::<u64>().ok().filter(|&n| n > 0).ok_or(FORMAT);
    let mut words = text.split_whitespace();
    let quota = match words.next().ok_or(FORMAT)? {
        "max" => None,
        q => Some(positive(q)?),
    };
    let period = words.next().map(positive).transpose()?;
    if words.next().is_some() {
        return Err(FORMAT);
    }
    Ok(CpuMax {
        quota_us: quota,
        period_us: period,
    })
}

/// `1`, `0.5`, `2.25`: a positive decimal with at most three decimals.
fn parse_cpus(text: &str) -> Result<Cpus, &'static str> {
    const FORMAT: &str = "expected a positive number of CPUs with at most 3 decimals, e.g. 1.5";
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), "0"));
    if !digits(whole) || !digits(frac) || frac.len() > 3 {
        return Err(FORMAT);
    }
    let whole: u64 = whole.parse().map_err(|_| FORMAT)?;
    let frac: u64 = format!("{frac:0<3}").parse().map_err(|_| FORMAT)?;
    let millis = whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(frac))
        .filter(|&m| m > 0)
        .ok_or(FORMAT)?;
    Ok(Cpus { millis })
}

// ---------------------------------------------------------------------------------------------
// The port helper's command line
// ---------------------------------------------------------------------------------------------

/// Where the child's stdout and stderr go (the contract's table 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// No capture flags: stdout to /dev/null, stderr inherited, nothing sent to the port.
    #[default]
    None,
    /// `--capture-stderr` alone: stdout **and** stderr to /dev/null (Elixir's
    /// `stderr_to_stdout: true` without logging).
    StderrToNull,
    /// `--capture-output`: stdout to the port, stderr inherited.
    Stdout,
    /// `--capture-output --capture-stderr`: both to the port.
    StdoutAndStderr,
    /// `--capture-stderr-only` (whatever else is given): stdout to /dev/null, stderr to the port.
    StderrOnly,
}

impl CaptureMode {
    /// The mode for the given capture flags; `--capture-stderr-only` takes priority, then
    /// `--capture-output`.
    pub fn from_flags(output: bool, stderr: bool, stderr_only: bool) -> Self {
        match (stderr_only, output, stderr) {
            (true, _, _) => Self::StderrOnly,
            (false, true, true) => Self::StdoutAndStderr,
            (false, true, false) => Self::Stdout,
            (false, false, true) => Self::StderrToNull,
            (false, false, false) => Self::None,
        }
    }
}

/// A `--controller` and the `--set`s that followed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerArgs {
    /// The controller name, for example `memory`.
    pub name: String,
    /// Its settings, in command-line order.
    pub settings: Vec<Setting>,
}

/// The original cgroup flags (`-g`, `-c`, `-s`) plus the limit extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupArgs {
    /// `--group`: the cgroup path relative to `/sys/fs/cgroup`, as given (not normalised).
    pub group_path: Option<String>,
    /// The controllers in order of **first** appearance, each once, with their settings.
    pub controllers: Vec<ControllerArgs>,
    /// The extension flags (`--memory-max` and friends).
    pub limits: CgroupLimits,
}

impl CgroupArgs {
    /// Controller names in the order the C helper used (reverse order of first appearance);
    /// this is the order for `+ctrl` in the parent's `cgroup.subtree_control`.
    pub fn controllers_in_apply_order(&self) -> impl Iterator<Item = &str> {
        self.controllers.iter().rev().map(|c| c.name.as_str())
    }

    /// `(controller, setting)` in the order the C helper wrote them: controllers reversed as in
    /// [`Self::controllers_in_apply_order`], each controller's settings reversed too. So
    /// `-c cpu -s a=1 -c memory -s b=2 -c cpu -s c=3` writes `b`, `c`, `a`.
    pub fn settings_in_apply_order(&self) -> impl Iterator<Item = (&str, &Setting)> {
        self.controllers.iter().rev().flat_map(|c| {
            c.settings
                .iter()
                .rev()
                .map(move |setting| (c.name.as_str(), setting))
        })
    }
}

/// A valid port-helper command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortArgs {
    /// `--arg0`: the child's `argv[0]` (the program path for exec is unchanged).
    pub arg0: Option<OsString>,
    /// cgroup flags.
    pub cgroup: CgroupArgs,
    /// `--delay-to-sigkill` in ms, default 500, never negative (see [`delay_to_sigkill_ms`]).
    pub delay_to_sigkill_ms: i64,
    /// `--uid`, `--gid`, `--groups`.
    pub credentials: Credentials,
    /// `--stdio-window` in bytes, default 10240, at least 16.
    pub stdio_window: usize,
    /// From the capture flags.
    pub capture: CaptureMode,
    /// The first operand: the program to exec (searched on `PATH` if it has no `/`).
    pub program: OsString,
    /// The remaining operands, passed to the program unchanged.
    pub args: Vec<OsString>,
}

/// What the port helper's command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortCommand {
    /// Run a program.
    Run(Box<PortArgs>),
    /// `-h`/`--help`: print [`usage`] on stdout and exit 0.
    Help,
    /// No arguments at all: print [`usage`] on stdout and exit 1.
    NoArguments,
}

/// Why the port helper refuses its command line. `Display` is the C helper's message, without
/// the `MUONTRAP: ` prefix; for [`PortArgsError::Getopt`] the caller also prints [`usage`] on
/// stdout (see [`PortArgsError::shows_usage`]). Either way the exit status is 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortArgsError {
    /// Unknown option, missing value, ambiguous prefix, or `=value` on a flag.
    #[error(transparent)]
    Getopt(#[from] GetoptError),
    /// A bad `--uid`, `--gid` or `--groups`.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// A bad cgroup value.
    #[error(transparent)]
    Cgroup(#[from] CgroupArgError),
    /// `-g` given twice.
    #[error("Only one cgroup group_path supported.")]
    GroupGivenTwice,
    /// `-s` before any `-c`.
    #[error("Specify a cgroup controller (-c) before setting a variable")]
    SetWithoutController,
    /// `-s` without `=`.
    #[error("No '=' found when setting a variable: '{0}'")]
    SetWithoutEquals(String),
    /// No operands (this includes `muontrap --`).
    #[error("Specify a program to run")]
    NoProgram,
    /// `-c` without `-g`.
    #[error("Specify a cgroup group_path (-g)")]
    ControllersWithoutGroup,
    /// `-g` without `-c`.
    #[error("Specify a cgroup controller (-c) if you specify a group_path")]
    GroupWithoutControllers,
}

impl PortArgsError {
    /// Whether the caller should print [`usage`] on stdout after the message (getopt errors do;
    /// those messages are prefixed with the program name rather than `MUONTRAP: `).
    pub fn shows_usage(&self) -> bool {
        matches!(self, Self::Getopt(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortOpt {
    Arg0,
    Controller,
    Group,
    Set,
    DelayToSigkill,
    StdioWindow,
    CaptureOutput,
    CaptureStderr,
    CaptureStderrOnly,
    Uid,
    Gid,
    Groups,
    Cgroup(CgroupOpt),
    Help,
}

/// The helper's options, in usage order; the C short-option string was `a:c:g:hk:s:u:G:0:`.
fn port_options() -> Vec<OptSpec<PortOpt>> {
    use PortOpt as O;
    let mut specs = vec![
        OptSpec::value(
            O::Arg0,
            "arg0",
            Some('0'),
            "ARG0",
            "argv[0] for the program",
        ),
        OptSpec::value(
            O::Controller,
            "controller",
            Some('c'),
            "CONTROLLER",
            "cgroup controller to use (may be given more than once)",
        ),
        OptSpec::value(
            O::Group,
            "group",
            Some('g'),
            "PATH",
            "cgroup path, relative to /sys/fs/cgroup",
        ),
        OptSpec::value(
            O::Set,
            "set",
            Some('s'),
            "KEY=VALUE",
            "write VALUE to the cgroup file KEY, for the last --controller\n\
             (may be given more than once)",
        ),
        OptSpec::value(
            O::DelayToSigkill,
            "delay-to-sigkill",
            Some('k'),
            "MILLISECONDS",
            "wait between SIGTERM and SIGKILL (default 500)",
        ),
        OptSpec::value(
            O::StdioWindow,
            "stdio-window",
            None,
            "BYTES",
            "unacknowledged output allowed in flight (default 10240, min 16)",
        ),
        OptSpec::flag(
            O::CaptureOutput,
            "capture-output",
            None,
            "send the program's stdout to the port",
        ),
        OptSpec::flag(
            O::CaptureStderr,
            "capture-stderr",
            None,
            "with --capture-output, send stderr too; alone, discard stderr",
        ),
        OptSpec::flag(
            O::CaptureStderrOnly,
            "capture-stderr-only",
            None,
            "send only the program's stderr to the port",
        ),
        OptSpec::value(
            O::Uid,
            "uid",
            Some('u'),
            "UID|USER",
            "drop privileges to this user",
        ),
        OptSpec::value(
            O::Gid,
            "gid",
            Some('a'),
            "GID|GROUP",
            "drop privileges to this group",
        )
        .short_hidden(),
        OptSpec::value(
            O::Groups,
            "groups",
            Some('G'),
            "LIST",
            "comma-separated supplementary gids and/or group names; the empty\n\
             string drops all supplementary groups (overrides initgroups)",
        ),
    ];
    specs.extend(cgroup_options(O::Cgroup));
    specs.push(OptSpec::flag(O::Help, "help", Some('h'), "print this help"));
    specs
}

/// The help text, generated from the option table. It goes to **stdout** (as the C helper's
/// did), after `-h` or a getopt error.
pub fn usage() -> String {
    let mut text = String::from("Usage: muontrap [OPTION] -- <program> <args>\n\nOptions:\n");
    for line in usage_lines(&port_options()) {
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str("\nThe program to run and its arguments come after --.\n");
    text.push_str(
        "--cgroup-base/--cgroup-path work on cgroup v2, v1 and hybrid machines: a PATH is\n\
         relative to each hierarchy's mount root (not to /sys/fs/cgroup), and ./PATH to\n\
         the cgroup muontrap itself runs in (what systemd delegation needs).\n",
    );
    text
}

/// Parses the port helper's arguments (`argv[1..]`), acting on each option in order, then runs
/// the contract's checks 3–5.
///
/// `permute` is GNU's default (pass `std::env::var_os("POSIXLY_CORRECT").is_none()`).
/// The extension flags take no part in checks 4–5 (which only look at `-g` and `-c`).
pub fn parse_port_args(
    args: &[OsString],
    permute: bool,
    accounts: &dyn Accounts,
) -> Result<PortCommand, PortArgsError> {
    if args.is_empty() {
        return Ok(PortCommand::NoArguments);
    }
    let specs = port_options();
    let mut getopt = Getopt::new(&specs, args, permute);
    let mut cgroup = CgroupArgs::default();
    let mut current_controller: Option<usize> = None;
    let mut credentials = Credentials::default();
    let mut arg0 = None;
    let mut delay = DEFAULT_DELAY_TO_SIGKILL_MS;
    let mut window = DEFAULT_STDIO_WINDOW;
    let (mut output, mut stderr, mut stderr_only) = (false, false, false);

    for matched in getopt.by_ref() {
        let matched = matched?;
        let value = matched.value.unwrap_or_default();
        match matched.id {
            PortOpt::Help => return Ok(PortCommand::Help),
            PortOpt::Arg0 => arg0 = Some(value),
            PortOpt::Controller => {
                let name = utf8("controller", &value)?;
                let index = match cgroup.controllers.iter().position(|c| c.name == name) {
                    Some(index) => index,
                    None => {
                        cgroup.controllers.push(ControllerArgs {
                            name,
                            settings: Vec::new(),
                        });
                        cgroup.controllers.len() - 1
                    }
                };
                current_controller = Some(index);
            }
            PortOpt::Group => {
                if cgroup.group_path.is_some() {
                    return Err(PortArgsError::GroupGivenTwice);
                }
                cgroup.group_path = Some(utf8("group", &value)?);
            }
            PortOpt::Set => {
                let index = current_controller.ok_or(PortArgsError::SetWithoutController)?;
                let text = utf8("set", &value)?;
                let setting = Setting::split(&text).ok_or(PortArgsError::SetWithoutEquals(text))?;
                cgroup.controllers[index].settings.push(setting);
            }
            PortOpt::DelayToSigkill => delay = delay_to_sigkill_ms(&value),
            PortOpt::StdioWindow => window = stdio_window(&value),
            PortOpt::CaptureOutput => output = true,
            PortOpt::CaptureStderr => stderr = true,
            PortOpt::CaptureStderrOnly => stderr_only = true,
            PortOpt::Uid => credentials.set_uid(&value, accounts)?,
            PortOpt::Gid => credentials.set_gid(&value, accounts)?,
            PortOpt::Groups => credentials.set_groups(&value, accounts)?,
            PortOpt::Cgroup(opt) => cgroup.limits.set(opt, &value)?,
        }
    }

    let mut operands = getopt.into_operands().into_iter();
    let program = operands.next().ok_or(PortArgsError::NoProgram)?;
    if !cgroup.controllers.is_empty() && cgroup.group_path.is_none() {
        return Err(PortArgsError::ControllersWithoutGroup);
    }
    if cgroup.group_path.is_some() && cgroup.controllers.is_empty() {
        return Err(PortArgsError::GroupWithoutControllers);
    }
    Ok(PortCommand::Run(Box::new(PortArgs {
        arg0,
        cgroup,
        delay_to_sigkill_ms: delay,
        credentials,
        stdio_window: window,
        capture: CaptureMode::from_flags(output, stderr, stderr_only),
        program,
        args: operands.collect(),
    })))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::ffi::OsStringExt;

    /// A small account database: users nobody, daemon, root and `123abc`; groups daemon, tty,
    /// root and nogroup.
    pub(crate) struct FakeAccounts;

    impl Accounts for FakeAccounts {
        fn user(&self, name: &str) -> Option<(u32, u32)> {
            match name {
                "nobody" => Some((65534, 65534)),
                "daemon" => Some((1, 1)),
                "root" => Some((0, 0)),
                "123abc" => Some((1234, 100)),
                _ => None,
            }
        }
        fn group(&self, name: &str) -> Option<u32> {
            match name {
                "daemon" => Some(1),
                "tty" => Some(5),
                "root" => Some(0),
                "nogroup" => Some(65534),
                _ => None,
            }
        }
    }

    fn os(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn parse(list: &[&str]) -> Result<PortCommand, PortArgsError> {
        parse_port_args(&os(list), true, &FakeAccounts)
    }

    fn run(list: &[&str]) -> PortArgs {
        match parse(list) {
            Ok(PortCommand::Run(args)) => *args,
            other => panic!("{list:?} gave {other:?}"),
        }
    }

    fn fails(list: &[&str]) -> String {
        parse(list).expect_err("refused").to_string()
    }

    // --- strtoul / strtol ---

    #[test]
    fn strtoul_detects_base_from_prefix() {
        assert_eq!(strtoul(b"0x10"), (16, 4));
        assert_eq!(strtoul(b"0X1f"), (31, 4));
        assert_eq!(strtoul(b"010"), (8, 3));
        assert_eq!(strtoul(b"0"), (0, 1));
        assert_eq!(strtoul(b"09"), (0, 1));
        assert_eq!(strtoul(b"0x"), (0, 1));
        assert_eq!(strtoul(b"0xg"), (0, 1));
        assert_eq!(strtoul(b"123"), (123, 3));
    }

    #[test]
    fn strtoul_whitespace_sign_and_wrapping() {
        assert_eq!(strtoul(b" \t\n\x0b\x0c\r+5"), (5, 8));
        assert_eq!(strtoul(b"-1"), (u64::MAX, 2));
        assert_eq!(strtoul(b"-1").0 as u32, 4294967295);
        assert_eq!(strtoul(b"-18446744073709551615"), (1, 21));
        assert_eq!(strtoul(b"18446744073709551615"), (u64::MAX, 20));
        assert_eq!(strtoul(b"18446744073709551616"), (u64::MAX, 20));
        assert_eq!(strtoul(b"-18446744073709551616"), (u64::MAX, 21));
        assert_eq!(strtoul(b"4294967296"), (1 << 32, 10));
    }

    #[test]
    fn strtoul_without_digits_consumes_nothing() {
        assert_eq!(strtoul(b""), (0, 0));
        assert_eq!(strtoul(b"   "), (0, 0));
        assert_eq!(strtoul(b"+"), (0, 0));
        assert_eq!(strtoul(b"-"), (0, 0));
        assert_eq!(strtoul(b"abc"), (0, 0));
        assert_eq!(strtoul(b"123abc"), (123, 3));
        assert_eq!(strtoul(b"5 "), (5, 1));
    }

    #[test]
    fn strtol_clamps_instead_of_wrapping() {
        assert_eq!(strtol(b"-5"), (-5, 2));
        assert_eq!(strtol(b"abc"), (0, 0));
        assert_eq!(strtol(b"0x7fffffffffffffff"), (i64::MAX, 18));
        assert_eq!(strtol(b"9223372036854775808"), (i64::MAX, 19));
        assert_eq!(strtol(b"-9223372036854775808"), (i64::MIN, 20));
        assert_eq!(strtol(b"-9223372036854775809"), (i64::MIN, 20));
        assert_eq!(strtol(b"99999999999999999999999"), (i64::MAX, 23));
        assert_eq!(strtol(b"010"), (8, 3));
    }

    // --- uid / gid / groups ---

    fn uid(list: &[&str]) -> UserArg {
        run(&[list, &["prog"]].concat()).credentials.uid.unwrap()
    }

    #[test]
    fn numeric_uid_uses_strtoul_and_32_bits() {
        assert_eq!(uid(&["--uid", "0x10"]).uid, 16);
        assert_eq!(uid(&["--uid", "010"]).uid, 8);
        assert_eq!(uid(&["--uid", "-1"]).uid, 4294967295);
        assert_eq!(uid(&["-u", " 7"]).uid, 7);
        assert_eq!(uid(&["-u", "65534"]).login, None);
    }

    #[test]
    fn uid_zero_in_any_spelling_is_refused() {
        for zero in ["0", "", "root", "4294967296", "0x0", "-0"] {
            assert_eq!(
                fails(&["--uid", zero, "prog"]),
                "Setting the user to root or uid 0 is not allowed",
                "{zero:?}"
            );
        }
    }

    #[test]
    fn uid_with_leftover_characters_is_a_name() {
        let user = uid(&["--uid", "123abc"]);
        assert_eq!(user.uid, 1234);
        assert_eq!(
            user.login,
            Some(Login {
                name: "123abc".into(),
                primary_gid: 100
            })
        );
        assert_eq!(fails(&["--uid", "5 ", "prog"]), "Unknown user '5 '");
        assert_eq!(fails(&["--uid", "bogus", "prog"]), "Unknown user 'bogus'");
        assert_eq!(fails(&["--uid", " ", "prog"]), "Unknown user ' '");
    }

    #[test]
    fn last_uid_wins_but_earlier_name_is_kept_for_initgroups() {
        let user = uid(&["--uid", "nobody", "--uid", "1000"]);
        assert_eq!(user.uid, 1000);
        assert_eq!(user.login.unwrap().name, "nobody");
        let user = uid(&["--uid", "nobody", "--uid", "daemon"]);
        assert_eq!(
            user,
            UserArg {
                uid: 1,
                login: Some(Login {
                    name: "daemon".into(),
                    primary_gid: 1
                })
            }
        );
    }

    #[test]
    fn gid_by_number_or_name_and_root_refused() {
        let gid = |list: &[&str]| run(&[list, &["prog"]].concat()).credentials.gid.unwrap();
        assert_eq!(gid(&["--gid", "daemon"]).gid, 1);
        assert_eq!(gid(&["-a", "0x10"]).gid, 16);
        assert_eq!(
            gid(&["-a", "5", "--gid", "tty"]).name.as_deref(),
            Some("tty")
        );
        assert_eq!(fails(&["--gid", "wheel2", "p"]), "Unknown group 'wheel2'");
        for zero in ["root", "0", ""] {
            assert_eq!(
                fails(&["--gid", zero, "p"]),
                "Setting the group to root or gid 0 is not allowed"
            );
        }
    }

    fn groups(list: &[&str]) -> Vec<u32> {
        run(&[list, &["prog"]].concat())
            .credentials
            .groups
            .expect("explicit groups")
            .iter()
            .map(|g| g.gid)
            .collect()
    }

    #[test]
    fn groups_split_on_commas_skipping_empty_tokens() {
        assert_eq!(groups(&["--groups", ""]), Vec::<u32>::new());
        assert_eq!(groups(&["--groups", ",,"]), Vec::<u32>::new());
        assert_eq!(groups(&["--groups", "daemon,,tty"]), vec![1, 5]);
        assert_eq!(groups(&["-G", "daemon,5"]), vec![1, 5]);
        assert_eq!(groups(&["-G", "007"]), vec![7]);
        assert_eq!(groups(&["-G", "daemon", "-G", "tty"]), vec![5]);
        assert_eq!(run(&["prog"]).credentials.groups, None);
    }

    #[test]
    fn groups_errors() {
        assert_eq!(
            fails(&["-G", "4294967296", "p"]),
            "Group id '4294967296' is out of range"
        );
        assert_eq!(fails(&["-G", "-1", "p"]), "Unknown group '-1'");
        assert_eq!(fails(&["-G", "+5", "p"]), "Unknown group '+5'");
        assert_eq!(fails(&["-G", "0x10", "p"]), "Unknown group '0x10'");
        for zero in ["0", "00", "tty,root"] {
            assert_eq!(
                fails(&["-G", zero, "p"]),
                "Supplementary group id 0 is not allowed"
            );
        }
        let many = |n: usize| vec!["5"; n].join(",");
        assert_eq!(groups(&["-G", &many(256)]).len(), 256);
        assert_eq!(
            fails(&["-G", &many(257), "p"]),
            "Too many supplementary groups (max 256)"
        );
    }

    // --- numbers ---

    #[test]
    fn delay_to_sigkill_follows_c_int_then_clamps() {
        assert_eq!(run(&["p"]).delay_to_sigkill_ms, 500);
        let delay = |s: &str| run(&["-k", s, "p"]).delay_to_sigkill_ms;
        assert_eq!(delay("10"), 10);
        assert_eq!(delay("0x10"), 16);
        assert_eq!(delay("abc"), 0);
        assert_eq!(delay("0"), 0);
        assert_eq!(delay("-5"), 0);
        assert_eq!(delay("4294967796"), 500);
        assert_eq!(run(&["-k500", "p"]).delay_to_sigkill_ms, 500);
    }

    #[test]
    fn stdio_window_defaults_and_minimum() {
        assert_eq!(run(&["p"]).stdio_window, 10240);
        let window = |s: &str| run(&["--stdio-window", s, "p"]).stdio_window;
        assert_eq!(window("5"), 16);
        assert_eq!(window("-3"), 16);
        assert_eq!(window("junk"), 16);
        assert_eq!(window("0x100"), 256);
        assert_eq!(window("20000"), 20000);
    }

    // --- capture, cgroup ---

    #[test]
    fn capture_mode_table() {
        let mode = |flags: &[&str]| run(&[flags, &["p"]].concat()).capture;
        assert_eq!(mode(&[]), CaptureMode::None);
        assert_eq!(mode(&["--capture-stderr"]), CaptureMode::StderrToNull);
        assert_eq!(mode(&["--capture-output"]), CaptureMode::Stdout);
        assert_eq!(
            mode(&["--capture-output", "--capture-stderr"]),
            CaptureMode::StdoutAndStderr
        );
        assert_eq!(
            mode(&[
                "--capture-output",
                "--capture-stderr",
                "--capture-stderr-only"
            ]),
            CaptureMode::StderrOnly
        );
        assert_eq!(mode(&["--capture-stderr-only"]), CaptureMode::StderrOnly);
    }

    #[test]
    fn controllers_merge_and_apply_in_reverse() {
        let args = run(&[
            "-g", "mt", "-c", "cpu", "-s", "a=1", "-c", "memory", "-s", "b=2", "-c", "cpu", "-s",
            "c=3=x", "p",
        ]);
        let cg = &args.cgroup;
        assert_eq!(cg.group_path.as_deref(), Some("mt"));
        let names: Vec<&str> = cg.controllers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["cpu", "memory"]);
        assert_eq!(
            cg.controllers_in_apply_order().collect::<Vec<_>>(),
            ["memory", "cpu"]
        );
        let order: Vec<(&str, &str, &str)> = cg
            .settings_in_apply_order()
            .map(|(c, s)| (c, s.key.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            order,
            [("memory", "b", "2"), ("cpu", "c", "3=x"), ("cpu", "a", "1")]
        );
    }

    #[test]
    fn cgroup_flag_errors_in_order() {
        assert_eq!(
            fails(&["-s", "a=1", "-c", "cpu", "p"]),
            "Specify a cgroup controller (-c) before setting a variable"
        );
        assert_eq!(
            fails(&["-c", "cpu", "-s", "novalue", "p"]),
            "No '=' found when setting a variable: 'novalue'"
        );
        assert_eq!(
            fails(&["-g", "a", "-g", "b", "p"]),
            "Only one cgroup group_path supported."
        );
        assert_eq!(
            fails(&["-c", "cpu", "p"]),
            "Specify a cgroup group_path (-g)"
        );
        assert_eq!(
            fails(&["-g", "x", "p"]),
            "Specify a cgroup controller (-c) if you specify a group_path"
        );
        // A program is checked before the cgroup pairing.
        assert_eq!(fails(&["-g", "x"]), "Specify a program to run");
    }

    #[test]
    fn extension_flags_are_parsed_and_stored() {
        let args = run(&[
            "--cgroup-base=mt",
            "--cgroup-path",
            "mt/a",
            "--memory-max",
            "64M",
            "--memory-high=max",
            "--cpu-max",
            "50000 100000",
            "--cpus",
            "1.5",
            "--cpu-weight",
            "200",
            "--pids-max",
            "max",
            "--cgroup-set",
            "io.weight=default 50",
            "p",
        ]);
        let l = &args.cgroup.limits;
        assert_eq!(l.base.as_deref(), Some("mt"));
        assert_eq!(l.path.as_deref(), Some("mt/a"));
        assert_eq!(l.memory_max, Some(SizeLimit::Bytes(64 << 20)));
        assert_eq!(l.memory_high, Some(SizeLimit::Max));
        assert_eq!(l.cpu_max.unwrap().to_kernel_string(), "50000 100000");
        assert_eq!(l.cpus, Some(Cpus { millis: 1500 }));
        assert_eq!(
            l.cpus.unwrap().to_cpu_max(100000).to_kernel_string(),
            "150000 100000"
        );
        assert_eq!(l.cpu_weight, Some(200));
        assert_eq!(l.pids_max, Some(PidsLimit::Max));
        assert_eq!(l.sets[0].key, "io.weight");
        assert_eq!(l.sets[0].value, "default 50");
        // Extension flags do not count as `-g`.
        assert_eq!(args.cgroup.group_path, None);
    }

    #[test]
    fn extension_flag_errors_name_flag_and_value() {
        assert_eq!(
            fails(&["--memory-max", "1.5G", "p"]),
            "invalid value '1.5G' for --memory-max: fractions are not supported; \
             use a smaller unit, e.g. 1536M instead of 1.5G"
        );
        assert!(
            fails(&["--cpu-weight", "0", "p"]).starts_with("invalid value '0' for --cpu-weight")
        );
        assert!(fails(&["--cpus", "0", "p"]).starts_with("invalid value '0' for --cpus"));
        assert!(fails(&["--cpus", "1.2345", "p"]).contains("--cpus"));
        assert!(fails(&["--cpu-max", "1 2 3", "p"]).contains("--cpu-max"));
        assert!(fails(&["--cpu-max", "max 0", "p"]).contains("--cpu-max"));
        assert!(fails(&["--pids-max", "-1", "p"]).contains("--pids-max"));
        assert_eq!(
            fails(&["--cgroup-set", "nokey", "p"]),
            "--cgroup-set expects FILE=VALUE, got 'nokey'"
        );
        assert_eq!(
            fails(&["--cgroup-set", "=v", "p"]),
            "--cgroup-set expects FILE=VALUE, got '=v'"
        );
    }

    #[test]
    fn cpu_max_forms() {
        let cm = |s: &str| parse_cpu_max(s).map(|c| c.to_kernel_string());
        assert_eq!(cm("max"), Ok("max".into()));
        assert_eq!(cm("max 100000"), Ok("max 100000".into()));
        assert_eq!(cm("50000"), Ok("50000".into()));
        assert!(cm("").is_err());
        assert!(cm("abc").is_err());
    }

    // --- whole command lines ---

    #[test]
    fn no_arguments_and_help() {
        assert_eq!(parse(&[]), Ok(PortCommand::NoArguments));
        assert_eq!(parse(&["-h"]), Ok(PortCommand::Help));
        assert_eq!(parse(&["--he", "--bogus"]), Ok(PortCommand::Help));
        assert_eq!(
            parse(&["--uid", "nobody", "-h", "-l"]),
            Ok(PortCommand::Help)
        );
        assert!(parse(&["--bogus", "-h"]).unwrap_err().shows_usage());
        assert_eq!(
            fails(&["--uid", "bogus", "-h"]),
            "Unknown user 'bogus'",
            "options act in order"
        );
    }

    #[test]
    fn program_and_args_follow_options_or_double_dash() {
        let a = run(&["-g", "X", "-c", "cpu", "./prog"]);
        assert_eq!(a.program, "./prog");
        let a = run(&["./prog", "-g", "X", "-c", "cpu"]);
        assert_eq!(
            (a.program.as_os_str(), a.cgroup.group_path.as_deref()),
            (OsStr::new("./prog"), Some("X"))
        );
        let a = run(&["--arg0", "name", "--", "echo", "-n", "hi"]);
        assert_eq!(a.arg0, Some("name".into()));
        assert_eq!(a.program, "echo");
        assert_eq!(a.args, os(&["-n", "hi"]));
        assert_eq!(fails(&["--"]), "Specify a program to run");
        assert_eq!(fails(&["-k", "5"]), "Specify a program to run");
    }

    #[test]
    fn getopt_errors_show_usage() {
        for (list, message) in [
            (&["echo", "-n", "hi"][..], "invalid option -- 'n'"),
            (&["-l", "p"][..], "invalid option -- 'l'"),
            (&["--bogus", "p"][..], "unrecognized option '--bogus'"),
            (&["-g"][..], "option requires an argument -- 'g'"),
            (&["--group"][..], "option '--group' requires an argument"),
            (
                &["--capture", "p"][..],
                "option '--capture' is ambiguous; possibilities: '--capture-output' \
                 '--capture-stderr' '--capture-stderr-only'",
            ),
            (
                &["--capture-output=1", "p"][..],
                "option '--capture-output' doesn't allow an argument",
            ),
        ] {
            let err = parse(list).unwrap_err();
            assert!(err.shows_usage(), "{list:?}");
            assert_eq!(err.to_string(), message);
        }
        assert!(!parse(&["--"]).unwrap_err().shows_usage());
    }

    #[test]
    fn abbreviations_from_the_contract() {
        let a = run(&["--ui", "nobody", "--del", "10", "--capture-stderr", "p"]);
        assert_eq!(a.credentials.uid.unwrap().uid, 65534);
        assert_eq!(a.delay_to_sigkill_ms, 10);
        assert_eq!(a.capture, CaptureMode::StderrToNull);
    }

    #[test]
    fn posixly_correct_stops_at_the_program() {
        let list = os(&["./prog", "-g", "X"]);
        match parse_port_args(&list, false, &FakeAccounts).unwrap() {
            PortCommand::Run(a) => assert_eq!(a.args, os(&["-g", "X"])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_utf8_program_and_args_pass_through() {
        let raw = OsString::from_vec(vec![0xff, b'x']);
        let list = vec![OsString::from("--"), raw.clone(), raw.clone()];
        match parse_port_args(&list, true, &FakeAccounts).unwrap() {
            PortCommand::Run(a) => {
                assert_eq!(a.program, raw);
                assert_eq!(a.args, vec![raw]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_lists_the_options_but_not_dash_a() {
        let text = usage();
        assert!(text.starts_with("Usage: muontrap [OPTION] -- <program> <args>\n\nOptions:\n"));
        for needle in [
            "-0, --arg0",
            "-c, --controller",
            "-g, --group",
            "-s, --set",
            "-k, --delay-to-sigkill",
            "--stdio-window",
            "--capture-output",
            "--capture-stderr-only",
            "-u, --uid",
            "    --gid",
            "-G, --groups",
            "--memory-max",
            "-h, --help",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
        assert!(!text.contains("-a,"));
        assert!(text.contains("(may be given more than once)\n"));
    }

    #[test]
    fn system_accounts_find_root() {
        // Every Linux system has root as uid 0 and group 0; this exercises the libc calls.
        assert_eq!(SystemAccounts.user("root"), Some((0, 0)));
        assert_eq!(SystemAccounts.group("root"), Some(0));
        assert_eq!(SystemAccounts.user("no-such-user-muontrap"), None);
        assert_eq!(SystemAccounts.user("nul\0inside"), None);
    }

    fn arg_strategy() -> impl Strategy<Value = OsString> {
        prop_oneof![
            prop::sample::select(vec![
                "--",
                "-g",
                "-c",
                "-s",
                "a=b",
                "cpu",
                "-k",
                "-u",
                "-a",
                "-G",
                "--uid",
                "--groups",
                ",,",
                "nobody",
                "root",
                "0",
                "-1",
                "0x10",
                "--capture",
                "--capture-stderr",
                "--stdio-window",
                "--memory-max",
                "--cpus",
                "1.5",
                "-h",
                "prog",
                "--cgroup-set",
            ])
            .prop_map(OsString::from),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(OsString::from_vec),
        ]
    }

    proptest! {
        #[test]
        fn random_command_lines_never_panic(
            list in prop::collection::vec(arg_strategy(), 0..10),
            permute in any::<bool>(),
        ) {
            let _ = parse_port_args(&list, permute, &FakeAccounts);
        }

        #[test]
        fn strtoul_never_panics_and_end_is_in_bounds(s in prop::collection::vec(any::<u8>(), 0..24)) {
            prop_assert!(strtoul(&s).1 <= s.len());
            prop_assert!(strtol(&s).1 <= s.len());
        }

        #[test]
        fn strtoul_reads_decimal_u64(n in any::<u64>()) {
            prop_assert_eq!(strtoul(n.to_string().as_bytes()), (n, n.to_string().len()));
        }
    }
}
