//! A blocking face for the supervisor, for programs without an async runtime.
//!
//! The supervisor is a tokio task; [`BlockingSupervisor`] gives it a private current-thread
//! runtime driven by one background thread, and turns every call into a blocking call on the
//! caller's thread. Same shape as [`RunningSupervisor`], minus `async`.

use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use super::error::{Error, Result};
use super::{ChildInfo, ChildSpec, DaemonStatistics, Events, RunningSupervisor, Supervisor};
use crate::cgroup::CgroupHandle;

/// A started supervisor, driven by its own background thread.
///
/// ```no_run
/// use muontrap::supervise::{Daemon, Supervisor, blocking::BlockingSupervisor};
///
/// let mut sup = Supervisor::new();
/// sup.child("sleeper", Daemon::new("sleeper", || {
///     let mut c = muontrap::Command::new("sleep");
///     c.arg("1000");
///     c
/// }));
/// let running = BlockingSupervisor::start(&sup)?;
/// println!("{:?}", running.which_children()?);
/// running.shutdown()?; // every process of every daemon is gone when this returns
/// # Ok::<(), muontrap::supervise::Error>(())
/// ```
pub struct BlockingSupervisor {
    handle: Handle,
    inner: Option<RunningSupervisor>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BlockingSupervisor {
    /// Starts `supervisor` (and its children, in order) on a new background runtime.
    pub fn start(supervisor: &Supervisor) -> Result<BlockingSupervisor> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("muontrap-supervisor".into())
            .spawn(move || {
                // Drives I/O and timers for every call made through `handle`.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(Error::Runtime)?;
        let mut me = BlockingSupervisor {
            handle,
            inner: None,
            stop: Some(stop),
            thread: Some(thread),
        };
        let running = me.handle.block_on(supervisor.start())?;
        me.inner = Some(running);
        Ok(me)
    }

    fn running(&self) -> &RunningSupervisor {
        self.inner.as_ref().expect("set in start")
    }

    /// Subscribes to lifecycle events (use `Events::blocking_recv`).
    pub fn subscribe(&self) -> Events {
        self.running().subscribe()
    }

    /// Adds and starts a child.
    pub fn start_child(&self, id: impl Into<String>, spec: impl Into<ChildSpec>) -> Result<()> {
        self.handle
            .block_on(self.running().start_child(id, spec))
            .map(|_| ())
    }

    /// Stops a child (its whole tree) and keeps its spec.
    pub fn terminate_child(&self, id: &str) -> Result<()> {
        self.handle.block_on(self.running().terminate_child(id))
    }

    /// Restarts a stopped child.
    pub fn restart_child(&self, id: &str) -> Result<()> {
        self.handle.block_on(self.running().restart_child(id))
    }

    /// Forgets a stopped child.
    pub fn delete_child(&self, id: &str) -> Result<()> {
        self.handle.block_on(self.running().delete_child(id))
    }

    /// The children, in start order.
    pub fn which_children(&self) -> Result<Vec<ChildInfo>> {
        self.handle.block_on(self.running().which_children())
    }

    /// The OS pid of a running daemon.
    pub fn os_pid(&self, id: &str) -> Result<Option<u32>> {
        self.handle.block_on(self.running().os_pid(id))
    }

    /// A daemon's statistics.
    pub fn statistics(&self, id: &str) -> Result<DaemonStatistics> {
        self.handle.block_on(self.running().statistics(id))
    }

    /// A daemon's cgroup, if it runs in one.
    pub fn cgroup(&self, id: &str) -> Result<Option<CgroupHandle>> {
        self.handle.block_on(self.running().cgroup(id))
    }

    /// Ordered shutdown (reverse start order); returns when every tree is gone.
    pub fn shutdown(&self) -> Result<()> {
        self.handle.block_on(self.running().shutdown())
    }

    /// Waits until the supervisor stops (shut down, or gave up after too many restarts).
    pub fn wait(&self) -> Result<()> {
        self.handle.block_on(self.running().wait())
    }
}

impl Drop for BlockingSupervisor {
    fn drop(&mut self) {
        // Dropping the running supervisor aborts its task; its children's keepers then stop
        // every tree. Then let the runtime thread finish.
        drop(self.inner.take());
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
