//! The owner ↔ keeper control channel of one command (a `SOCK_SEQPACKET` socket pair).
//!
//! The owner's end *is* the lifeline: when the owner drops its `Child`, exits, panics or is
//! SIGKILLed, the kernel closes the end and the keeper reads end-of-stream, which means "stop
//! the tree". No heartbeat, no polling: the kernel's file table is the liveness signal.
//! A message is one `SEQPACKET` datagram, so a read is always a whole message: a 16-byte
//! header (tag, two numbers), which is the whole message for every kind but
//! [`Message::Statistics`]; that one carries its encoded [`Statistics`] after the header (the
//! header's second number is the payload length). The receiver peeks at the datagram's length
//! first, so it never truncates one.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::cgroup::Statistics;

/// One control message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Owner → keeper: send this signal to the main process.
    Signal(i32),
    /// Owner → keeper: graceful stop of the tree (SIGTERM, grace, SIGKILL).
    Terminate,
    /// Owner → keeper: SIGKILL the tree now.
    Kill,
    /// Owner → keeper: stop watching the lifeline; let the tree run on its own.
    Detach,
    /// Keeper → owner: the command was exec'd with this pid.
    Spawned(i32),
    /// Keeper → owner: the child failed at this stage (an `ExecStage` number) with this errno.
    Failed {
        /// `ExecStage` as a number (0 = the keeper could not fork at all).
        stage: u32,
        /// The errno.
        errno: i32,
    },
    /// Keeper → owner: the main process ended with this raw wait status and the whole tree is
    /// gone.
    Exited(i32),
    /// Keeper → owner: the timeout fired; the tree was stopped; this is the main process's
    /// raw wait status.
    TimedOut(i32),
    /// Keeper → owner: the command's cgroup statistics, read just before the keeper removed
    /// it. Sent right before `Exited` / `TimedOut`, only for commands that had a cgroup.
    Statistics(Box<Statistics>),
}

/// The header, and the whole of every fixed-size message.
const LEN: usize = 16;

/// Largest payload accepted (and sent: larger statistics are sent without their raw files).
/// Well under the default socket buffer, which bounds a `SEQPACKET` datagram.
pub const MAX_PAYLOAD: usize = 64 << 10;

const STATISTICS: u32 = 14;

fn bad(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Message {
    fn header(tag: u32, a: i32, b: u64) -> [u8; LEN] {
        let mut buf = [0u8; LEN];
        buf[..4].copy_from_slice(&tag.to_le_bytes());
        buf[4..8].copy_from_slice(&a.to_le_bytes());
        buf[8..].copy_from_slice(&b.to_le_bytes());
        buf
    }

    /// The datagram: the header, then the payload if any.
    fn encode(&self) -> Vec<u8> {
        if let Message::Statistics(s) = self {
            let mut payload = s.encode(true);
            if payload.len() > MAX_PAYLOAD {
                payload = s.encode(false);
            }
            let mut buf = Vec::with_capacity(LEN + payload.len());
            buf.extend_from_slice(&Message::header(STATISTICS, 0, payload.len() as u64));
            buf.extend_from_slice(&payload);
            return buf;
        }
        let (tag, a, b): (u32, i32, u64) = match *self {
            Message::Signal(s) => (1, s, 0),
            Message::Terminate => (2, 0, 0),
            Message::Kill => (3, 0, 0),
            Message::Detach => (4, 0, 0),
            Message::Spawned(p) => (10, p, 0),
            Message::Failed { stage, errno } => (11, errno, stage as u64),
            Message::Exited(s) => (12, s, 0),
            Message::TimedOut(s) => (13, s, 0),
            Message::Statistics(_) => unreachable!("encoded above"),
        };
        Message::header(tag, a, b).to_vec()
    }

    /// Decodes one whole datagram. Anything malformed (short, a length that does not match,
    /// a payload on a fixed-size kind, a bad payload) is `InvalidData`, never a panic.
    fn decode(buf: &[u8]) -> io::Result<Message> {
        let (header, payload) = buf
            .split_first_chunk::<LEN>()
            .ok_or_else(|| bad("short control message"))?;
        let tag = u32::from_le_bytes(header[..4].try_into().expect("4"));
        let a = i32::from_le_bytes(header[4..8].try_into().expect("4"));
        let b = u64::from_le_bytes(header[8..].try_into().expect("8"));
        if tag == STATISTICS {
            if b != payload.len() as u64 {
                return Err(bad("control message length mismatch"));
            }
            return Ok(Message::Statistics(Box::new(Statistics::decode(payload)?)));
        }
        if !payload.is_empty() {
            return Err(bad("payload on a fixed-size control message"));
        }
        Ok(match tag {
            1 => Message::Signal(a),
            2 => Message::Terminate,
            3 => Message::Kill,
            4 => Message::Detach,
            10 => Message::Spawned(a),
            11 => Message::Failed {
                stage: b as u32,
                errno: a,
            },
            12 => Message::Exited(a),
            13 => Message::TimedOut(a),
            _ => return Err(bad("bad control message")),
        })
    }
}

/// One end of a control channel.
#[derive(Debug)]
pub struct Control {
    fd: OwnedFd,
}

impl Control {
    /// A connected pair: (owner end, keeper end), both close-on-exec.
    pub fn pair() -> io::Result<(Control, OwnedFd)> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Control { fd: a }, b))
    }

    /// Wraps a received keeper end.
    pub fn from_fd(fd: OwnedFd) -> Control {
        Control { fd }
    }

    /// Sends a message. A closed peer is `BrokenPipe` (never SIGPIPE).
    pub fn send(&self, m: Message) -> io::Result<()> {
        let buf = m.encode();
        loop {
            match rustix::net::send(&self.fd, &buf, SendFlags::NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives a message; `Ok(None)` is end-of-stream (the peer is gone). With `block` false,
    /// `WouldBlock` means nothing is pending.
    ///
    /// The datagram's length is peeked first (`MSG_PEEK | MSG_TRUNC`), then the whole datagram
    /// is read; one that is too short or too long is consumed and reported as `InvalidData`.
    pub fn recv(&self, block: bool) -> io::Result<Option<Message>> {
        let wait = if block {
            RecvFlags::empty()
        } else {
            RecvFlags::DONTWAIT
        };
        let mut head = [0u8; LEN];
        let len = match retry(|| {
            rustix::net::recv(
                &self.fd,
                &mut head,
                wait | RecvFlags::PEEK | RecvFlags::TRUNC,
            )
        }) {
            Ok((_, 0)) => return Ok(None),
            Ok((_, len)) => len,
            // A keeper that died abnormally resets the connection: same as end-of-stream.
            Err(rustix::io::Errno::CONNRESET) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // The datagram is queued: these reads do not block.
        if len == LEN {
            retry(|| rustix::net::recv(&self.fd, &mut head, RecvFlags::DONTWAIT))?;
            return Message::decode(&head).map(Some);
        }
        if !(LEN..=LEN + MAX_PAYLOAD).contains(&len) {
            retry(|| rustix::net::recv(&self.fd, &mut head, RecvFlags::DONTWAIT))?;
            return Err(bad("control message of a bad length"));
        }
        let mut buf = vec![0u8; len];
        let (_, got) = retry(|| rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::DONTWAIT))?;
        Message::decode(&buf[..got]).map(Some)
    }
}

/// Repeats a call interrupted by a signal.
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r,
        }
    }
}

impl AsFd for Control {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_eof_is_none() {
        let (a, b) = Control::pair().unwrap();
        let b = Control::from_fd(b);
        for m in [
            Message::Signal(10),
            Message::Terminate,
            Message::Kill,
            Message::Detach,
            Message::Spawned(1234),
            Message::Failed { stage: 9, errno: 2 },
            Message::Exited(0x0f00),
            Message::TimedOut(9),
            Message::Statistics(Box::new(stats())),
            Message::Statistics(Box::default()),
        ] {
            a.send(m.clone()).unwrap();
            assert_eq!(b.recv(true).unwrap(), Some(m));
        }
        assert!(b.recv(false).unwrap_err().kind() == io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(b.recv(true).unwrap(), None);
    }

    fn stats() -> Statistics {
        let mut s = Statistics {
            memory_peak: Some(48 << 20),
            oom_kill: Some(1),
            ..Statistics::default()
        };
        s.raw
            .insert("memory.events".into(), "oom 1\noom_kill 1\n".into());
        s
    }

    #[test]
    fn oversized_statistics_are_sent_without_raw_files() {
        let (a, b) = Control::pair().unwrap();
        let b = Control::from_fd(b);
        let mut s = stats();
        s.raw.insert("huge".into(), "x".repeat(MAX_PAYLOAD));
        a.send(Message::Statistics(Box::new(s))).unwrap();
        let Some(Message::Statistics(got)) = b.recv(true).unwrap() else {
            panic!("statistics expected");
        };
        assert_eq!(got.memory_peak, Some(48 << 20));
        assert!(got.raw.is_empty());
    }

    #[test]
    fn malformed_datagrams_are_errors_and_are_consumed() {
        let (a, b) = Control::pair().unwrap();
        let b = Control::from_fd(b);
        let bad_one = |bytes: &[u8]| {
            rustix::net::send(&a, bytes, SendFlags::NOSIGNAL).unwrap();
            let e = b.recv(true).unwrap_err();
            assert_eq!(
                e.kind(),
                io::ErrorKind::InvalidData,
                "{} bytes",
                bytes.len()
            );
        };
        let good = Message::Statistics(Box::new(stats())).encode();
        // Every truncation of a statistics message, a short fixed one, a payload on a fixed
        // kind, an unknown tag, a header claiming more than is there, an oversized datagram.
        for n in 1..good.len() {
            bad_one(&good[..n]);
        }
        bad_one(&[1, 2, 3]);
        let mut extra = Message::Exited(0).encode();
        extra.push(0);
        bad_one(&extra);
        bad_one(&Message::header(99, 0, 0));
        bad_one(&Message::header(STATISTICS, 0, 1 << 40));
        bad_one(&vec![0u8; LEN + MAX_PAYLOAD + 1]);
        // Each bad datagram was consumed: the next good one comes through.
        a.send(Message::Exited(7)).unwrap();
        assert_eq!(b.recv(false).unwrap(), Some(Message::Exited(7)));
    }
}
