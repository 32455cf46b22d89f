//! Self-tests of `mt-fixture` and of the test kit: every shape the fixture
//! promises really exists when it says `ready`, and the kit can find, count,
//! kill and prove the absence of it.
//!
//! Building this test also makes cargo build `mt-fixture`, so
//! `cargo test --workspace` provides it to the other crates' tests.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use muontrap_tests::{
    ProcInfo, TestId, marked_processes, wait_for_count, wait_for_line, wait_until_gone, zombies_of,
};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags};

const FIXTURE: &str = env!("CARGO_BIN_EXE_mt-fixture");

/// Generous: only reached when something is broken.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A fixture command carrying `id`'s marker.
fn fixture(id: &TestId, args: &[&str]) -> Command {
    let mut command = Command::new(FIXTURE);
    command.args(args).stdin(Stdio::null());
    id.mark(&mut command);
    command
}

/// Runs the fixture to completion, capturing its output.
fn run(id: &TestId, args: &[&str]) -> Output {
    fixture(id, args).output().expect("spawn mt-fixture")
}

fn stdout_text(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// Spawns the fixture with stdout piped and waits for its `ready` line.
fn spawn_ready(id: &TestId, args: &[&str]) -> (Child, ChildStdout) {
    let mut child = fixture(id, args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn mt-fixture");
    let stdout = child.stdout.take().expect("piped stdout");
    if let Err(err) = wait_for_line(&stdout, "ready", TIMEOUT) {
        panic!("mt-fixture {args:?} never got ready: {err}");
    }
    (child, stdout)
}

/// Kills every marked process, reaps `child`, and proves nothing is left.
fn kill_and_prove_gone(id: &TestId, mut child: Child) {
    id.kill_all();
    child.wait().expect("reap the fixture");
    if let Err(left) = wait_until_gone(id, TIMEOUT) {
        panic!("marked processes left behind: {left:?}");
    }
}

fn live(processes: &[ProcInfo]) -> Vec<&ProcInfo> {
    processes.iter().filter(|p| !p.is_zombie()).collect()
}

/// Whether `pid`'s SIGTERM disposition is "ignore" (bit 15 of SigIgn).
fn ignores_term(pid: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .expect("SigIgn line");
    let mask = u64::from_str_radix(mask.trim(), 16).unwrap();
    mask & (1 << (libc::SIGTERM - 1)) != 0
}

/// The session of `pid`, read from `/proc` rather than `getsid(2)`: the test
/// runner's session is 0 when its leader lives outside this pid namespace (CI
/// containers), which rustix's `getsid` cannot represent.
fn session_of(pid: i32) -> i32 {
    muontrap_tests::process(pid)
        .expect("process is alive")
        .session
}

#[test]
fn exit_code_is_passed_through() {
    let id = TestId::new("exit");
    assert_eq!(run(&id, &["exit", "7"]).status.code(), Some(7));
    assert_eq!(run(&id, &["exit", "0"]).status.code(), Some(0));
}

#[test]
fn signal_kills_the_fixture_with_that_signal() {
    let id = TestId::new("signal");
    for signal in [libc::SIGTERM, libc::SIGKILL, libc::SIGUSR1] {
        let status = run(&id, &["signal", &signal.to_string()]).status;
        assert_eq!(status.signal(), Some(signal), "{status:?}");
    }
}

#[test]
fn bad_usage_exits_2() {
    let id = TestId::new("usage");
    for args in [
        &["nope"][..],
        &["exit"],
        &["exit", "x"],
        &["tree", "3", "--bogus"],
        &[],
    ] {
        let output = run(&id, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?} says why");
    }
}

#[test]
fn print_writes_exactly_the_requested_bytes() {
    let id = TestId::new("print");
    let output = run(&id, &["print", "100000"]);
    assert!(output.status.success());
    assert_eq!(output.stdout.len(), 100_000);
    assert!(output.stdout.starts_with(b"0123456789abcdef0123"));
    assert!(
        output
            .stdout
            .iter()
            .enumerate()
            .all(|(i, &b)| b == b"0123456789abcdef"[i % 16])
    );

    let output = run(&id, &["print", "777", "--stderr"]);
    assert!(output.status.success());
    assert!(output.stdout.is_empty());
    assert_eq!(output.stderr.len(), 777);
}

#[test]
fn lines_and_interleave_write_numbered_lines() {
    let id = TestId::new("lines");
    let output = run(&id, &["lines", "3"]);
    assert_eq!(stdout_text(&output), "line 1\nline 2\nline 3\n");

    let output = run(&id, &["interleave", "2"]);
    assert_eq!(stdout_text(&output), "out 1\nout 2\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err 1\nerr 2\n");
}

#[test]
fn environment_queries_report_what_the_child_sees() {
    let id = TestId::new("env");
    let output = run(&id, &["env", "MUONTRAP_TEST_ID"]);
    assert_eq!(stdout_text(&output), format!("{}\n", id.as_str()));
    let output = run(&id, &["env", "MUONTRAP_SURELY_UNSET_VAR"]);
    assert_eq!(stdout_text(&output), "<unset>\n");

    let output = fixture(&id, &["cwd"]).current_dir("/").output().unwrap();
    assert_eq!(stdout_text(&output), "/\n");

    let output = run(&id, &["argv"]);
    assert_eq!(stdout_text(&output), format!("{FIXTURE}\nargv\n"));

    let output = run(&id, &["id"]);
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    assert!(
        stdout_text(&output).starts_with(&format!("uid={uid} gid={gid} groups=")),
        "{}",
        stdout_text(&output)
    );

    // std's Command restores SIGPIPE to default in the child.
    let output = run(&id, &["sigpipe"]);
    let text = stdout_text(&output);
    assert!(text.starts_with("SIGPIPE default\nmask "), "{text}");
}

#[test]
fn fds_lists_only_inherited_descriptors() {
    let id = TestId::new("fds");
    // The harness may hand us descriptors without close-on-exec; those are
    // inherited by any child, so they are expected too.
    let inherited = muontrap_tests::open_fds().into_iter().filter(|&fd| {
        fd > 2
            && std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).is_ok_and(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                    .is_some_and(|flags| flags & libc::O_CLOEXEC as u32 == 0)
            })
    });
    let expected: Vec<String> = [0, 1, 2]
        .into_iter()
        .chain(inherited)
        .map(|fd| fd.to_string())
        .collect();
    let output = run(&id, &["fds"]);
    assert_eq!(
        stdout_text(&output),
        format!("fds {}\n", expected.join(" "))
    );
}

#[test]
fn cat_copies_stdin_to_stdout() {
    let id = TestId::new("cat");
    let mut child = fixture(&id, &["cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || stdin.write_all(&data))
    };
    let mut echoed = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut echoed)
        .unwrap();
    writer.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(echoed, data);
}

#[test]
fn tree_of_5_is_6_processes_and_all_can_be_killed() {
    let id = TestId::new("tree");
    let (child, _stdout) = spawn_ready(&id, &["tree", "5"]);
    let marked = marked_processes(&id);
    assert_eq!(marked.len(), 6, "{marked:?}");
    let top = child.id() as i32;
    assert_eq!(marked.iter().filter(|p| p.ppid == top).count(), 5);
    kill_and_prove_gone(&id, child);
}

#[test]
fn tree_ignoring_term_passes_it_to_every_child() {
    let id = TestId::new("tree-ignore");
    let (child, _stdout) = spawn_ready(&id, &["tree", "3", "--ignore-term"]);
    let marked = marked_processes(&id);
    assert_eq!(marked.len(), 4);
    assert!(marked.iter().all(|p| ignores_term(p.pid)), "{marked:?}");
    kill_and_prove_gone(&id, child);
}

#[test]
fn grandchildren_are_all_there_at_ready() {
    let id = TestId::new("grandchildren");
    let (child, _stdout) = spawn_ready(&id, &["grandchildren", "4"]);
    let marked = marked_processes(&id);
    assert_eq!(marked.len(), 6, "{marked:?}");
    let top = child.id() as i32;
    let middle: Vec<_> = marked.iter().filter(|p| p.ppid == top).collect();
    assert_eq!(middle.len(), 1);
    assert_eq!(marked.iter().filter(|p| p.ppid == middle[0].pid).count(), 4);
    kill_and_prove_gone(&id, child);
}

#[test]
fn fanout_creates_n_processes_in_total() {
    let id = TestId::new("fanout");
    let (child, _stdout) = spawn_ready(&id, &["fanout", "25"]);
    assert_eq!(marked_processes(&id).len(), 25);
    kill_and_prove_gone(&id, child);
}

#[test]
fn chain_of_20_is_one_line_of_descent() {
    let id = TestId::new("chain");
    let (child, _stdout) = spawn_ready(&id, &["chain", "20"]);
    let marked = marked_processes(&id);
    assert_eq!(marked.len(), 20, "{marked:?}");
    let mut pid = child.id() as i32;
    for _ in 1..20 {
        let kids: Vec<_> = marked.iter().filter(|p| p.ppid == pid).collect();
        assert_eq!(kids.len(), 1, "{pid} in {marked:?}");
        pid = kids[0].pid;
    }
    assert!(
        marked.iter().all(|p| p.ppid != pid),
        "the leaf has no child"
    );
    kill_and_prove_gone(&id, child);
}

#[test]
fn bomb_of_50_stops_at_exactly_50() {
    let id = TestId::new("bomb");
    let (child, _stdout) = spawn_ready(&id, &["bomb", "50"]);
    assert_eq!(marked_processes(&id).len(), 50);
    // Nobody forks after ready: still 50 after a re-scan.
    assert_eq!(wait_for_count(&id, 51, Duration::from_millis(50)), Err(50));
    kill_and_prove_gone(&id, child);
}

#[test]
fn daemon_escapes_the_session_and_outlives_the_top() {
    let id = TestId::new("daemon");
    let mut child = fixture(&id, &["daemon"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = wait_for_line(&stdout, "daemon ", TIMEOUT).unwrap();
    let daemon: i32 = line["daemon ".len()..].parse().unwrap();
    wait_for_line(&stdout, "ready", TIMEOUT).unwrap();
    wait_for_line(&stdout, "ready", TIMEOUT).unwrap();
    assert!(child.wait().unwrap().success());

    let marked = marked_processes(&id);
    let alive = live(&marked);
    assert_eq!(alive.len(), 1, "{marked:?}");
    assert_eq!(alive[0].pid, daemon);
    assert_ne!(session_of(daemon), session_of(std::process::id() as i32));
    assert_ne!(alive[0].ppid, child.id() as i32);

    id.kill_all();
    wait_until_gone(&id, TIMEOUT).expect("daemon killed and reaped");
}

#[test]
fn daemon_with_close_stdout_lets_the_reader_see_eof() {
    let id = TestId::new("daemon-close");
    let mut child = fixture(&id, &["daemon", "--close-stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    assert!(child.wait().unwrap().success());
    let err = wait_for_line(&stdout, "never printed", TIMEOUT).unwrap_err();
    assert!(err.starts_with("EOF"), "{err}");
    assert!(err.contains("ready"), "{err}");
    assert_eq!(live(&marked_processes(&id)).len(), 1, "the daemon lives on");
}

#[test]
fn hold_pipes_keeps_stdout_open_after_the_top_exits() {
    let id = TestId::new("hold-pipes");
    let (mut child, stdout) = spawn_ready(&id, &["hold-pipes"]);
    assert!(child.wait().unwrap().success());
    let err = wait_for_line(&stdout, "x", Duration::from_millis(100)).unwrap_err();
    assert!(err.starts_with("timed out"), "pipe still held: {err}");
    let holders = marked_processes(&id);
    assert_eq!(live(&holders).len(), 1);
    assert_ne!(
        session_of(holders[0].pid),
        session_of(std::process::id() as i32)
    );
    id.kill_all();
    let err = wait_for_line(&stdout, "x", TIMEOUT).unwrap_err();
    assert!(err.starts_with("EOF"), "{err}");
}

#[test]
fn exited_but_unreaped_child_counts_as_a_zombie() {
    let id = TestId::new("zombie");
    let (mut child, _stdout) = spawn_ready(&id, &["forever"]);
    let pid = child.id() as i32;
    assert_eq!(wait_for_count(&id, 1, TIMEOUT), Ok(1));
    child.kill().unwrap();
    // Not reaped yet: the exited child must still be reported, as a zombie.
    let mut marked = marked_processes(&id);
    while !marked.first().is_some_and(ProcInfo::is_zombie) {
        std::thread::sleep(Duration::from_millis(1));
        marked = marked_processes(&id);
        assert_eq!(marked.len(), 1, "{marked:?}");
    }
    assert!(
        zombies_of(std::process::id() as i32)
            .iter()
            .any(|z| z.pid == pid)
    );
    child.wait().unwrap();
    wait_until_gone(&id, TIMEOUT).expect("gone once reaped");
}

#[test]
fn dropping_the_test_id_kills_the_tree() {
    let id = TestId::new("drop");
    let (mut child, _stdout) = spawn_ready(&id, &["tree", "4", "--ignore-term"]);
    let pidfds: Vec<OwnedFd> = marked_processes(&id)
        .iter()
        .map(|p| {
            rustix::process::pidfd_open(Pid::from_raw(p.pid).unwrap(), PidfdFlags::empty()).unwrap()
        })
        .collect();
    assert_eq!(pidfds.len(), 5);
    drop(id);
    // A pidfd polls readable once its process has exited.
    let timeout = Timespec::try_from(TIMEOUT).unwrap();
    for pidfd in &pidfds {
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        assert_eq!(rustix::event::poll(&mut fds, Some(&timeout)), Ok(1));
    }
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn alloc_and_spin_run() {
    let id = TestId::new("alloc");
    let (child, _stdout) = spawn_ready(&id, &["alloc", "8"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib >= 8 * 1024, "RSS {rss_kib} KiB");
    kill_and_prove_gone(&id, child);

    assert!(run(&id, &["spin", "20"]).status.success());
    assert!(run(&id, &["sleep", "1"]).status.success());
}
