//! Asynchronous (tokio) reading of a command's output pipes.
//!
//! [`ChildStdout`](crate::ChildStdout) and [`ChildStderr`](crate::ChildStderr) are blocking
//! files. A supervisor with a thousand daemons cannot spend a thread per pipe, so
//! [`AsyncPipe`] switches the descriptor to `O_NONBLOCK` and registers it with the tokio
//! reactor: a read waits on readiness (epoll) and costs nothing while the command is quiet.
//! The flag is set on our end only (the open file description of the owner's read end), so the
//! command's write end keeps its blocking semantics and backpressure still works: if we stop
//! reading, the command blocks on write.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// The owner's end of an output pipe, readable with `.await`.
#[derive(Debug)]
pub struct AsyncPipe {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncPipe {
    /// Takes over a pipe end (e.g. a [`ChildStdout`](crate::ChildStdout)). Must be called
    /// inside a tokio runtime.
    pub fn new(pipe: impl Into<OwnedFd>) -> io::Result<AsyncPipe> {
        let fd: OwnedFd = pipe.into();
        crate::sys::process::set_nonblocking(fd.as_fd())?;
        Ok(AsyncPipe {
            fd: crate::sys::process::tokio_readable(fd)?,
        })
    }

    /// Reads what is available, waiting until something is. `Ok(0)` is end-of-file: every
    /// writer (the whole process tree) has closed the pipe.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard
                .try_io(|fd| rustix::io::read(fd.get_ref(), &mut *buf).map_err(io::Error::from))
            {
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(result) => return result,
                // Spurious readiness: try_io cleared it; wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn reads_what_is_written_then_end_of_file() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let mut pipe = AsyncPipe::new(r).unwrap();
        let mut w = std::fs::File::from(w);
        w.write_all(b"hello").unwrap();
        let mut buf = [0u8; 16];
        let n = pipe.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        drop(w);
        assert_eq!(pipe.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_read_waits_for_data_without_blocking_the_runtime() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let mut pipe = AsyncPipe::new(r).unwrap();
        let writer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            std::fs::File::from(w).write_all(b"late").unwrap();
        });
        let mut buf = [0u8; 16];
        let n = pipe.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"late");
        writer.await.unwrap();
    }
}
