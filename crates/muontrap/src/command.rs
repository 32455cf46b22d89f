//! [`Command`]: a builder shaped like `std::process::Command`, plus containment options.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroup::{CgroupPlan, Layout, Limits, Placement};
use crate::child::{Child, ChildStderr, ChildStdin, ChildStdout};
use crate::engine::client::{self, LaunchResult};
use crate::engine::spec::{LaunchSpec, StdioSpec};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::sys::accounts;
use crate::sys::exec::ExecStage;

/// The default grace period between SIGTERM and SIGKILL.
pub const DEFAULT_DELAY_TO_SIGKILL: Duration = Duration::from_millis(500);

/// A user, by name or id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// Numeric uid.
    Id(u32),
    /// Login name, looked up at spawn time.
    Name(String),
}

/// A group, by name or id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    /// Numeric gid.
    Id(u32),
    /// Group name, looked up at spawn time.
    Name(String),
}

impl From<u32> for User {
    fn from(v: u32) -> Self {
        User::Id(v)
    }
}
impl From<&str> for User {
    fn from(v: &str) -> Self {
        User::Name(v.to_string())
    }
}
impl From<String> for User {
    fn from(v: String) -> Self {
        User::Name(v)
    }
}
impl From<u32> for Group {
    fn from(v: u32) -> Self {
        Group::Id(v)
    }
}
impl From<&str> for Group {
    fn from(v: &str) -> Self {
        Group::Name(v.to_string())
    }
}
impl From<String> for Group {
    fn from(v: String) -> Self {
        Group::Name(v)
    }
}

/// Where a standard stream of the command goes, like `std::process::Stdio`.
#[derive(Debug)]
pub struct Stdio(StdioKind);

#[derive(Debug)]
enum StdioKind {
    Inherit,
    Null,
    Piped,
    Fd(OwnedFd),
}

impl StdioKind {
    fn duplicate(&self) -> Result<StdioKind> {
        Ok(match self {
            StdioKind::Inherit => StdioKind::Inherit,
            StdioKind::Null => StdioKind::Null,
            StdioKind::Piped => StdioKind::Piped,
            StdioKind::Fd(fd) => StdioKind::Fd(
                fd.try_clone()
                    .map_err(Error::io("duplicating a stdio descriptor"))?,
            ),
        })
    }
}

impl Stdio {
    /// The owner's own stream.
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Inherit)
    }
    /// `/dev/null`.
    pub fn null() -> Stdio {
        Stdio(StdioKind::Null)
    }
    /// A new pipe; the owner's end appears on [`Child`].
    pub fn piped() -> Stdio {
        Stdio(StdioKind::Piped)
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Self {
        Stdio(StdioKind::Fd(fd))
    }
}

impl From<std::fs::File> for Stdio {
    fn from(f: std::fs::File) -> Self {
        Stdio(StdioKind::Fd(f.into()))
    }
}

/// A command to run contained: it and every process it starts die with their owner.
///
/// ```no_run
/// use std::time::Duration;
/// let mut child = muontrap::Command::new("sh")
///     .args(["-c", "sleep 100 & sleep 100"])
///     .delay_to_sigkill(Duration::from_millis(200))
///     .spawn()?;
/// // Dropping `child` (or the owner dying, even by SIGKILL) stops both sleeps.
/// let status = child.terminate()?;
/// assert!(!status.success());
/// # Ok::<(), muontrap::Error>(())
/// ```
#[derive(Debug)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    arg0: Option<OsString>,
    env_clear: bool,
    env: BTreeMap<OsString, Option<OsString>>,
    cwd: Option<PathBuf>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    delay_to_sigkill: Duration,
    timeout: Option<Duration>,
    uid: Option<User>,
    gid: Option<Group>,
    groups: Option<Vec<Group>>,
    stderr_to_stdout: bool,
    capture_stderr_only: bool,
    cgroup_placement: Option<Placement>,
    cgroup_limits: Limits,
}

impl Command {
    /// A command running `program` (looked up in `PATH` unless it contains a `/`).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            arg0: None,
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            stdin: None,
            stdout: None,
            stderr: None,
            delay_to_sigkill: DEFAULT_DELAY_TO_SIGKILL,
            timeout: None,
            uid: None,
            gid: None,
            groups: None,
            stderr_to_stdout: false,
            capture_stderr_only: false,
            cgroup_placement: None,
            cgroup_limits: Limits::new(),
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets what the program sees as `argv[0]` (the executed path does not change).
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut Self {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// Sets an environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .insert(key.as_ref().to_owned(), Some(val.as_ref().to_owned()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Starts from an empty environment.
    pub fn env_clear(&mut self) -> &mut Self {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Working directory of the command.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The command's stdin (default: inherited; `/dev/null` for [`Command::output`]).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.stdin = Some(cfg.into());
        self
    }

    /// The command's stdout (default: inherited; piped for [`Command::output`]).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.stdout = Some(cfg.into());
        self
    }

    /// The command's stderr (default: inherited; piped for [`Command::output`]).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.stderr = Some(cfg.into());
        self
    }

    /// Grace period between SIGTERM and SIGKILL when the tree is stopped (default 500 ms).
    /// Zero means SIGKILL at once.
    pub fn delay_to_sigkill(&mut self, delay: Duration) -> &mut Self {
        self.delay_to_sigkill = delay;
        self
    }

    /// Stops the tree (gracefully) after this long; waiting then yields
    /// [`Error::TimedOut`] and [`Command::output`] an [`crate::Outcome::TimedOut`].
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs the command as this user. A name also sets the user's primary group and, unless
    /// [`Command::groups`] is given, its supplementary groups (like `initgroups`). Root is
    /// refused.
    pub fn uid(&mut self, user: impl Into<User>) -> &mut Self {
        self.uid = Some(user.into());
        self
    }

    /// Runs the command with this primary group. Root is refused.
    pub fn gid(&mut self, group: impl Into<Group>) -> &mut Self {
        self.gid = Some(group.into());
        self
    }

    /// Sets exactly these supplementary groups (an empty list drops them all).
    pub fn groups<I, G>(&mut self, groups: I) -> &mut Self
    where
        I: IntoIterator<Item = G>,
        G: Into<Group>,
    {
        self.groups = Some(groups.into_iter().map(Into::into).collect());
        self
    }

    /// Sends the command's stderr wherever its stdout goes (one pipe, order preserved).
    pub fn stderr_to_stdout(&mut self, on: bool) -> &mut Self {
        self.stderr_to_stdout = on;
        self
    }

    /// Captures stderr where stdout would have gone, and discards stdout.
    pub fn capture_stderr_only(&mut self, on: bool) -> &mut Self {
        self.capture_stderr_only = on;
        self
    }

    /// Runs the command in a new, uniquely named cgroup under `base` (created by the keeper
    /// before the command starts, emptied and removed when it ends, even if the owner is
    /// SIGKILLed). `base` is relative to the cgroup mount (`app/jobs`), or, written `./jobs`,
    /// to this process's own cgroup; `..` is refused. See [`crate::cgroup`].
    pub fn cgroup_base(&mut self, base: impl Into<String>) -> &mut Self {
        self.cgroup_placement = Some(Placement::Base(base.into()));
        self
    }

    /// Runs the command in exactly the cgroup `path`, which muontrap creates (it must not
    /// exist yet), and which is emptied and removed when the command ends. Paths as for
    /// [`Command::cgroup_base`].
    pub fn cgroup_path(&mut self, path: impl Into<String>) -> &mut Self {
        self.cgroup_placement = Some(Placement::Path(path.into()));
        self
    }

    /// The cgroup settings (needs [`Command::cgroup_base`] or [`Command::cgroup_path`]).
    pub fn cgroup_limits(&mut self, limits: Limits) -> &mut Self {
        self.cgroup_limits = limits;
        self
    }

    /// The cgroup placement, if set.
    pub fn get_cgroup_placement(&self) -> Option<&Placement> {
        self.cgroup_placement.as_ref()
    }

    /// The cgroup settings.
    pub fn get_cgroup_limits(&self) -> &Limits {
        &self.cgroup_limits
    }

    /// The program as given.
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }
    /// The arguments (without `argv[0]`).
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.args.iter().map(OsString::as_os_str)
    }
    /// The `argv[0]` override, if any.
    pub fn get_arg0(&self) -> Option<&OsStr> {
        self.arg0.as_deref()
    }
    /// Explicit environment changes (`None` = removed).
    pub fn get_envs(&self) -> impl Iterator<Item = (&OsStr, Option<&OsStr>)> {
        self.env.iter().map(|(k, v)| (k.as_os_str(), v.as_deref()))
    }
    /// The working directory, if set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }
    /// The grace period between SIGTERM and SIGKILL.
    pub fn get_delay_to_sigkill(&self) -> Duration {
        self.delay_to_sigkill
    }
    /// The timeout, if set.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// The user, if set.
    pub fn get_uid(&self) -> Option<&User> {
        self.uid.as_ref()
    }
    /// The group, if set.
    pub fn get_gid(&self) -> Option<&Group> {
        self.gid.as_ref()
    }
    /// The supplementary groups, if set.
    pub fn get_groups(&self) -> Option<&[Group]> {
        self.groups.as_deref()
    }
    /// Whether stderr goes to stdout.
    pub fn get_stderr_to_stdout(&self) -> bool {
        self.stderr_to_stdout
    }
    /// Whether only stderr is captured.
    pub fn get_capture_stderr_only(&self) -> bool {
        self.capture_stderr_only
    }

    /// Spawns the command under a keeper and returns its handle. Bad input is reported here,
    /// before anything runs.
    pub fn spawn(&mut self) -> Result<Child> {
        self.spawn_with_defaults(StdioKindDefault::Inherit)
    }

    /// Runs the command to completion, capturing stdout and stderr (stdin is `/dev/null`
    /// unless set). A timeout is reported as [`crate::Outcome::TimedOut`] with the output
    /// collected until then.
    pub fn output(&mut self) -> Result<Output> {
        let child = self.spawn_with_defaults(StdioKindDefault::Capture)?;
        crate::output::collect(child)
    }

    /// Runs the command to completion with inherited stdio and returns its exit status.
    pub fn status(&mut self) -> Result<std::process::ExitStatus> {
        self.spawn()?.wait()
    }

    fn spawn_with_defaults(&mut self, defaults: StdioKindDefault) -> Result<Child> {
        let resolved = self.resolve()?;
        let capture = matches!(defaults, StdioKindDefault::Capture);
        let def = |captured: StdioKind| {
            if capture {
                captured
            } else {
                StdioKind::Inherit
            }
        };
        // The configuration stays on the command (like std), so it can be spawned again; a
        // descriptor given as `Stdio::from(..)` is duplicated for each spawn.
        let pick = |cfg: &Option<Stdio>, default: StdioKind| -> Result<StdioKind> {
            match cfg {
                Some(s) => s.0.duplicate(),
                None => Ok(def(default)),
            }
        };
        let stdin = pick(&self.stdin, StdioKind::Null)?;
        let mut stdout = pick(&self.stdout, StdioKind::Piped)?;
        let mut stderr = pick(&self.stderr, StdioKind::Piped)?;
        if self.capture_stderr_only {
            stderr = std::mem::replace(&mut stdout, StdioKind::Null);
        }
        let mut fds = FdPlan::default();
        let mut child = Child::new_parts(self.program.to_string_lossy().into_owned());
        let in_spec = fds.add(
            0,
            stdin,
            |fd| child.stdin = Some(ChildStdin::from(fd)),
            true,
        )?;
        let out_spec = fds.add(
            1,
            stdout,
            |fd| child.stdout = Some(ChildStdout::from(fd)),
            false,
        )?;
        let err_spec = if self.stderr_to_stdout {
            out_spec
        } else {
            fds.add(
                2,
                stderr,
                |fd| child.stderr = Some(ChildStderr::from(fd)),
                false,
            )?
        };
        let spec = LaunchSpec {
            stdio: [in_spec, out_spec, err_spec],
            delay_to_sigkill: self.delay_to_sigkill,
            timeout: self.timeout,
            ..resolved
        };
        let borrowed: Vec<BorrowedFd<'_>> = fds.passed.iter().map(|f| f.as_fd()).collect();
        match client::launch(&spec, &borrowed)? {
            LaunchResult::Running(l) => {
                drop(borrowed);
                drop(fds);
                child.attach(l, self.timeout);
                child.set_cgroup(spec.cgroup.as_ref().map(CgroupPlan::handle));
                Ok(child)
            }
            LaunchResult::ChildFailed { stage, errno }
                if stage >= crate::cgroup::plan::CGROUP_STAGE_BASE =>
            {
                let step = (stage - crate::cgroup::plan::CGROUP_STAGE_BASE) as usize;
                Err(match &spec.cgroup {
                    Some(plan) => Error::Cgroup(plan.failure(step, errno)),
                    None => Error::Start {
                        program: self.program.to_string_lossy().into_owned(),
                        stage: "setting up the cgroup",
                        source: std::io::Error::from_raw_os_error(errno),
                    },
                })
            }
            LaunchResult::ChildFailed { stage, errno } => Err(Error::Start {
                program: self.program.to_string_lossy().into_owned(),
                stage: ExecStage::from_u32(stage).describe(),
                source: std::io::Error::from_raw_os_error(errno),
            }),
        }
    }

    /// Validates and resolves everything that can fail because of bad input (program lookup
    /// in `PATH`, NUL bytes, environment names, user and group names, the directory) into a
    /// [`LaunchSpec`] with all stdio inherited. For faces that are their own keeper
    /// (`muontrap run`, the port helper); [`Command::spawn`] calls it too.
    pub fn resolve(&self) -> Result<LaunchSpec> {
        no_nul("the program name", &self.program)?;
        for a in &self.args {
            no_nul("an argument", a)?;
        }
        if let Some(a) = &self.arg0 {
            no_nul("arg0", a)?;
        }
        let mut env: BTreeMap<OsString, OsString> = if self.env_clear {
            BTreeMap::new()
        } else {
            std::env::vars_os().collect()
        };
        for (k, v) in &self.env {
            if k.is_empty() || k.as_bytes().contains(&b'=') {
                return Err(Error::InvalidEnvName {
                    name: k.to_string_lossy().into_owned(),
                });
            }
            no_nul("an environment variable", k)?;
            match v {
                Some(v) => {
                    no_nul("an environment variable", v)?;
                    env.insert(k.clone(), v.clone());
                }
                None => {
                    env.remove(k);
                }
            }
        }
        let cwd = match &self.cwd {
            Some(d) => {
                no_nul("the working directory", d.as_os_str())?;
                match std::fs::metadata(d) {
                    // Absolute, since the keeper's own directory is not the owner's.
                    Ok(m) if m.is_dir() => Some(if d.is_absolute() {
                        d.clone()
                    } else {
                        std::env::current_dir()
                            .map_err(Error::io("reading the current directory"))?
                            .join(d)
                    }),
                    Ok(_) => {
                        return Err(Error::BadDirectory {
                            path: d.clone(),
                            source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
                        });
                    }
                    Err(source) => {
                        return Err(Error::BadDirectory {
                            path: d.clone(),
                            source,
                        });
                    }
                }
            }
            // The owner's directory *now*: a library keeper was forked from a server that
            // may have started in another one (like std, follow `set_current_dir`).
            None => std::env::current_dir().ok(),
        };
        let program = find_program(&self.program, env.get(OsStr::new("PATH")))?;
        let (uid, gid, groups) = self.resolve_credentials()?;
        let cgroup = match &self.cgroup_placement {
            Some(placement) => Some(CgroupPlan::new(
                &Layout::detect()?,
                placement,
                &self.cgroup_limits,
                &crate::cgroup::unique_name(),
            )?),
            None if !self.cgroup_limits.is_empty() => {
                return Err(crate::cgroup::CgroupError::NoPlacement.into());
            }
            None => None,
        };
        let mut argv = Vec::with_capacity(self.args.len() + 1);
        argv.push(self.arg0.clone().unwrap_or_else(|| self.program.clone()));
        argv.extend(self.args.iter().cloned());
        let env = env
            .into_iter()
            .map(|(mut k, v)| {
                k.push("=");
                k.push(v);
                k
            })
            .collect();
        Ok(LaunchSpec {
            program: program.into_os_string(),
            argv,
            env,
            cwd: cwd.map(PathBuf::into_os_string),
            uid,
            gid,
            groups,
            stdio: [StdioSpec::Inherit; 3],
            ignore_sigpipe: false,
            // Like the directory: the owner's mask now, not the keeper server's.
            umask: crate::sys::process::current_umask(),
            delay_to_sigkill: self.delay_to_sigkill,
            timeout: self.timeout,
            cgroup,
        })
    }

    fn resolve_credentials(&self) -> Result<Credentials> {
        let lookup_group = |g: &Group| -> Result<u32> {
            match g {
                Group::Id(id) => Ok(*id),
                Group::Name(n) => accounts::group_by_name(n)
                    .map_err(Error::io("looking up a group"))?
                    .ok_or_else(|| Error::UnknownGroup(n.clone())),
            }
        };
        let mut gid = self.gid.as_ref().map(lookup_group).transpose()?;
        if gid == Some(0) {
            return Err(Error::RootRefused { what: "group" });
        }
        let mut groups = match &self.groups {
            Some(list) => {
                let ids = list.iter().map(lookup_group).collect::<Result<Vec<_>>>()?;
                if ids.contains(&0) {
                    return Err(Error::RootRefused {
                        what: "supplementary group",
                    });
                }
                Some(ids)
            }
            None => None,
        };
        let uid = match &self.uid {
            None => None,
            Some(User::Id(id)) => Some(*id),
            Some(User::Name(name)) => {
                let entry = accounts::user_by_name(name)
                    .map_err(Error::io("looking up a user"))?
                    .ok_or_else(|| Error::UnknownUser(name.clone()))?;
                if entry.uid != 0 {
                    let primary = *gid.get_or_insert(entry.gid);
                    if groups.is_none() {
                        groups = Some(
                            accounts::group_list(&entry.name, primary)
                                .map_err(Error::io("listing a user's groups"))?,
                        );
                    }
                }
                Some(entry.uid)
            }
        };
        if uid == Some(0) {
            return Err(Error::RootRefused { what: "user" });
        }
        Ok((uid, gid, groups))
    }
}

/// Resolved uid, primary gid and supplementary groups.
type Credentials = (Option<u32>, Option<u32>, Option<Vec<u32>>);

enum StdioKindDefault {
    Inherit,
    Capture,
}

/// Descriptors to pass to the keeper, and the owner's ends of new pipes.
#[derive(Default)]
struct FdPlan {
    passed: Vec<OwnedFd>,
}

impl FdPlan {
    /// Turns one stdio choice into a spec entry; `keep` receives the owner's end of a new pipe.
    /// `child_reads` tells the pipe direction (stdin: the child reads).
    fn add(
        &mut self,
        n: i32,
        kind: StdioKind,
        keep: impl FnOnce(OwnedFd),
        child_reads: bool,
    ) -> Result<StdioSpec> {
        let fd =
            match kind {
                StdioKind::Null => return Ok(StdioSpec::Null),
                StdioKind::Inherit => match crate::sys::exec::dup_standard(n) {
                    // A closed standard descriptor becomes /dev/null, as for a fresh process.
                    Some(fd) => fd,
                    None => return Ok(StdioSpec::Null),
                },
                StdioKind::Fd(fd) => fd,
                StdioKind::Piped => {
                    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                        .map_err(|e| Error::Io {
                            doing: "creating a pipe",
                            source: e.into(),
                        })?;
                    if child_reads {
                        keep(w);
                        r
                    } else {
                        keep(r);
                        w
                    }
                }
            };
        self.passed.push(fd);
        Ok(StdioSpec::Passed((self.passed.len() - 1) as u8))
    }
}

fn no_nul(what: &str, s: &OsStr) -> Result<()> {
    if s.as_bytes().contains(&0) {
        return Err(Error::NulByte {
            what: format!("{what} '{}'", s.to_string_lossy().replace('\0', "\\0")),
        });
    }
    Ok(())
}

const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Resolves `program` like `execvp`: a name with a `/` is a path (made absolute against the
/// owner's directory); otherwise the first executable file named so in `PATH`.
pub fn find_program(program: &OsStr, path_var: Option<&OsString>) -> Result<PathBuf> {
    let not_found = || Error::ProgramNotFound {
        program: program.to_string_lossy().into_owned(),
    };
    if program.is_empty() {
        return Err(not_found());
    }
    if program.as_bytes().contains(&b'/') {
        let p = Path::new(program);
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(Error::io("reading the current directory"))?
                .join(p)
        };
        return match executable(&abs) {
            Some(true) => Ok(abs),
            Some(false) => Err(Error::NotExecutable { path: abs }),
            None => Err(not_found()),
        };
    }
    let path_var = path_var
        .cloned()
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| DEFAULT_PATH.into());
    let mut found_not_exec = None;
    for dir in std::env::split_paths(&path_var) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let cand = dir.join(program);
        match executable(&cand) {
            Some(true) => {
                return Ok(if cand.is_absolute() {
                    cand
                } else {
                    std::env::current_dir()
                        .map_err(Error::io("reading the current directory"))?
                        .join(cand)
                });
            }
            Some(false) => {
                found_not_exec.get_or_insert(cand);
            }
            None => {}
        }
    }
    match found_not_exec {
        Some(path) => Err(Error::NotExecutable { path }),
        None => Err(not_found()),
    }
}

/// `Some(true)`: an executable regular file; `Some(false)`: exists but not executable;
/// `None`: does not exist.
fn executable(p: &Path) -> Option<bool> {
    let meta = std::fs::metadata(p).ok()?;
    if !meta.is_file() {
        return Some(false);
    }
    Some(rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok())
}
