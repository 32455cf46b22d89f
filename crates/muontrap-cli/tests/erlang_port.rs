//! The real thing: a BEAM opens `muontrap` as a port, the way Elixir's MuonTrap does.
//!
//! Runs `tests/erlang/port_test.escript` (needs `escript`, Debian package `erlang-base`; CI
//! installs it, and without it this test is a visible skip, which fails under
//! `MUONTRAP_STRICT=1`). The escript prints `PASS`/`FAIL` lines per case. The BEAM carries one
//! marker and the ports it opens another, so after `port_close` this runner can prove, while
//! the BEAM is still alive, that nothing of the port's tree is left; it then tells the escript
//! to go on.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use muontrap_tests::{TestId, fixture, skip, wait_for_line, wait_until_gone};

const MUONTRAP: &str = env!("CARGO_BIN_EXE_muontrap");
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/erlang/port_test.escript"
);

/// BEAM start-up plus all cases; generous for a loaded CI machine.
const WHOLE_RUN: Duration = Duration::from_secs(60);

fn escript_installed() -> bool {
    Command::new("escript")
        .arg("-h")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[test]
fn beam_port_acks_windows_and_port_close_work_like_muontrap() {
    if !escript_installed() {
        return skip("escript not installed (apt-get install erlang-base)");
    }
    let beam = TestId::new("erlang-beam");
    let ports = TestId::new("erlang-ports");
    let mut cmd = Command::new("escript");
    cmd.arg(SCRIPT)
        .arg(MUONTRAP)
        .arg(fixture())
        .arg(ports.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    beam.mark(&mut cmd);
    let mut escript = cmd.spawn().expect("spawn escript");
    let mut stdin = escript.stdin.take().expect("piped");
    let stdout = escript.stdout.take().expect("piped");

    let deadline = Instant::now() + WHOLE_RUN;
    let mut transcript = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Every line ("" matches any); EOF ends the transcript.
        let line = match wait_for_line(&stdout, "", left) {
            Ok(line) => line,
            Err(e) if e.starts_with("EOF") => break,
            Err(e) => {
                let _ = escript.kill();
                let _ = escript.wait();
                panic!("escript: {e}; transcript: {transcript:#?}");
            }
        };
        if line.starts_with("CLOSED ") {
            if let Err(left) = wait_until_gone(&ports, Duration::from_secs(5)) {
                let _ = escript.kill();
                let _ = escript.wait();
                panic!("after port_close, the port's processes are still alive: {left:?}");
            }
            stdin.write_all(b"go\n").expect("tell the escript to go on");
        }
        transcript.push(line);
    }
    drop(stdin);
    // The escript closed stdout: it is exiting.
    let status = escript.wait().expect("wait for escript");

    let passed = transcript.iter().filter(|l| l.starts_with("PASS ")).count();
    let failed: Vec<&String> = transcript
        .iter()
        .filter(|l| l.starts_with("FAIL "))
        .collect();
    assert!(failed.is_empty(), "failed cases: {failed:#?}");
    assert_eq!(passed, 3, "transcript: {transcript:#?}");
    assert!(
        status.success(),
        "escript: {status:?}; transcript: {transcript:#?}"
    );
    for id in [&ports, &beam] {
        if let Err(left) = wait_until_gone(id, Duration::from_secs(5)) {
            panic!("processes of {id} still alive: {left:?}");
        }
    }
}
