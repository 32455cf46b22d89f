//! `muontrap run [OPTIONS] -- PROGRAM [ARGS]`: the command line of the human-facing mode.
//!
//! Options must come before the program: parsing stops at the first operand (no permutation),
//! so `muontrap run ls -l` passes `-l` to `ls`, and `--` is only needed when the program's name
//! starts with `-`. Long options may still be abbreviated to a unique prefix, as in the port
//! helper, because both use the same [`crate::getopt`] engine.
//!
//! Durations take units (`500ms`, `30s`); a bare number is refused with a hint rather than
//! guessed at. `--uid`, `--gid`, `--groups` and the cgroup limit flags are parsed by the same
//! code as the port helper's ([`Credentials`], [`CgroupLimits`]), so root is refused here too.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::getopt::{Getopt, GetoptError, OptSpec, usage_lines};
use crate::port_args::{
    Accounts, CgroupArgError, CgroupLimits, CgroupOpt, CredentialError, Credentials, cgroup_options,
};
use crate::units::{DurationProblem, UnitError, parse_duration};

/// The default `--delay-to-sigkill` for `run`.
pub const DEFAULT_DELAY_TO_SIGKILL: Duration = Duration::from_millis(500);

/// A valid `muontrap run` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// `--delay-to-sigkill`: grace period between SIGTERM and SIGKILL (default 500ms).
    pub delay_to_sigkill: Duration,
    /// `--timeout`: stop the program after this long.
    pub timeout: Option<Duration>,
    /// `--uid`, `--gid`, `--groups`.
    pub credentials: Credentials,
    /// `--arg0`: the program's `argv[0]`.
    pub arg0: Option<OsString>,
    /// `--env KEY=VALUE`, in command-line order (later entries win when applied).
    pub env: Vec<(OsString, OsString)>,
    /// `--cd`: the program's working directory.
    pub cd: Option<PathBuf>,
    /// `--stats`: print resource usage on stderr at exit.
    pub stats: bool,
    /// `--stats-json`: write resource usage as JSON to this file at exit.
    pub stats_json: Option<PathBuf>,
    /// The cgroup limit flags.
    pub cgroup: CgroupLimits,
    /// The program to run (searched on `PATH` if it has no `/`).
    pub program: OsString,
    /// Its arguments, unchanged.
    pub args: Vec<OsString>,
}

/// What a `muontrap run` command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCommand {
    /// Run a program.
    Run(Box<RunArgs>),
    /// `-h`/`--help`: print [`usage`] on stdout and exit 0.
    Help,
}

/// Why `muontrap run` refuses its command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunArgsError {
    /// Unknown option, missing value, ambiguous prefix, or `=value` on a flag.
    #[error(transparent)]
    Getopt(#[from] GetoptError),
    /// A bad `--uid`, `--gid` or `--groups`.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// A bad cgroup limit.
    #[error(transparent)]
    Cgroup(#[from] CgroupArgError),
    /// A duration without a unit, or malformed.
    #[error("invalid duration '{input}' for --{flag}: {problem}")]
    Duration {
        /// The flag's long name.
        flag: &'static str,
        /// The value as given.
        input: String,
        /// What is wrong with it.
        problem: DurationProblem,
    },
    /// `--env` without `=` or with an empty name.
    #[error("--env expects KEY=VALUE, got '{0}'")]
    Env(String),
    /// No program after the options.
    #[error("missing program: muontrap run [OPTIONS] -- PROGRAM [ARGS]")]
    MissingProgram,
}

impl RunArgsError {
    /// Whether this is a malformed command line (rather than a bad value), after which the
    /// caller may point at `--help`.
    pub fn is_usage_error(&self) -> bool {
        matches!(self, Self::Getopt(_) | Self::MissingProgram)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunOpt {
    DelayToSigkill,
    Timeout,
    Uid,
    Gid,
    Groups,
    Arg0,
    Env,
    Cd,
    Stats,
    StatsJson,
    Cgroup(CgroupOpt),
    Help,
}

fn run_options() -> Vec<OptSpec<RunOpt>> {
    use RunOpt as O;
    let mut specs = vec![
        OptSpec::value(
            O::DelayToSigkill,
            "delay-to-sigkill",
            None,
            "DURATION",
            "wait between SIGTERM and SIGKILL, e.g. 500ms (default 500ms)",
        ),
        OptSpec::value(
            O::Timeout,
            "timeout",
            None,
            "DURATION",
            "stop the program after this long, e.g. 30s or 1h30m",
        ),
        OptSpec::value(O::Uid, "uid", None, "UID|USER", "run as this user"),
        OptSpec::value(
            O::Gid,
            "gid",
            None,
            "GID|GROUP",
            "run with this primary group",
        ),
        OptSpec::value(
            O::Groups,
            "groups",
            None,
            "LIST",
            "comma-separated supplementary gids and/or group names\n\
             (the empty string drops them all)",
        ),
        OptSpec::value(O::Arg0, "arg0", None, "NAME", "argv[0] for the program"),
        OptSpec::value(
            O::Env,
            "env",
            None,
            "KEY=VALUE",
            "set an environment variable (may be given more than once)",
        ),
        OptSpec::value(O::Cd, "cd", None, "DIR", "run the program in DIR"),
        OptSpec::flag(
            O::Stats,
            "stats",
            None,
            "print resource usage on stderr at exit",
        ),
        OptSpec::value(
            O::StatsJson,
            "stats-json",
            None,
            "FILE",
            "write resource usage as JSON to FILE at exit",
        ),
    ];
    specs.extend(cgroup_options(O::Cgroup));
    specs.push(OptSpec::flag(O::Help, "help", Some('h'), "print this help"));
    specs
}

/// The help text for `muontrap run`, generated from the option table.
pub fn usage() -> String {
    let mut text = String::from("Usage: muontrap run [OPTIONS] [--] PROGRAM [ARGS]\n\nOptions:\n");
    for line in usage_lines(&run_options()) {
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(
        "\nOptions stop at PROGRAM: everything after it is passed to it unchanged.\n\
         Durations need a unit: 500ms, 30s, 2m, 1h30m.\n\
         cgroup PATHs (--cgroup-base, --cgroup-path) are relative to the cgroup mount root\n\
         of each hierarchy (v2, v1 or hybrid; not necessarily /sys/fs/cgroup); ./PATH is\n\
         relative to muontrap's own cgroup, e.g. --cgroup-base ./jobs under systemd\n\
         delegation. Limit flags without a placement mean --cgroup-base . (a new cgroup\n\
         below muontrap's own).\n",
    );
    text
}

fn duration(flag: &'static str, value: &OsStr) -> Result<Duration, RunArgsError> {
    let text = value.to_string_lossy();
    parse_duration(&text).map_err(|err| match err {
        UnitError::Duration { input, problem } => RunArgsError::Duration {
            flag,
            input,
            problem,
        },
        other => RunArgsError::Duration {
            flag,
            input: text.into_owned(),
            problem: DurationProblem::Malformed(other.to_string()),
        },
    })
}

fn env_pair(value: &OsStr) -> Result<(OsString, OsString), RunArgsError> {
    let bytes = value.as_bytes();
    match bytes.iter().position(|&b| b == b'=') {
        Some(eq) if eq > 0 => Ok((
            OsStr::from_bytes(&bytes[..eq]).to_os_string(),
            OsStr::from_bytes(&bytes[eq + 1..]).to_os_string(),
        )),
        _ => Err(RunArgsError::Env(value.to_string_lossy().into_owned())),
    }
}

/// Parses the arguments after `muontrap run`. Options act in order; `-h` stops at once.
pub fn parse_run_args(
    args: &[OsString],
    accounts: &dyn Accounts,
) -> Result<RunCommand, RunArgsError> {
    let specs = run_options();
    let mut getopt = Getopt::new(&specs, args, false);
    let mut delay_to_sigkill = DEFAULT_DELAY_TO_SIGKILL;
    let mut timeout = None;
    let mut credentials = Credentials::default();
    let mut arg0 = None;
    let mut env = Vec::new();
    let mut cd = None;
    let mut stats = false;
    let mut stats_json = None;
    let mut cgroup = CgroupLimits::default();

    for matched in getopt.by_ref() {
        let matched = matched?;
        let value = matched.value.unwrap_or_default();
        match matched.id {
            RunOpt::Help => return Ok(RunCommand::Help),
            RunOpt::DelayToSigkill => delay_to_sigkill = duration("delay-to-sigkill", &value)?,
            RunOpt::Timeout => timeout = Some(duration("timeout", &value)?),
            RunOpt::Uid => credentials.set_uid(&value, accounts)?,
            RunOpt::Gid => credentials.set_gid(&value, accounts)?,
            RunOpt::Groups => credentials.set_groups(&value, accounts)?,
            RunOpt::Arg0 => arg0 = Some(value),
            RunOpt::Env => env.push(env_pair(&value)?),
            RunOpt::Cd => cd = Some(PathBuf::from(value)),
            RunOpt::Stats => stats = true,
            RunOpt::StatsJson => stats_json = Some(PathBuf::from(value)),
            RunOpt::Cgroup(opt) => cgroup.set(opt, &value)?,
        }
    }

    let mut operands = getopt.into_operands().into_iter();
    let program = operands.next().ok_or(RunArgsError::MissingProgram)?;
    Ok(RunCommand::Run(Box::new(RunArgs {
        delay_to_sigkill,
        timeout,
        credentials,
        arg0,
        env,
        cd,
        stats,
        stats_json,
        cgroup,
        program,
        args: operands.collect(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port_args::tests::FakeAccounts;
    use crate::units::SizeLimit;
    use proptest::prelude::*;
    use std::os::unix::ffi::OsStringExt;

    fn os(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn parse(list: &[&str]) -> Result<RunCommand, RunArgsError> {
        parse_run_args(&os(list), &FakeAccounts)
    }

    fn run(list: &[&str]) -> RunArgs {
        match parse(list) {
            Ok(RunCommand::Run(args)) => *args,
            other => panic!("{list:?} gave {other:?}"),
        }
    }

    fn fails(list: &[&str]) -> String {
        parse(list).expect_err("refused").to_string()
    }

    #[test]
    fn options_stop_at_the_program() {
        let a = run(&["ls", "-l", "--timeout", "5s"]);
        assert_eq!(a.program, "ls");
        assert_eq!(a.args, os(&["-l", "--timeout", "5s"]));
        assert_eq!(a.timeout, None);
        let a = run(&["--timeout", "5s", "--", "-weird", "--", "x"]);
        assert_eq!(a.program, "-weird");
        assert_eq!(a.args, os(&["--", "x"]));
        assert_eq!(a.timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn defaults() {
        let a = run(&["true"]);
        assert_eq!(a.delay_to_sigkill, Duration::from_millis(500));
        assert_eq!(a.timeout, None);
        assert_eq!(a.credentials, Credentials::default());
        assert!(a.env.is_empty() && !a.stats && a.stats_json.is_none() && a.cd.is_none());
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(
            run(&["--delay-to-sigkill", "2s", "p"]).delay_to_sigkill,
            Duration::from_secs(2)
        );
        assert_eq!(
            run(&["--timeout=1h30m", "p"]).timeout,
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            fails(&["--timeout", "5", "p"]),
            "invalid duration '5' for --timeout: add a unit, e.g. 500ms or 30s"
        );
        assert_eq!(
            fails(&["--delay-to-sigkill", "500", "p"]),
            "invalid duration '500' for --delay-to-sigkill: add a unit, e.g. 500ms or 30s"
        );
        assert!(
            fails(&["--timeout", "soon", "p"])
                .starts_with("invalid duration 'soon' for --timeout: ")
        );
    }

    #[test]
    fn env_pairs_split_at_first_equals() {
        let a = run(&["--env", "A=1", "--env=B=x=y", "--env", "C=", "p"]);
        assert_eq!(
            a.env,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("C".into(), "".into())
            ]
        );
        assert_eq!(
            fails(&["--env", "FOO", "p"]),
            "--env expects KEY=VALUE, got 'FOO'"
        );
        assert_eq!(
            fails(&["--env", "=x", "p"]),
            "--env expects KEY=VALUE, got '=x'"
        );
    }

    #[test]
    fn credentials_reuse_the_port_rules() {
        let a = run(&[
            "--uid", "nobody", "--gid", "daemon", "--groups", "tty,,5", "p",
        ]);
        assert_eq!(a.credentials.uid.unwrap().uid, 65534);
        assert_eq!(a.credentials.gid.unwrap().gid, 1);
        assert_eq!(a.credentials.groups.unwrap().len(), 2);
        for root in ["root", "0", "4294967296"] {
            assert_eq!(
                fails(&["--uid", root, "p"]),
                "Setting the user to root or uid 0 is not allowed"
            );
        }
        assert_eq!(
            fails(&["--gid", "root", "p"]),
            "Setting the group to root or gid 0 is not allowed"
        );
    }

    #[test]
    fn paths_stats_and_arg0() {
        let a = run(&[
            "--cd",
            "/tmp",
            "--stats",
            "--stats-json",
            "out.json",
            "--arg0",
            "x",
            "p",
        ]);
        assert_eq!(a.cd, Some(PathBuf::from("/tmp")));
        assert!(a.stats);
        assert_eq!(a.stats_json, Some(PathBuf::from("out.json")));
        assert_eq!(a.arg0, Some("x".into()));
    }

    #[test]
    fn exact_stats_beats_stats_json_and_prefixes_work() {
        let a = run(&["--stats", "--stats-j", "f", "--time", "1s", "p"]);
        assert!(a.stats);
        assert_eq!(a.stats_json, Some(PathBuf::from("f")));
        assert_eq!(a.timeout, Some(Duration::from_secs(1)));
    }

    #[test]
    fn cgroup_limits_are_shared_with_port_mode() {
        let a = run(&["--memory-max", "1G", "--pids-max", "64", "p"]);
        assert_eq!(a.cgroup.memory_max, Some(SizeLimit::Bytes(1 << 30)));
        assert!(fails(&["--cpu-weight", "x", "p"]).contains("--cpu-weight"));
    }

    #[test]
    fn help_and_missing_program() {
        assert_eq!(parse(&["-h"]), Ok(RunCommand::Help));
        assert_eq!(
            parse(&["--timeout", "5s", "--help", "--bogus"]),
            Ok(RunCommand::Help)
        );
        assert_eq!(
            parse(&["p", "--help"]).map(|c| c == RunCommand::Help),
            Ok(false)
        );
        for list in [&[][..], &["--"][..], &["--stats"][..]] {
            let err = parse(list).unwrap_err();
            assert_eq!(
                err.to_string(),
                "missing program: muontrap run [OPTIONS] -- PROGRAM [ARGS]"
            );
            assert!(err.is_usage_error());
        }
        assert!(parse(&["--bogus", "p"]).unwrap_err().is_usage_error());
    }

    #[test]
    fn non_utf8_passes_through() {
        let raw = OsString::from_vec(vec![0xfe, b'=', 0xff]);
        let list = vec![
            OsString::from("--env"),
            raw.clone(),
            raw.clone(),
            raw.clone(),
        ];
        match parse_run_args(&list, &FakeAccounts).unwrap() {
            RunCommand::Run(a) => {
                assert_eq!(a.env[0].0.as_bytes(), [0xfe]);
                assert_eq!(a.program, raw);
                assert_eq!(a.args, vec![raw]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_is_generated_from_the_table() {
        let text = usage();
        for needle in [
            "--delay-to-sigkill <DURATION>",
            "--env <KEY=VALUE>",
            "--stats-json",
            "--cpus",
            "./PATH is\nrelative to muontrap's own cgroup",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
    }

    fn arg_strategy() -> impl Strategy<Value = OsString> {
        prop_oneof![
            prop::sample::select(vec![
                "--",
                "--timeout",
                "5",
                "5s",
                "--env",
                "A=b",
                "A",
                "--uid",
                "root",
                "nobody",
                "--stats",
                "--stats-json",
                "-h",
                "--cpus",
                "p",
                "--memory-max",
                "-x",
            ])
            .prop_map(OsString::from),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(OsString::from_vec),
        ]
    }

    proptest! {
        #[test]
        fn random_command_lines_never_panic(list in prop::collection::vec(arg_strategy(), 0..10)) {
            let _ = parse_run_args(&list, &FakeAccounts);
        }
    }
}
