//! The keeper pool: keepers are reused between commands, and one that is idle carries nothing
//! over to its next command.

use std::time::Duration;

use muontrap::Command;
use muontrap_tests::{MARKER_VAR, TestId, children_of, fixture, wait_until, wait_until_gone};

/// This process's keeper server, and the idle keepers under it (no children of their own).
fn idle_keepers() -> Vec<i32> {
    let me = std::process::id() as i32;
    children_of(me)
        .into_iter()
        .filter(|p| p.comm == "mt-keeper-srv")
        .flat_map(|srv| children_of(srv.pid))
        .filter(|k| k.comm == "mt-keeper" && children_of(k.pid).is_empty())
        .map(|k| k.pid)
        .collect()
}

fn run_fixture(id: &TestId, args: &[&str]) -> std::process::ExitStatus {
    Command::new(fixture())
        .args(args)
        .env(MARKER_VAR, id.as_str())
        .status()
        .expect("spawn")
}

#[test]
fn keepers_are_reused_and_a_sigterm_to_an_idle_one_does_not_reach_the_next_command() {
    let id = TestId::new("pool");
    // Warm the pool: after a few commands there are idle keepers.
    for _ in 0..3 {
        assert!(run_fixture(&id, &["exit", "0"]).success());
    }
    assert!(
        wait_until(Duration::from_secs(5), || !idle_keepers().is_empty()),
        "finished keepers wait in the pool"
    );
    // SIGTERM every idle keeper (they are ours: children of our own keeper server).
    for pid in idle_keepers() {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).expect("pid"),
            rustix::process::Signal::TERM,
        );
    }
    // The next commands run to completion: no stale SIGTERM stops their trees.
    for _ in 0..3 {
        let status = run_fixture(&id, &["sleep", "50"]);
        assert!(status.success(), "command was stopped: {status:?}");
    }
    wait_until_gone(&id, Duration::from_secs(5)).expect("nothing left");
}
