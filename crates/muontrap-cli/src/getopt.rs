//! A table-driven emulation of GNU `getopt_long`.
//!
//! The port helper must be a drop-in for a C program that parsed its command line with glibc's
//! `getopt_long`, and the Elixir side (and its tests) rely on GNU behaviour that ordinary Rust
//! argument parsers do not reproduce: unique-prefix abbreviations of long options (`--del 10`),
//! permutation of operands (`muontrap ./prog -g X -c cpu`), attached short values (`-k500`),
//! clustered short flags, and `--` ending the options. This module implements exactly that
//! behaviour, and nothing more, over one table of [`OptSpec`]s that also renders the help text,
//! so each flag is defined once.
//!
//! Arguments are [`OsString`]s and values are handed back as [`OsString`]s, byte for byte:
//! arguments that are not valid UTF-8 reach the program untouched.
//!
//! Differences from glibc, none of which change whether a command line is accepted:
//! * glibc does not report two prefix matches as ambiguous when both options have the same
//!   argument kind and return value. Every entry of our tables is distinct, so any prefix that
//!   matches more than one option is ambiguous here.
//! * `--=value` (an empty option name) is reported as unrecognized instead of ambiguous.
//! * Error messages are not prefixed with `argv[0]`; the caller adds what it wants.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A flag: `--capture-output`. Giving `--capture-output=x` is an error.
    None,
    /// The option needs a value: `--group X`, `--group=X`, `-gX` or `-g X`.
    Required,
}

/// One option in a table: how it is spelled, whether it takes a value, and its help text.
///
/// `Id` is the caller's name for the option (usually a small `Copy` enum), handed back with
/// every match so callers never compare option strings.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec<Id> {
    /// The caller's identifier for this option.
    pub id: Id,
    /// The long name, without the leading `--`.
    pub long: &'static str,
    /// The short name, if any (ASCII).
    pub short: Option<char>,
    /// Whether the option takes a value.
    pub arg: ArgKind,
    /// The placeholder shown in the help text for the value (ignored for flags).
    pub value_name: &'static str,
    /// Help text. A `\n` continues the text on a new, aligned line.
    pub help: &'static str,
    /// Leave the option out of the help text entirely.
    pub hidden: bool,
    /// Show the option in the help text, but without its short name (the port helper's `-a`).
    pub short_hidden: bool,
}

impl<Id: Copy> OptSpec<Id> {
    /// A flag that takes no value.
    pub const fn flag(id: Id, long: &'static str, short: Option<char>, help: &'static str) -> Self {
        Self {
            id,
            long,
            short,
            arg: ArgKind::None,
            value_name: "",
            help,
            hidden: false,
            short_hidden: false,
        }
    }

    /// An option that requires a value, shown as `<value_name>` in the help text.
    pub const fn value(
        id: Id,
        long: &'static str,
        short: Option<char>,
        value_name: &'static str,
        help: &'static str,
    ) -> Self {
        Self {
            id,
            long,
            short,
            arg: ArgKind::Required,
            value_name,
            help,
            hidden: false,
            short_hidden: false,
        }
    }

    /// The same option, left out of the help text.
    pub const fn hidden(self) -> Self {
        Self {
            hidden: true,
            ..self
        }
    }

    /// The same option, shown in the help text without its short name.
    pub const fn short_hidden(self) -> Self {
        Self {
            short_hidden: true,
            ..self
        }
    }
}

/// One option found on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<Id> {
    /// The [`OptSpec::id`] of the option.
    pub id: Id,
    /// The index of the option in the table.
    pub spec: usize,
    /// Its value, for [`ArgKind::Required`] options.
    pub value: Option<OsString>,
}

/// A whole command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<Id> {
    /// The options, in command-line order.
    pub opts: Vec<Matched<Id>>,
    /// The operands (non-options), in command-line order.
    pub operands: Vec<OsString>,
}

/// A command line that `getopt_long` would reject. The messages follow glibc's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetoptError {
    /// A `--name` that matches no option, even as a prefix. Holds the whole argument.
    #[error("unrecognized option '{0}'")]
    UnrecognizedLong(String),
    /// A short option letter that is not in the table.
    #[error("invalid option -- '{0}'")]
    InvalidShort(char),
    /// A short option that needs a value came last.
    #[error("option requires an argument -- '{0}'")]
    ShortNeedsValue(char),
    /// A long option that needs a value came last. Holds the option's full name.
    #[error("option '--{0}' requires an argument")]
    LongNeedsValue(&'static str),
    /// A flag was given `=value`. Holds the option's full name.
    #[error("option '--{0}' doesn't allow an argument")]
    LongTakesNoValue(&'static str),
    /// A prefix that matches several long options and none exactly.
    #[error(
        "option '{given}' is ambiguous; possibilities:{}",
        possibilities(candidates)
    )]
    Ambiguous {
        /// The argument as given (for example `--capture`).
        given: String,
        /// The full names of the options it could mean, in table order.
        candidates: Vec<&'static str>,
    },
}

fn possibilities(candidates: &[&'static str]) -> String {
    candidates.iter().map(|c| format!(" '--{c}'")).collect()
}

/// An iterator over the options of a command line, one [`Matched`] at a time.
///
/// Use it instead of [`parse`] when options must be acted on in order and parsing must stop
/// early, as with `-h` (options after it are not even checked) or a check that fails before a
/// later getopt error. After the iterator has returned `None`, [`Getopt::into_operands`] gives
/// the operands. After an error it returns `None` forever.
#[derive(Debug)]
pub struct Getopt<'a, Id> {
    specs: &'a [OptSpec<Id>],
    args: &'a [OsString],
    /// Index of the next argument to look at.
    next: usize,
    /// A short-option cluster being worked through: (argument index, byte offset).
    cluster: Option<(usize, usize)>,
    operands: Vec<OsString>,
    permute: bool,
    failed: bool,
}

impl<'a, Id: Copy> Getopt<'a, Id> {
    /// Starts parsing `args`, which must not include the program name (`argv[0]`).
    ///
    /// With `permute`, operands may appear anywhere and are collected (GNU's default). Without it
    /// (GNU's `POSIXLY_CORRECT` or a leading `+` in the option string), the first operand ends
    /// the options and everything from it on is an operand. Callers that emulate the C helper
    /// pass `permute = std::env::var_os("POSIXLY_CORRECT").is_none()`.
    pub fn new(specs: &'a [OptSpec<Id>], args: &'a [OsString], permute: bool) -> Self {
        Self {
            specs,
            args,
            next: 0,
            cluster: None,
            operands: Vec::new(),
            permute,
            failed: false,
        }
    }

    /// The operands, in command-line order: those met among the options, then every argument
    /// after `--` or (without permutation) from the first operand on.
    ///
    /// Only meaningful once the iterator has returned `None` without an error.
    pub fn into_operands(self) -> Vec<OsString> {
        self.operands
    }

    fn short(&mut self, arg_index: usize, offset: usize) -> Result<Matched<Id>, GetoptError> {
        let bytes = self.args[arg_index].as_bytes();
        let letter = bytes[offset];
        let rest = offset + 1;
        let found = self
            .specs
            .iter()
            .position(|s| s.short.is_some_and(|c| c.is_ascii() && c as u8 == letter));
        let Some(spec) = found else {
            self.cluster = None;
            let shown = String::from_utf8_lossy(&bytes[offset..])
                .chars()
                .next()
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            return Err(GetoptError::InvalidShort(shown));
        };
        let opt = &self.specs[spec];
        match opt.arg {
            ArgKind::None => {
                self.cluster = (rest < bytes.len()).then_some((arg_index, rest));
                Ok(Matched {
                    id: opt.id,
                    spec,
                    value: None,
                })
            }
            ArgKind::Required => {
                self.cluster = None;
                let value = if rest < bytes.len() {
                    OsStr::from_bytes(&bytes[rest..]).to_os_string()
                } else if let Some(next) = self.args.get(self.next) {
                    self.next += 1;
                    next.clone()
                } else {
                    return Err(GetoptError::ShortNeedsValue(letter as char));
                };
                Ok(Matched {
                    id: opt.id,
                    spec,
                    value: Some(value),
                })
            }
        }
    }

    /// `body` is the argument without its leading `--`.
    fn long(&mut self, arg: &OsStr, body: &[u8]) -> Result<Matched<Id>, GetoptError> {
        let (name, inline) = match body.iter().position(|&b| b == b'=') {
            Some(eq) => (&body[..eq], Some(&body[eq + 1..])),
            None => (body, None),
        };
        let spec = self.lookup_long(arg, name)?;
        let opt = &self.specs[spec];
        let value = match (opt.arg, inline) {
            (ArgKind::None, Some(_)) => return Err(GetoptError::LongTakesNoValue(opt.long)),
            (ArgKind::None, None) => None,
            (ArgKind::Required, Some(v)) => Some(OsStr::from_bytes(v).to_os_string()),
            (ArgKind::Required, None) => match self.args.get(self.next) {
                Some(next) => {
                    self.next += 1;
                    Some(next.clone())
                }
                None => return Err(GetoptError::LongNeedsValue(opt.long)),
            },
        };
        Ok(Matched {
            id: opt.id,
            spec,
            value,
        })
    }

    /// An exact name wins; otherwise the name must be a prefix of exactly one option.
    fn lookup_long(&self, arg: &OsStr, name: &[u8]) -> Result<usize, GetoptError> {
        if name.is_empty() {
            return Err(GetoptError::UnrecognizedLong(
                arg.to_string_lossy().into_owned(),
            ));
        }
        if let Some(exact) = self.specs.iter().position(|s| s.long.as_bytes() == name) {
            return Ok(exact);
        }
        let matches: Vec<usize> = (0..self.specs.len())
            .filter(|&i| self.specs[i].long.as_bytes().starts_with(name))
            .collect();
        match matches.as_slice() {
            [] => Err(GetoptError::UnrecognizedLong(
                arg.to_string_lossy().into_owned(),
            )),
            [one] => Ok(*one),
            many => Err(GetoptError::Ambiguous {
                given: arg.to_string_lossy().into_owned(),
                candidates: many.iter().map(|&i| self.specs[i].long).collect(),
            }),
        }
    }
}

impl<Id: Copy> Iterator for Getopt<'_, Id> {
    type Item = Result<Matched<Id>, GetoptError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = if let Some((arg_index, offset)) = self.cluster {
            self.short(arg_index, offset)
        } else {
            loop {
                let args = self.args;
                let arg = args.get(self.next)?;
                let bytes = arg.as_bytes();
                if bytes == b"--" {
                    self.operands.extend_from_slice(&args[self.next + 1..]);
                    self.next = args.len();
                    return None;
                }
                if let Some(body) = bytes.strip_prefix(b"--") {
                    self.next += 1;
                    break self.long(arg, body);
                }
                if bytes.len() > 1 && bytes[0] == b'-' {
                    self.next += 1;
                    break self.short(self.next - 1, 1);
                }
                // An operand (including a lone `-`).
                if self.permute {
                    self.operands.push(arg.clone());
                    self.next += 1;
                } else {
                    self.operands.extend_from_slice(&args[self.next..]);
                    self.next = args.len();
                    return None;
                }
            }
        };
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

/// Parses a whole command line (without `argv[0]`) against `specs`, as `getopt_long` would.
///
/// See [`Getopt::new`] for `permute`. The first error stops parsing. Use [`Getopt`] directly
/// when options must take effect one at a time (so that `-h` wins over a later bad option).
pub fn parse<Id: Copy>(
    specs: &[OptSpec<Id>],
    args: &[OsString],
    permute: bool,
) -> Result<Parsed<Id>, GetoptError> {
    let mut getopt = Getopt::new(specs, args, permute);
    let opts = getopt.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok(Parsed {
        opts,
        operands: getopt.into_operands(),
    })
}

/// Renders one help line per visible option (more for multi-line help), help texts aligned:
///
/// ```text
///   -g, --group <PATH>      cgroup path relative to /sys/fs/cgroup
///       --stdio-window <BYTES>  ...
/// ```
pub fn usage_lines<Id>(specs: &[OptSpec<Id>]) -> Vec<String> {
    let visible: Vec<&OptSpec<Id>> = specs.iter().filter(|s| !s.hidden).collect();
    let lefts: Vec<String> = visible
        .iter()
        .map(|s| {
            let short = match s.short {
                Some(c) if !s.short_hidden => format!("-{c}, "),
                _ => "    ".to_owned(),
            };
            let value = match s.arg {
                ArgKind::Required => format!(" <{}>", s.value_name),
                ArgKind::None => String::new(),
            };
            format!("  {short}--{}{value}", s.long)
        })
        .collect();
    let width = lefts.iter().map(String::len).max().unwrap_or(0) + 2;
    let mut lines = Vec::new();
    for (spec, left) in visible.iter().zip(lefts) {
        let mut help = spec.help.lines();
        let first = help.next().unwrap_or("");
        lines.push(format!("{left:width$}{first}").trim_end().to_owned());
        for more in help {
            lines.push(format!("{:width$}{more}", ""));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::ffi::OsStringExt;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum T {
        Group,
        Controller,
        Kill,
        Uid,
        Output,
        Stderr,
        StderrOnly,
        Verbose,
        Help,
    }

    const SPECS: [OptSpec<T>; 9] = [
        OptSpec::value(T::Group, "group", Some('g'), "PATH", "cgroup path"),
        OptSpec::value(T::Controller, "controller", Some('c'), "NAME", "controller"),
        OptSpec::value(T::Kill, "delay-to-sigkill", Some('k'), "MS", "delay"),
        OptSpec::value(T::Uid, "uid", Some('u'), "USER", "user\nsecond line"),
        OptSpec::flag(T::Output, "capture-output", None, "capture stdout"),
        OptSpec::flag(T::Stderr, "capture-stderr", None, "capture stderr"),
        OptSpec::flag(T::StderrOnly, "capture-stderr-only", None, "only stderr"),
        OptSpec::flag(T::Verbose, "verbose", Some('v'), "chatty").short_hidden(),
        OptSpec::flag(T::Help, "help", Some('h'), "help").hidden(),
    ];

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn ok(list: &[&str]) -> (Vec<(T, Option<String>)>, Vec<String>) {
        let p = parse(&SPECS, &args(list), true).expect("parses");
        (
            p.opts
                .into_iter()
                .map(|m| (m.id, m.value.map(|v| v.into_string().unwrap())))
                .collect(),
            p.operands
                .into_iter()
                .map(|o| o.into_string().unwrap())
                .collect(),
        )
    }

    fn err(list: &[&str]) -> String {
        parse(&SPECS, &args(list), true)
            .expect_err("rejected")
            .to_string()
    }

    fn v(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn long_value_separate_or_after_equals() {
        let (opts, _) = ok(&["--group", "a", "--group=b", "--group=", "--group=x=y"]);
        assert_eq!(
            opts,
            vec![
                (T::Group, v("a")),
                (T::Group, v("b")),
                (T::Group, v("")),
                (T::Group, v("x=y"))
            ]
        );
    }

    #[test]
    fn unique_prefix_abbreviates() {
        let (opts, _) = ok(&["--del", "10", "--u=nobody", "--g", "x"]);
        assert_eq!(
            opts,
            vec![
                (T::Kill, v("10")),
                (T::Uid, v("nobody")),
                (T::Group, v("x"))
            ]
        );
    }

    #[test]
    fn exact_match_beats_longer_names() {
        let (opts, _) = ok(&["--capture-stderr", "--capture-stderr-o"]);
        assert_eq!(opts, vec![(T::Stderr, None), (T::StderrOnly, None)]);
    }

    #[test]
    fn ambiguous_prefix_lists_possibilities() {
        assert_eq!(
            err(&["--capture"]),
            "option '--capture' is ambiguous; possibilities: '--capture-output' \
             '--capture-stderr' '--capture-stderr-only'"
        );
        assert!(err(&["--c"]).contains("'--controller'"));
    }

    #[test]
    fn unknown_long_option_is_unrecognized() {
        assert_eq!(err(&["--bogus"]), "unrecognized option '--bogus'");
        assert_eq!(err(&["--bogus=1"]), "unrecognized option '--bogus=1'");
        assert_eq!(err(&["--=1"]), "unrecognized option '--=1'");
    }

    #[test]
    fn flag_rejects_equals_value_with_full_name() {
        assert_eq!(
            err(&["--capture-o=1"]),
            "option '--capture-output' doesn't allow an argument"
        );
    }

    #[test]
    fn missing_values_are_reported() {
        assert_eq!(err(&["-g"]), "option requires an argument -- 'g'");
        assert_eq!(err(&["--gr"]), "option '--group' requires an argument");
    }

    #[test]
    fn invalid_short_option() {
        assert_eq!(err(&["-l"]), "invalid option -- 'l'");
        assert_eq!(err(&["-vl"]), "invalid option -- 'l'");
        assert_eq!(err(&["-é"]), "invalid option -- 'é'");
    }

    #[test]
    fn short_values_attached_or_next() {
        let (opts, _) = ok(&["-k500", "-g", "/p", "-g/q", "-g", "-x"]);
        assert_eq!(
            opts,
            vec![
                (T::Kill, v("500")),
                (T::Group, v("/p")),
                (T::Group, v("/q")),
                (T::Group, v("-x"))
            ]
        );
    }

    #[test]
    fn clustered_shorts_end_at_a_value_option() {
        let (opts, ops) = ok(&["-vvk10", "-vg", "x", "prog"]);
        assert_eq!(
            opts,
            vec![
                (T::Verbose, None),
                (T::Verbose, None),
                (T::Kill, v("10")),
                (T::Verbose, None),
                (T::Group, v("x"))
            ]
        );
        assert_eq!(ops, vec!["prog"]);
    }

    #[test]
    fn permutation_collects_operands_anywhere() {
        let (opts, ops) = ok(&["./prog", "-g", "X", "arg", "-c", "cpu", "--", "-n", "--x"]);
        assert_eq!(opts, vec![(T::Group, v("X")), (T::Controller, v("cpu"))]);
        assert_eq!(ops, vec!["./prog", "arg", "-n", "--x"]);
    }

    #[test]
    fn without_permutation_first_operand_ends_options() {
        let p = parse(&SPECS, &args(&["-g", "X", "ls", "-l", "--", "-v"]), false).unwrap();
        assert_eq!(p.opts.len(), 1);
        assert_eq!(p.operands, args(&["ls", "-l", "--", "-v"]));
    }

    #[test]
    fn option_like_child_args_are_taken_when_permuting() {
        assert_eq!(err(&["echo", "-n", "hi"]), "invalid option -- 'n'");
    }

    #[test]
    fn double_dash_ends_options_and_lone_dash_is_operand() {
        let (opts, ops) = ok(&["-", "-v", "--", "--group", "x"]);
        assert_eq!(opts, vec![(T::Verbose, None)]);
        assert_eq!(ops, vec!["-", "--group", "x"]);
        let (_, ops) = ok(&["--", "--"]);
        assert_eq!(ops, vec!["--"]);
    }

    #[test]
    fn non_utf8_values_and_operands_pass_through() {
        let raw = OsString::from_vec(vec![b'a', 0xff, b'b']);
        let mut attached = b"-g".to_vec();
        attached.extend_from_slice(raw.as_bytes());
        let list = vec![
            OsString::from_vec(attached),
            OsString::from("--uid"),
            raw.clone(),
            raw.clone(),
        ];
        let p = parse(&SPECS, &list, true).unwrap();
        assert_eq!(p.opts[0].value.as_ref(), Some(&raw));
        assert_eq!(p.opts[1].value.as_ref(), Some(&raw));
        assert_eq!(p.operands, vec![raw]);
    }

    #[test]
    fn iterator_stops_before_later_errors() {
        let list = args(&["-h", "--bogus"]);
        let mut g = Getopt::new(&SPECS, &list, true);
        assert_eq!(g.next().unwrap().unwrap().id, T::Help);
        let list = args(&["--bogus", "-h"]);
        let mut g = Getopt::new(&SPECS, &list, true);
        assert!(g.next().unwrap().is_err());
        assert!(g.next().is_none(), "iteration ends after an error");
    }

    #[test]
    fn usage_lines_render_from_the_table() {
        let lines = usage_lines(&SPECS);
        assert!(lines[0].starts_with("  -g, --group <PATH>"));
        assert!(lines[0].ends_with("cgroup path"));
        let uid = lines.iter().position(|l| l.contains("--uid")).unwrap();
        let col = lines[uid].find("user").unwrap();
        assert_eq!(lines[uid + 1].find("second line"), Some(col));
        assert!(lines.iter().any(|l| l.starts_with("      --verbose")));
        assert!(!lines.iter().any(|l| l.contains("--help")));
    }

    fn arg_strategy() -> impl Strategy<Value = OsString> {
        prop_oneof![
            prop::sample::select(vec![
                "-",
                "--",
                "-g",
                "-k5",
                "-vv",
                "-vg",
                "--g",
                "--capture",
                "--capture-stderr",
                "--capture-output=1",
                "--group=",
                "--=",
                "---",
                "prog",
                "-é",
                "--uid",
            ])
            .prop_map(OsString::from),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(OsString::from_vec),
            "-{1,3}[a-z=-]{0,6}".prop_map(OsString::from),
        ]
    }

    proptest! {
        #[test]
        fn random_command_lines_never_panic(
            list in prop::collection::vec(arg_strategy(), 0..8),
            permute in any::<bool>(),
        ) {
            if let Ok(p) = parse(&SPECS, &list, permute) {
                // Nothing is invented: every operand is one of the arguments.
                for op in &p.operands {
                    prop_assert!(list.contains(op));
                }
            }
        }
    }
}
