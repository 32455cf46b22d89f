//! `muontrap supervise FILE.toml`: the CLI face of [`muontrap::supervise::Supervisor`], a
//! contained, cgroup-aware alternative to supervisord/foreman.
//!
//! Two stages, like the other modes: the file is parsed and validated into a [`Config`]
//! (serde + toml, unknown keys refused, so a typo is an error naming the key and line rather
//! than a silently ignored setting), then resolved into library daemons. Everything else —
//! restarts, intensity, ordered shutdown, containment — is the library's; this file only
//! prints. Each output line goes to stderr as `<name> | <line>`; lifecycle events as
//! `muontrap | …`.
//!
//! Exit: 0 after SIGTERM/SIGINT (children stopped in reverse order, every tree gone);
//! 1 when the restart intensity was exceeded (everything stopped first); 125 for a bad file
//! or a daemon that cannot start. If muontrap itself is killed, each daemon's keeper sees its
//! lifeline break and stops the tree.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use muontrap::cgroup::{CpuMax, Limits, PidsLimit, SizeLimit};
use muontrap::supervise::{Backoff, ChildExit, Daemon, Event, RestartPolicy, Strategy, Supervisor};
use serde::Deserialize;

use crate::exit_code::ExitCode;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[supervisor]`.
    #[serde(default)]
    pub supervisor: SupervisorConfig,
    /// `[[daemon]]`, in start order.
    #[serde(default, rename = "daemon")]
    pub daemons: Vec<DaemonConfig>,
}

/// `[supervisor]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    /// `one_for_one` (default), `one_for_all`, `rest_for_one`.
    #[serde(default, deserialize_with = "strategy")]
    pub strategy: Strategy,
    /// Restarts allowed within `max_seconds` (default 3).
    #[serde(default = "three")]
    pub max_restarts: u32,
    /// The intensity window in seconds (default 5).
    #[serde(default = "five")]
    pub max_seconds: u64,
    /// Optional restart backoff.
    #[serde(default)]
    pub backoff: Option<BackoffConfig>,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            strategy: Strategy::default(),
            max_restarts: three(),
            max_seconds: five(),
            backoff: None,
        }
    }
}

fn three() -> u32 {
    3
}
fn five() -> u64 {
    5
}

/// `backoff = { initial = "100ms", max = "5s", multiplier = 2.0, jitter = 0.1 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// First delay.
    #[serde(deserialize_with = "duration")]
    pub initial: Duration,
    /// Largest delay.
    #[serde(deserialize_with = "duration")]
    pub max: Duration,
    /// Growth per consecutive crash (default 2).
    #[serde(default)]
    pub multiplier: Option<f64>,
    /// Relative jitter 0–1 (default 0).
    #[serde(default)]
    pub jitter: Option<f64>,
}

/// `[[daemon]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Unique name; prefixes its output lines.
    pub name: String,
    /// The program (looked up in `PATH`).
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// `permanent` (default), `transient`, `temporary`.
    #[serde(default, deserialize_with = "restart")]
    pub restart: RestartPolicy,
    /// Grace period between SIGTERM and SIGKILL (default 500ms).
    #[serde(default, deserialize_with = "opt_duration")]
    pub delay_to_sigkill: Option<Duration>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default)]
    pub cd: Option<PathBuf>,
    /// User (name) to run as.
    #[serde(default)]
    pub uid: Option<String>,
    /// Group (name) to run as.
    #[serde(default)]
    pub gid: Option<String>,
    /// Merge stderr into the logged output (default true; false leaves stderr as is).
    #[serde(default = "yes")]
    pub stderr_to_stdout: bool,
    /// Log only stderr, discard stdout.
    #[serde(default)]
    pub capture_stderr_only: bool,
    /// cgroup base (default `muontrap` when a limit is set).
    #[serde(default)]
    pub cgroup_base: Option<String>,
    /// `memory.max`, e.g. `256M`.
    #[serde(default, deserialize_with = "opt_size")]
    pub memory_max: Option<SizeLimit>,
    /// `memory.high`.
    #[serde(default, deserialize_with = "opt_size")]
    pub memory_high: Option<SizeLimit>,
    /// `memory.low`.
    #[serde(default, deserialize_with = "opt_size")]
    pub memory_low: Option<SizeLimit>,
    /// `memory.swap.max`.
    #[serde(default, deserialize_with = "opt_size")]
    pub memory_swap_max: Option<SizeLimit>,
    /// `pids.max`: a number or `"max"`.
    #[serde(default, deserialize_with = "opt_pids")]
    pub pids_max: Option<PidsLimit>,
    /// CPU bandwidth in CPUs, e.g. `0.5`.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// `cpu.weight`, 1–10000.
    #[serde(default)]
    pub cpu_weight: Option<u16>,
    /// Any other cgroup file: `{ "memory.swappiness" = "0" }`.
    #[serde(default)]
    pub cgroup_set: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::units::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn opt_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SizeLimit>, D::Error> {
    let s = String::deserialize(d)?;
    crate::units::parse_size(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn opt_pids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PidsLimit>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Pids {
        Count(u64),
        Text(String),
    }
    match Pids::deserialize(d)? {
        Pids::Count(n) => Ok(Some(PidsLimit::Count(n))),
        Pids::Text(t) if t == "max" => Ok(Some(PidsLimit::Max)),
        Pids::Text(t) => Err(serde::de::Error::custom(format!(
            "invalid pids_max '{t}': expected a number or \"max\""
        ))),
    }
}

fn strategy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Strategy, D::Error> {
    match String::deserialize(d)?.as_str() {
        "one_for_one" => Ok(Strategy::OneForOne),
        "one_for_all" => Ok(Strategy::OneForAll),
        "rest_for_one" => Ok(Strategy::RestForOne),
        other => Err(serde::de::Error::custom(format!(
            "unknown strategy '{other}': expected one_for_one, one_for_all or rest_for_one"
        ))),
    }
}

fn restart<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RestartPolicy, D::Error> {
    match String::deserialize(d)?.as_str() {
        "permanent" => Ok(RestartPolicy::Permanent),
        "transient" => Ok(RestartPolicy::Transient),
        "temporary" => Ok(RestartPolicy::Temporary),
        other => Err(serde::de::Error::custom(format!(
            "unknown restart '{other}': expected permanent, transient or temporary"
        ))),
    }
}

/// Parses and validates a configuration. The error text names the key and line.
pub fn parse(text: &str) -> Result<Config, String> {
    let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut names = std::collections::HashSet::new();
    for d in &config.daemons {
        if d.name.is_empty() || d.name.contains(char::is_whitespace) {
            return Err(format!(
                "daemon name '{}' must be non-empty without spaces",
                d.name
            ));
        }
        if !names.insert(d.name.as_str()) {
            return Err(format!("two daemons are named '{}'", d.name));
        }
    }
    if config.daemons.is_empty() {
        return Err("no [[daemon]] in the file".into());
    }
    Ok(config)
}

impl DaemonConfig {
    fn limits(&self) -> Limits {
        let mut l = Limits::new();
        if let Some(v) = self.memory_max {
            l.memory_max(v);
        }
        if let Some(v) = self.memory_high {
            l.memory_high(v);
        }
        if let Some(v) = self.memory_low {
            l.memory_low(v);
        }
        if let Some(v) = self.memory_swap_max {
            l.memory_swap_max(v);
        }
        if let Some(v) = self.pids_max {
            l.pids_max(v);
        }
        if let Some(v) = self.cpus {
            l.cpu_max(CpuMax::cpus(v));
        }
        if let Some(v) = self.cpu_weight {
            l.cpu_weight(v);
        }
        for (k, v) in &self.cgroup_set {
            l.set(k, v);
        }
        l
    }

    /// The library daemon: output lines go to stderr as `<name> | <line>`.
    fn daemon(&self) -> Daemon {
        let program = OsString::from(&self.command);
        let args = self.args.clone();
        let env = self.env.clone();
        let cd = self.cd.clone();
        let (uid, gid) = (self.uid.clone(), self.gid.clone());
        let limits = self.limits();
        let base = self
            .cgroup_base
            .clone()
            .or_else(|| (!limits.is_empty()).then(|| "muontrap".to_owned()));
        let delay = self.delay_to_sigkill;
        let mut d = Daemon::new(&self.name, move || {
            let mut c = muontrap::Command::new(&program);
            c.args(&args).envs(&env).stdin(muontrap::Stdio::null());
            if let Some(dir) = &cd {
                c.current_dir(dir);
            }
            if let Some(u) = &uid {
                c.uid(u.as_str());
            }
            if let Some(g) = &gid {
                c.gid(g.as_str());
            }
            if let Some(t) = delay {
                c.delay_to_sigkill(t);
            }
            if let Some(b) = &base {
                c.cgroup_base(b.clone()).cgroup_limits(limits.clone());
            }
            c
        });
        d.restart(self.restart)
            .stderr_to_stdout(self.stderr_to_stdout && !self.capture_stderr_only)
            .capture_stderr_only(self.capture_stderr_only)
            .on_line(|line| {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(line.daemon.as_bytes());
                let _ = err.write_all(b" | ");
                let _ = err.write_all(line.bytes);
                let _ = err.write_all(b"\n");
            });
        d
    }
}

impl Config {
    /// The library supervisor.
    pub fn supervisor(&self) -> Supervisor {
        let s = &self.supervisor;
        let mut sup = Supervisor::new();
        sup.strategy(s.strategy)
            .intensity(s.max_restarts, Duration::from_secs(s.max_seconds));
        if let Some(b) = &s.backoff {
            let mut backoff = Backoff::new(b.initial, b.max);
            if let Some(m) = b.multiplier {
                backoff = backoff.multiplier(m);
            }
            if let Some(j) = b.jitter {
                backoff = backoff.jitter(j);
            }
            sup.backoff(backoff);
        }
        for d in &self.daemons {
            sup.child(&d.name, d.daemon());
        }
        sup
    }
}

fn say(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "muontrap | {text}");
}

fn describe(exit: &ChildExit) -> String {
    use std::os::unix::process::ExitStatusExt;
    match exit {
        ChildExit::Status(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => format!("ended ({s})"),
        },
        ChildExit::StartFailed => "failed to start".into(),
        ChildExit::Lost => "was lost (its keeper died)".into(),
        ChildExit::SupervisorFailed => "gave up".into(),
        ChildExit::SupervisorStopped => "stopped".into(),
        ChildExit::NotStarted => "was stopped before it started".into(),
    }
}

fn log_event(e: &Event) {
    match e {
        Event::Started { id, pid: Some(pid) } => say(format_args!("{id} started (pid {pid})")),
        Event::Started { id, pid: None } => say(format_args!("{id} started")),
        Event::StartFailed { id, error } => say(format_args!("{id} failed to start: {error}")),
        Event::Exited { id, exit, .. } => say(format_args!("{id} {}", describe(exit))),
        Event::Stopped { id, exit } => say(format_args!("{id} stopped ({})", describe(exit))),
        Event::Restarting { id, attempt, delay } if delay.is_zero() => {
            say(format_args!("{id} restarting (attempt {attempt})"))
        }
        Event::Restarting { id, attempt, delay } => say(format_args!(
            "{id} restarting in {} (attempt {attempt})",
            humantime::format_duration(*delay)
        )),
        Event::GaveUp {
            id,
            restarts,
            period,
        } => say(format_args!(
            "giving up: {id} needed {restarts} restarts within {}",
            humantime::format_duration(*period)
        )),
        Event::Lagged { missed } => say(format_args!("({missed} events not shown)")),
        _ => {}
    }
}

/// Help for `muontrap supervise`.
const USAGE: &str = "\
Usage: muontrap supervise FILE.toml

Runs the [[daemon]]s of FILE.toml under one supervisor with Erlang/OTP semantics, each
contained (a daemon and all its descendants die with muontrap, even if it is SIGKILLed).

  [supervisor]  strategy = one_for_one | one_for_all | rest_for_one, max_restarts = 3,
                max_seconds = 5, backoff = { initial = \"100ms\", max = \"5s\" }
  [[daemon]]    name, command, args, restart = permanent | transient | temporary,
                delay_to_sigkill, env, cd, and cgroup limits such as memory_max

Output lines go to stderr as `<name> | <line>`. SIGTERM/SIGINT: ordered shutdown, exit 0.
Too many restarts: everything stops, exit 1. A bad file: exit 125 naming the key and line.
";

/// `muontrap supervise FILE.toml`.
pub fn main(args: &[OsString]) -> ExitCode {
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::Ok;
    }
    let [path] = args else {
        eprint!("{USAGE}");
        return ExitCode::RunFailure;
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "muontrap supervise: cannot read {}: {e}",
                path.to_string_lossy()
            );
            return ExitCode::RunFailure;
        }
    };
    let config = match parse(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("muontrap supervise: {}: {e}", path.to_string_lossy());
            return ExitCode::RunFailure;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("muontrap supervise: cannot start the event loop: {e}");
            return ExitCode::RunFailure;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    // Signal handlers first: a SIGTERM during the start must still stop what started.
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("muontrap supervise: cannot handle signals: {e}");
            return ExitCode::RunFailure;
        }
    };
    let sup = config.supervisor();
    let running = tokio::select! {
        r = sup.start() => match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("muontrap supervise: {}", error_chain(&e));
                return ExitCode::RunFailure;
            }
        },
        // Dropping the half-started supervisor stops what it started.
        _ = term.recv() => return ExitCode::Ok,
        _ = int.recv() => return ExitCode::Ok,
    };
    let mut events = running.subscribe();
    let outcome = {
        let logger = async {
            while let Some(e) = events.recv().await {
                log_event(&e);
            }
        };
        tokio::pin!(logger);
        tokio::select! {
            r = running.wait() => r,
            _ = term.recv() => {
                say(format_args!("SIGTERM: stopping"));
                running.shutdown().await
            }
            _ = int.recv() => {
                say(format_args!("SIGINT: stopping"));
                running.shutdown().await
            }
            _ = &mut logger => running.wait().await,
        }
    };
    // What happened up to the end (the stops of a shutdown, the give-up).
    while let Some(e) = events.try_recv() {
        log_event(&e);
    }
    match outcome {
        Ok(()) => {
            say(format_args!("all daemons stopped"));
            ExitCode::Ok
        }
        Err(e) => {
            say(format_args!("{}", error_chain(&e)));
            // Not a command's status: the supervisor failed (documented as 1).
            ExitCode::Command(1)
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../examples/supervise.toml");

    #[test]
    fn the_shipped_example_parses() {
        let c = parse(EXAMPLE).expect("example parses");
        assert!(!c.daemons.is_empty());
    }

    #[test]
    fn the_issue_keys_parse() {
        let c = parse(
            r#"
[supervisor]
strategy = "rest_for_one"
max_restarts = 4
max_seconds = 10
backoff = { initial = "100ms", max = "5s" }

[[daemon]]
name = "web"
command = "python3"
args = ["-m", "http.server", "8080"]
restart = "transient"
delay_to_sigkill = "250ms"
memory_max = "256M"
env = { PYTHONUNBUFFERED = "1" }
"#,
        )
        .unwrap();
        assert_eq!(c.supervisor.strategy, Strategy::RestForOne);
        assert_eq!(
            (c.supervisor.max_restarts, c.supervisor.max_seconds),
            (4, 10)
        );
        let b = c.supervisor.backoff.as_ref().unwrap();
        assert_eq!(
            (b.initial, b.max),
            (Duration::from_millis(100), Duration::from_secs(5))
        );
        let d = &c.daemons[0];
        assert_eq!(d.restart, RestartPolicy::Transient);
        assert_eq!(d.delay_to_sigkill, Some(Duration::from_millis(250)));
        assert_eq!(d.memory_max, Some(SizeLimit::Bytes(256 << 20)));
        assert_eq!(d.env["PYTHONUNBUFFERED"], "1");
        assert!(d.stderr_to_stdout);
    }

    #[test]
    fn defaults_are_otps() {
        let c = parse("[[daemon]]\nname = \"a\"\ncommand = \"true\"\n").unwrap();
        assert_eq!(c.supervisor.strategy, Strategy::OneForOne);
        assert_eq!(
            (c.supervisor.max_restarts, c.supervisor.max_seconds),
            (3, 5)
        );
        assert_eq!(c.daemons[0].restart, RestartPolicy::Permanent);
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("must fail")
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let e = err("[[daemon]]\nname = \"a\"\ncommand = \"true\"\nrestrat = \"temporary\"\n");
        assert!(e.contains("line 4") && e.contains("restrat"), "{e}");
    }

    #[test]
    fn bad_values_are_named_with_their_line() {
        let e = err(
            "[supervisor]\nstrategy = \"one_for_some\"\n[[daemon]]\nname = \"a\"\ncommand = \"x\"\n",
        );
        assert!(e.contains("line 2") && e.contains("one_for_some"), "{e}");
        let e = err("[[daemon]]\nname = \"a\"\ncommand = \"x\"\n\ndelay_to_sigkill = \"500\"\n");
        assert!(e.contains("line 5") && e.contains("add a unit"), "{e}");
        let e = err("[[daemon]]\nname = \"a\"\ncommand = \"x\"\nmemory_max = \"1.5G\"\n");
        assert!(e.contains("line 4") && e.contains("fractions"), "{e}");
        let e = err("[[daemon]]\nname = \"a\"\ncommand = \"x\"\nrestart = \"sometimes\"\n");
        assert!(e.contains("line 4") && e.contains("sometimes"), "{e}");
        let e = err("[[daemon]]\nname = \"a\"\n");
        assert!(e.contains("command"), "{e}");
    }

    #[test]
    fn duplicate_names_and_empty_files_are_refused() {
        let two = "[[daemon]]\nname = \"a\"\ncommand = \"x\"\n";
        assert!(err(&format!("{two}{two}")).contains("two daemons are named 'a'"));
        assert!(err("").contains("no [[daemon]]"));
    }
}
