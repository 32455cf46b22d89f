//! The owner ↔ keeper control channel of one command (a `SOCK_SEQPACKET` socket pair).
//!
//! The owner's end *is* the lifeline: when the owner drops its `Child`, exits, panics or is
//! SIGKILLed, the kernel closes the end and the keeper reads end-of-stream, which means "stop
//! the tree". No heartbeat, no polling: the kernel's file table is the liveness signal.
//! Messages are fixed 16-byte records, so a `SEQPACKET` read is always a whole message.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// One control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

const LEN: usize = 16;

impl Message {
    fn encode(self) -> [u8; LEN] {
        let (tag, a, b): (u32, i32, u64) = match self {
            Message::Signal(s) => (1, s, 0),
            Message::Terminate => (2, 0, 0),
            Message::Kill => (3, 0, 0),
            Message::Detach => (4, 0, 0),
            Message::Spawned(p) => (10, p, 0),
            Message::Failed { stage, errno } => (11, errno, stage as u64),
            Message::Exited(s) => (12, s, 0),
            Message::TimedOut(s) => (13, s, 0),
        };
        let mut buf = [0u8; LEN];
        buf[..4].copy_from_slice(&tag.to_le_bytes());
        buf[4..8].copy_from_slice(&a.to_le_bytes());
        buf[8..].copy_from_slice(&b.to_le_bytes());
        buf
    }

    fn decode(buf: &[u8; LEN]) -> io::Result<Message> {
        let tag = u32::from_le_bytes(buf[..4].try_into().expect("4"));
        let a = i32::from_le_bytes(buf[4..8].try_into().expect("4"));
        let b = u64::from_le_bytes(buf[8..].try_into().expect("8"));
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
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad control message",
                ));
            }
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
        loop {
            match rustix::net::send(&self.fd, &m.encode(), SendFlags::NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives a message; `Ok(None)` is end-of-stream (the peer is gone). With `block` false,
    /// `WouldBlock` means nothing is pending.
    pub fn recv(&self, block: bool) -> io::Result<Option<Message>> {
        let mut buf = [0u8; LEN];
        let flags = if block {
            RecvFlags::empty()
        } else {
            RecvFlags::DONTWAIT
        };
        loop {
            match rustix::net::recv(&self.fd, &mut buf, flags) {
                Ok((0, _)) => return Ok(None),
                Ok((LEN, _)) => return Message::decode(&buf).map(Some),
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "short control message",
                    ));
                }
                Err(rustix::io::Errno::INTR) => continue,
                // A keeper that died abnormally resets the connection: same as end-of-stream.
                Err(rustix::io::Errno::CONNRESET) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
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
        ] {
            a.send(m).unwrap();
            assert_eq!(b.recv(true).unwrap(), Some(m));
        }
        assert!(b.recv(false).unwrap_err().kind() == io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(b.recv(true).unwrap(), None);
    }
}
