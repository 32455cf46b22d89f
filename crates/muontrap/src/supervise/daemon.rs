//! [`Daemon`]: a long-running contained command with restart policy, output logging, a
//! readiness gate and statistics — MuonTrap's `MuonTrap.Daemon`, minus its known bugs.
//!
//! A `Daemon` is a recipe (like [`Command`]): it can be launched again and again, which is
//! what a supervisor does. [`Daemon::start`] runs the readiness check, spawns the command and
//! returns a [`RunningDaemon`]. Output is read by one small tokio task per pipe through
//! [`AsyncPipe`]: nothing runs while the command is quiet, and because each line is handled
//! before more is read, a slow handler slows the command (pipe backpressure) instead of
//! growing a buffer. Lines longer than [`Daemon::max_line`] are delivered in pieces, and the
//! last partial line is delivered when the pipe closes, before [`RunningDaemon::wait`]
//! returns.
//!
//! Differences from MuonTrap (Elixir), all deliberate:
//! - long lines are split, never truncated; a last line without `\n` is logged, not dropped;
//! - the shutdown timeout is enforced by the keeper on the *whole tree*, and stopping waits
//!   until the tree is gone (MuonTrap's supervisor does not wait for the OS process);
//! - `os_pid` is the command's pid, not a helper's.

use std::fmt;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::{BoxError, Error, Result};
use super::lines::LineSplitter;
use super::restart::{ExitKind, Reason, RestartPolicy};
use crate::{AsyncPipe, Child, Command, Stdio, Stream};

/// Default bound of one delivered line (longer lines come in pieces of this size).
pub const DEFAULT_MAX_LINE: usize = 4096;

/// The level of the `tracing` events output lines become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogLevel {
    /// `ERROR`.
    Error,
    /// `WARN`.
    Warn,
    /// `INFO`.
    Info,
    /// `DEBUG`.
    Debug,
    /// `TRACE`.
    Trace,
}

/// One line of a daemon's output, as handed to a custom line handler.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The daemon's name.
    pub daemon: &'a str,
    /// The pipe it came from (with `stderr_to_stdout`, stderr lines arrive as stdout).
    pub stream: Stream,
    /// The bytes, without the `\n`; at most [`Daemon::max_line`] of them.
    pub bytes: &'a [u8],
}

type MakeCommand = Arc<dyn Fn() -> Command + Send + Sync>;
type LineHandler = Arc<dyn Fn(Line<'_>) + Send + Sync>;
type Transform = Arc<dyn Fn(&[u8]) -> String + Send + Sync>;
type ReasonFn = Arc<dyn Fn(ExitStatus) -> Reason + Send + Sync>;
type ReadyFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type WaitFor = Arc<dyn Fn() -> ReadyFuture + Send + Sync>;

/// A long-running contained command, restartable by a supervisor.
///
/// ```no_run
/// # async fn demo() -> Result<(), muontrap::supervise::Error> {
/// use std::time::Duration;
/// use muontrap::Command;
/// use muontrap::supervise::{Daemon, LogLevel};
///
/// let mut web = Daemon::new("web", || {
///     let mut c = Command::new("python3");
///     c.args(["-m", "http.server", "8080"]).env("PYTHONUNBUFFERED", "1");
///     c
/// });
/// web.log_output(LogLevel::Info).stderr_to_stdout(true).shutdown_timeout(Duration::from_secs(2));
/// let mut running = web.start().await?;
/// println!("pid {}", running.os_pid());
/// running.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Daemon {
    name: String,
    make: MakeCommand,
    restart: RestartPolicy,
    log_level: Option<LogLevel>,
    log_prefix: Option<String>,
    log_transform: Option<Transform>,
    line_handler: Option<LineHandler>,
    stderr_to_stdout: bool,
    capture_stderr_only: bool,
    wait_for: Option<WaitFor>,
    wait_for_timeout: Option<Duration>,
    reason: Option<ReasonFn>,
    shutdown: Option<Duration>,
    max_line: usize,
}

impl fmt::Debug for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("log_output", &self.log_level)
            .field("log_prefix", &self.log_prefix)
            .field("line_handler", &self.line_handler.is_some())
            .field("stderr_to_stdout", &self.stderr_to_stdout)
            .field("capture_stderr_only", &self.capture_stderr_only)
            .field("wait_for", &self.wait_for.is_some())
            .field("shutdown", &self.shutdown)
            .field("max_line", &self.max_line)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// A daemon named `name` whose every launch runs the [`Command`] that `make` builds.
    /// Everything a `Command` can do (environment, directory, user, …) is set there.
    pub fn new(
        name: impl Into<String>,
        make: impl Fn() -> Command + Send + Sync + 'static,
    ) -> Daemon {
        Daemon {
            name: name.into(),
            make: Arc::new(make),
            restart: RestartPolicy::default(),
            log_level: None,
            log_prefix: None,
            log_transform: None,
            line_handler: None,
            stderr_to_stdout: false,
            capture_stderr_only: false,
            wait_for: None,
            wait_for_timeout: None,
            reason: None,
            shutdown: None,
            max_line: DEFAULT_MAX_LINE,
        }
    }

    /// A daemon running `program` with `args` and nothing else set.
    pub fn program<I, S>(
        name: impl Into<String>,
        program: impl AsRef<std::ffi::OsStr>,
        args: I,
    ) -> Daemon
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let program = program.as_ref().to_owned();
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        Daemon::new(name, move || {
            let mut c = Command::new(&program);
            c.args(&args);
            c
        })
    }

    /// When a supervisor restarts this daemon (default [`RestartPolicy::Permanent`]).
    pub fn restart(&mut self, policy: RestartPolicy) -> &mut Self {
        self.restart = policy;
        self
    }

    /// Logs each output line as a `tracing` event at `level`, with the field
    /// `daemon = <name>` and the message `<prefix><transformed line>`. Captures stdout.
    pub fn log_output(&mut self, level: LogLevel) -> &mut Self {
        self.log_level = Some(level);
        self
    }

    /// The prefix of logged lines (default: the program as given, then `": "`).
    pub fn log_prefix(&mut self, prefix: impl Into<String>) -> &mut Self {
        self.log_prefix = Some(prefix.into());
        self
    }

    /// Turns a line's bytes into the logged text (default: invalid UTF-8 replaced by U+FFFD).
    pub fn log_transform(
        &mut self,
        f: impl Fn(&[u8]) -> String + Send + Sync + 'static,
    ) -> &mut Self {
        self.log_transform = Some(Arc::new(f));
        self
    }

    /// Hands each output line to `f` instead of logging it. Captures stdout. `f` runs on a
    /// tokio worker; a slow `f` slows the command (backpressure), it never loses lines.
    pub fn on_line(&mut self, f: impl Fn(Line<'_>) + Send + Sync + 'static) -> &mut Self {
        self.line_handler = Some(Arc::new(f));
        self
    }

    /// Sends stderr into the same pipe as stdout, so it is logged too, in order.
    pub fn stderr_to_stdout(&mut self, on: bool) -> &mut Self {
        self.stderr_to_stdout = on;
        self
    }

    /// Captures (logs) stderr instead of stdout, and discards stdout.
    pub fn capture_stderr_only(&mut self, on: bool) -> &mut Self {
        self.capture_stderr_only = on;
        self
    }

    /// A readiness gate run before each launch (wait for a port, a file, another service).
    /// An error counts as a failed start; the supervisor's restart logic applies.
    pub fn wait_for<F, Fut, E>(&mut self, f: F) -> &mut Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.wait_for = Some(Arc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map_err(Into::into) })
        }));
        self
    }

    /// Fails the start if the readiness gate has not passed after `timeout` (default: none).
    pub fn wait_for_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.wait_for_timeout = Some(timeout);
        self
    }

    /// Decides whether an exit is normal or a failure (default: [`Reason::default_for`]:
    /// only exit code 0 is normal). Matters for [`RestartPolicy::Transient`].
    pub fn exit_status_to_reason(
        &mut self,
        f: impl Fn(ExitStatus) -> Reason + Send + Sync + 'static,
    ) -> &mut Self {
        self.reason = Some(Arc::new(f));
        self
    }

    /// How long the tree gets between SIGTERM and SIGKILL when stopped (default: the
    /// command's `delay_to_sigkill`, 500 ms unless the recipe set it).
    pub fn shutdown_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.shutdown = Some(timeout);
        self
    }

    /// The longest line delivered whole (default 4096 bytes); longer ones come in pieces.
    pub fn max_line(&mut self, bytes: usize) -> &mut Self {
        self.max_line = bytes.max(1);
        self
    }

    /// The daemon's name.
    pub fn get_name(&self) -> &str {
        &self.name
    }
    /// The restart policy.
    pub fn get_restart(&self) -> RestartPolicy {
        self.restart
    }
    /// The log level, if output is logged.
    pub fn get_log_output(&self) -> Option<LogLevel> {
        self.log_level
    }
    /// The explicit log prefix, if set.
    pub fn get_log_prefix(&self) -> Option<&str> {
        self.log_prefix.as_deref()
    }
    /// Whether a custom line handler is set.
    pub fn has_line_handler(&self) -> bool {
        self.line_handler.is_some()
    }
    /// Whether a readiness gate is set.
    pub fn has_wait_for(&self) -> bool {
        self.wait_for.is_some()
    }
    /// The readiness timeout, if set.
    pub fn get_wait_for_timeout(&self) -> Option<Duration> {
        self.wait_for_timeout
    }
    /// Whether stderr goes to stdout.
    pub fn get_stderr_to_stdout(&self) -> bool {
        self.stderr_to_stdout
    }
    /// Whether only stderr is captured.
    pub fn get_capture_stderr_only(&self) -> bool {
        self.capture_stderr_only
    }
    /// The explicit shutdown timeout, if set.
    pub fn get_shutdown_timeout(&self) -> Option<Duration> {
        self.shutdown
    }
    /// The line bound.
    pub fn get_max_line(&self) -> usize {
        self.max_line
    }
    /// The command a launch would run now (a fresh one from the recipe, with the daemon's
    /// options applied).
    pub fn command(&self) -> Command {
        let mut cmd = (self.make)();
        if let Some(t) = self.shutdown {
            cmd.delay_to_sigkill(t);
        }
        if self.stderr_to_stdout {
            cmd.stderr_to_stdout(true);
        }
        if self.capture_stderr_only {
            cmd.capture_stderr_only(true);
        }
        if self.captures() {
            cmd.stdout(Stdio::piped());
        }
        cmd
    }

    /// How this daemon's exit is classified for its restart policy.
    pub fn reason_for(&self, status: ExitStatus) -> Reason {
        match &self.reason {
            Some(f) => f(status),
            None => Reason::default_for(ExitKind::of_status(status)),
        }
    }

    fn captures(&self) -> bool {
        self.line_handler.is_some() || self.log_level.is_some()
    }

    /// Runs the readiness gate, spawns the command and starts reading its output.
    /// Must be called inside a tokio runtime.
    pub async fn start(&self) -> Result<RunningDaemon> {
        self.start_counting(Arc::new(AtomicU64::new(0))).await
    }

    /// [`Daemon::start`] adding output bytes to `bytes` (a supervisor keeps one counter per
    /// child across restarts).
    pub(crate) async fn start_counting(&self, bytes: Arc<AtomicU64>) -> Result<RunningDaemon> {
        self.ready().await?;
        let mut cmd = self.command();
        let mut child = cmd.spawn().map_err(|source| Error::Start {
            daemon: self.name.clone(),
            source,
        })?;
        let sink = self.sink(&cmd);
        let mut pumps = Vec::new();
        let pipes: [(Stream, Option<OwnedFd>); 2] = [
            (Stream::Stdout, child.stdout.take().map(OwnedFd::from)),
            (Stream::Stderr, child.stderr.take().map(OwnedFd::from)),
        ];
        for (stream, fd) in pipes {
            let Some(fd) = fd else { continue };
            let pipe = AsyncPipe::new(fd).map_err(|e| Error::Start {
                daemon: self.name.clone(),
                source: crate::Error::Io {
                    doing: "registering an output pipe",
                    source: e,
                },
            })?;
            let pump = Pump {
                name: self.name.clone(),
                stream,
                sink: sink.clone(),
                bytes: bytes.clone(),
                max_line: self.max_line,
            };
            pumps.push(tokio::spawn(pump.run(pipe)));
        }
        Ok(RunningDaemon {
            name: self.name.clone(),
            pid: child.id(),
            child,
            pumps,
            bytes,
            started: Instant::now(),
            ended: None,
        })
    }

    async fn ready(&self) -> Result<()> {
        let Some(gate) = &self.wait_for else {
            return Ok(());
        };
        let check = gate();
        let outcome = match self.wait_for_timeout {
            Some(t) => {
                tokio::time::timeout(t, check)
                    .await
                    .map_err(|_| Error::ReadinessTimeout {
                        daemon: self.name.clone(),
                        timeout: t,
                    })?
            }
            None => check.await,
        };
        outcome.map_err(|source| Error::NotReady {
            daemon: self.name.clone(),
            source,
        })
    }

    /// Where lines go: the handler, a `tracing` event, or nowhere (a pipe the recipe set up
    /// itself is still drained, so the command never blocks on it).
    fn sink(&self, cmd: &Command) -> LineHandler {
        if let Some(h) = &self.line_handler {
            return h.clone();
        }
        let Some(level) = self.log_level else {
            return Arc::new(|_| {});
        };
        let prefix = self
            .log_prefix
            .clone()
            .unwrap_or_else(|| format!("{}: ", cmd.get_program().to_string_lossy()));
        let transform = self.log_transform.clone();
        Arc::new(move |line: Line<'_>| {
            let text = match &transform {
                Some(t) => t(line.bytes),
                None => String::from_utf8_lossy(line.bytes).into_owned(),
            };
            log_line(level, line.daemon, &prefix, &text);
        })
    }
}

fn log_line(level: LogLevel, daemon: &str, prefix: &str, text: &str) {
    match level {
        LogLevel::Error => tracing::error!(daemon, "{prefix}{text}"),
        LogLevel::Warn => tracing::warn!(daemon, "{prefix}{text}"),
        LogLevel::Info => tracing::info!(daemon, "{prefix}{text}"),
        LogLevel::Debug => tracing::debug!(daemon, "{prefix}{text}"),
        LogLevel::Trace => tracing::trace!(daemon, "{prefix}{text}"),
    }
}

/// Reads one pipe until end-of-file, splitting it into lines for the sink.
struct Pump {
    name: String,
    stream: Stream,
    sink: LineHandler,
    bytes: Arc<AtomicU64>,
    max_line: usize,
}

impl Pump {
    async fn run(self, mut pipe: AsyncPipe) {
        let mut split = LineSplitter::new(self.max_line);
        let mut buf = vec![0u8; 16 * 1024];
        let mut deliver = |bytes: &[u8]| {
            (self.sink)(Line {
                daemon: &self.name,
                stream: self.stream,
                bytes,
            })
        };
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    split.push(&buf[..n], &mut deliver);
                }
                Err(e) => {
                    tracing::warn!(daemon = %self.name, "reading output failed: {e}");
                    break;
                }
            }
        }
        split.finish(&mut deliver);
    }
}

/// Statistics of a daemon.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct DaemonStatistics {
    /// The pid of the running command, if it runs.
    pub os_pid: Option<u32>,
    /// Bytes of output read (across restarts, under a supervisor).
    pub output_bytes: u64,
    /// Restarts by the supervisor.
    pub restarts: u32,
    /// How long the current launch has been running.
    pub uptime: Option<Duration>,
    /// How the previous launch ended.
    pub last_exit: Option<ExitStatus>,
    /// What the running command's cgroup has used, if it runs in one.
    pub cgroup: Option<crate::cgroup::Statistics>,
}

/// A launched [`Daemon`]. Dropping it stops the whole tree (without waiting).
#[derive(Debug)]
pub struct RunningDaemon {
    name: String,
    pid: u32,
    child: Child,
    pumps: Vec<tokio::task::JoinHandle<()>>,
    bytes: Arc<AtomicU64>,
    started: Instant,
    ended: Option<ExitStatus>,
}

impl RunningDaemon {
    /// The daemon's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS pid of the command.
    pub fn os_pid(&self) -> u32 {
        self.pid
    }

    /// When this launch was spawned.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// Output bytes, uptime and, once it ended, the exit status of this launch.
    pub fn statistics(&self) -> DaemonStatistics {
        DaemonStatistics {
            os_pid: self.ended.is_none().then_some(self.pid),
            output_bytes: self.bytes.load(Ordering::Relaxed),
            restarts: 0,
            uptime: self.ended.is_none().then(|| self.started.elapsed()),
            last_exit: self.ended,
            cgroup: self
                .ended
                .is_none()
                .then(|| self.cgroup())
                .flatten()
                .and_then(|c| c.statistics().ok()),
        }
    }

    /// The command's cgroup (statistics, get/set of settings, config), if the recipe gave
    /// it one with [`Command::cgroup_base`] or [`Command::cgroup_path`].
    pub fn cgroup(&self) -> Option<&crate::cgroup::CgroupHandle> {
        self.child.cgroup()
    }

    /// Sends `signal` to the command's main process.
    pub fn signal(&mut self, signal: i32) -> Result<()> {
        let name = self.name.clone();
        self.child.signal(signal).map_err(|source| Error::Lost {
            daemon: name,
            source,
        })
    }

    /// Waits until the command and its whole tree are gone and its output is delivered (the
    /// partial last line included). A timeout set on the command counts as its exit status.
    /// Cancel-safe; waiting again returns the same status.
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.ended {
            return Ok(s);
        }
        let status = match self.child.wait_async().await {
            Ok(s) => s,
            Err(crate::Error::TimedOut { status, .. }) => status,
            Err(source) => {
                return Err(Error::Lost {
                    daemon: self.name.clone(),
                    source,
                });
            }
        };
        self.drain().await;
        self.ended = Some(status);
        Ok(status)
    }

    /// Stops the tree (SIGTERM, the shutdown timeout, SIGKILL) and waits like
    /// [`RunningDaemon::wait`].
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        if self.ended.is_none() {
            self.child.terminate_async().await.ok();
        }
        self.wait().await
    }

    /// Waits for the output readers: the tree is gone, so every write end is closed and they
    /// reach end-of-file promptly.
    async fn drain(&mut self) {
        // One at a time, removed only once finished, so a cancelled wait loses nothing.
        while let Some(pump) = self.pumps.last_mut() {
            let _ = pump.await;
            self.pumps.pop();
        }
    }
}
