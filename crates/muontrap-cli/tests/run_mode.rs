//! `muontrap run`, black-box: exit codes, options, and that the command's whole tree is stopped
//! whichever way the run ends (command exit, timeout, a signal to muontrap, muontrap's parent
//! dying).
//!
//! Every process a test starts carries its own `MUONTRAP_TEST_ID` marker, and every test ends by
//! proving, with `wait_until_gone`, that no process of its tree is left. Waits are on
//! conditions (a line, a process count, a pidfd), never fixed sleeps.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use muontrap_tests::{
    TestId, children_of, fixture, readable, wait_for_count, wait_for_line, wait_until_gone,
};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions};

const MUONTRAP: &str = env!("CARGO_BIN_EXE_muontrap");

/// Generous bound for anything that should be quick.
const SOON: Duration = Duration::from_secs(5);

/// Reads `fd` until EOF; fails the test if EOF does not come within [`SOON`].
fn read_to_eof(fd: BorrowedFd<'_>) -> String {
    let deadline = Instant::now() + SOON;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            readable(fd, left),
            "no EOF within {SOON:?}: {:?}",
            String::from_utf8_lossy(&all)
        );
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return String::from_utf8_lossy(&all).into_owned(),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(Errno::INTR) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Fails the test unless no process carrying `id`'s marker is left within `timeout`.
fn assert_gone_within(id: &TestId, timeout: Duration) -> Duration {
    match wait_until_gone(id, timeout) {
        Ok(took) => took,
        Err(left) => panic!("processes of {id} still alive: {left:?}"),
    }
}

/// A running `muontrap run …` with piped stdout/stderr (which its command inherits).
struct Run {
    child: Child,
    pidfd: OwnedFd,
    stdout: ChildStdout,
    stderr: ChildStderr,
    code: Option<i32>,
}

impl Run {
    fn start(id: &TestId, args: &[&str]) -> Run {
        let mut cmd = Command::new(MUONTRAP);
        cmd.arg("run")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        id.mark(&mut cmd);
        let mut child = cmd.spawn().expect("spawn muontrap run");
        let pid = Pid::from_raw(child.id() as i32).expect("a real pid");
        let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty()).expect("pidfd_open");
        Run {
            stdout: child.stdout.take().expect("piped"),
            stderr: child.stderr.take().expect("piped"),
            pidfd,
            child,
            code: None,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32).expect("a real pid")
    }

    /// Waits up to `timeout` for muontrap to exit; its exit code, or `None` if still running.
    fn exited_within(&mut self, timeout: Duration) -> Option<i32> {
        if self.code.is_none() && readable(self.pidfd.as_fd(), timeout) {
            let status = self.child.wait().expect("wait for muontrap");
            let code = status
                .code()
                .unwrap_or_else(|| panic!("muontrap died by a signal: {status:?}"));
            self.code = Some(code);
        }
        self.code
    }

    fn exit_code(&mut self) -> i32 {
        match self.exited_within(SOON) {
            Some(code) => code,
            None => panic!("muontrap run (pid {:?}) did not exit", self.pid()),
        }
    }

    /// Runs to the end: (stdout, stderr, exit code).
    fn finish(mut self) -> (String, String, i32) {
        let out = read_to_eof(self.stdout.as_fd());
        let err = read_to_eof(self.stderr.as_fd());
        let code = self.exit_code();
        (out, err, code)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.code.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn fx() -> String {
    fixture().to_string_lossy().into_owned()
}

/// `muontrap run ARGS…` to the end; (stdout, stderr, exit code), after proving the tree gone.
fn run(id: &TestId, args: &[&str]) -> (String, String, i32) {
    let result = Run::start(id, args).finish();
    assert_gone_within(id, SOON);
    result
}

#[test]
fn exit_code_is_the_commands() {
    let id = TestId::new("run-exit");
    let (_, _, code) = run(&id, &["--", &fx(), "exit", "5"]);
    assert_eq!(code, 5);
}

#[test]
fn death_by_signal_maps_to_128_plus_signal() {
    let id = TestId::new("run-signal");
    let (_, _, code) = run(&id, &["--", &fx(), "signal", "9"]);
    assert_eq!(code, 137);
}

#[test]
fn timeout_stops_the_command_with_124() {
    let id = TestId::new("run-timeout");
    let start = Instant::now();
    let (_, _, code) = run(&id, &["--timeout", "200ms", "--", &fx(), "sleep", "5000"]);
    assert_eq!(code, 124);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn missing_program_exits_127_with_a_message() {
    let id = TestId::new("run-missing");
    let (_, err, code) = run(&id, &["--", "/nonexistent/mt-prog"]);
    assert_eq!(code, 127);
    assert!(err.contains("/nonexistent/mt-prog"), "{err:?}");
}

#[test]
fn non_executable_program_exits_126() {
    let id = TestId::new("run-not-executable");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let (_, err, code) = run(&id, &["--", manifest]);
    assert_eq!(code, 126);
    assert!(err.contains("Cargo.toml"), "{err:?}");
}

#[test]
fn duration_without_a_unit_exits_125_with_a_hint() {
    let id = TestId::new("run-bad-duration");
    let (_, err, code) = run(&id, &["--timeout", "5", "--", &fx(), "exit", "0"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("--timeout") && err.contains("500ms"),
        "{err:?}"
    );
}

#[test]
fn env_option_reaches_the_command() {
    let id = TestId::new("run-env");
    let (out, _, code) = run(
        &id,
        &[
            "--env",
            "MT_RUN_K=some value",
            "--",
            &fx(),
            "env",
            "MT_RUN_K",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(out, "some value\n");
}

#[test]
fn cd_option_sets_the_working_directory() {
    let id = TestId::new("run-cd");
    let dir = std::env::temp_dir().canonicalize().expect("temp dir");
    let dir = dir.to_string_lossy();
    let (out, _, code) = run(&id, &["--cd", &dir, "--", &fx(), "cwd"]);
    assert_eq!(code, 0);
    assert_eq!(out, format!("{dir}\n"));
}

#[test]
fn arg0_option_sets_argv0_only() {
    let id = TestId::new("run-arg0");
    let (out, _, code) = run(&id, &["--arg0", "zzz", "--", &fx(), "argv", "one"]);
    assert_eq!(code, 0);
    assert_eq!(out, "zzz\nargv\none\n");
}

/// Starts `tree 3` under `muontrap run`, sends `signal` to muontrap, and proves the tree gone.
fn signal_stops_the_tree(signal: Signal, name: &str) {
    let id = TestId::new(name);
    let mut run = Run::start(&id, &["--", &fx(), "tree", "3"]);
    wait_for_line(&run.stdout, "ready", SOON).expect("the tree is ready");
    wait_for_count(&id, 5, SOON).expect("muontrap + tree of 4");
    rustix::process::kill_process(run.pid(), signal).expect("signal muontrap");
    let code = run.exit_code();
    assert_ne!(code, 0, "a stopped command is not a success");
    assert_gone_within(&id, SOON);
}

#[test]
fn sigterm_to_muontrap_stops_the_tree() {
    signal_stops_the_tree(Signal::TERM, "run-sigterm");
}

#[test]
fn sigint_to_muontrap_stops_the_tree() {
    signal_stops_the_tree(Signal::INT, "run-sigint");
}

#[test]
fn parent_death_stops_the_tree() {
    // When the intermediate parent dies, muontrap is re-parented to the nearest subreaper. Make
    // that this test process, so muontrap's own exit can be reaped and proved here too (some
    // init processes never reap orphans, which would leave a marked zombie behind).
    let me = rustix::process::getpid();
    rustix::process::set_child_subreaper(Some(me)).expect("become a child subreaper");

    let id = TestId::new("run-parent-death");
    let mut parent = Command::new("/bin/sh");
    parent
        .arg("-c")
        .arg(r#""$0" run -- "$1" grandchildren 5 & wait"#)
        .arg(MUONTRAP)
        .arg(fx())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    id.mark(&mut parent);
    let mut parent = parent.spawn().expect("spawn the intermediate parent");
    let stdout = parent.stdout.take().expect("piped");
    wait_for_line(&stdout, "ready", SOON).expect("the tree is ready");
    // sh + muontrap + top + child + 5 grandchildren
    wait_for_count(&id, 9, SOON).expect("the whole tree exists");
    let kids = children_of(parent.id() as i32);
    assert_eq!(kids.len(), 1, "sh has one child, muontrap: {kids:?}");
    let muontrap = Pid::from_raw(kids[0].pid).expect("pid");
    let muontrap_fd = rustix::process::pidfd_open(muontrap, PidfdFlags::empty()).expect("pidfd");

    let start = Instant::now();
    parent.kill().expect("SIGKILL the parent");
    parent.wait().expect("reap the parent");
    assert!(
        readable(muontrap_fd.as_fd(), Duration::from_secs(3)),
        "muontrap outlived its parent"
    );
    // muontrap is ours now (we are the subreaper); reap it so no marked zombie stays.
    rustix::process::waitpid(Some(muontrap), WaitOptions::empty()).expect("reap muontrap");
    let took = start.elapsed() + assert_gone_within(&id, SOON);
    // 1 s to notice and stop, plus the 500 ms default grace period, which obedient children
    // do not need.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[test]
fn leftover_daemon_is_stopped_when_the_command_exits() {
    let id = TestId::new("run-daemon");
    let mut run = Run::start(&id, &["--", &fx(), "daemon"]);
    let line = wait_for_line(&run.stdout, "daemon ", SOON).expect("the daemon reports");
    let daemon: i32 = line["daemon ".len()..].parse().expect("a pid");
    assert!(daemon > 0);
    assert_eq!(run.exit_code(), 0);
    // The daemon held stdout; once it is gone, the pipe reaches EOF.
    read_to_eof(run.stdout.as_fd());
    assert_gone_within(&id, SOON);
}

#[test]
fn stats_prints_a_summary_on_stderr() {
    let id = TestId::new("run-stats");
    let (out, err, code) = run(&id, &["--stats", "--", &fx(), "exit", "3"]);
    assert_eq!(code, 3);
    assert_eq!(out, "");
    assert!(
        err.lines().any(|l| l.starts_with("muontrap:")),
        "no summary line: {err:?}"
    );
}

#[test]
fn stats_json_writes_wall_seconds() {
    let id = TestId::new("run-stats-json");
    let path = std::env::temp_dir().join(format!("{}.json", id.as_str()));
    let file = path.to_string_lossy().into_owned();
    let (_, err, code) = run(&id, &["--stats-json", &file, "--", &fx(), "exit", "0"]);
    let json = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0);
    assert!(
        !err.contains("muontrap:"),
        "--stats-json alone prints nothing: {err:?}"
    );
    let json = json.expect("the JSON file was written");
    let json = json.trim();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json:?}");
    let wall = json
        .split_once("\"wall_seconds\":")
        .and_then(|(_, rest)| rest.split([',', '}']).next())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no numeric wall_seconds: {json:?}"));
    assert!((0.0..5.0).contains(&wall), "{json:?}");
}
