//! Containment: every process shape dies with its owner, however the owner lets go.
//!
//! The matrix is process shapes ([`TREES`]) × ways the owner lets go (one `#[test]` per way,
//! each running every shape through one function). In-process owners: dropping the handle,
//! `terminate()`, a panic unwinding past the handle, the command's timeout. Owners that are a
//! real process (`mt-owner`, a multi-threaded tokio program): `std::process::exit`, a panic,
//! SIGKILL. Every case proves absence: no process carrying the test's marker is left (zombies
//! included), within 1 s + `delay_to_sigkill` where the stop is asynchronous, and at once where
//! the API promises the tree is already gone when it returns.
//!
//! Tests that look at process-wide state (our zombies, our descriptors) must not overlap with
//! tests that spawn: they take [`QUIET`] for writing, every other test takes it for reading.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::panic::AssertUnwindSafe;
use std::process::Stdio;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use muontrap::Command;
use muontrap_tests::{
    MARKER_VAR, TestId, fixture, marked_processes, open_fds, wait_for_count, wait_for_line,
    wait_until_gone, zombies_of,
};

/// Grace period between SIGTERM and SIGKILL for every command here.
const DELAY: Duration = Duration::from_millis(200);
/// How long an asynchronous stop (drop, owner death) may take.
const GONE_BOUND: Duration = Duration::from_millis(1000 + DELAY.as_millis() as u64);
/// Generous: only reached when something is broken.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// The command timeout of the timeout case: long enough for the biggest shape to get ready.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);

/// A process shape built by `mt-fixture`.
struct Tree {
    args: &'static [&'static str],
    /// Processes that exist once the fixture is ready.
    processes: usize,
    /// `ready` lines printed until every process exists (a daemon prints its own first).
    ready_lines: usize,
}

const TREES: [Tree; 5] = [
    Tree {
        args: &["forever"],
        processes: 1,
        ready_lines: 1,
    },
    Tree {
        args: &["grandchildren", "5"],
        processes: 7,
        ready_lines: 1,
    },
    Tree {
        args: &["daemon", "--stay"],
        processes: 2,
        ready_lines: 2,
    },
    Tree {
        args: &["tree", "5", "--ignore-term"],
        processes: 6,
        ready_lines: 1,
    },
    Tree {
        args: &["fanout", "200"],
        processes: 200,
        ready_lines: 1,
    },
];

static QUIET: RwLock<()> = RwLock::new(());

/// Shared access: this test spawns but does not look at process-wide state.
fn spawning() -> RwLockReadGuard<'static, ()> {
    QUIET.read().unwrap_or_else(|e| e.into_inner())
}

/// Exclusive access: no other test of this binary is spawning or waiting meanwhile.
fn alone() -> RwLockWriteGuard<'static, ()> {
    QUIET.write().unwrap_or_else(|e| e.into_inner())
}

/// The fixture running `args`, marked with `id`, stdout piped.
fn fixture_command(id: &TestId, args: &[&str]) -> Command {
    let mut cmd = Command::new(fixture());
    cmd.args(args)
        .env(MARKER_VAR, id.as_str())
        .stdin(muontrap::Stdio::null())
        .stdout(muontrap::Stdio::piped())
        .delay_to_sigkill(DELAY);
    cmd
}

/// Spawns `tree`, waits until all of it exists and makes `id` remember every member (so a
/// member left as a zombie still counts as not gone).
fn spawn_tree(id: &TestId, tree: &Tree, configure: impl FnOnce(&mut Command)) -> muontrap::Child {
    let mut cmd = fixture_command(id, tree.args);
    configure(&mut cmd);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {:?}: {e}", tree.args));
    let stdout = child.stdout.as_ref().expect("stdout is piped");
    for _ in 0..tree.ready_lines {
        if let Err(e) = wait_for_line(stdout, "ready", SETUP_TIMEOUT) {
            panic!("{:?} never got ready: {e}", tree.args);
        }
    }
    expect_tree_up(id, tree);
    child
}

fn expect_tree_up(id: &TestId, tree: &Tree) {
    if let Err(seen) = wait_for_count(id, tree.processes, SETUP_TIMEOUT) {
        panic!(
            "{:?}: expected {} processes, saw {seen}",
            tree.args, tree.processes
        );
    }
}

/// Nothing marked is left within [`GONE_BOUND`].
fn assert_gone_soon(id: &TestId, tree: &Tree, how: &str) {
    if let Err(left) = wait_until_gone(id, GONE_BOUND) {
        panic!(
            "{:?}: {} processes left {GONE_BOUND:?} after {how}: {left:?}",
            tree.args,
            left.len()
        );
    }
}

/// Nothing marked is left right now (the API promised the tree is gone).
fn assert_gone_now(id: &TestId, tree: &Tree, how: &str) {
    let left = marked_processes(id);
    assert!(
        left.is_empty(),
        "{:?}: {} processes left right after {how} returned: {left:?}",
        tree.args,
        left.len()
    );
}

/// Our own unreaped children, checked while no other test spawns or waits.
fn assert_no_zombie_children() {
    let _alone = alone();
    let zombies = zombies_of(std::process::id() as i32);
    assert!(
        zombies.is_empty(),
        "zombie children of the test: {zombies:?}"
    );
}

/// Runs `case` for every shape, then checks that the test process has no zombie children.
fn for_every_tree(name: &str, case: impl Fn(&TestId, &Tree)) {
    {
        let _shared = spawning();
        for tree in &TREES {
            let id = TestId::new(name);
            case(&id, tree);
        }
    }
    assert_no_zombie_children();
}

/// [`for_every_tree`], all shapes at once (for a case that spends most of its time waiting).
fn for_every_tree_concurrently(name: &str, case: impl Fn(&TestId, &Tree) + Sync) {
    {
        let _shared = spawning();
        std::thread::scope(|s| {
            for tree in &TREES {
                let case = &case;
                s.spawn(move || case(&TestId::new(name), tree));
            }
        });
    }
    assert_no_zombie_children();
}

// ---------------------------------------------------------------------------------------------
// In-process owners.
// ---------------------------------------------------------------------------------------------

#[test]
fn dropping_the_handle_stops_every_tree() {
    for_every_tree("drop", |id, tree| {
        let child = spawn_tree(id, tree, |_| {});
        let start = Instant::now();
        drop(child);
        // A blocking drop would take at least the grace period for the SIGTERM-ignoring tree.
        assert!(
            start.elapsed() < DELAY,
            "drop blocked for {:?}",
            start.elapsed()
        );
        assert_gone_soon(id, tree, "dropping the handle");
    });
}

#[test]
fn terminate_returns_after_every_tree_is_gone() {
    for_every_tree("terminate", |id, tree| {
        let mut child = spawn_tree(id, tree, |_| {});
        let status = child.terminate().expect("terminate");
        // The main process ignores SIGTERM in the `--ignore-term` shape only.
        let expected = if tree.args.contains(&"--ignore-term") {
            libc::SIGKILL
        } else {
            libc::SIGTERM
        };
        assert_eq!(status.signal(), Some(expected), "{:?}", tree.args);
        assert_gone_now(id, tree, "terminate()");
    });
}

#[test]
fn panic_unwinding_past_the_handle_stops_every_tree() {
    for_every_tree("panic", |id, tree| {
        let unwound = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _child = spawn_tree(id, tree, |_| {});
            // `resume_unwind` unwinds like a panic without calling the panic hook, so the test
            // output is not cluttered with a message for every shape.
            std::panic::resume_unwind(Box::new("the owner panics"));
        }));
        assert!(unwound.is_err());
        assert_gone_soon(id, tree, "a panic unwound past the handle");
    });
}

#[test]
fn timeout_stops_every_tree_before_wait_returns() {
    for_every_tree_concurrently("timeout", |id, tree| {
        let mut child = spawn_tree(id, tree, |cmd| {
            cmd.timeout(COMMAND_TIMEOUT);
        });
        match child.wait() {
            Err(muontrap::Error::TimedOut { timeout, .. }) => {
                assert_eq!(timeout, COMMAND_TIMEOUT)
            }
            other => panic!("{:?}: expected TimedOut, got {other:?}", tree.args),
        }
        assert!(child.timed_out());
        assert_gone_now(id, tree, "wait() after the timeout");
    });
}

#[test]
fn a_sigkilled_keeper_takes_its_tree_with_it() {
    // The keeper is the tree's subreaper; if it is SIGKILLed (the OOM killer, a stray
    // `kill -9`), the command dies with it (PDEATHSIG) and its orphans are re-parented to the
    // keeper server, which must kill and reap them.
    for_every_tree("keeper-kill", |id, tree| {
        let mut child = spawn_tree(id, tree, |_| {});
        muontrap_tests::sigkill_keeper_of(child.id() as i32);
        assert_gone_soon(id, tree, "its keeper was SIGKILLed");
        assert!(
            matches!(child.wait(), Err(muontrap::Error::KeeperLost)),
            "wait() reports the lost keeper"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// The owner as a real process: `mt-owner`.
// ---------------------------------------------------------------------------------------------

/// Environment entry that marks an `mt-owner` process and everything it starts: its keeper
/// server and keepers (re-execs and forks of the owner) and, by inheritance, the command.
/// Unlike the test marker it is only used to find *live* processes: orphaned keepers are
/// re-parented to init, which may reap them lazily, so their zombies are not ours to count.
const OWNER_VAR: &str = "MT_OWNER_TEST_ID";

#[derive(Clone, Copy, Debug)]
enum OwnerEnd {
    /// `std::process::exit(3)` in the owner.
    Exit,
    /// A panic on the owner's main thread.
    Panic,
    /// The test SIGKILLs the owner.
    Sigkill,
}

/// An `mt-owner` process, SIGKILLed and reaped if the test fails half-way.
struct Owner(std::process::Child);

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Live processes whose environment holds `OWNER_VAR=value` (a local helper: the test kit's
/// marker scan also remembers zombies, which is wrong for processes re-parented to init).
fn live_owner_processes(value: &str) -> Vec<i32> {
    let entry = format!("{OWNER_VAR}={value}").into_bytes();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == entry.as_slice()))
        })
        .collect()
}

fn owner_case(id: &TestId, tree: &Tree, end: OwnerEnd) {
    let mode = match end {
        OwnerEnd::Exit => "exit",
        OwnerEnd::Panic => "panic",
        OwnerEnd::Sigkill => "wait",
    };
    let mut owner = Owner(
        std::process::Command::new(env!("CARGO_BIN_EXE_mt-owner"))
            .arg(mode)
            .arg(id.as_str())
            .arg(DELAY.as_millis().to_string())
            .args(tree.args)
            .env(OWNER_VAR, id.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn mt-owner"),
    );
    let stdout = owner.0.stdout.take().expect("piped");
    if let Err(e) = wait_for_line(&stdout, "ready", SETUP_TIMEOUT) {
        panic!("mt-owner {mode} {:?}: {e}", tree.args);
    }
    expect_tree_up(id, tree);
    match end {
        OwnerEnd::Sigkill => owner.0.kill().expect("SIGKILL the owner"),
        // Closing its stdin is the owner's cue to exit or panic.
        OwnerEnd::Exit | OwnerEnd::Panic => drop(owner.0.stdin.take()),
    }
    let status = owner.0.wait().expect("reap the owner");
    match end {
        OwnerEnd::Exit => assert_eq!(status.code(), Some(3), "{:?}", tree.args),
        OwnerEnd::Panic => assert_eq!(status.code(), Some(101), "{:?}", tree.args),
        OwnerEnd::Sigkill => assert_eq!(status.signal(), Some(libc::SIGKILL)),
    }
    assert_gone_soon(id, tree, &format!("the owner ended ({end:?})"));
    // The owner's keeper server and keepers go too, once the tree is stopped.
    let start = Instant::now();
    loop {
        let live = live_owner_processes(id.as_str());
        if live.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < GONE_BOUND,
            "{:?}: the dead owner's processes are still running: {live:?}",
            tree.args
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn owner_process_exit_stops_every_tree() {
    for_every_tree("owner-exit", |id, tree| {
        owner_case(id, tree, OwnerEnd::Exit)
    });
}

#[test]
fn owner_panic_stops_every_tree() {
    for_every_tree("owner-panic", |id, tree| {
        owner_case(id, tree, OwnerEnd::Panic)
    });
}

#[test]
fn owner_sigkill_stops_every_tree() {
    for_every_tree("owner-kill", |id, tree| {
        owner_case(id, tree, OwnerEnd::Sigkill)
    });
}

// ---------------------------------------------------------------------------------------------
// What `wait()` promises, and what spawning leaves behind.
// ---------------------------------------------------------------------------------------------

#[test]
fn wait_returns_only_after_a_left_behind_daemon_is_gone() {
    let _shared = spawning();
    let id = TestId::new("wait-daemon");
    // A shell starts a setsid'd, double-forked daemon and then exits 0 once its stdin closes
    // (which `wait` does first), leaving the daemon behind. The pause lets the test see the
    // daemon before the keeper stops it.
    let mut child = Command::new("sh")
        .args(["-c", "\"$0\" daemon && read line; exit 0"])
        .arg(fixture())
        .env(MARKER_VAR, id.as_str())
        .stdin(muontrap::Stdio::piped())
        .stdout(muontrap::Stdio::piped())
        .delay_to_sigkill(DELAY)
        .spawn()
        .expect("spawn");
    let line = wait_for_line(
        child.stdout.as_ref().expect("piped"),
        "daemon",
        SETUP_TIMEOUT,
    )
    .expect("the daemon reports its pid");
    let daemon: i32 = line["daemon ".len()..].parse().expect("a pid");
    // The shell and the daemon (the fixture's top may already have exited).
    wait_for_count(&id, 2, SETUP_TIMEOUT).expect("the shell and the daemon are seen");
    assert!(marked_processes(&id).iter().any(|p| p.pid == daemon));
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    let left = marked_processes(&id);
    assert!(left.is_empty(), "left when wait() returned: {left:?}");
}

#[test]
fn spawning_and_waiting_leaks_no_descriptors() {
    let _alone = alone();
    let id = TestId::new("fds");
    // The first spawn of a process starts its keeper server (one socket, kept): not a leak.
    fixture_command(&id, &["exit", "0"])
        .status()
        .expect("warm-up");
    let before = open_fds();
    for i in 0..20 {
        let mut cmd = fixture_command(&id, &["print", "1000"]);
        if i % 2 == 0 {
            cmd.stderr(muontrap::Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn");
        let mut out = Vec::new();
        child
            .stdout
            .take()
            .expect("piped")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out.len(), 1000);
        assert!(child.wait().expect("wait").success());
        let output = fixture_command(&id, &["exit", "4"])
            .output()
            .expect("output");
        assert_eq!(output.outcome.status().and_then(|s| s.code()), Some(4));
    }
    assert_eq!(open_fds(), before, "descriptors before and after");
    assert!(marked_processes(&id).is_empty());
}
