//! Helpers for acting as the Erlang side of the port protocol, and for waiting on
//! descriptors and conditions without fixed sleeps.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// The Erlang side's ack encoding (port contract 3.4): `n / 256` bytes of `0xFF`, then one
/// byte `n % 256 - 1` if there is a remainder. Each byte `b` acknowledges `b + 1` bytes.
pub fn encode_acks(n: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF; n / 256];
    if n % 256 > 0 {
        bytes.push((n % 256 - 1) as u8);
    }
    bytes
}

/// Whether `fd` becomes readable (data, end-of-file or hang-up) within `timeout`.
pub fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = Timespec::try_from(left).expect("timeout fits a timespec");
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&wait)) {
            Ok(n) => return n > 0,
            Err(Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// Re-checks `cond` every 2 ms until it holds or `timeout` passes; returns whether it held.
/// For conditions with no event to wait on (a process state in `/proc`, say).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_match_the_contract_examples() {
        assert_eq!(encode_acks(1), [0x00]);
        assert_eq!(encode_acks(10), [0x09]);
        assert_eq!(encode_acks(256), [0xFF]);
        assert_eq!(encode_acks(257), [0xFF, 0x00]);
        assert_eq!(encode_acks(513), [0xFF, 0xFF, 0x00]);
    }
}
