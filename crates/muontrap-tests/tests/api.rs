//! The public API, black-box: output capture, statuses, waiting, signals, stdio options,
//! streaming with backpressure, input errors, credentials and the async face. Every command
//! carries the test marker, so each test also proves that nothing it started is left.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use muontrap::{Command, Error, Outcome, Stdio, Stream};
use muontrap_tests::{
    MARKER_VAR, TestId, fixture, marked_processes, skip, wait_for_count, wait_for_line,
    wait_until_gone,
};

/// Generous: only reached when something is broken.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
const DELAY: Duration = Duration::from_millis(200);
const GONE_BOUND: Duration = Duration::from_millis(1000 + DELAY.as_millis() as u64);

/// The fixture running `args`, marked with `id`.
fn fixture_command(id: &TestId, args: &[&str]) -> Command {
    let mut cmd = Command::new(fixture());
    cmd.args(args)
        .env(MARKER_VAR, id.as_str())
        .delay_to_sigkill(DELAY);
    cmd
}

/// Spawns the fixture with piped stdout and waits for its `ready` line.
fn spawn_ready(id: &TestId, args: &[&str]) -> muontrap::Child {
    let child = fixture_command(id, args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Err(e) = wait_for_line(
        child.stdout.as_ref().expect("piped"),
        "ready",
        SETUP_TIMEOUT,
    ) {
        panic!("{args:?}: {e}");
    }
    child
}

fn assert_none_left(id: &TestId) {
    let left = marked_processes(id);
    assert!(left.is_empty(), "marked processes left: {left:?}");
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

/// A throwaway directory, removed on drop (a local helper: the kit has none public).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "muontrap-api-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// output(), statuses, cmd().
// ---------------------------------------------------------------------------------------------

#[test]
fn output_captures_stdout_and_stderr_exactly() {
    let id = TestId::new("output");
    let out = fixture_command(&id, &["print", "100000"])
        .output()
        .expect("output");
    assert!(
        matches!(out.outcome, Outcome::Exited(_)),
        "{:?}",
        out.outcome
    );
    assert!(out.outcome.success());
    assert_eq!(out.stdout.len(), 100_000);
    let pattern = b"0123456789abcdef";
    assert!(
        out.stdout
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern[i % 16])
    );
    assert!(out.stderr.is_empty());

    let err = fixture_command(&id, &["print", "70000", "--stderr"])
        .output()
        .expect("output");
    assert!(err.stdout.is_empty());
    assert_eq!(err.stderr.len(), 70_000);
    assert_none_left(&id);
}

#[test]
fn output_reports_exit_code_and_signal() {
    let id = TestId::new("status");
    let out = fixture_command(&id, &["exit", "7"])
        .output()
        .expect("output");
    let status = out.outcome.status().expect("not timed out");
    assert_eq!(status.code(), Some(7));
    assert!(!out.outcome.success());

    let out = fixture_command(&id, &["signal", "15"])
        .output()
        .expect("output");
    let status = out.outcome.status().expect("not timed out");
    assert_eq!(status.code(), None);
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_none_left(&id);
}

#[test]
fn cmd_runs_a_program_from_path() {
    let out = muontrap::cmd("echo", ["hello"]).expect("cmd");
    assert_eq!(out.stdout, b"hello\n");
    assert!(out.outcome.success());
}

#[test]
fn timeout_gives_timed_out_with_partial_output() {
    let id = TestId::new("timeout-output");
    let start = Instant::now();
    let out = Command::new("sh")
        .args(["-c", "echo start; sleep 10; echo end"])
        .env(MARKER_VAR, id.as_str())
        .timeout(Duration::from_millis(100))
        .delay_to_sigkill(DELAY)
        .output()
        .expect("output");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    match out.outcome {
        Outcome::TimedOut { after, status } => {
            assert_eq!(after, Duration::from_millis(100));
            assert_eq!(status.signal(), Some(libc::SIGTERM));
        }
        other => panic!("expected TimedOut, got {other:?}"),
    }
    assert_eq!(out.outcome.status(), None);
    assert!(!out.outcome.success());
    assert_eq!(text(&out.stdout), "start\n");
    assert_none_left(&id);
}

#[test]
fn wait_after_timeout_is_a_timed_out_error() {
    let id = TestId::new("timeout-wait");
    let mut child = fixture_command(&id, &["forever"])
        .stdout(Stdio::null())
        .timeout(Duration::from_millis(100))
        .spawn()
        .expect("spawn");
    match child.wait() {
        Err(Error::TimedOut { timeout, status }) => {
            assert_eq!(timeout, Duration::from_millis(100));
            assert_eq!(status.signal(), Some(libc::SIGTERM));
        }
        other => panic!("expected TimedOut, got {other:?}"),
    }
    // Again: the same answer.
    assert!(matches!(child.wait(), Err(Error::TimedOut { .. })));
    assert!(child.timed_out());
    assert_none_left(&id);
}

// ---------------------------------------------------------------------------------------------
// Waiting and signals.
// ---------------------------------------------------------------------------------------------

#[test]
fn waiting_twice_returns_the_same_status() {
    let id = TestId::new("wait-twice");
    let mut child = fixture_command(&id, &["exit", "5"]).spawn().expect("spawn");
    let first = child.wait().expect("wait");
    let second = child.wait().expect("wait again");
    assert_eq!(first.code(), Some(5));
    assert_eq!(first, second);
    assert_eq!(child.try_wait().expect("try_wait"), Some(first));
    assert_none_left(&id);
}

#[test]
fn try_wait_is_none_while_running_then_some() {
    let id = TestId::new("try-wait");
    // `cat` runs until its stdin closes: deterministic "still running".
    let mut child = fixture_command(&id, &["cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    assert_eq!(child.try_wait().expect("try_wait"), None);
    assert_eq!(child.try_wait().expect("try_wait"), None);
    drop(child.stdin.take());
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "cat did not end after EOF");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(status.success());
    assert_none_left(&id);
}

#[test]
fn kill_then_wait_reports_sigkill() {
    let id = TestId::new("kill");
    let grace = Duration::from_secs(2);
    let mut child = fixture_command(&id, &["tree", "3", "--ignore-term"])
        .stdout(Stdio::piped())
        .delay_to_sigkill(grace)
        .spawn()
        .expect("spawn");
    wait_for_line(
        child.stdout.as_ref().expect("piped"),
        "ready",
        SETUP_TIMEOUT,
    )
    .expect("ready");
    wait_for_count(&id, 4, SETUP_TIMEOUT).expect("tree up");
    let start = Instant::now();
    child.kill().expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // SIGKILL at once: no grace period for a SIGTERM-ignoring tree.
    assert!(start.elapsed() < grace, "{:?}", start.elapsed());
    assert_none_left(&id);
}

#[test]
fn signal_reaches_the_main_process() {
    let id = TestId::new("signal");
    let mut child = spawn_ready(&id, &["forever"]);
    child.signal(libc::SIGUSR1).expect("signal");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGUSR1));
    assert_none_left(&id);
}

#[test]
fn terminate_waits_out_the_grace_period_for_a_sigterm_ignoring_tree() {
    let id = TestId::new("terminate-ignore");
    let mut child = spawn_ready(&id, &["tree", "3", "--ignore-term"]);
    wait_for_count(&id, 4, SETUP_TIMEOUT).expect("tree up");
    let start = Instant::now();
    let status = child.terminate().expect("terminate");
    let took = start.elapsed();
    assert!(took >= DELAY, "terminate took only {took:?}");
    assert!(took < GONE_BOUND, "terminate took {took:?}");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_none_left(&id);
}

#[test]
fn detached_tree_outlives_the_handle() {
    let id = TestId::new("detach");
    let child = spawn_ready(&id, &["tree", "2"]);
    wait_for_count(&id, 3, SETUP_TIMEOUT).expect("tree up");
    child.detach();
    // Waiting for a negative: a stop would have finished well within this (grace 200 ms).
    std::thread::sleep(DELAY + Duration::from_millis(300));
    let alive: Vec<_> = marked_processes(&id)
        .into_iter()
        .filter(|p| !p.is_zombie())
        .collect();
    assert_eq!(alive.len(), 3, "the detached tree: {alive:?}");
    // The detached keeper still reaps: once killed, nothing (not even a zombie) is left.
    id.kill_all();
    if let Err(left) = wait_until_gone(&id, GONE_BOUND) {
        panic!("left after killing the detached tree: {left:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Environment, directory, argv, stdio.
// ---------------------------------------------------------------------------------------------

fn run_line(cmd: &mut Command) -> String {
    let out = cmd.output().expect("output");
    assert!(out.outcome.success(), "{out:?}");
    text(&out.stdout).trim_end_matches('\n').to_owned()
}

#[test]
fn env_sets_removes_and_clears_variables() {
    let id = TestId::new("env");
    assert_eq!(
        run_line(fixture_command(&id, &["env", "MT_API_VAR"]).env("MT_API_VAR", "some value")),
        "some value"
    );
    assert!(std::env::var_os("PATH").is_some());
    assert_eq!(
        run_line(fixture_command(&id, &["env", "PATH"]).env_remove("PATH")),
        "<unset>"
    );
    assert_eq!(
        run_line(
            fixture_command(&id, &["env", "MT_API_VAR"])
                .env("MT_API_VAR", "x")
                .env_remove("MT_API_VAR")
        ),
        "<unset>"
    );
    // After env_clear only what is set afterwards exists; the program path is absolute
    // because there is no PATH.
    let cleared = |name: &str| {
        run_line(
            Command::new(fixture())
                .args(["env", name])
                .env("MT_API_VAR", "dropped")
                .env_clear()
                .env(MARKER_VAR, id.as_str())
                .env("ONLY", "1"),
        )
    };
    assert_eq!(cleared("PATH"), "<unset>");
    assert_eq!(cleared("MT_API_VAR"), "<unset>");
    assert_eq!(cleared("ONLY"), "1");
    assert_eq!(cleared(MARKER_VAR), id.as_str());
    assert_none_left(&id);
}

#[test]
fn current_dir_and_arg0_are_applied() {
    let id = TestId::new("cwd");
    let dir = TempDir::new("cwd");
    let canonical = dir.0.canonicalize().expect("canonicalize");
    assert_eq!(
        run_line(fixture_command(&id, &["cwd"]).current_dir(&dir.0)),
        canonical.to_str().expect("UTF-8 path")
    );
    assert_eq!(
        run_line(fixture_command(&id, &["argv", "a b", "c"]).arg0("custom-name")),
        "custom-name\nargv\na b\nc"
    );
    assert_none_left(&id);
}

#[test]
fn piped_stdin_reaches_the_command() {
    let id = TestId::new("stdin");
    let mut child = fixture_command(&id, &["cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    // More than a pipe holds, written from another thread while we read.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut stdin = child.stdin.take().expect("piped");
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || stdin.write_all(&data))
    };
    let mut echoed = Vec::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_end(&mut echoed)
        .expect("read");
    writer.join().expect("writer").expect("write");
    assert!(child.wait().expect("wait").success());
    assert!(
        echoed == data,
        "echoed {} of {} bytes",
        echoed.len(),
        data.len()
    );
    assert_none_left(&id);
}

#[test]
fn stderr_to_stdout_keeps_the_order_on_one_pipe() {
    let id = TestId::new("merge");
    let out = fixture_command(&id, &["interleave", "50"])
        .stderr_to_stdout(true)
        .output()
        .expect("output");
    let expected: String = (1..=50).map(|i| format!("out {i}\nerr {i}\n")).collect();
    assert_eq!(text(&out.stdout), expected);
    assert!(out.stderr.is_empty());
    assert_none_left(&id);
}

#[test]
fn capture_stderr_only_drops_stdout() {
    let id = TestId::new("stderr-only");
    let out = fixture_command(&id, &["interleave", "5"])
        .capture_stderr_only(true)
        .output()
        .expect("output");
    let expected: String = (1..=5).map(|i| format!("err {i}\n")).collect();
    assert_eq!(text(&out.stderr), expected);
    assert!(out.stdout.is_empty(), "stdout: {:?}", text(&out.stdout));
    assert_none_left(&id);
}

// ---------------------------------------------------------------------------------------------
// Streaming.
// ---------------------------------------------------------------------------------------------

/// Runs `cmd` through `for_each_line`, collecting (stream, line).
fn lines_of(cmd: &mut Command, max_line: usize) -> (Outcome, Vec<(Stream, String)>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = Vec::new();
    let outcome = child
        .for_each_line(max_line, |s, l| lines.push((s, text(l).to_owned())))
        .expect("for_each_line");
    (outcome, lines)
}

#[test]
fn for_each_line_splits_lines_and_tags_streams() {
    let id = TestId::new("lines");
    let (outcome, lines) = lines_of(&mut fixture_command(&id, &["lines", "1000"]), 4096);
    assert!(outcome.success());
    let expected: Vec<(Stream, String)> = (1..=1000)
        .map(|i| (Stream::Stdout, format!("line {i}")))
        .collect();
    assert_eq!(lines, expected);

    let (_, lines) = lines_of(&mut fixture_command(&id, &["interleave", "3"]), 4096);
    let errs: Vec<&str> = lines
        .iter()
        .filter(|(s, _)| *s == Stream::Stderr)
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(errs, ["err 1", "err 2", "err 3"]);
    assert_eq!(lines.len(), 6);
    assert_none_left(&id);
}

#[test]
fn for_each_line_splits_long_lines_and_delivers_a_partial_last_line() {
    let id = TestId::new("long-lines");
    // 100 bytes without a newline, max_line 30: pieces of 30, 30, 30, then the last 10.
    let (outcome, lines) = lines_of(&mut fixture_command(&id, &["print", "100"]), 30);
    assert!(outcome.success());
    let pieces: Vec<usize> = lines.iter().map(|(_, l)| l.len()).collect();
    assert_eq!(pieces, [30, 30, 30, 10]);
    let joined: String = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(joined.len(), 100);
    assert!(joined.starts_with("0123456789abcdef0123"));

    let (_, lines) = lines_of(
        Command::new("sh")
            .args(["-c", "printf 'a\\nb'"])
            .env(MARKER_VAR, id.as_str()),
        30,
    );
    assert_eq!(
        lines,
        [
            (Stream::Stdout, "a".to_owned()),
            (Stream::Stdout, "b".to_owned())
        ]
    );
    assert_none_left(&id);
}

/// State letter of `/proc/<pid>/stat`.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

#[test]
fn a_slow_reader_blocks_the_writer() {
    let id = TestId::new("backpressure");
    const TOTAL: usize = 50_000_000;
    let mut child = fixture_command(&id, &["print", &TOTAL.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("piped");
    let mut buf = vec![0u8; 1024];
    stdout.read_exact(&mut buf).expect("first KiB");
    // Waiting for a negative: the writer must not finish while nobody reads.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(child.try_wait().expect("try_wait"), None);
    // Blocked in pipe_write: sleeping, not running.
    assert_eq!(proc_state(child.id()), Some('S'));
    let mut total = buf.len();
    let mut big = vec![0u8; 64 * 1024];
    loop {
        match stdout.read(&mut big).expect("read") {
            0 => break,
            n => total += n,
        }
    }
    assert_eq!(total, TOTAL);
    assert!(child.wait().expect("wait").success());
    assert_none_left(&id);
}

// ---------------------------------------------------------------------------------------------
// Bad input: the specific error, and nothing spawned.
// ---------------------------------------------------------------------------------------------

/// Spawns `cmd` (marked with a fresh id) expecting an error; asserts nothing ran.
fn spawn_error(name: &str, cmd: &mut Command) -> Error {
    let id = TestId::new(name);
    cmd.env(MARKER_VAR, id.as_str());
    match cmd.spawn() {
        Ok(mut child) => {
            let _ = child.kill();
            panic!("{name}: spawn succeeded");
        }
        Err(e) => {
            assert_none_left(&id);
            e
        }
    }
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let e = spawn_error(
        "missing",
        &mut Command::new("muontrap-no-such-program-anywhere"),
    );
    assert!(
        matches!(e, Error::ProgramNotFound { ref program } if program == "muontrap-no-such-program-anywhere"),
        "{e:?}"
    );
    let e = spawn_error("missing-path", &mut Command::new("/nonexistent/bin/x"));
    assert!(matches!(e, Error::ProgramNotFound { .. }), "{e:?}");

    let dir = TempDir::new("notexec");
    let file = dir.0.join("script");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = spawn_error("notexec", &mut Command::new(&file));
    assert!(
        matches!(e, Error::NotExecutable { ref path } if *path == file),
        "{e:?}"
    );

    let e = spawn_error("directory", &mut Command::new(&dir.0));
    assert!(matches!(e, Error::NotExecutable { .. }), "{e:?}");

    let e = spawn_error("user", Command::new(fixture()).uid("muontrap-no-such-user"));
    assert!(
        matches!(e, Error::UnknownUser(ref u) if u == "muontrap-no-such-user"),
        "{e:?}"
    );
    let e = spawn_error(
        "group",
        Command::new(fixture()).gid("muontrap-no-such-group"),
    );
    assert!(
        matches!(e, Error::UnknownGroup(ref g) if g == "muontrap-no-such-group"),
        "{e:?}"
    );
    let e = spawn_error(
        "groups",
        Command::new(fixture()).groups(["muontrap-no-such-group"]),
    );
    assert!(matches!(e, Error::UnknownGroup(_)), "{e:?}");

    let e = spawn_error("uid0", Command::new(fixture()).uid(0));
    assert!(matches!(e, Error::RootRefused { what: "user" }), "{e:?}");
    let e = spawn_error("root", Command::new(fixture()).uid("root"));
    assert!(matches!(e, Error::RootRefused { what: "user" }), "{e:?}");
    let e = spawn_error("gid0", Command::new(fixture()).gid(0));
    assert!(matches!(e, Error::RootRefused { what: "group" }), "{e:?}");
    let e = spawn_error("groups0", Command::new(fixture()).groups([0u32]));
    assert!(matches!(e, Error::RootRefused { .. }), "{e:?}");

    let e = spawn_error("nul", Command::new(fixture()).args(["env", "a\0b"]));
    assert!(matches!(e, Error::NulByte { .. }), "{e:?}");
    let e = spawn_error("nul-env", Command::new(fixture()).env("A", "x\0y"));
    assert!(matches!(e, Error::NulByte { .. }), "{e:?}");

    let e = spawn_error("env-name", Command::new(fixture()).env("A=B", "x"));
    assert!(
        matches!(e, Error::InvalidEnvName { ref name } if name == "A=B"),
        "{e:?}"
    );

    let e = spawn_error(
        "cwd",
        Command::new(fixture()).current_dir("/nonexistent/muontrap/dir"),
    );
    assert!(matches!(e, Error::BadDirectory { .. }), "{e:?}");
    let e = spawn_error("cwd-file", Command::new(fixture()).current_dir(&file));
    assert!(matches!(e, Error::BadDirectory { .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// Credentials (need root).
// ---------------------------------------------------------------------------------------------

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn named_user_gets_its_primary_and_supplementary_groups() {
    if !is_root() {
        skip("needs root to change credentials");
        return;
    }
    let id = TestId::new("nobody");
    assert_eq!(
        run_line(fixture_command(&id, &["id"]).uid("nobody")),
        "uid=65534 gid=65534 groups=65534"
    );
    assert_none_left(&id);
}

#[test]
fn explicit_ids_with_no_groups_drop_supplementary_groups() {
    if !is_root() {
        skip("needs root to change credentials");
        return;
    }
    let id = TestId::new("ids");
    assert_eq!(
        run_line(
            fixture_command(&id, &["id"])
                .uid(65534)
                .gid(65534)
                .groups(Vec::<u32>::new())
        ),
        "uid=65534 gid=65534 groups="
    );
    assert_none_left(&id);
}

// ---------------------------------------------------------------------------------------------
// Async, signal state.
// ---------------------------------------------------------------------------------------------

#[test]
fn wait_async_waits_for_many_commands_concurrently() {
    let id = TestId::new("async");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for code in 0..20 {
            let mut child = fixture_command(&id, &["exit", &code.to_string()])
                .spawn()
                .expect("spawn");
            set.spawn(async move { (code, child.wait_async().await) });
        }
        let mut seen = 0;
        while let Some(joined) = set.join_next().await {
            let (code, status) = joined.expect("task");
            assert_eq!(status.expect("wait_async").code(), Some(code));
            seen += 1;
        }
        assert_eq!(seen, 20);

        let mut child = spawn_ready(&id, &["tree", "3"]);
        let status = child.terminate_async().await.expect("terminate_async");
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    });
    assert_none_left(&id);
}

#[test]
fn command_starts_with_default_sigpipe_and_empty_mask() {
    let id = TestId::new("sigpipe");
    // The test harness (a Rust program) ignores SIGPIPE; the command must not inherit that.
    assert_eq!(
        run_line(&mut fixture_command(&id, &["sigpipe"])),
        "SIGPIPE default\nmask 0000000000000000"
    );
    assert_none_left(&id);
}

#[test]
fn command_starts_with_no_ignored_signal_at_all() {
    let id = TestId::new("sigign");
    // The keeper ignores SIGINT, SIGQUIT and SIGHUP (terminal signals must not kill it before
    // it can clean up), and processes started by glibc's posix_spawn inherit glibc's internal
    // signals 32 and 33 as ignored: none of that may reach the command.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "grep SigIgn /proc/self/status"])
        .env(MARKER_VAR, id.as_str());
    assert_eq!(run_line(&mut cmd), "SigIgn:\t0000000000000000");
    assert_none_left(&id);
}

#[test]
fn a_command_can_be_spawned_again_with_the_same_stdio() {
    let id = TestId::new("respawn");
    let mut cmd = fixture_command(&id, &["lines", "2"]);
    cmd.stdout(Stdio::piped());
    for _ in 0..2 {
        let out = cmd.output().expect("output");
        assert_eq!(text(&out.stdout), "line 1\nline 2\n");
    }
    // A descriptor given as Stdio::from(..) is duplicated per spawn, not used up.
    let path = std::env::temp_dir().join(format!("mt-respawn-{}", std::process::id()));
    let file = std::fs::File::create(&path).expect("create");
    let mut cmd = fixture_command(&id, &["lines", "1"]);
    cmd.stdout(Stdio::from(file));
    for _ in 0..2 {
        assert!(cmd.status().expect("status").success());
    }
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "line 1\nline 1\n"
    );
    std::fs::remove_file(&path).expect("cleanup");
    assert_none_left(&id);
}
