//! [`Supervisor`]: OTP supervision of daemons and nested supervisors.
//!
//! Each running supervisor is one tokio task that owns its children and sleeps in a single
//! `select!` on three sources: requests from the [`RunningSupervisor`] handle (an mpsc
//! channel), exits reported by its children's run tasks, and the deadline of the next
//! backoff restart. Child exits are noticed through `Child::wait_async`, i.e. the keeper's
//! control socket becoming readable, so an idle tree of any size costs no CPU.
//!
//! Decisions come from the pure policy modules ([`RestartPolicy`], [`RestartWindow`],
//! [`Strategy::plan`], [`Backoff`]); this file only carries them out. Like OTP, the
//! supervisor is busy while it starts or stops a child: requests queue meanwhile, so starts
//! and stops happen one at a time and in order.
//!
//! Containment: dropping a [`RunningSupervisor`] aborts its task; the task's children drop
//! their `Child` handles and every keeper stops its tree. If the owner process dies, the
//! keepers' lifelines break and they do the same. [`RunningSupervisor::shutdown`] is the
//! graceful way: children stop in reverse start order, each with its own timeout, and it
//! returns only when every tree is gone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::cgroup::CgroupHandle;

use super::backoff::{Backoff, JitterSource, SplitMix64};
use super::daemon::{Daemon, DaemonStatistics, RunningDaemon};
use super::error::{Error, Result};
use super::event::{ChildExit, Event, Events};
use super::intensity::{Intensity, RestartWindow};
use super::restart::{Reason, RestartPolicy};
use super::strategy::{Sibling, Strategy};

/// What a supervisor supervises.
#[derive(Debug, Clone)]
pub enum ChildSpec {
    /// A daemon.
    Daemon(Daemon),
    /// A nested supervisor (its failure is this supervisor's child failure).
    Supervisor(Supervisor),
}

impl From<Daemon> for ChildSpec {
    fn from(d: Daemon) -> Self {
        ChildSpec::Daemon(d)
    }
}

impl From<Supervisor> for ChildSpec {
    fn from(s: Supervisor) -> Self {
        ChildSpec::Supervisor(s)
    }
}

impl ChildSpec {
    fn policy(&self) -> RestartPolicy {
        match self {
            ChildSpec::Daemon(d) => d.get_restart(),
            ChildSpec::Supervisor(s) => s.restart,
        }
    }

    fn kind(&self) -> ChildKind {
        match self {
            ChildSpec::Daemon(_) => ChildKind::Daemon,
            ChildSpec::Supervisor(_) => ChildKind::Supervisor,
        }
    }

    fn reason(&self, exit: ChildExit) -> Reason {
        match (self, exit) {
            (ChildSpec::Daemon(d), ChildExit::Status(s)) => d.reason_for(s),
            (_, ChildExit::SupervisorStopped | ChildExit::NotStarted) => Reason::Normal,
            _ => Reason::Failure,
        }
    }

    async fn launch(&self, bytes: Arc<AtomicU64>) -> Result<Instance> {
        match self {
            ChildSpec::Daemon(d) => d.start_counting(bytes).await.map(Instance::Daemon),
            ChildSpec::Supervisor(s) => s
                .start_boxed()
                .await
                .map(|r| Instance::Supervisor(Box::new(r))),
        }
    }
}

/// A supervisor's configuration and children, in start order.
///
/// ```no_run
/// # async fn demo() -> Result<(), muontrap::supervise::Error> {
/// use std::time::Duration;
/// use muontrap::supervise::{Backoff, Daemon, Strategy, Supervisor};
///
/// let mut sup = Supervisor::new();
/// sup.strategy(Strategy::RestForOne)
///     .intensity(5, Duration::from_secs(10))
///     .backoff(Backoff::new(Duration::from_millis(100), Duration::from_secs(5)))
///     .child("db", Daemon::program("db", "redis-server", ["--port", "6400"]))
///     .child("web", Daemon::program("web", "python3", ["-m", "http.server"]));
/// let running = sup.start().await?;
/// let mut events = running.subscribe();
/// // ... later: stops web, then db, and returns when both trees are gone.
/// running.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    strategy: Strategy,
    intensity: Intensity,
    backoff: Option<Backoff>,
    seed: Option<u64>,
    restart: RestartPolicy,
    events_capacity: Option<usize>,
    children: Vec<(String, ChildSpec)>,
}

/// Default number of events a slow subscriber may fall behind before it misses some.
pub const DEFAULT_EVENTS_CAPACITY: usize = 1024;

impl Supervisor {
    /// A one-for-one supervisor with OTP's default intensity (3 restarts in 5 s), no backoff
    /// and no children.
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// The restart strategy.
    pub fn strategy(&mut self, strategy: Strategy) -> &mut Self {
        self.strategy = strategy;
        self
    }

    /// At most `max_restarts` restarts within `period`; one more and the supervisor gives up.
    pub fn intensity(&mut self, max_restarts: u32, period: Duration) -> &mut Self {
        self.intensity = Intensity {
            max_restarts,
            period,
        };
        self
    }

    /// Waits before restarts, growing with consecutive crashes of a child.
    pub fn backoff(&mut self, backoff: Backoff) -> &mut Self {
        self.backoff = Some(backoff);
        self
    }

    /// Seeds the backoff jitter (default: from the clock), for reproducible schedules.
    pub fn jitter_seed(&mut self, seed: u64) -> &mut Self {
        self.seed = Some(seed);
        self
    }

    /// The restart policy of this supervisor as a child of another (default permanent).
    pub fn restart(&mut self, policy: RestartPolicy) -> &mut Self {
        self.restart = policy;
        self
    }

    /// How many events a subscriber may fall behind (default 1024).
    pub fn events_capacity(&mut self, capacity: usize) -> &mut Self {
        self.events_capacity = Some(capacity.max(1));
        self
    }

    /// Adds a child, started after the ones added before it.
    pub fn child(&mut self, id: impl Into<String>, spec: impl Into<ChildSpec>) -> &mut Self {
        self.children.push((id.into(), spec.into()));
        self
    }

    /// The strategy.
    pub fn get_strategy(&self) -> Strategy {
        self.strategy
    }
    /// The intensity.
    pub fn get_intensity(&self) -> Intensity {
        self.intensity
    }
    /// The backoff, if any.
    pub fn get_backoff(&self) -> Option<Backoff> {
        self.backoff
    }
    /// The restart policy as a nested child.
    pub fn get_restart(&self) -> RestartPolicy {
        self.restart
    }
    /// The children's ids, in start order.
    pub fn get_children(&self) -> impl Iterator<Item = &str> {
        self.children.iter().map(|(id, _)| id.as_str())
    }

    /// [`Supervisor::start`] as a boxed `Send` future: supervisors nest, and a recursive
    /// `async fn` needs a named type to prove it can move between threads.
    fn start_boxed(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<RunningSupervisor>> + Send + '_>>
    {
        Box::pin(self.start())
    }

    /// Starts every child in order and returns the running supervisor. If one fails to
    /// start, those already started are stopped (in reverse order) and the error returned.
    /// Must be called inside a tokio runtime.
    pub async fn start(&self) -> Result<RunningSupervisor> {
        let mut seen = std::collections::HashSet::new();
        for (id, _) in &self.children {
            if !seen.insert(id.as_str()) {
                return Err(Error::DuplicateChild(id.clone()));
            }
        }
        let (events, first) =
            broadcast::channel(self.events_capacity.unwrap_or(DEFAULT_EVENTS_CAPACITY));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (note_tx, note_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = watch::channel(None);
        let (ready_tx, ready_rx) = oneshot::channel();
        let rng: Box<dyn JitterSource> = Box::new(match self.seed {
            Some(s) => SplitMix64::new(s),
            None => SplitMix64::from_entropy(),
        });
        let task = State {
            strategy: self.strategy,
            intensity: self.intensity,
            backoff: self.backoff,
            rng,
            window: RestartWindow::new(),
            entries: Vec::new(),
            next_key: 0,
            pending: BTreeMap::new(),
            events: events.clone(),
            notes: note_tx,
        };
        let initial = self.children.clone();
        let handle = tokio::spawn(task.run(initial, cmd_rx, note_rx, done_tx, ready_tx));
        let running = RunningSupervisor {
            cmds: cmd_tx,
            events,
            first: std::sync::Mutex::new(Some(first)),
            done: done_rx,
            task: AbortOnDrop(handle),
        };
        match ready_rx.await {
            Ok(Ok(())) => Ok(running),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::SupervisorGone),
        }
    }
}

/// Whether a child is a daemon or a supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// A daemon.
    Daemon,
    /// A nested supervisor.
    Supervisor,
}

/// Where a child is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// Running.
    Running,
    /// Waiting for a backoff delay before it starts again.
    Restarting,
    /// Not running (ended and not restarted, or terminated).
    Stopped,
}

/// One row of [`RunningSupervisor::which_children`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// The id.
    pub id: String,
    /// Daemon or supervisor.
    pub kind: ChildKind,
    /// Running, restarting or stopped.
    pub state: ChildState,
    /// The OS pid of a running daemon.
    pub pid: Option<u32>,
}

/// How a supervisor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    ShutDown,
    GaveUp {
        child: String,
        restarts: u32,
        period: Duration,
    },
}

impl Outcome {
    fn into_result(self) -> Result<()> {
        match self {
            Outcome::ShutDown => Ok(()),
            Outcome::GaveUp {
                child,
                restarts,
                period,
            } => Err(Error::GaveUp {
                child,
                restarts,
                period,
            }),
        }
    }
}

/// A running supervisor. Dropping it stops every child's tree (without waiting); use
/// [`RunningSupervisor::shutdown`] to stop in order and wait.
#[derive(Debug)]
pub struct RunningSupervisor {
    cmds: mpsc::UnboundedSender<Request>,
    events: broadcast::Sender<Event>,
    first: std::sync::Mutex<Option<broadcast::Receiver<Event>>>,
    done: watch::Receiver<Option<Outcome>>,
    task: AbortOnDrop<()>,
}

impl RunningSupervisor {
    /// Subscribes to events. The *first* subscription also receives the events of the
    /// initial start (up to the capacity); later ones see events from now on.
    pub fn subscribe(&self) -> Events {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).take();
        Events(first.unwrap_or_else(|| self.events.subscribe()))
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(make(tx))
            .map_err(|_| Error::SupervisorGone)?;
        rx.await.map_err(|_| Error::SupervisorGone)
    }

    /// Adds a child and starts it (after the existing ones in start order).
    pub async fn start_child(
        &self,
        id: impl Into<String>,
        spec: impl Into<ChildSpec>,
    ) -> Result<()> {
        let (id, spec) = (id.into(), spec.into());
        self.ask(|reply| Request::StartChild { id, spec, reply })
            .await?
    }

    /// Stops a child (its tree is gone when this returns). It stays listed, stopped, unless
    /// it is temporary.
    pub async fn terminate_child(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.ask(|reply| Request::Terminate { id, reply }).await?
    }

    /// Starts a stopped child again.
    pub async fn restart_child(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.ask(|reply| Request::Restart { id, reply }).await?
    }

    /// Removes a stopped child.
    pub async fn delete_child(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.ask(|reply| Request::Delete { id, reply }).await?
    }

    /// The children, in start order.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>> {
        self.ask(|reply| Request::Which { reply }).await
    }

    /// The pid of a running daemon child.
    pub async fn os_pid(&self, id: &str) -> Result<Option<u32>> {
        let children = self.which_children().await?;
        children
            .into_iter()
            .find(|c| c.id == id)
            .map(|c| c.pid)
            .ok_or_else(|| Error::NoSuchChild(id.to_owned()))
    }

    /// A child's statistics: output bytes across restarts, restarts, uptime, last exit.
    pub async fn statistics(&self, id: &str) -> Result<DaemonStatistics> {
        let id = id.to_owned();
        self.ask(|reply| Request::Statistics { id, reply }).await?
    }

    /// The cgroup of a running daemon child, if it has one: read its statistics, get and set
    /// its settings, read its config. The handle is valid while this run of the child lasts.
    pub async fn cgroup(&self, id: &str) -> Result<Option<CgroupHandle>> {
        let id = id.to_owned();
        self.ask(|reply| Request::Cgroup { id, reply }).await?
    }

    /// Stops every child in reverse start order, each with its own timeout, and returns when
    /// all their process trees are gone. Returns the failure if the supervisor had already
    /// given up.
    pub async fn shutdown(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Request::Shutdown { reply: tx }).is_ok() {
            let _ = rx.await;
        }
        self.wait().await
    }

    /// Waits until the supervisor stops: `Ok` after a shutdown, [`Error::GaveUp`] if the
    /// restart intensity was exceeded (its children are all gone by then).
    pub async fn wait(&self) -> Result<()> {
        let mut done = self.done.clone();
        let outcome = match done.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        };
        outcome.map_or(Err(Error::SupervisorGone), Outcome::into_result)
    }

    /// Whether the supervisor has stopped.
    pub fn is_stopped(&self) -> bool {
        self.done.borrow().is_some() || self.task.0.is_finished()
    }
}

/// A join handle that aborts its task when dropped: a dropped supervisor takes its children
/// (and their `Child` handles, hence their trees) with it.
#[derive(Debug)]
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Request {
    StartChild {
        id: String,
        spec: ChildSpec,
        reply: oneshot::Sender<Result<()>>,
    },
    Terminate {
        id: String,
        reply: oneshot::Sender<Result<()>>,
    },
    Restart {
        id: String,
        reply: oneshot::Sender<Result<()>>,
    },
    Delete {
        id: String,
        reply: oneshot::Sender<Result<()>>,
    },
    Which {
        reply: oneshot::Sender<Vec<ChildInfo>>,
    },
    Statistics {
        id: String,
        reply: oneshot::Sender<Result<DaemonStatistics>>,
    },
    Cgroup {
        id: String,
        reply: oneshot::Sender<Result<Option<CgroupHandle>>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A child run's report to its supervisor: it ended on its own.
struct Note {
    key: u64,
    generation: u64,
    exit: ChildExit,
}

/// A launched child.
enum Instance {
    Daemon(RunningDaemon),
    Supervisor(Box<RunningSupervisor>),
}

impl Instance {
    fn pid(&self) -> Option<u32> {
        match self {
            Instance::Daemon(d) => Some(d.os_pid()),
            Instance::Supervisor(_) => None,
        }
    }

    fn cgroup(&self) -> Option<CgroupHandle> {
        match self {
            Instance::Daemon(d) => d.cgroup().cloned(),
            Instance::Supervisor(_) => None,
        }
    }

    async fn wait(&mut self) -> ChildExit {
        match self {
            Instance::Daemon(d) => match d.wait().await {
                Ok(s) => ChildExit::Status(s),
                Err(_) => ChildExit::Lost,
            },
            Instance::Supervisor(s) => match s.wait().await {
                Ok(()) => ChildExit::SupervisorStopped,
                Err(_) => ChildExit::SupervisorFailed,
            },
        }
    }

    async fn stop(&mut self) -> ChildExit {
        match self {
            Instance::Daemon(d) => match d.stop().await {
                Ok(s) => ChildExit::Status(s),
                Err(_) => ChildExit::Lost,
            },
            Instance::Supervisor(s) => match s.shutdown().await {
                Ok(()) => ChildExit::SupervisorStopped,
                Err(_) => ChildExit::SupervisorFailed,
            },
        }
    }
}

/// The task that watches one launched child: it reports an exit of its own, or stops the
/// child when asked and returns how it ended.
async fn watch_child(
    mut instance: Instance,
    mut stop: oneshot::Receiver<()>,
    notes: mpsc::UnboundedSender<Note>,
    key: u64,
    generation: u64,
) -> ChildExit {
    tokio::select! {
        exit = instance.wait() => {
            let _ = notes.send(Note { key, generation, exit });
            exit
        }
        _ = &mut stop => instance.stop().await,
    }
}

struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: AbortOnDrop<ChildExit>,
    pid: Option<u32>,
    cgroup: Option<CgroupHandle>,
    since: Instant,
}

enum Life {
    Running(Running),
    /// Waiting in `pending` for its backoff deadline.
    Restarting,
    /// Failed to start during a restart; its exit note is queued.
    StartFailed,
    Stopped,
}

struct Entry {
    key: u64,
    id: String,
    spec: ChildSpec,
    life: Life,
    generation: u64,
    restarts: u32,
    attempt: u32,
    bytes: Arc<AtomicU64>,
    last_exit: Option<ChildExit>,
}

impl Entry {
    fn info(&self) -> ChildInfo {
        let (state, pid) = match &self.life {
            Life::Running(r) => (ChildState::Running, r.pid),
            Life::Restarting => (ChildState::Restarting, None),
            Life::StartFailed | Life::Stopped => (ChildState::Stopped, None),
        };
        ChildInfo {
            id: self.id.clone(),
            kind: self.spec.kind(),
            state,
            pid,
        }
    }

    fn active(&self) -> bool {
        matches!(self.life, Life::Running(_) | Life::Restarting)
    }
}

struct State {
    strategy: Strategy,
    intensity: Intensity,
    backoff: Option<Backoff>,
    rng: Box<dyn JitterSource>,
    window: RestartWindow,
    entries: Vec<Entry>,
    next_key: u64,
    /// Backoff restarts: deadline → keys to start then, in start order.
    pending: BTreeMap<tokio::time::Instant, Vec<u64>>,
    events: broadcast::Sender<Event>,
    notes: mpsc::UnboundedSender<Note>,
}

/// Time for the policy, from tokio's clock so that tests with paused time control it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl State {
    async fn run(
        mut self,
        initial: Vec<(String, ChildSpec)>,
        mut cmds: mpsc::UnboundedReceiver<Request>,
        mut notes: mpsc::UnboundedReceiver<Note>,
        done: watch::Sender<Option<Outcome>>,
        ready: oneshot::Sender<Result<()>>,
    ) {
        for (id, spec) in initial {
            let key = self.add(id.clone(), spec);
            if let Err(e) = self.launch(key).await {
                self.stop_all().await;
                let _ = ready.send(Err(Error::ChildStart {
                    id,
                    source: Box::new(e),
                }));
                let _ = done.send(Some(Outcome::ShutDown));
                return;
            }
        }
        let _ = ready.send(Ok(()));
        let outcome = loop {
            let next = self.pending.keys().next().copied();
            tokio::select! {
                request = cmds.recv() => match request {
                    Some(Request::Shutdown { reply }) => {
                        self.stop_all().await;
                        let _ = reply.send(());
                        break Outcome::ShutDown;
                    }
                    Some(r) => self.handle(r).await,
                    // Every handle is gone (cannot happen while `RunningSupervisor` lives,
                    // since dropping it aborts this task); stop in order anyway.
                    None => {
                        self.stop_all().await;
                        break Outcome::ShutDown;
                    }
                },
                Some(note) = notes.recv() => {
                    if let Err(gave_up) = self.exited(note).await {
                        break gave_up;
                    }
                }
                _ = sleep_until(next), if next.is_some() => {
                    if let Err(gave_up) = self.restart_due().await {
                        break gave_up;
                    }
                }
            }
        };
        let normal = outcome == Outcome::ShutDown;
        self.emit(Event::SupervisorStopped { normal });
        let _ = done.send(Some(outcome));
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn add(&mut self, id: String, spec: ChildSpec) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        self.entries.push(Entry {
            key,
            id,
            spec,
            life: Life::Stopped,
            generation: 0,
            restarts: 0,
            attempt: 0,
            bytes: Arc::new(AtomicU64::new(0)),
            last_exit: None,
        });
        key
    }

    fn index(&self, key: u64) -> Option<usize> {
        self.entries.iter().position(|e| e.key == key)
    }

    fn find(&self, id: &str) -> Result<usize> {
        self.entries
            .iter()
            .position(|e| e.id == id)
            .ok_or_else(|| Error::NoSuchChild(id.to_owned()))
    }

    /// Launches a child now and starts watching it.
    async fn launch(&mut self, key: u64) -> Result<()> {
        let Some(i) = self.index(key) else {
            return Ok(());
        };
        let (spec, bytes) = (self.entries[i].spec.clone(), self.entries[i].bytes.clone());
        let launched = spec.launch(bytes).await;
        let Some(i) = self.index(key) else {
            return Ok(());
        };
        let entry = &mut self.entries[i];
        entry.generation += 1;
        match launched {
            Ok(instance) => {
                let pid = instance.pid();
                let cgroup = instance.cgroup();
                let (stop_tx, stop_rx) = oneshot::channel();
                let task = tokio::spawn(watch_child(
                    instance,
                    stop_rx,
                    self.notes.clone(),
                    key,
                    entry.generation,
                ));
                entry.life = Life::Running(Running {
                    stop: Some(stop_tx),
                    task: AbortOnDrop(task),
                    pid,
                    cgroup,
                    since: now(),
                });
                let id = entry.id.clone();
                self.emit(Event::Started { id, pid });
                Ok(())
            }
            Err(e) => {
                entry.life = Life::Stopped;
                let id = entry.id.clone();
                self.emit(Event::StartFailed {
                    id,
                    error: error_chain(&e),
                });
                Err(e)
            }
        }
    }

    /// Stops one child and waits until it is gone.
    async fn stop(&mut self, i: usize) {
        let entry = &mut self.entries[i];
        let exit = match std::mem::replace(&mut entry.life, Life::Stopped) {
            Life::Running(mut r) => {
                if let Some(stop) = r.stop.take() {
                    let _ = stop.send(());
                }
                match (&mut r.task.0).await {
                    Ok(exit) => exit,
                    Err(_) => ChildExit::Lost,
                }
            }
            Life::Restarting => {
                let key = entry.key;
                for keys in self.pending.values_mut() {
                    keys.retain(|&k| k != key);
                }
                self.pending.retain(|_, keys| !keys.is_empty());
                ChildExit::NotStarted
            }
            Life::StartFailed | Life::Stopped => return,
        };
        let entry = &mut self.entries[i];
        // A report of this run that is still queued is stale now.
        entry.generation += 1;
        entry.last_exit = Some(exit);
        let id = entry.id.clone();
        self.emit(Event::Stopped { id, exit });
    }

    /// Stops every child in reverse start order.
    async fn stop_all(&mut self) {
        for i in (0..self.entries.len()).rev() {
            self.stop(i).await;
        }
        self.pending.clear();
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::StartChild { id, spec, reply } => {
                let result = if self.entries.iter().any(|e| e.id == id) {
                    Err(Error::DuplicateChild(id))
                } else {
                    let key = self.add(id.clone(), spec);
                    let r = self.launch(key).await;
                    if r.is_err() {
                        // OTP: a child that fails in start_child is not kept.
                        if let Some(i) = self.index(key) {
                            self.entries.remove(i);
                        }
                    }
                    r.map_err(|e| Error::ChildStart {
                        id,
                        source: Box::new(e),
                    })
                };
                let _ = reply.send(result);
            }
            Request::Terminate { id, reply } => {
                let result = match self.find(&id) {
                    Ok(i) => {
                        self.stop(i).await;
                        if self.entries[i].spec.policy() == RestartPolicy::Temporary {
                            self.entries.remove(i);
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Request::Restart { id, reply } => {
                let result = match self.find(&id) {
                    Ok(i) if self.entries[i].active() => Err(Error::ChildRunning(id)),
                    Ok(i) => {
                        let key = self.entries[i].key;
                        self.launch(key).await.map_err(|e| Error::ChildStart {
                            id,
                            source: Box::new(e),
                        })
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Request::Delete { id, reply } => {
                let result = match self.find(&id) {
                    Ok(i) if self.entries[i].active() => Err(Error::ChildRunning(id)),
                    Ok(i) => {
                        self.entries.remove(i);
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Request::Which { reply } => {
                let _ = reply.send(self.entries.iter().map(Entry::info).collect());
            }
            Request::Statistics { id, reply } => {
                let result = self.find(&id).map(|i| {
                    let e = &self.entries[i];
                    let running = match &e.life {
                        Life::Running(r) => Some(r),
                        _ => None,
                    };
                    DaemonStatistics {
                        os_pid: running.and_then(|r| r.pid),
                        output_bytes: e.bytes.load(Ordering::Relaxed),
                        restarts: e.restarts,
                        uptime: running.map(|r| now().saturating_duration_since(r.since)),
                        last_exit: e.last_exit.and_then(|x| x.status()),
                        cgroup: running
                            .and_then(|r| r.cgroup.as_ref())
                            .and_then(|c| c.statistics().ok()),
                    }
                });
                let _ = reply.send(result);
            }
            Request::Cgroup { id, reply } => {
                let result = self.find(&id).map(|i| match &self.entries[i].life {
                    Life::Running(r) => r.cgroup.clone(),
                    _ => None,
                });
                let _ = reply.send(result);
            }
            Request::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }

    /// A child ended on its own (or failed to restart): apply its policy, the intensity and
    /// the strategy.
    async fn exited(&mut self, note: Note) -> Result<(), Outcome> {
        let Some(i) = self.index(note.key) else {
            return Ok(());
        };
        let entry = &mut self.entries[i];
        if entry.generation != note.generation
            || !matches!(entry.life, Life::Running(_) | Life::StartFailed)
        {
            return Ok(()); // stale: that run was stopped on purpose
        }
        let uptime = match std::mem::replace(&mut entry.life, Life::Stopped) {
            Life::Running(r) => now().saturating_duration_since(r.since),
            _ => Duration::ZERO,
        };
        entry.last_exit = Some(note.exit);
        let reason = entry.spec.reason(note.exit);
        let policy = entry.spec.policy();
        let id = entry.id.clone();
        if !matches!(note.exit, ChildExit::StartFailed) {
            self.emit(Event::Exited {
                id: id.clone(),
                exit: note.exit,
                reason,
            });
        }
        if !policy.restarts_after(reason) {
            if policy == RestartPolicy::Temporary {
                self.entries.remove(i);
            }
            return Ok(());
        }
        if let Err(exceeded) = self.window.record(now(), self.intensity) {
            self.emit(Event::GaveUp {
                id: id.clone(),
                restarts: exceeded.restarts,
                period: exceeded.period,
            });
            self.stop_all().await;
            return Err(Outcome::GaveUp {
                child: id,
                restarts: exceeded.restarts,
                period: exceeded.period,
            });
        }
        let siblings: Vec<Sibling> = self
            .entries
            .iter()
            .map(|e| Sibling {
                running: e.active(),
                temporary: e.spec.policy() == RestartPolicy::Temporary,
            })
            .collect();
        let plan = self.strategy.plan(i, &siblings);
        let stop_keys: Vec<u64> = plan.stop.iter().map(|&j| self.entries[j].key).collect();
        let start_keys: Vec<u64> = plan.start.iter().map(|&j| self.entries[j].key).collect();
        for key in stop_keys {
            if let Some(j) = self.index(key) {
                self.stop(j).await;
                if self.entries[j].spec.policy() == RestartPolicy::Temporary {
                    self.entries.remove(j);
                }
            }
        }
        let dead = self
            .index(note.key)
            .expect("a restarted child stays listed");
        let (attempt, delay) = match self.backoff {
            Some(b) => {
                let entry = &mut self.entries[dead];
                entry.attempt = b.next_attempt(entry.attempt, uptime);
                let attempt = entry.attempt;
                (attempt, b.delay(attempt, self.rng.as_mut()))
            }
            None => (self.entries[dead].restarts + 1, Duration::ZERO),
        };
        self.emit(Event::Restarting { id, attempt, delay });
        for &key in &start_keys {
            if let Some(j) = self.index(key) {
                self.entries[j].restarts += 1;
                self.entries[j].life = Life::Restarting;
            }
        }
        if delay.is_zero() {
            self.start_in_order(start_keys).await;
        } else {
            let at = tokio::time::Instant::now() + delay;
            self.pending.entry(at).or_default().extend(start_keys);
        }
        Ok(())
    }

    /// Starts the children whose backoff delay is over.
    async fn restart_due(&mut self) -> Result<(), Outcome> {
        let now = tokio::time::Instant::now();
        let later = self.pending.split_off(&(now + Duration::from_nanos(1)));
        let due = std::mem::replace(&mut self.pending, later);
        for (_, keys) in due {
            self.start_in_order(keys).await;
        }
        Ok(())
    }

    /// Restarts children in order. One that fails to start is reported as a failed exit, so
    /// that the intensity and the strategy apply to it like to a crash (OTP does the same).
    async fn start_in_order(&mut self, keys: Vec<u64>) {
        for key in keys {
            let Some(i) = self.index(key) else { continue };
            if !matches!(self.entries[i].life, Life::Restarting) {
                continue;
            }
            if self.launch(key).await.is_err() {
                if let Some(i) = self.index(key) {
                    let entry = &mut self.entries[i];
                    entry.life = Life::StartFailed;
                    let _ = self.notes.send(Note {
                        key,
                        generation: entry.generation,
                        exit: ChildExit::StartFailed,
                    });
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// An error and its sources on one line, for events.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
