//! Port mode, black-box: this test plays the Erlang port.
//!
//! Each test spawns the real `muontrap` binary the way the BEAM does (spec
//! `shared/spec/port-helper.md`, sections 2–4): stdin is a pipe the test keeps open (closing it
//! is `Port.close`), stdout is a pipe the test reads, and every chunk of data is acknowledged
//! with the port's ack encoding (3.4). Every process a test starts carries its own
//! `MUONTRAP_TEST_ID` marker, and every test ends by proving, with `wait_until_gone`, that no
//! process of its tree is left.
//!
//! Waits are on conditions (a line, a process count, a pidfd becoming readable). The only
//! timed waits without an event are the "quiet period" checks that prove output does *not*
//! arrive while the window is used up; absence of data has no event to wait for.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use muontrap_tests::{
    ProcInfo, TestId, children_of, encode_acks, fixture, marked_processes, readable, skip,
    skip_needs_v1, wait_for_count, wait_until, wait_until_gone,
};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

const MUONTRAP: &str = env!("CARGO_BIN_EXE_muontrap");

/// The fixture's `print` pattern.
const PATTERN: &[u8] = b"0123456789abcdef";

/// Generous bound for anything that should be quick (exits, trees emptying).
const SOON: Duration = Duration::from_secs(5);

/// How long output must stay away to count as "held back" by the window.
const QUIET: Duration = Duration::from_millis(300);

/// The first `n` bytes of `mt-fixture print`.
fn pattern(n: usize) -> Vec<u8> {
    PATTERN.iter().copied().cycle().take(n).collect()
}

/// Fails the test unless no process carrying `id`'s marker is left within [`SOON`].
fn assert_gone(id: &TestId) {
    if let Err(left) = wait_until_gone(id, SOON) {
        panic!("processes of {id} still alive: {left:?}");
    }
}

/// What one read from the port's stdout gave.
#[derive(Debug)]
enum Recv {
    Data(Vec<u8>),
    Eof,
    Quiet,
}

/// A running `muontrap` in port mode, with the test as its Erlang port.
struct Port {
    child: Child,
    pidfd: OwnedFd,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    stderr: ChildStderr,
    /// Exit code once seen.
    code: Option<i32>,
}

impl Port {
    /// Opens the port on `muontrap ARGS…`, marked with `id`.
    fn open<S: AsRef<OsStr>>(id: &TestId, args: impl IntoIterator<Item = S>) -> Port {
        Port::open_with(id, args, |_| {})
    }

    /// [`Port::open`], letting `tweak` adjust the command first.
    fn open_with<S: AsRef<OsStr>>(
        id: &TestId,
        args: impl IntoIterator<Item = S>,
        tweak: impl FnOnce(&mut Command),
    ) -> Port {
        let mut cmd = Command::new(MUONTRAP);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        id.mark(&mut cmd);
        tweak(&mut cmd);
        let mut child = cmd.spawn().expect("spawn muontrap");
        let pid = Pid::from_raw(child.id() as i32).expect("a real pid");
        let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty()).expect("pidfd_open");
        Port {
            stdin: child.stdin.take(),
            stdout: child.stdout.take().expect("stdout is piped"),
            stderr: child.stderr.take().expect("stderr is piped"),
            pidfd,
            child,
            code: None,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// One read of at most `max` bytes, waiting up to `timeout` for something to read.
    fn recv(&mut self, max: usize, timeout: Duration) -> Recv {
        if !readable(self.stdout.as_fd(), timeout) {
            return Recv::Quiet;
        }
        let mut buf = vec![0u8; max.clamp(1, 256 * 1024)];
        loop {
            match rustix::io::read(&self.stdout, &mut buf) {
                Ok(0) => return Recv::Eof,
                Ok(n) => {
                    buf.truncate(n);
                    return Recv::Data(buf);
                }
                Err(Errno::INTR) => continue,
                Err(e) => panic!("reading the port: {e}"),
            }
        }
    }

    /// Reads exactly `n` bytes (never more), without acknowledging them.
    fn recv_exact(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + SOON;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(n - got.len(), left) {
                Recv::Data(d) => got.extend_from_slice(&d),
                other => panic!(
                    "wanted {n} bytes, got {} then {other:?}: {:?}",
                    got.len(),
                    String::from_utf8_lossy(&got)
                ),
            }
        }
        got
    }

    /// Sends raw bytes on the helper's stdin. Errors (the helper is gone) are returned.
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the port is open");
        stdin.write_all(bytes)
    }

    /// Acknowledges `n` bytes, as `MuonTrap.Port.report_bytes_handled/2` does.
    fn ack(&mut self, n: usize) {
        // Like Erlang's `Port.command` on a closed port, a failed write is ignored.
        let _ = self.send(&encode_acks(n));
    }

    /// `Port.close`: closes the helper's stdin.
    fn close(&mut self) {
        self.stdin = None;
    }

    /// Reads and acknowledges everything until the helper closes stdout.
    fn collect(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + SOON * 2;
        let mut all = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(64 * 1024, left) {
                Recv::Data(d) => {
                    self.ack(d.len());
                    all.extend_from_slice(&d);
                }
                Recv::Eof => return all,
                Recv::Quiet => panic!(
                    "no EOF on the port after {} bytes: {:?}",
                    all.len(),
                    String::from_utf8_lossy(&all)
                ),
            }
        }
    }

    /// Waits up to `timeout` for the helper to exit; its exit code, or `None` if still running.
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

    /// The helper's exit code; fails the test if it does not exit within [`SOON`].
    fn exit_code(&mut self) -> i32 {
        match self.exited_within(SOON) {
            Some(code) => code,
            None => panic!("muontrap (pid {}) did not exit", self.pid()),
        }
    }

    /// Everything the helper (and children that inherited it) wrote to stderr, up to EOF.
    fn stderr_text(&mut self) -> String {
        let deadline = Instant::now() + SOON;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                readable(self.stderr.as_fd(), left),
                "no EOF on muontrap's stderr: {:?}",
                String::from_utf8_lossy(&all)
            );
            match rustix::io::read(&self.stderr, &mut buf) {
                Ok(0) => return String::from_utf8_lossy(&all).into_owned(),
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(Errno::INTR) => {}
                Err(e) => panic!("reading stderr: {e}"),
            }
        }
    }

    /// The helper's children (the command's main process), with their states.
    fn children(&self) -> Vec<ProcInfo> {
        children_of(self.pid())
    }
}

impl Drop for Port {
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

/// Runs `muontrap ARGS…` to completion as a well-behaved port: (output, stderr, exit code).
fn run_port(id: &TestId, args: &[&str]) -> (Vec<u8>, String, i32) {
    let mut port = Port::open(id, args);
    let out = port.collect();
    let code = port.exit_code();
    let err = port.stderr_text();
    assert_gone(id);
    (out, err, code)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ack_encoding_matches_the_erlang_side() {
    assert_eq!(encode_acks(1), [0x00]);
    assert_eq!(encode_acks(10), [0x09]);
    assert_eq!(encode_acks(256), [0xFF]);
    assert_eq!(encode_acks(257), [0xFF, 0x00]);
    assert_eq!(encode_acks(512), [0xFF, 0xFF]);
    assert_eq!(encode_acks(513), [0xFF, 0xFF, 0x00]);
}

// ---------------------------------------------------------------- capture modes (spec 3.2)

#[test]
fn no_capture_sends_nothing_and_leaves_stderr_on_the_console() {
    let id = TestId::new("port-capture-none");
    let (out, err, code) = run_port(&id, &["--", &fx(), "interleave", "3"]);
    assert_eq!(code, 0);
    assert_eq!(text(&out), "");
    assert!(err.contains("err 1\nerr 2\nerr 3\n"), "stderr: {err:?}");
    assert!(!err.contains("out"), "stdout must go to /dev/null: {err:?}");
}

#[test]
fn capture_stderr_alone_discards_both_streams() {
    let id = TestId::new("port-capture-stderr-alone");
    let (out, err, code) = run_port(&id, &["--capture-stderr", "--", &fx(), "interleave", "3"]);
    assert_eq!(code, 0);
    assert_eq!(text(&out), "");
    assert!(!err.contains("err 1") && !err.contains("out 1"), "{err:?}");
}

#[test]
fn capture_output_sends_stdout_and_leaves_stderr_on_the_console() {
    let id = TestId::new("port-capture-output");
    let (out, err, code) = run_port(&id, &["--capture-output", "--", &fx(), "interleave", "3"]);
    assert_eq!(code, 0);
    assert_eq!(text(&out), "out 1\nout 2\nout 3\n");
    assert!(err.contains("err 1\nerr 2\nerr 3\n"), "stderr: {err:?}");
}

#[test]
fn capture_output_and_stderr_arrive_in_order_on_one_stream() {
    let id = TestId::new("port-capture-both");
    let (out, err, code) = run_port(
        &id,
        &[
            "--capture-output",
            "--capture-stderr",
            "--",
            &fx(),
            "interleave",
            "50",
        ],
    );
    assert_eq!(code, 0);
    let expected: String = (1..=50).map(|i| format!("out {i}\nerr {i}\n")).collect();
    assert_eq!(text(&out), expected);
    assert!(
        !err.contains("err 1"),
        "stderr leaked to the console: {err:?}"
    );
}

#[test]
fn capture_stderr_only_sends_stderr_alone() {
    let id = TestId::new("port-capture-stderr-only");
    let (out, err, code) = run_port(
        &id,
        &["--capture-stderr-only", "--", &fx(), "interleave", "3"],
    );
    assert_eq!(code, 0);
    assert_eq!(text(&out), "err 1\nerr 2\nerr 3\n");
    assert!(!err.contains("out 1"), "{err:?}");
}

// ---------------------------------------------------------------- flow control (spec 3.3, 3.4)

#[test]
fn window_holds_output_until_acked_and_the_tail_is_never_lost() {
    let id = TestId::new("port-window");
    let total = 100_000;
    let mut port = Port::open(
        &id,
        [
            "--capture-output",
            "--stdio-window",
            "1024",
            "--",
            &fx(),
            "print",
            "100000",
        ],
    );
    let first = port.recv_exact(1024);
    assert_eq!(first, pattern(1024));
    match port.recv(1, QUIET) {
        Recv::Quiet => {}
        other => panic!("data beyond the window arrived without an ack: {other:?}"),
    }
    // The command cannot finish while the window is held: 100 000 bytes do not fit the pipe.
    assert_eq!(port.exited_within(Duration::ZERO), None);

    let mut all = first;
    port.ack(1024);
    let mut acked = 1024;
    let deadline = Instant::now() + SOON * 2;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match port.recv(64 * 1024, left) {
            Recv::Data(d) => {
                all.extend_from_slice(&d);
                assert!(
                    all.len() <= acked + 1024,
                    "{} bytes received with {acked} acked and a 1024-byte window",
                    all.len()
                );
                port.ack(d.len());
                acked += d.len();
            }
            Recv::Eof => break,
            Recv::Quiet => panic!("stalled after {} of {total} bytes", all.len()),
        }
    }
    assert_eq!(all.len(), total);
    assert!(all == pattern(total), "the output was corrupted");
    assert_eq!(port.exit_code(), 0);
    assert_gone(&id);
}

#[test]
fn ack_beyond_the_window_stops_the_command_with_exit_1() {
    let id = TestId::new("port-too-many-acks");
    let mut port = Port::open(&id, ["--capture-output", "--", &fx(), "tree", "2"]);
    assert_eq!(port.recv_exact(6), b"ready\n");
    wait_for_count(&id, 4, SOON).expect("helper + tree of 3");
    port.ack(6);
    // The window is whole again; one more byte acknowledges a byte never sent.
    port.send(&[0]).expect("the helper reads acks");
    assert_eq!(port.exit_code(), 1);
    assert_gone(&id);
}

#[test]
fn port_close_with_a_full_window_exits_promptly() {
    let id = TestId::new("port-close-full-window");
    let mut port = Port::open(
        &id,
        [
            "--capture-output",
            "--stdio-window",
            "1024",
            "--",
            &fx(),
            "print",
            "1000000",
        ],
    );
    port.recv_exact(1024);
    let start = Instant::now();
    port.close();
    assert_eq!(port.exit_code(), 1);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_gone(&id);
}

// ---------------------------------------------------------------- exit codes (spec 4.3)

#[test]
fn exit_codes_are_the_commands_or_128_plus_signal() {
    for (args, expected) in [
        (["exit", "7"], 7),
        (["signal", "10"], 138),
        (["signal", "15"], 143),
        (["exit", "0"], 0),
    ] {
        let id = TestId::new("port-exit-code");
        let mut port = Port::open(
            &id,
            ["--".to_string(), fx(), args[0].into(), args[1].into()],
        );
        assert_eq!(port.exit_code(), expected, "for {args:?}");
        assert_gone(&id);
    }
}

#[test]
fn arg0_replaces_argv0_only() {
    let id = TestId::new("port-arg0");
    let (out, _, code) = run_port(
        &id,
        &[
            "--capture-output",
            "--arg0",
            "zzz",
            "--",
            &fx(),
            "argv",
            "one",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(text(&out), "zzz\nargv\none\n");
}

// ---------------------------------------------------------------- credentials (spec 2.3, 2.6)

fn running_as_root() -> bool {
    rustix::process::getuid().is_root()
}

fn id_as(args: &[&str]) -> (String, i32) {
    let id = TestId::new("port-credentials");
    let mut full = vec!["--capture-output"];
    full.extend_from_slice(args);
    let fixture = fx();
    full.extend_from_slice(&["--", &fixture, "id"]);
    let (out, err, code) = run_port(&id, &full);
    assert_eq!(code, 0, "stderr: {err}");
    (text(&out), code)
}

#[test]
fn uid_by_name_keeps_the_root_gid_and_uses_initgroups() {
    if !running_as_root() {
        return skip("needs root to change credentials");
    }
    let (out, _) = id_as(&["--uid", "nobody"]);
    assert!(out.starts_with("uid=65534 gid=0 groups="), "{out:?}");
    let groups = out.trim_end().rsplit('=').next().unwrap_or_default();
    assert!(
        groups.split(',').any(|g| g == "65534"),
        "initgroups(nobody) gives nobody's groups: {out:?}"
    );
    assert!(!groups.split(',').any(|g| g == "0"), "{out:?}");
}

#[test]
fn uid_with_gid_sets_the_primary_group_and_its_groups() {
    if !running_as_root() {
        return skip("needs root to change credentials");
    }
    let (out, _) = id_as(&["--uid", "nobody", "--gid", "daemon"]);
    assert_eq!(out, "uid=65534 gid=1 groups=1\n");
}

#[test]
fn numeric_uid_with_empty_groups_drops_all_groups() {
    if !running_as_root() {
        return skip("needs root to change credentials");
    }
    let (out, _) = id_as(&["--uid", "65534", "--groups", ""]);
    assert_eq!(out, "uid=65534 gid=0 groups=\n");
}

#[test]
fn uid_root_is_refused() {
    let id = TestId::new("port-uid-root");
    let (out, err, code) = run_port(&id, &["--uid", "root", "--", &fx(), "exit", "0"]);
    assert_eq!(code, 1);
    assert_eq!(text(&out), "");
    assert!(
        err.contains("MUONTRAP: Setting the user to root or uid 0 is not allowed"),
        "{err:?}"
    );
}

#[test]
fn unknown_user_is_refused() {
    let id = TestId::new("port-unknown-user");
    let user = "mt-no-such-user-x";
    let (out, err, code) = run_port(&id, &["--uid", user, "--", &fx(), "exit", "0"]);
    assert_eq!(code, 1);
    assert_eq!(text(&out), "");
    assert!(
        err.contains(&format!("MUONTRAP: Unknown user '{user}'")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- stopping (spec 3.5, 4.2)

#[test]
fn delay_to_sigkill_bounds_the_wait_for_a_child_ignoring_sigterm() {
    let id = TestId::new("port-delay-to-sigkill");
    let mut port = Port::open(
        &id,
        ["-k", "250", "--capture-output", "--", &fx(), "ignore-term"],
    );
    assert_eq!(port.recv_exact(6), b"ready\n");
    let start = Instant::now();
    port.close();
    assert_eq!(
        port.exited_within(Duration::from_millis(200)),
        None,
        "exited before the 250 ms grace period"
    );
    assert_eq!(port.exit_code(), 1);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_gone(&id);
}

#[test]
fn port_close_with_an_obedient_child_exits_quickly() {
    let id = TestId::new("port-close-fast");
    // A long grace period: only an event-driven wait for the child makes this fast.
    let mut port = Port::open(
        &id,
        ["-k", "5000", "--capture-output", "--", &fx(), "forever"],
    );
    assert_eq!(port.recv_exact(6), b"ready\n");
    let start = Instant::now();
    port.close();
    assert_eq!(port.exit_code(), 1);
    let took = start.elapsed();
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert_gone(&id);
}

#[test]
fn port_close_stops_grandchildren() {
    let id = TestId::new("port-close-grandchildren");
    let mut port = Port::open(&id, ["--capture-output", "--", &fx(), "grandchildren", "5"]);
    assert_eq!(port.recv_exact(6), b"ready\n");
    // helper + top + child + 5 grandchildren
    wait_for_count(&id, 8, SOON).expect("the whole tree exists");
    port.close();
    assert_eq!(port.exit_code(), 1);
    assert_gone(&id);
}

#[test]
fn port_close_stops_an_escaped_daemon() {
    let id = TestId::new("port-close-daemon");
    let mut port = Port::open(&id, ["--capture-output", "--", &fx(), "daemon", "--stay"]);
    let mut seen = Vec::new();
    while !text(&seen).ends_with("ready\nready\n") {
        match port.recv(64, SOON) {
            Recv::Data(d) => seen.extend_from_slice(&d),
            other => panic!("{other:?} after {:?}", text(&seen)),
        }
    }
    assert!(text(&seen).starts_with("daemon "), "{:?}", text(&seen));
    // helper + top + daemon (the session leader has exited)
    wait_for_count(&id, 3, SOON).expect("the daemon exists");
    port.close();
    assert_eq!(port.exit_code(), 1);
    assert_gone(&id);
}

#[test]
fn leftover_daemon_is_stopped_when_the_command_exits() {
    let id = TestId::new("port-leftover-daemon");
    let (out, _, code) = run_port(&id, &["--capture-output", "--", &fx(), "daemon"]);
    assert_eq!(code, 0);
    assert!(text(&out).ends_with("ready\nready\n"), "{:?}", text(&out));
}

#[test]
fn sigterm_to_the_helper_exits_1_and_stops_the_tree() {
    let id = TestId::new("port-sigterm");
    let mut port = Port::open(&id, ["--capture-output", "--", &fx(), "tree", "3"]);
    assert_eq!(port.recv_exact(6), b"ready\n");
    port.ack(6);
    wait_for_count(&id, 5, SOON).expect("helper + tree of 4");
    let pid = Pid::from_raw(port.pid()).expect("pid");
    rustix::process::kill_process(pid, Signal::TERM).expect("signal the helper");
    assert_eq!(port.exit_code(), 1);
    assert_gone(&id);
}

#[test]
fn stopped_child_does_not_hang_the_helper() {
    let id = TestId::new("port-stopped-child");
    let mut port = Port::open(&id, ["--capture-output", "--", &fx(), "forever"]);
    assert_eq!(port.recv_exact(6), b"ready\n");
    let kids = port.children();
    assert_eq!(kids.len(), 1, "{kids:?}");
    let child = Pid::from_raw(kids[0].pid).expect("pid");
    rustix::process::kill_process(child, Signal::STOP).expect("SIGSTOP the child");
    assert!(
        wait_until(SOON, || port.children().iter().any(|p| p.state == 'T')),
        "the child never stopped: {:?}",
        port.children()
    );
    port.close();
    assert_eq!(port.exit_code(), 1);
    assert_gone(&id);
}

#[test]
fn closed_stdin_counts_as_the_port_closing() {
    let id = TestId::new("port-pollnval");
    let mut port = Port::open_with(&id, ["--capture-output", "--", &fx(), "forever"], |cmd| {
        cmd.stdin(Stdio::null());
        // SAFETY: close(2) is async-signal-safe and touches no memory; fd 0 is /dev/null,
        // which only this child holds, so closing it leaves the helper without a stdin.
        unsafe {
            cmd.pre_exec(|| {
                libc::close(0);
                Ok(())
            });
        }
    });
    assert_eq!(port.exit_code(), 1);
    assert_gone(&id);
}

// ---------------------------------------------------------------- command line (spec 2)

#[test]
fn missing_program_is_reported_with_exit_1() {
    let id = TestId::new("port-missing-program");
    let (out, err, code) = run_port(&id, &["--capture-output", "--", "/nonexistent/mt-prog"]);
    assert_eq!(code, 1);
    assert_eq!(text(&out), "");
    assert!(err.contains("MUONTRAP: "), "{err:?}");
    assert!(err.contains("/nonexistent/mt-prog"), "{err:?}");
}

#[test]
fn no_arguments_prints_usage_on_stdout_with_exit_1() {
    let id = TestId::new("port-no-args");
    let (out, _, code) = run_port(&id, &[]);
    assert_eq!(code, 1);
    assert!(
        text(&out).starts_with("Usage: muontrap"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn help_prints_usage_on_stdout_with_exit_0() {
    let id = TestId::new("port-help");
    let (out, err, code) = run_port(&id, &["-h"]);
    assert_eq!(code, 0);
    assert!(
        text(&out).starts_with("Usage: muontrap"),
        "{:?}",
        text(&out)
    );
    assert_eq!(err, "");
}

#[test]
fn unknown_option_prints_usage_on_stdout_with_exit_1() {
    let id = TestId::new("port-bogus");
    let (out, err, code) = run_port(&id, &["--bogus", "--", &fx(), "exit", "0"]);
    assert_eq!(code, 1);
    assert!(
        text(&out).starts_with("Usage: muontrap"),
        "{:?}",
        text(&out)
    );
    assert!(err.contains("--bogus"), "{err:?}");
}

#[test]
fn abbreviated_long_options_are_accepted() {
    let id = TestId::new("port-abbrev");
    // `--del 10` is `--delay-to-sigkill 10`: a SIGTERM-ignoring child is killed well before
    // the default 500 ms. `--capture-o` is `--capture-output`: "ready" arrives.
    let mut port = Port::open(
        &id,
        ["--del", "10", "--capture-o", "--", &fx(), "ignore-term"],
    );
    assert_eq!(port.recv_exact(6), b"ready\n");
    let start = Instant::now();
    port.close();
    assert_eq!(port.exit_code(), 1);
    let took = start.elapsed();
    assert!(took < Duration::from_millis(400), "took {took:?}");
    assert_gone(&id);
}

#[test]
fn options_after_the_program_are_permuted() {
    let id = TestId::new("port-permute");
    let (out, err, code) = run_port(&id, &[&fx(), "lines", "3", "--capture-output"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(text(&out), "line 1\nline 2\nline 3\n");
}

#[test]
fn cgroup_group_on_a_v1_host_is_refused() {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return skip_needs_v1("this host has cgroup v2; the v1 refusal cannot be observed");
    }
    let id = TestId::new("port-cgroup-v1");
    let (out, err, code) = run_port(
        &id,
        &["-g", "mt-test", "-c", "cpu", "--", &fx(), "exit", "0"],
    );
    assert_eq!(code, 1);
    assert_eq!(text(&out), "");
    assert!(
        err.contains(
            "MUONTRAP: cgroup v2 unified hierarchy not detected at /sys/fs/cgroup.\n\
             MuonTrap requires cgroup v2. See the MuonTrap docs for setup.\n"
        ),
        "{err:?}"
    );
    assert!(marked_processes(&id).is_empty());
}

// ---------------------------------------------------------------- more of the contract

#[test]
fn window_below_16_is_raised_to_16() {
    let id = TestId::new("port-window-min");
    let mut port = Port::open(
        &id,
        [
            "--capture-output",
            "--stdio-window",
            "5",
            "--",
            &fx(),
            "print",
            "100",
        ],
    );
    assert_eq!(port.recv_exact(16), pattern(16));
    match port.recv(1, QUIET) {
        Recv::Quiet => {}
        other => panic!("data beyond a 16-byte window arrived without an ack: {other:?}"),
    }
    port.ack(16);
    let rest = port.collect();
    assert_eq!([pattern(16), rest].concat(), pattern(100));
    assert_eq!(port.exit_code(), 0);
    assert_gone(&id);
}

#[test]
fn exit_waits_for_outstanding_acks() {
    let id = TestId::new("port-ack-wait");
    let mut port = Port::open(&id, ["--capture-output", "--", &fx(), "exit", "0"]);
    assert_eq!(port.exit_code(), 0, "nothing outstanding: no wait");
    assert_gone(&id);

    let id = TestId::new("port-ack-wait-lines");
    let mut port = Port::open(&id, ["--capture-output", "--", &fx(), "lines", "2"]);
    assert_eq!(port.recv_exact(14), b"line 1\nline 2\n");
    // The command has exited; the helper waits for the acks so the BEAM never gets :epipe.
    assert_eq!(
        port.exited_within(QUIET),
        None,
        "exited with acks outstanding"
    );
    let start = Instant::now();
    port.ack(14);
    assert_eq!(port.exit_code(), 0);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_gone(&id);
}

#[test]
fn port_close_during_the_ack_wait_keeps_the_commands_exit_code() {
    let id = TestId::new("port-ack-wait-close");
    let mut port = Port::open(
        &id,
        ["--capture-output", "--", "/bin/sh", "-c", "echo hi; exit 3"],
    );
    assert_eq!(port.recv_exact(3), b"hi\n");
    // Once the helper has reaped the command, its exit code is decided.
    assert!(wait_until(SOON, || port.children().is_empty()));
    assert_eq!(
        port.exited_within(Duration::ZERO),
        None,
        "acks are outstanding"
    );
    let start = Instant::now();
    port.close();
    assert_eq!(port.exit_code(), 3);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_gone(&id);
}

#[test]
fn command_gets_no_extra_descriptors() {
    let id = TestId::new("port-fds");
    // Baseline: the fixture started directly, with the same inherited environment.
    let mut direct = Command::new(fixture());
    direct
        .arg("fds")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    id.mark(&mut direct);
    let baseline = direct.output().expect("run the fixture directly");
    let (out, _, code) = run_port(&id, &["--capture-output", "--", &fx(), "fds"]);
    assert_eq!(code, 0);
    assert_eq!(text(&out), text(&baseline.stdout));
    assert!(text(&out).starts_with("fds 0 1 2"), "{:?}", text(&out));
}

#[test]
fn command_runs_with_sigpipe_ignored_and_no_blocked_signals() {
    let id = TestId::new("port-sigpipe");
    let (out, _, code) = run_port(&id, &["--capture-output", "--", &fx(), "sigpipe"]);
    assert_eq!(code, 0);
    assert_eq!(text(&out), "SIGPIPE ignored\nmask 0000000000000000\n");
}

#[test]
fn non_executable_program_is_reported_with_exit_1() {
    let id = TestId::new("port-not-executable");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let (out, err, code) = run_port(&id, &["--capture-output", "--", manifest]);
    assert_eq!(code, 1);
    assert_eq!(text(&out), "");
    assert!(
        err.contains("MUONTRAP: ") && err.contains("Cargo.toml"),
        "{err:?}"
    );
}

#[test]
fn no_program_after_the_options_is_refused() {
    let id = TestId::new("port-no-program");
    let (out, err, code) = run_port(&id, &["--capture-output", "--"]);
    assert_eq!(code, 1);
    assert_eq!(text(&out), "");
    assert!(
        err.contains("MUONTRAP: Specify a program to run"),
        "{err:?}"
    );
}

#[test]
fn ambiguous_prefix_prints_usage_on_stdout_with_exit_1() {
    let id = TestId::new("port-ambiguous");
    let (out, err, code) = run_port(&id, &["--capture", "--", &fx(), "exit", "0"]);
    assert_eq!(code, 1);
    assert!(
        text(&out).starts_with("Usage: muontrap"),
        "{:?}",
        text(&out)
    );
    assert!(err.contains("ambiguous"), "{err:?}");
}
