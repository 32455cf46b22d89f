//! Port mode under random ack streams (proptest).
//!
//! The test plays an erratic Erlang port against `muontrap --capture-output --stdio-window W --
//! mt-fixture print N`: it interleaves reads, correct acks, arbitrary ack bytes (possibly
//! acknowledging more than was sent) and maybe an early `Port.close`, then behaves. Whatever
//! it does, the helper must
//!
//! - never have more unacknowledged bytes in flight than the window (checked after every read:
//!   received ≤ W + acknowledged);
//! - deliver exactly the fixture's bytes, in order (a prefix; all N when the port behaved);
//! - exit 0 or 1 within a bound (a watchdog kills it and fails the case on a hang);
//! - leave no process of the tree behind.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use muontrap_tests::{TestId, encode_acks, fixture, wait_until_gone};
use proptest::prelude::*;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

const MUONTRAP: &str = env!("CARGO_BIN_EXE_muontrap");
const PATTERN: &[u8] = b"0123456789abcdef";

/// Everything in one case (the erratic phase, the drain, the exit) must end within this.
const WATCHDOG: Duration = Duration::from_secs(5);

/// How long one `Read` step waits for data that may never come (the window may be used up).
const READ_WAIT: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
enum Step {
    /// Read whatever has arrived (bounded wait).
    Read,
    /// Acknowledge everything received and not yet acknowledged, correctly encoded.
    AckReceived,
    /// Send these raw ack bytes (each byte `b` acknowledges `b + 1`).
    RawAcks(Vec<u8>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Read),
        3 => Just(Step::AckReceived),
        1 => prop::collection::vec(any::<u8>(), 0..6).prop_map(Step::RawAcks),
    ]
}

fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let wait = Timespec::try_from(timeout).expect("timeout fits a timespec");
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    match rustix::event::poll(&mut fds, Some(&wait)) {
        Ok(n) => n > 0,
        Err(Errno::INTR) => false,
        Err(e) => panic!("poll: {e}"),
    }
}

/// The port's bookkeeping.
struct Ledger {
    window: usize,
    received: Vec<u8>,
    acked: usize,
    eof: bool,
}

impl Ledger {
    /// One read; checks the window invariant.
    fn read(&mut self, fd: BorrowedFd<'_>, wait: Duration) -> Result<(), TestCaseError> {
        if self.eof || !readable(fd, wait) {
            return Ok(());
        }
        let mut buf = [0u8; 64 * 1024];
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => self.received.extend_from_slice(&buf[..n]),
            Err(Errno::INTR | Errno::AGAIN) => {}
            Err(e) => return Err(TestCaseError::fail(format!("read: {e}"))),
        }
        prop_assert!(
            self.received.len() <= self.window + self.acked,
            "{} bytes received, {} acknowledged, window {}",
            self.received.len(),
            self.acked,
            self.window
        );
        Ok(())
    }
}

fn one_case(
    window: usize,
    total: usize,
    steps: &[Step],
    close_early: bool,
) -> Result<(), TestCaseError> {
    let id = TestId::new("port-fuzz");
    let mut cmd = Command::new(MUONTRAP);
    cmd.args([
        "--capture-output",
        "--stdio-window",
        &window.to_string(),
        "--",
    ])
    .arg(fixture())
    .args(["print", &total.to_string()])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    id.mark(&mut cmd);
    let mut child = cmd.spawn().expect("spawn muontrap");
    let pidfd = rustix::process::pidfd_open(
        Pid::from_raw(child.id() as i32).expect("pid"),
        PidfdFlags::empty(),
    )
    .expect("pidfd_open");
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped");
    let deadline = Instant::now() + WATCHDOG;
    let mut ledger = Ledger {
        window,
        received: Vec::new(),
        acked: 0,
        eof: false,
    };
    // Whether the port ever broke the protocol (more acknowledged than received so far).
    let mut erratic = false;

    let send = |stdin: &mut Option<std::process::ChildStdin>, bytes: &[u8]| {
        if let Some(s) = stdin.as_mut() {
            // The helper may already have exited (too many acks): like Port.command, ignore.
            let _ = s.write_all(bytes);
        }
    };
    let outcome = (|| -> Result<(), TestCaseError> {
        for step in steps {
            match step {
                Step::Read => ledger.read(stdout.as_fd(), READ_WAIT)?,
                Step::AckReceived => {
                    let owed = ledger.received.len().saturating_sub(ledger.acked);
                    send(&mut stdin, &encode_acks(owed));
                    ledger.acked += owed;
                }
                Step::RawAcks(bytes) => {
                    send(&mut stdin, bytes);
                    ledger.acked += bytes.iter().map(|&b| b as usize + 1).sum::<usize>();
                    erratic |= ledger.acked > ledger.received.len();
                }
            }
        }
        if close_early {
            stdin = None;
        }
        // Behave from now on: read and acknowledge until the helper closes stdout.
        while !ledger.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            prop_assert!(
                !left.is_zero(),
                "watchdog: no EOF after {} of {total} bytes (window {window})",
                ledger.received.len()
            );
            ledger.read(stdout.as_fd(), left.min(Duration::from_millis(100)))?;
            let owed = ledger.received.len().saturating_sub(ledger.acked);
            if owed > 0 {
                send(&mut stdin, &encode_acks(owed));
                ledger.acked += owed;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        prop_assert!(
            readable(pidfd.as_fd(), left),
            "watchdog: muontrap did not exit"
        );
        Ok(())
    })();
    if outcome.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for muontrap");
    outcome?;

    let code = status.code();
    prop_assert!(matches!(code, Some(0 | 1)), "exit status {status:?}");
    let expected: Vec<u8> = PATTERN
        .iter()
        .copied()
        .cycle()
        .take(ledger.received.len())
        .collect();
    prop_assert!(ledger.received == expected, "the output was corrupted");
    if !erratic && !close_early {
        prop_assert_eq!(code, Some(0));
        prop_assert_eq!(ledger.received.len(), total);
    }
    if let Err(left) = wait_until_gone(&id, WATCHDOG) {
        return Err(TestCaseError::fail(format!("tree left behind: {left:?}")));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_acks_never_exceed_the_window_and_never_hang(
        window in prop_oneof![16usize..=64, 65usize..=4096, 4097usize..=20_000],
        total in prop_oneof![0usize..=100, 101usize..=150_000],
        steps in prop::collection::vec(step(), 0..40),
        close_early in any::<bool>(),
    ) {
        one_case(window, total, &steps, close_early)?;
    }
}
