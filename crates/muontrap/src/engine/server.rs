//! The keeper side of the library face: a fork server, and the keeper loop it forks per
//! command.
//!
//! Why a fork server: the owner must never fork itself (it may be a big multi-threaded tokio
//! program: a fork would pin a copy-on-write snapshot of its memory for the keeper's whole
//! life, and only async-signal-safe code may run in it). Exec'ing a keeper binary per command
//! costs an extra exec on every spawn. So the first spawn of an owner process starts *one*
//! keeper server (its own executable re-exec'd with a hidden argument, intercepted before
//! `main` by [`crate::sys::hook`]); the server is small and single-threaded, so forking it is
//! cheap and safe, and each fork becomes the keeper of one command.
//!
//! The per-command keeper holds the command's control socket (see [`super::control`]): that
//! socket, not the server, is the command's lifeline. If the server dies, running keepers are
//! unaffected; if the owner dies, every keeper sees end-of-stream and stops its tree.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::{PollFd, PollFlags, epoll};
use rustix::process::{Pid, PidfdFlags};

use super::control::{Control, Message};
use super::keeper::{self, KILL_PHASE_BOUND, Keeper};
use super::spec::LaunchSpec;
use super::watch::{Ending, Lifeline, LifelineEvent, watch};
use crate::cgroup::plan::CGROUP_STAGE_BASE;
use crate::sys::exec::{self, SpawnError};
use crate::sys::fdpass;
use crate::sys::proc_tree::ProcFs;
use crate::sys::process::{self, Forked};
use crate::sys::signals;

/// Largest accepted spec (argv + environment are bounded by the kernel far below this).
const MAX_SPEC: usize = 64 << 20;

/// Runs the fork server on descriptor 0 and exits the process. Called from the pre-`main` hook.
pub fn serve_stdin() -> ! {
    let sock = process::take_stdin();
    let code = match serve(sock) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("muontrap keeper server: {e}");
            1
        }
    };
    process::exit_now(code)
}

fn serve(sock: OwnedFd) -> io::Result<()> {
    // Terminal signals go to the owner; if it dies, lifelines close. Keepers must survive
    // long enough to clean up, so they ignore them. SIGCHLD ignored: the kernel reaps the
    // per-command keepers we fork (they reset it for themselves), and the orphans below.
    signals::ignore(&[
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGPIPE,
        libc::SIGCHLD,
    ])?;
    signals::unblock_all()?;
    let null = exec::open_dev_null()?;
    process::set_name(c"mt-keeper-srv");
    // The subreaper above every keeper: if a keeper is killed (the OOM killer, a stray
    // `kill -9`), the rest of its tree is re-parented here rather than to init, and
    // `Pool::bury` kills it.
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    // Tell the owner the hook ran and we are a keeper server, not its program.
    fdpass::send_with_fds(sock.as_fd(), b"K", &[])?;
    // The server holds one socket per running command: lift its descriptor limit to the hard
    // limit (keepers put the owner's limit back before they launch anything).
    let owner_nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: owner_nofile.maximum,
            maximum: owner_nofile.maximum,
        },
    );
    let mut pool = Pool::new(&sock, owner_nofile)?;
    loop {
        if pool.idle.is_empty() {
            // Fork ahead, so the next request does not wait for a fork.
            if let Ok(k) = fork_keeper_process(&null, &pool.owner_nofile) {
                pool.idle.push(k);
            }
        }
        for ready in pool.wait()? {
            match ready {
                Ready::Owner => {
                    let Some((payload, fds)) = read_request(&sock)? else {
                        return Ok(()); // the owner is gone
                    };
                    pool.dispatch(payload, fds, &null);
                }
                Ready::Keeper(fd) => pool.keeper_ready(fd),
            }
        }
    }
}

/// Keepers are reused: one that has finished its command (its tree gone, everything reaped)
/// tells the server over its socket and waits for the next request, so a steady stream of
/// spawns costs no fork and no process exit. At most [`MAX_IDLE`] wait; extra ones exit.
const MAX_IDLE: usize = 8;

struct Pool {
    epoll: OwnedFd,
    /// The owner's descriptor limit, which keepers restore for their commands.
    owner_nofile: rustix::process::Rlimit,
    /// Keepers waiting for a request (their sockets are not in the epoll set).
    idle: Vec<KeeperProc>,
    /// Keepers running a command, by descriptor number of their socket (in the epoll set).
    busy: HashMap<RawFd, KeeperProc>,
    events: Vec<epoll::Event>,
}

/// A keeper process, as the server holds it.
struct KeeperProc {
    /// The server's end of the keeper's socket.
    sock: OwnedFd,
    pid: i32,
    /// Readable once the keeper has exited and its orphans have been re-parented to us.
    pidfd: OwnedFd,
    /// The encoded spec of the command it runs (busy keepers only).
    spec: Vec<u8>,
    /// Bytes of notes received but not parsed yet (a note may arrive in pieces).
    inbox: Vec<u8>,
    /// The cgroup directories it created and has not removed yet.
    cgroup_dirs: Option<Vec<PathBuf>>,
}

enum Ready {
    Owner,
    Keeper(RawFd),
}

const OWNER: u64 = u64::MAX;

impl Pool {
    fn new(owner: &OwnedFd, owner_nofile: rustix::process::Rlimit) -> io::Result<Pool> {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &ep,
            owner,
            epoll::EventData::new_u64(OWNER),
            epoll::EventFlags::IN,
        )?;
        Ok(Pool {
            epoll: ep,
            owner_nofile,
            idle: Vec::new(),
            busy: HashMap::new(),
            events: Vec::with_capacity(64),
        })
    }

    /// Waits for the owner or a keeper; keepers first, so a keeper that just became free
    /// serves the request that arrived at the same time.
    fn wait(&mut self) -> io::Result<Vec<Ready>> {
        self.events.clear();
        match epoll::wait(&self.epoll, spare_capacity(&mut self.events), None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut out: Vec<Ready> = self
            .events
            .iter()
            .map(|e| e.data.u64())
            .filter(|&d| d != OWNER)
            .map(|d| Ready::Keeper(d as RawFd))
            .collect();
        if self.events.iter().any(|e| e.data.u64() == OWNER) {
            out.push(Ready::Owner);
        }
        Ok(out)
    }

    /// Hands a request to an idle keeper, or to a freshly forked one.
    fn dispatch(&mut self, payload: Vec<u8>, fds: Vec<OwnedFd>, null: &OwnedFd) {
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        while let Some(k) = self.idle.pop() {
            if fdpass::send_with_fds(k.sock.as_fd(), &frame(&payload), &borrowed).is_ok() {
                self.make_busy(k, payload);
                return; // our copies of the command's descriptors close here
            }
        }
        match fork_keeper_process(null, &self.owner_nofile) {
            Ok(k) if fdpass::send_with_fds(k.sock.as_fd(), &frame(&payload), &borrowed).is_ok() => {
                self.make_busy(k, payload)
            }
            Ok(_) => fail_request(fds, libc::EPIPE),
            Err(e) => fail_request(fds, e.raw_os_error().unwrap_or(libc::EAGAIN)),
        }
    }

    fn make_busy(&mut self, mut k: KeeperProc, spec: Vec<u8>) {
        k.spec = spec;
        k.inbox.clear();
        k.cgroup_dirs = None;
        let raw = k.sock.as_raw_fd();
        if epoll::add(
            &self.epoll,
            &k.sock,
            epoll::EventData::new_u64(raw as u64),
            epoll::EventFlags::IN,
        )
        .is_ok()
        {
            self.busy.insert(raw, k);
        }
        // If it cannot be watched, dropping it makes the keeper exit after its command.
    }

    /// A busy keeper wrote notes, or died: track its cgroup; park it when it is free, let it
    /// go when it leaves, bury it when it died.
    fn keeper_ready(&mut self, raw: RawFd) {
        let Some(k) = self.busy.get_mut(&raw) else {
            return;
        };
        let mut buf = [0u8; 4096];
        let end = match rustix::io::read(&k.sock, &mut buf) {
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => return,
            Ok(0) | Err(_) => Some(Note::Died),
            Ok(n) => {
                k.inbox.extend_from_slice(&buf[..n]);
                let mut end = None;
                for note in parse_notes(&mut k.inbox) {
                    match note {
                        Note::CgroupMade(dirs) => k.cgroup_dirs = Some(dirs),
                        Note::CgroupGone => k.cgroup_dirs = None,
                        Note::Free | Note::Leaving | Note::Died => end = Some(note),
                    }
                }
                end
            }
        };
        let Some(end) = end else {
            return; // still busy
        };
        let Some(k) = self.busy.remove(&raw) else {
            return;
        };
        let _ = epoll::delete(&self.epoll, &k.sock);
        match end {
            Note::Died => self.bury(k),
            Note::Free if self.idle.len() < MAX_IDLE => self.idle.push(k),
            // A free keeper beyond MAX_IDLE is let go: it exits when its socket closes here.
            _ => {}
        }
    }

    /// A busy keeper went away without reporting itself free: it may have been killed with its
    /// tree still running. Its command dies with it (`PR_SET_PDEATHSIG`); the rest of the tree
    /// has been re-parented to us: kill it (SIGCHLD is ignored, so the kernel reaps it).
    fn bury(&mut self, k: KeeperProc) {
        // The keeper's socket closes early in its exit, its orphans move to us later: wait for
        // the pidfd, which becomes readable only after that.
        let mut fds = [PollFd::new(&k.pidfd, PollFlags::IN)];
        let _ = keeper::poll(&mut fds, Some(Duration::from_secs(1)));
        let keepers: HashSet<i32> = (self.idle.iter().map(|k| k.pid))
            .chain(self.busy.values().map(|k| k.pid))
            .collect();
        let left = kill_orphans(&keepers);
        if left > 0 {
            eprintln!("muontrap keeper server: {left} orphaned processes survived SIGKILL");
        }
        // The cgroup it had made: kill what is left in it (a member moved out of the tree is
        // still in it), wait until it is empty, remove the directories it created.
        let plan = k.cgroup_dirs.and_then(|dirs| {
            let spec = LaunchSpec::decode(&k.spec).ok()?;
            Some(spec.cgroup?.leftover(dirs))
        });
        drop(plan);
    }
}

/// What a keeper tells the server over its socket.
#[derive(Debug, PartialEq, Eq)]
enum Note {
    /// `C`, a little-endian `u32` length, then the paths it created, each ending in NUL.
    CgroupMade(Vec<PathBuf>),
    /// `R`: it removed its cgroup.
    CgroupGone,
    /// `F`: its command's tree is gone, and it can take the next request.
    Free,
    /// `X`: it is exiting on purpose, with nothing left behind.
    Leaving,
    /// End of stream without `F` or `X` (never on the wire).
    Died,
}

const NOTE_CGROUP_MADE: u8 = b'C';
const NOTE_CGROUP_GONE: u8 = b'R';
const NOTE_FREE: u8 = b'F';
const NOTE_LEAVING: u8 = b'X';

/// Takes every complete note off the front of `inbox`; a partial one stays for later. An
/// unknown byte (never written) is read as `Leaving`, which drops the keeper.
fn parse_notes(inbox: &mut Vec<u8>) -> Vec<Note> {
    let mut notes = Vec::new();
    let mut at = 0;
    while let Some(&tag) = inbox.get(at) {
        let note = match tag {
            NOTE_CGROUP_MADE => {
                let Some(len) = inbox.get(at + 1..at + 5) else {
                    break;
                };
                let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
                let Some(body) = inbox.get(at + 5..at + 5 + len) else {
                    break;
                };
                at += 5 + len;
                Note::CgroupMade(
                    body.split(|&b| b == 0)
                        .filter(|p| !p.is_empty())
                        .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
                        .collect(),
                )
            }
            other => {
                at += 1;
                match other {
                    NOTE_CGROUP_GONE => Note::CgroupGone,
                    NOTE_FREE => Note::Free,
                    _ => Note::Leaving,
                }
            }
        };
        notes.push(note);
    }
    inbox.drain(..at);
    notes
}

/// The `C` note for `dirs`.
fn cgroup_made_note(dirs: &[PathBuf]) -> Vec<u8> {
    let mut body = Vec::new();
    for d in dirs {
        body.extend_from_slice(d.as_os_str().as_bytes());
        body.push(0);
    }
    let mut note = vec![NOTE_CGROUP_MADE];
    note.extend_from_slice(&(body.len() as u32).to_le_bytes());
    note.extend_from_slice(&body);
    note
}

/// Writes a note to the server; a failure means the server is gone, which changes nothing here.
fn tell_server(server: BorrowedFd<'_>, note: &[u8]) {
    let _ = fdpass::send_with_fds(server, note, &[]);
}

/// Kills every descendant of the server that is not under a live keeper (in `keepers`), until
/// none is left or [`KILL_PHASE_BOUND`] has passed. Returns how many are left.
fn kill_orphans(keepers: &HashSet<i32>) -> usize {
    let procfs = ProcFs::default();
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let mut spared = keepers.clone();
    let bound = Instant::now() + KILL_PHASE_BOUND;
    loop {
        keeper::kill_pass(&procfs, me, &mut spared);
        let left = procfs
            .descendants_where(me, |p| !keepers.contains(&p))
            .into_iter()
            .filter(|(p, _)| !keepers.contains(p))
            .count();
        if left == 0 || Instant::now() >= bound {
            return left;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn fail_request(fds: Vec<OwnedFd>, errno: i32) {
    if let Some(control) = fds.into_iter().next() {
        let _ = Control::from_fd(control).send(Message::Failed { stage: 0, errno });
    }
}

/// A request on the wire: a little-endian length, then the encoded spec.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(4 + payload.len());
    msg.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    msg.extend_from_slice(payload);
    msg
}

/// Reads one framed request and its descriptors (the control socket first). `None` at
/// end-of-stream.
fn read_request(sock: &OwnedFd) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut hdr = [0u8; 4];
    let (n, fds) = fdpass::recv_with_fds(sock.as_fd(), &mut hdr)?;
    if n == 0 {
        return Ok(None);
    }
    fdpass::read_exact(sock, &mut hdr[n..])?;
    let len = u32::from_le_bytes(hdr) as usize;
    if len > MAX_SPEC || fds.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request"));
    }
    let mut payload = vec![0u8; len];
    fdpass::read_exact(sock, &mut payload)?;
    Ok(Some((payload, fds)))
}

/// Forks a keeper process. It serves one request at a time from its socket to the server and,
/// after each command whose tree is entirely gone, reports itself free for the next one.
/// Returns the server's end of the socket.
fn fork_keeper_process(null: &OwnedFd, nofile: &rustix::process::Rlimit) -> io::Result<KeeperProc> {
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    // The server is single-threaded (it runs before the host program's `main` and starts no
    // threads), so the forked keeper may run ordinary code.
    match process::fork_keeper()? {
        Forked::Child => {
            drop(ours);
            let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, *nofile);
            // Our stdin is the server's socket to the owner, and the server's other keeper
            // sockets are close-on-exec but still open here: neither is ours to hold.
            let _ = process::redirect(null, 0);
            process::close_inherited_except(&[null.as_raw_fd(), theirs.as_raw_fd()]);
            process::set_name(c"mt-keeper");
            // Each command's keeper state (subreaper, signalfd) is made while idle, before the
            // request arrives, so setting it up is not on the spawn path.
            let mut keeper = Keeper::new(&[libc::SIGTERM]);
            loop {
                let Ok(Some((payload, fds))) = read_request(&theirs) else {
                    process::exit_now(0); // the server went away, or let us go
                };
                // A SIGTERM sent to this keeper while it was idle had no tree to stop; it must
                // not stop the tree of the command it takes on now.
                if let Ok(k) = &mut keeper {
                    k.discard_pending_signals();
                }
                if !keep_one(keeper, &payload, fds, null, theirs.as_fd()) {
                    tell_server(theirs.as_fd(), &[NOTE_LEAVING]);
                    process::exit_now(0);
                }
                keeper = Keeper::new(&[libc::SIGTERM]);
                if fdpass::send_with_fds(theirs.as_fd(), &[NOTE_FREE], &[]).is_err() {
                    process::exit_now(0);
                }
            }
        }
        Forked::Parent(pid) => {
            // The new keeper blocks on its socket until we write or close it, so short of
            // being killed in the microseconds since the fork it has not exited (and been
            // reaped, SIGCHLD being ignored): the pid is still its own. If this fails,
            // dropping `ours` lets the keeper go.
            let pidfd = rustix::process::pidfd_open(
                Pid::from_raw(pid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?,
                PidfdFlags::empty(),
            )?;
            Ok(KeeperProc {
                sock: ours,
                pid,
                pidfd,
                spec: Vec::new(),
                inbox: Vec::new(),
                cgroup_dirs: None,
            })
        }
    }
}

/// The keeper of one command, in a process forked from the server. Returns whether this
/// process can be reused: the tree is gone and nothing is left over.
fn keep_one(
    keeper: io::Result<Keeper>,
    payload: &[u8],
    mut passed: Vec<OwnedFd>,
    null: &OwnedFd,
    server: BorrowedFd<'_>,
) -> bool {
    let control = Control::from_fd(passed.remove(0));
    let fail = |stage: u32, e: &io::Error| {
        let _ = control.send(Message::Failed {
            stage,
            errno: e.raw_os_error().unwrap_or(libc::EINVAL),
        });
        false
    };
    let spec = match LaunchSpec::decode(payload) {
        Ok(s) => s,
        Err(e) => return fail(0, &e),
    };
    let mut keeper = match keeper {
        Ok(k) => k,
        Err(e) => return fail(0, &e),
    };
    // The cgroup is created here, in the keeper, so that it is removed even if the owner is
    // SIGKILLed; a failed step removes what was created and is reported by its index.
    let cgroup = match spec.cgroup.as_ref().map(|c| c.create()).transpose() {
        Ok(c) => c,
        Err(e) => {
            let errno = io::Error::from_raw_os_error(e.error.raw_os_error());
            return fail(CGROUP_STAGE_BASE + e.step as u32, &errno);
        }
    };
    // Should this keeper be killed, the server removes what it made (see `Pool::bury`).
    if let Some(cg) = &cgroup {
        tell_server(server, &cgroup_made_note(cg.created()));
    }
    let raw: Vec<RawFd> = passed.iter().map(|f| f.as_raw_fd()).collect();
    let mut plan = match spec.exec_plan(&raw, null.as_raw_fd()) {
        Ok(p) => p,
        Err(e) => return fail(0, &e),
    };
    if let Some(cg) = &cgroup {
        plan.join_cgroups(&cg.join_fds(), cg.v2_dir_fd());
    }
    match keeper.spawn(&plan) {
        Ok(pid) => {
            let _ = control.send(Message::Spawned(pid));
        }
        Err(SpawnError::Setup(e)) => return fail(0, &e),
        Err(SpawnError::Child(f)) => return fail(f.stage as u32, &f.error),
    }
    // The command has its copies; ours would keep pipes open past the command's exit.
    drop(passed);
    drop(plan);
    if let Some(cg) = cgroup {
        keeper.adopt_cgroup(cg);
    }
    let ending = watch(
        &mut keeper,
        &mut ControlLifeline(&control),
        spec.delay_to_sigkill,
        spec.timeout,
    );
    // Empty and remove the cgroup before the owner hears of the end (its final statistics are
    // kept for the report below).
    if keeper.release_cgroup() {
        tell_server(server, &[NOTE_CGROUP_GONE]);
    }
    let report = match ending {
        Ending::Exited(s) => Message::Exited(s),
        Ending::TimedOut(s) => Message::TimedOut(s),
        // SIGTERM to the keeper itself: the tree was stopped; report like any exit.
        Ending::Signalled(_, Some(s)) => Message::Exited(s),
        // Asked to stop: do the job, then leave.
        Ending::Signalled(_, None) => return false,
        Ending::OwnerGone(_) | Ending::Detached => return !keeper.tree_alive(),
    };
    let signalled = matches!(ending, Ending::Signalled(..));
    // The cgroup is gone now; its final statistics (read just before the rmdir) go to the
    // owner first, so they are there when `wait()` returns.
    if let Some(stats) = keeper.cgroup_statistics() {
        let _ = control.send(Message::Statistics(Box::new(stats.clone())));
    }
    let _ = control.send(report);
    !signalled && !keeper.tree_alive()
}

/// The library's lifeline: the command's control socket.
struct ControlLifeline<'a>(&'a Control);

impl Lifeline for ControlLifeline<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    fn ready(&mut self) -> LifelineEvent {
        match self.0.recv(false) {
            Ok(Some(Message::Signal(s))) => LifelineEvent::Signal(s),
            Ok(Some(Message::Terminate)) => LifelineEvent::Terminate,
            Ok(Some(Message::Kill)) => LifelineEvent::Kill,
            Ok(Some(Message::Detach)) => LifelineEvent::Detach,
            Ok(Some(_)) => LifelineEvent::Nothing,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => LifelineEvent::Nothing,
            // End of stream: the owner dropped the handle, exited, crashed or was killed.
            Ok(None) | Err(_) => LifelineEvent::Gone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_parse_whole_and_in_pieces() {
        let dirs = vec![
            PathBuf::from("/sys/fs/cgroup/unified/a/muontrap-1"),
            PathBuf::from("/sys/fs/cgroup/pids/a/muontrap-1"),
        ];
        let mut wire = cgroup_made_note(&dirs);
        wire.extend_from_slice(&[NOTE_CGROUP_GONE, NOTE_FREE]);
        let mut inbox = wire.clone();
        assert_eq!(
            parse_notes(&mut inbox),
            vec![Note::CgroupMade(dirs.clone()), Note::CgroupGone, Note::Free]
        );
        assert!(inbox.is_empty());
        // Byte by byte: nothing is parsed until a note is complete, and then exactly it.
        let mut inbox = Vec::new();
        let mut notes = Vec::new();
        for &b in &wire {
            inbox.push(b);
            notes.extend(parse_notes(&mut inbox));
        }
        assert_eq!(
            notes,
            vec![Note::CgroupMade(dirs), Note::CgroupGone, Note::Free]
        );
        assert!(inbox.is_empty());
    }

    #[test]
    fn an_unknown_byte_reads_as_leaving() {
        let mut inbox = vec![b'?', NOTE_LEAVING];
        assert_eq!(parse_notes(&mut inbox), vec![Note::Leaving, Note::Leaving]);
    }
}
