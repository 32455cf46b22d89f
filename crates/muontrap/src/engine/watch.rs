//! The keeper's main loop, shared by the library face and `muontrap run`.
//!
//! A keeper waits for exactly these things: the command's tree to end, its lifeline to break
//! (the owner is gone), a request from the owner, its own stop signals, and the timeout. Each
//! leads to the same end: the tree is stopped (if still alive) and reaped entirely, then the
//! main process's status is reported. The lifeline differs per face, so it is a trait:
//! the library's is the control socket, `run`'s is a pidfd of its parent process.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use super::keeper::{Keeper, KeeperEvent, poll};

/// What a lifeline reported when its descriptor was ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifelineEvent {
    /// Nothing actionable (spurious wake-up, or a message that needs no action).
    Nothing,
    /// The owner is gone: stop the tree.
    Gone,
    /// Send this signal to the main process.
    Signal(i32),
    /// Stop the tree gracefully.
    Terminate,
    /// SIGKILL the tree.
    Kill,
    /// Stop watching the owner; let the tree run until it ends by itself.
    Detach,
}

/// The owner-liveness channel of a keeper.
pub trait Lifeline {
    /// Descriptor to poll for readability.
    fn fd(&self) -> BorrowedFd<'_>;
    /// Called when [`Lifeline::fd`] is ready.
    fn ready(&mut self) -> LifelineEvent;
}

/// Why the watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The main process ended (on its own or because it was asked to stop); the tree is gone.
    Exited(i32),
    /// The timeout fired and the tree was stopped; the main process's status.
    TimedOut(i32),
    /// The lifeline broke (owner gone) and the tree was stopped; the status if it was reaped.
    OwnerGone(Option<i32>),
    /// The keeper received this stop signal and stopped the tree; the main process's status.
    Signalled(i32, Option<i32>),
    /// The owner detached and the tree has since ended by itself.
    Detached,
}

/// Runs the keeper loop until the tree is gone. `delay` is the SIGTERM → SIGKILL grace period.
pub fn watch(
    keeper: &mut Keeper,
    lifeline: &mut dyn Lifeline,
    delay: Duration,
    timeout: Option<Duration>,
) -> Ending {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut attached = true;
    let mut stopped_by: Option<Ending> = None;
    loop {
        if let Some(status) = keeper.main_status() {
            // Whatever is left of the tree goes with the main process (or keeps running, when
            // detached, until it ends: the keeper only reaps then).
            if attached || stopped_by.is_some() {
                keeper.stop_tree(delay);
            } else {
                while keeper.tree_alive() {
                    wait_signals(keeper, None);
                }
                return Ending::Detached;
            }
            return match stopped_by {
                Some(Ending::TimedOut(_)) => Ending::TimedOut(status),
                Some(Ending::OwnerGone(_)) => Ending::OwnerGone(Some(status)),
                Some(Ending::Signalled(s, _)) => Ending::Signalled(s, Some(status)),
                _ => Ending::Exited(status),
            };
        }
        if let Some(ending) = stopped_by {
            if !keeper.tree_alive() {
                // Stopped, and the main process was not ours to reap (should not happen).
                return ending;
            }
        }
        let left = if attached {
            deadline.map(|d| d.saturating_duration_since(Instant::now()))
        } else {
            None
        };
        if left == Some(Duration::ZERO) && stopped_by.is_none() {
            stopped_by = Some(Ending::TimedOut(0));
            keeper.stop_tree(delay);
            continue;
        }
        let (life_ready, sig_ready) = {
            let mut fds = vec![PollFd::from_borrowed_fd(keeper.signal_fd(), PollFlags::IN)];
            if attached {
                fds.push(PollFd::from_borrowed_fd(lifeline.fd(), PollFlags::IN));
            }
            let _ = poll(&mut fds, left);
            let l = fds.get(1).is_some_and(|f| !f.revents().is_empty());
            (l, !fds[0].revents().is_empty())
        };
        if sig_ready {
            for ev in keeper.events().unwrap_or_default() {
                if let KeeperEvent::Signal(s) = ev {
                    stopped_by.get_or_insert(Ending::Signalled(s, None));
                    keeper.stop_tree(delay);
                }
            }
        }
        if life_ready {
            match lifeline.ready() {
                LifelineEvent::Nothing => {}
                LifelineEvent::Signal(s) => {
                    let _ = keeper.signal_main(s);
                }
                LifelineEvent::Terminate => {
                    keeper.stop_tree(delay);
                }
                LifelineEvent::Kill => {
                    keeper.stop_tree(Duration::ZERO);
                }
                LifelineEvent::Detach => attached = false,
                LifelineEvent::Gone => {
                    attached = false;
                    stopped_by.get_or_insert(Ending::OwnerGone(None));
                    keeper.stop_tree(delay);
                }
            }
        }
    }
}

fn wait_signals(keeper: &mut Keeper, timeout: Option<Duration>) {
    let mut fds = [PollFd::from_borrowed_fd(keeper.signal_fd(), PollFlags::IN)];
    let _ = poll(&mut fds, timeout);
    let _ = keeper.events();
}
