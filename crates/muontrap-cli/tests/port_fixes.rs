//! Section 10 of the port-helper contract: a failed `fork` must never become `kill(-1, …)`.
//!
//! The C helper treated fork's -1 as the child's pid, so closing the port later ran
//! `kill(-1, SIGTERM)`: every process the user may signal. Here the helper runs as an
//! otherwise unused, unprivileged user whose process limit leaves no room for a child; a sentinel process of
//! the same user must survive, and the helper must report the failure and exit 1.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use muontrap_tests::{MARKER_VAR, TestId, skip, wait_until_gone};

#[test]
fn fork_failure_is_reported_and_never_signals_other_processes() {
    if !rustix::process::geteuid().is_root() {
        return skip("needs root to run the helper as another user");
    }
    let tools = ["setpriv", "prlimit"];
    if tools
        .iter()
        .any(|t| muontrap::find_program(t.as_ref(), None).is_err())
    {
        return skip("setpriv/prlimit (util-linux) not installed");
    }
    let id = TestId::new("fork-failure");
    // A user id nothing else runs as, so that RLIMIT_NPROC counts only our two processes
    // (the limit counts every process of the user, zombies included).
    let as_nobody = ["--reuid=64999", "--regid=64999", "--clear-groups"];
    // The sentinel: a process of the same user that a kill(-1) would hit.
    let mut sentinel = Command::new("setpriv")
        .args(as_nobody)
        .args(["sleep", "60"])
        .env(MARKER_VAR, id.as_str())
        .spawn()
        .expect("sentinel");
    // It counts towards the user's limit only once setpriv has switched to that user.
    let uid_line = "Uid:\t64999";
    assert!(
        muontrap_tests::wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(format!("/proc/{}/status", sentinel.id()))
                .is_ok_and(|s| s.lines().any(|l| l.starts_with(uid_line)))
        }),
        "the sentinel runs as uid 64999"
    );
    // With RLIMIT_NPROC = 2 the user has the sentinel and the helper: fork fails (EAGAIN).
    let mut helper = Command::new("prlimit")
        .args(["--nproc=2:2", "setpriv"])
        .args(as_nobody)
        .arg(env!("CARGO_BIN_EXE_muontrap"))
        .args(["--capture-output", "--", "/bin/echo", "hi"])
        .env(MARKER_VAR, id.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("helper");
    let status = helper.wait().expect("wait");
    let mut stderr = String::new();
    helper
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let mut stdout = Vec::new();
    helper
        .stdout
        .take()
        .expect("piped")
        .read_to_end(&mut stdout)
        .expect("stdout");
    assert_eq!(
        status.code(),
        Some(1),
        "status {status:?}, stderr: {stderr}"
    );
    assert!(stderr.starts_with("MUONTRAP: fork"), "stderr: {stderr}");
    assert!(stdout.is_empty(), "nothing may reach the port: {stdout:?}");
    assert!(
        sentinel.try_wait().expect("try_wait").is_none(),
        "the sentinel was signalled"
    );
    sentinel.kill().expect("kill sentinel");
    sentinel.wait().expect("reap sentinel");
    wait_until_gone(&id, Duration::from_secs(5)).expect("nothing left");
}
