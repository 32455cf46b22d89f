//! `mt-fixture`: the test subject for muontrap's containment tests.
//!
//! Each subcommand builds one process shape (a tree, a chain, a daemon that
//! escapes its session, a bounded fork bomb, …) or exercises one I/O or
//! environment behaviour, so a test can check that muontrap contains it.
//!
//! Conventions every subcommand follows:
//!
//! - Every process created keeps the inherited environment, so a tree is
//!   found by the `MUONTRAP_TEST_ID` marker in `/proc/*/environ`.
//! - "ready" means the line `ready\n` on stdout, written only once *every*
//!   process of the shape exists, so a test waits for it instead of sleeping.
//!   Where children must do something first (`setsid`, fork further), they
//!   report through a pipe ([`Latch`]) before the top prints `ready`.
//! - Processes that wait forever block in `pause(2)`, never spin.
//! - All output is written straight to the file descriptor, unbuffered, so a
//!   `fork` never duplicates pending output and nothing needs flushing at exit.
//!
//! Subcommands (`mt-fixture <subcommand> [args]`):
//!
//! | subcommand | behaviour |
//! |---|---|
//! | `exit N` | exit with code N |
//! | `signal SIG` | restore SIG's default disposition, unblock it, raise it |
//! | `sleep MS` | sleep MS milliseconds, exit 0 |
//! | `forever` | ready, wait forever |
//! | `ignore-term` | ignore SIGTERM, ready, wait forever |
//! | `tree N [--ignore-term]` | fork N children; N+1 processes wait forever |
//! | `grandchildren N` | one child forks N grandchildren; N+2 processes |
//! | `daemon [--ignore-term] [--stay] [--close-stdout]` | double-fork + `setsid` daemon |
//! | `fanout N [--ignore-term]` | N processes in total (parent + N-1 children) |
//! | `chain DEPTH` | DEPTH processes, each the only child of the one above |
//! | `bomb MAX` | bounded fork bomb: exactly MAX processes, never more |
//! | `print BYTES [--stderr]` | BYTES bytes of `0123456789abcdef` repeated, no newlines |
//! | `lines N` | lines `line 1` .. `line N` |
//! | `interleave N` | `out i` on stdout then `err i` on stderr, i = 1..=N |
//! | `hold-pipes` | a `setsid` child keeps stdout/stderr open forever; parent exits 0 |
//! | `fds` | `fds 0 1 2 …`: this process's open descriptors, sorted |
//! | `env NAME` | the value of NAME, or `<unset>` |
//! | `id` | `uid=U gid=G groups=G1,G2` (real ids, groups sorted) |
//! | `cwd` | the current directory |
//! | `argv` | each argv element (argv\[0\] included) on its own line |
//! | `cat` | copy stdin to stdout until EOF |
//! | `sigpipe` | `SIGPIPE ignored`/`SIGPIPE default`, then `mask <hex>` (SigBlk) |
//! | `spin MS` | burn CPU for MS milliseconds |
//! | `alloc MB` | allocate and touch MB MiB, ready, wait forever |
//!
//! `daemon`: the top forks a session leader that calls `setsid` and forks the
//! daemon, then exits. The daemon prints `daemon <pid>` and `ready`; only then
//! does the top print its own `ready` and exit 0 (or wait forever with
//! `--stay`). With `--close-stdout` the daemon points its stdout and stderr at
//! `/dev/null` after reporting, so a reader of the original pipes sees EOF once
//! the top exits.
//!
//! Exit codes: 0 success, 1 a system call failed, 2 usage error, 3 the reader
//! of stdout/stderr went away (EPIPE; only possible when SIGPIPE is ignored,
//! otherwise the kernel's SIGPIPE ends the process first).
//!
//! # Why `#![no_main]`
//!
//! Rust's runtime sets SIGPIPE to "ignore" before calling `main`, so a Rust
//! `main` could never report the SIGPIPE disposition its parent gave it, and
//! `sigpipe` would always say "ignored". With a C `main` the fixture starts
//! with exactly the dispositions and signal mask it inherited, like the C
//! programs muontrap will run in practice.

// Under `cargo test` the harness supplies `main`; the fixture's own entry
// point and the code only it reaches are compiled out or unused.
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{OsString, c_int};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rustix::pipe::PipeFlags;

/// The largest `bomb MAX`: its token pipe must hold MAX-1 bytes, and a pipe
/// is only guaranteed one page (4096 bytes) when the user's pipe quota is low.
const BOMB_MAX: usize = 4096;

/// Why the fixture stopped early; each maps to a documented exit code.
enum Failure {
    /// Unknown subcommand or bad argument (exit 2).
    Usage(String),
    /// A system call failed (exit 1).
    Os(String, io::Error),
    /// The fixture's tree broke before it was ready (exit 1).
    Broken(String),
    /// The reader of stdout/stderr went away (exit 3).
    BrokenPipe,
}

impl Failure {
    fn os(what: &str) -> impl FnOnce(io::Error) -> Failure + '_ {
        move |err| {
            if err.kind() == io::ErrorKind::BrokenPipe {
                Failure::BrokenPipe
            } else {
                Failure::Os(what.to_owned(), err)
            }
        }
    }

    fn exit_code(&self) -> c_int {
        match self {
            Failure::Usage(_) => 2,
            Failure::Os(..) | Failure::Broken(_) => 1,
            Failure::BrokenPipe => 3,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(msg) => write!(f, "{msg}"),
            Failure::Os(what, err) => write!(f, "{what}: {err}"),
            Failure::Broken(msg) => write!(f, "{msg}"),
            Failure::BrokenPipe => write!(f, "broken pipe"),
        }
    }
}

impl From<rustix::io::Errno> for Failure {
    fn from(errno: rustix::io::Errno) -> Failure {
        Failure::os("system call")(errno.into())
    }
}

type Outcome = Result<(), Failure>;

// SAFETY: this is the process entry point that libc's startup code calls with
// the real argc/argv; no other `main` symbol exists because of `#![no_main]`.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const std::ffi::c_char) -> c_int {
    // SAFETY: libc passes argc valid NUL-terminated strings in argv.
    let args = unsafe { sys::args(argc, argv) };
    match run(&args) {
        Ok(()) => 0,
        Err(failure) => finish(failure),
    }
}

/// Reports `failure` on stderr (unless stderr is what broke) and returns its exit code.
fn finish(failure: Failure) -> c_int {
    if !matches!(failure, Failure::BrokenPipe) {
        let _ = write_all(
            rustix::stdio::stderr(),
            format!("mt-fixture: {failure}\n").as_bytes(),
        );
    }
    failure.exit_code()
}

fn run(args: &[OsString]) -> Outcome {
    let Some(subcommand) = args.get(1) else {
        return Err(Failure::Usage("missing subcommand".into()));
    };
    if subcommand == "argv" {
        // Printed raw, before any UTF-8 conversion, so odd bytes survive.
        return cmd_argv(args);
    }
    let words = args[2..]
        .iter()
        .map(|a| a.to_str().map(str::to_owned))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| Failure::Usage("arguments must be UTF-8".into()))?;
    let subcommand = subcommand.to_string_lossy();
    let inv = |flags: &[&str]| Invocation::parse(&subcommand, &words, flags);
    match &*subcommand {
        "exit" => cmd_exit(inv(&[])?.number("N")?),
        "signal" => cmd_signal(inv(&[])?.number("SIG")?),
        "sleep" => cmd_sleep(inv(&[])?.number("MS")?),
        "forever" => inv(&[])?.no_operands().and_then(|()| cmd_forever()),
        "ignore-term" => inv(&[])?.no_operands().and_then(|()| cmd_ignore_term()),
        "tree" => {
            let inv = inv(&["--ignore-term"])?;
            cmd_tree(inv.number("N")?, inv.has("--ignore-term"))
        }
        "grandchildren" => cmd_grandchildren(inv(&[])?.number("N")?),
        "daemon" => {
            let inv = inv(&["--ignore-term", "--stay", "--close-stdout"])?;
            inv.no_operands()?;
            cmd_daemon(
                inv.has("--ignore-term"),
                inv.has("--stay"),
                inv.has("--close-stdout"),
            )
        }
        "fanout" => {
            let inv = inv(&["--ignore-term"])?;
            cmd_fanout(inv.number("N")?, inv.has("--ignore-term"))
        }
        "chain" => cmd_chain(inv(&[])?.number("DEPTH")?),
        "bomb" => cmd_bomb(inv(&[])?.number("MAX")?),
        "print" => {
            let inv = inv(&["--stderr"])?;
            cmd_print(inv.number("BYTES")?, inv.has("--stderr"))
        }
        "lines" => cmd_lines(inv(&[])?.number("N")?),
        "interleave" => cmd_interleave(inv(&[])?.number("N")?),
        "hold-pipes" => inv(&[])?.no_operands().and_then(|()| cmd_hold_pipes()),
        "fds" => inv(&[])?.no_operands().and_then(|()| cmd_fds()),
        "env" => cmd_env(inv(&[])?.text("NAME")?),
        "id" => inv(&[])?.no_operands().and_then(|()| cmd_id()),
        "cwd" => inv(&[])?.no_operands().and_then(|()| cmd_cwd()),
        "cat" => inv(&[])?.no_operands().and_then(|()| cmd_cat()),
        "sigpipe" => inv(&[])?.no_operands().and_then(|()| cmd_sigpipe()),
        "spin" => cmd_spin(inv(&[])?.number("MS")?),
        "alloc" => cmd_alloc(inv(&[])?.number("MB")?),
        other => Err(Failure::Usage(format!("unknown subcommand {other:?}"))),
    }
}

/// A subcommand's words split into operands and `--flags`.
struct Invocation<'a> {
    subcommand: &'a str,
    operands: Vec<&'a str>,
    flags: Vec<&'a str>,
}

impl<'a> Invocation<'a> {
    fn parse(subcommand: &'a str, words: &'a [String], allowed: &[&str]) -> Result<Self, Failure> {
        let mut inv = Invocation {
            subcommand,
            operands: Vec::new(),
            flags: Vec::new(),
        };
        for word in words {
            if word.starts_with("--") {
                if !allowed.contains(&word.as_str()) {
                    return Err(Failure::Usage(format!("{subcommand}: unknown flag {word}")));
                }
                inv.flags.push(word);
            } else {
                inv.operands.push(word);
            }
        }
        Ok(inv)
    }

    fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    fn no_operands(&self) -> Outcome {
        match self.operands.as_slice() {
            [] => Ok(()),
            _ => Err(Failure::Usage(format!(
                "{}: takes no operands",
                self.subcommand
            ))),
        }
    }

    fn text(&self, what: &str) -> Result<&'a str, Failure> {
        match self.operands.as_slice() {
            [one] => Ok(one),
            _ => Err(Failure::Usage(format!("usage: {} {what}", self.subcommand))),
        }
    }

    fn number<T: FromStr>(&self, what: &str) -> Result<T, Failure> {
        let text = self.text(what)?;
        text.parse()
            .map_err(|_| Failure::Usage(format!("{}: bad {what} {text:?}", self.subcommand)))
    }
}

// ---------------------------------------------------------------------------
// Shared helpers: output, ready, waiting forever, forking, latches.
// ---------------------------------------------------------------------------

/// Writes all of `bytes` to `fd`, retrying partial writes and EINTR.
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Outcome {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(Failure::os("write")(errno.into())),
        }
    }
    Ok(())
}

/// Writes `line` and a newline to stdout.
fn say(line: &str) -> Outcome {
    write_all(rustix::stdio::stdout(), format!("{line}\n").as_bytes())
}

/// Announces that every process of the shape exists.
fn ready() -> Outcome {
    say("ready")
}

/// Blocks in `pause(2)` until a signal ends the process.
fn wait_forever() -> ! {
    loop {
        sys::pause();
    }
}

/// What a forked child does once its closure has returned `Ok`.
enum Then {
    WaitForever,
    Exit,
}

/// Forks a child that runs `body` and then waits forever; returns its pid.
///
/// In the parent `body` is dropped without running, so anything it owns (say,
/// a pipe end moved into it) is closed there; borrow what the parent keeps.
/// If `body` fails, the child reports it on stderr and exits with its code.
fn fork_child(body: impl FnOnce() -> Outcome) -> Result<i32, Failure> {
    fork_then(body, Then::WaitForever)
}

fn fork_then(body: impl FnOnce() -> Outcome, then: Then) -> Result<i32, Failure> {
    match sys::fork().map_err(Failure::os("fork"))? {
        Some(pid) => Ok(pid),
        None => {
            if let Err(failure) = body() {
                std::process::exit(finish(failure));
            }
            match then {
                Then::WaitForever => wait_forever(),
                Then::Exit => std::process::exit(0),
            }
        }
    }
}

/// A pipe on which processes of a shape report "done" to the one that waits.
///
/// Every process that calls [`Latch::release`] writes one `.` byte; a failure
/// is reported as `!` so the waiter stops instead of waiting forever.
struct Latch {
    read: OwnedFd,
    write: OwnedFd,
}

impl Latch {
    fn new() -> Result<Latch, Failure> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
            .map_err(|e| Failure::os("pipe")(e.into()))?;
        Ok(Latch { read, write })
    }

    fn release(&self) -> Outcome {
        write_all(self.write.as_fd(), b".")
    }

    fn fail(&self) {
        let _ = write_all(self.write.as_fd(), b"!");
    }

    /// Waits for `count` releases. Drops this process's write end first, so
    /// the wait ends with EOF if every releaser died.
    fn wait(self, count: usize) -> Outcome {
        drop(self.write);
        let mut seen = 0;
        let mut buf = [0u8; 512];
        while seen < count {
            let want = (count - seen).min(buf.len());
            let n = match rustix::io::read(&self.read, &mut buf[..want]) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(errno) => return Err(Failure::os("read latch")(errno.into())),
            };
            if n == 0 {
                return Err(Failure::Broken(format!(
                    "tree broke before ready ({seen} of {count} reports)"
                )));
            }
            if buf[..n].contains(&b'!') {
                return Err(Failure::Broken("a process of the tree failed".into()));
            }
            seen += n;
        }
        Ok(())
    }
}

/// Ignores SIGTERM in this process and (through fork) all it creates.
fn ignore_term() -> Outcome {
    sys::set_disposition(libc::SIGTERM, sys::Disposition::Ignore)
        .map_err(Failure::os("ignore SIGTERM"))
}

// ---------------------------------------------------------------------------
// Subcommands.
// ---------------------------------------------------------------------------

fn cmd_exit(code: i32) -> Outcome {
    std::process::exit(code)
}

fn cmd_signal(signal: c_int) -> Outcome {
    if !(1..=libc::SIGRTMAX()).contains(&signal) {
        return Err(Failure::Usage(format!(
            "signal: bad signal number {signal}"
        )));
    }
    // SIGKILL and SIGSTOP can be neither caught, ignored nor blocked.
    if signal != libc::SIGKILL && signal != libc::SIGSTOP {
        sys::set_disposition(signal, sys::Disposition::Default)
            .map_err(Failure::os("sigaction"))?;
        sys::unblock(signal).map_err(Failure::os("sigprocmask"))?;
    }
    sys::raise(signal).map_err(Failure::os("raise"))?;
    Err(Failure::Broken(format!(
        "still alive after raising signal {signal}"
    )))
}

fn cmd_sleep(ms: u64) -> Outcome {
    std::thread::sleep(Duration::from_millis(ms));
    Ok(())
}

fn cmd_forever() -> Outcome {
    ready()?;
    wait_forever()
}

fn cmd_ignore_term() -> Outcome {
    ignore_term()?;
    ready()?;
    wait_forever()
}

fn cmd_tree(children: usize, ignore: bool) -> Outcome {
    if ignore {
        ignore_term()?;
    }
    for _ in 0..children {
        fork_child(|| Ok(()))?;
    }
    // A child exists, environment included, as soon as fork returns.
    ready()?;
    wait_forever()
}

fn cmd_grandchildren(count: usize) -> Outcome {
    let latch = Latch::new()?;
    fork_child(|| {
        for _ in 0..count {
            fork_child(|| Ok(()))?;
        }
        latch.release()
    })?;
    latch.wait(1)?;
    ready()?;
    wait_forever()
}

fn cmd_daemon(ignore: bool, stay: bool, close_stdout: bool) -> Outcome {
    if ignore {
        ignore_term()?;
    }
    let latch = Latch::new()?;
    let leader = fork_then(
        || {
            rustix::process::setsid()?;
            fork_child(|| daemon_body(&latch, close_stdout))?;
            Ok(())
        },
        Then::Exit,
    )?;
    let reaped = latch.wait(1);
    let _ = rustix::process::waitpid(
        rustix::process::Pid::from_raw(leader),
        rustix::process::WaitOptions::empty(),
    );
    reaped?;
    ready()?;
    if stay {
        wait_forever();
    }
    Ok(())
}

fn daemon_body(latch: &Latch, close_stdout: bool) -> Outcome {
    let result = (|| {
        say(&format!(
            "daemon {}",
            rustix::process::getpid().as_raw_nonzero()
        ))?;
        ready()?;
        if close_stdout {
            let null = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map_err(Failure::os("open /dev/null"))?;
            rustix::stdio::dup2_stdout(&null)?;
            rustix::stdio::dup2_stderr(&null)?;
        }
        latch.release()
    })();
    if result.is_err() {
        latch.fail();
    }
    result
}

fn cmd_fanout(total: usize, ignore: bool) -> Outcome {
    if total == 0 {
        return Err(Failure::Usage("fanout: N must be at least 1".into()));
    }
    cmd_tree(total - 1, ignore)
}

fn cmd_chain(depth: usize) -> Outcome {
    if depth == 0 {
        return Err(Failure::Usage("chain: DEPTH must be at least 1".into()));
    }
    let latch = Latch::new()?;
    chain_link(depth - 1, &latch)?;
    latch.wait(1)?;
    ready()?;
    wait_forever()
}

/// Extends the chain by `below` more processes; the last one releases `latch`.
fn chain_link(below: usize, latch: &Latch) -> Outcome {
    if below == 0 {
        return latch.release();
    }
    fork_child(|| chain_link(below - 1, latch))?;
    Ok(())
}

fn cmd_bomb(max: usize) -> Outcome {
    if !(1..=BOMB_MAX).contains(&max) {
        return Err(Failure::Usage(format!("bomb: MAX must be 1..={BOMB_MAX}")));
    }
    let tokens = Tokens::new(max - 1)?;
    let born = Latch::new()?;
    bomb_node(&tokens, &born)?;
    born.wait(max - 1)?;
    ready()?;
    wait_forever()
}

/// Forks up to two children, each taking a token first, and each doing the
/// same. Every node tries twice and stops only on an empty pool, and tokens
/// never come back, so the bomb ends with all MAX-1 tokens spent: MAX processes.
fn bomb_node(tokens: &Tokens, born: &Latch) -> Outcome {
    for _ in 0..2 {
        if !tokens.take()? {
            break;
        }
        let forked = fork_child(|| {
            born.release()?;
            bomb_node(tokens, born)
        });
        if let Err(failure) = forked {
            born.fail();
            return Err(failure);
        }
    }
    Ok(())
}

/// A pool of fork permits shared by a process tree: a non-blocking pipe
/// holding one byte per permit.
struct Tokens {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Tokens {
    fn new(count: usize) -> Result<Tokens, Failure> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        write_all(write.as_fd(), &vec![b't'; count])?;
        Ok(Tokens {
            read,
            _write: write,
        })
    }

    /// Takes one permit; `false` once the pool is empty.
    fn take(&self) -> Result<bool, Failure> {
        let mut byte = [0u8; 1];
        loop {
            return match rustix::io::read(&self.read, &mut byte) {
                Ok(n) => Ok(n == 1),
                Err(rustix::io::Errno::AGAIN) => Ok(false),
                Err(rustix::io::Errno::INTR) => continue,
                Err(errno) => Err(errno.into()),
            };
        }
    }
}

/// The `print` pattern: byte `i` is `PATTERN[i % 16]`.
const PATTERN: &[u8; 16] = b"0123456789abcdef";

fn cmd_print(bytes: usize, to_stderr: bool) -> Outcome {
    let fd = if to_stderr {
        rustix::stdio::stderr()
    } else {
        rustix::stdio::stdout()
    };
    // A multiple of 16, so every chunk starts at the pattern's beginning.
    let chunk: Vec<u8> = PATTERN.iter().copied().cycle().take(64 * 1024).collect();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        write_all(fd, &chunk[..n])?;
        left -= n;
    }
    Ok(())
}

fn cmd_lines(count: u64) -> Outcome {
    let mut buf = Vec::with_capacity(64 * 1024);
    for i in 1..=count {
        buf.extend_from_slice(format!("line {i}\n").as_bytes());
        if buf.len() >= 60 * 1024 {
            write_all(rustix::stdio::stdout(), &buf)?;
            buf.clear();
        }
    }
    write_all(rustix::stdio::stdout(), &buf)
}

fn cmd_interleave(count: u64) -> Outcome {
    for i in 1..=count {
        write_all(rustix::stdio::stdout(), format!("out {i}\n").as_bytes())?;
        write_all(rustix::stdio::stderr(), format!("err {i}\n").as_bytes())?;
    }
    Ok(())
}

fn cmd_hold_pipes() -> Outcome {
    let latch = Latch::new()?;
    fork_child(|| {
        rustix::process::setsid()?;
        latch.release()
    })?;
    latch.wait(1)?;
    ready()
}

fn cmd_fds() -> Outcome {
    let listed: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(Failure::os("read /proc/self/fd"))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own descriptor was in the listing; it is closed now,
    // so its /proc/self/fd link is gone.
    let mut open: Vec<String> = listed
        .into_iter()
        .filter(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok())
        .map(|fd| fd.to_string())
        .collect();
    open.sort_by_key(|fd| fd.parse::<i32>().unwrap_or(i32::MAX));
    say(&format!("fds {}", open.join(" ")))
}

fn cmd_env(name: &str) -> Outcome {
    match std::env::var_os(name) {
        Some(value) => say(&value.to_string_lossy()),
        None => say("<unset>"),
    }
}

fn cmd_id() -> Outcome {
    let mut groups: Vec<u32> = rustix::process::getgroups()?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    groups.sort_unstable();
    let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
    say(&format!(
        "uid={} gid={} groups={}",
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
        groups.join(",")
    ))
}

fn cmd_cwd() -> Outcome {
    let cwd = std::env::current_dir().map_err(Failure::os("getcwd"))?;
    say(&cwd.to_string_lossy())
}

fn cmd_argv(args: &[OsString]) -> Outcome {
    use std::os::unix::ffi::OsStrExt;
    for arg in args {
        let mut line = arg.as_bytes().to_vec();
        line.push(b'\n');
        write_all(rustix::stdio::stdout(), &line)?;
    }
    Ok(())
}

fn cmd_cat() -> Outcome {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match rustix::io::read(rustix::stdio::stdin(), &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(Failure::os("read stdin")(errno.into())),
        };
        write_all(rustix::stdio::stdout(), &buf[..n])?;
    }
}

fn cmd_sigpipe() -> Outcome {
    let ignored = sys::is_ignored(libc::SIGPIPE).map_err(Failure::os("sigaction"))?;
    say(if ignored {
        "SIGPIPE ignored"
    } else {
        "SIGPIPE default"
    })?;
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(Failure::os("read /proc/self/status"))?;
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigBlk:"))
        .ok_or_else(|| Failure::Broken("no SigBlk in /proc/self/status".into()))?;
    say(&format!("mask {}", mask.trim()))
}

fn cmd_spin(ms: u64) -> Outcome {
    let until = Instant::now() + Duration::from_millis(ms);
    let mut work = 0u64;
    while Instant::now() < until {
        for i in 0..10_000u64 {
            work = std::hint::black_box(work.wrapping_mul(31).wrapping_add(i));
        }
    }
    std::hint::black_box(work);
    Ok(())
}

fn cmd_alloc(mib: usize) -> Outcome {
    let len = mib
        .checked_mul(1 << 20)
        .ok_or_else(|| Failure::Usage(format!("alloc: {mib} MiB is too much")))?;
    let mut memory = vec![0u8; len];
    // Zeroed allocations are lazily mapped; write every page to make it resident.
    for page in memory.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&memory);
    ready()?;
    wait_forever()
}

/// The few libc calls rustix does not offer, each behind a safe wrapper.
mod sys {
    use std::ffi::{CStr, OsString, c_char, c_int};
    use std::io;
    use std::os::unix::ffi::OsStringExt;

    /// Collects the process arguments.
    ///
    /// # Safety
    /// `argv` must hold `argc` valid NUL-terminated strings, as `main` receives them.
    pub unsafe fn args(argc: c_int, argv: *const *const c_char) -> Vec<OsString> {
        (0..usize::try_from(argc).unwrap_or(0))
            .map(|i| {
                // SAFETY: the caller guarantees argv[0..argc] are valid C strings.
                let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
                OsString::from_vec(arg.to_bytes().to_vec())
            })
            .collect()
    }

    /// `fork(2)`: `Some(child pid)` in the parent, `None` in the child.
    pub fn fork() -> io::Result<Option<i32>> {
        // SAFETY: the fixture is single-threaded, so the child cannot inherit
        // a lock held by another thread; it goes on running ordinary Rust.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => Ok(None),
            pid => Ok(Some(pid)),
        }
    }

    /// `pause(2)`: sleeps until a signal arrives.
    pub fn pause() {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }

    /// A signal disposition to install.
    pub enum Disposition {
        Ignore,
        Default,
    }

    /// `sigaction(2)`: installs SIG_IGN or SIG_DFL for `signal`.
    pub fn set_disposition(signal: c_int, disposition: Disposition) -> io::Result<()> {
        let handler = match disposition {
            Disposition::Ignore => libc::SIG_IGN,
            Disposition::Default => libc::SIG_DFL,
        };
        // SAFETY: a zeroed sigaction is valid; we install no function pointer,
        // only SIG_IGN/SIG_DFL, and pass a null pointer for the old action.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Whether `signal`'s current disposition is SIG_IGN.
    pub fn is_ignored(signal: c_int) -> io::Result<bool> {
        // SAFETY: a null new action only queries; `old` is a valid out pointer.
        let (rc, old) = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            let rc = libc::sigaction(signal, std::ptr::null(), &mut old);
            (rc, old)
        };
        if rc == 0 {
            Ok(old.sa_sigaction == libc::SIG_IGN)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `sigprocmask(2)`: removes `signal` from the blocked set.
    pub fn unblock(signal: c_int) -> io::Result<()> {
        // SAFETY: `set` is initialised by sigemptyset before use.
        let rc = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut())
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `raise(3)`: sends `signal` to this thread (the only one).
    pub fn raise(signal: c_int) -> io::Result<()> {
        // SAFETY: raise has no memory-safety preconditions.
        if unsafe { libc::raise(signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn invocation_splits_operands_and_known_flags() {
        let w = words(&["5", "--ignore-term"]);
        let inv = Invocation::parse("tree", &w, &["--ignore-term"])
            .ok()
            .unwrap();
        assert!(inv.has("--ignore-term"));
        assert_eq!(inv.number::<usize>("N").ok(), Some(5));
    }

    #[test]
    fn invocation_rejects_unknown_flags_and_bad_numbers() {
        let w = words(&["5", "--nope"]);
        let err = Invocation::parse("tree", &w, &[]).err().unwrap();
        assert_eq!(err.exit_code(), 2);
        let w = words(&["five"]);
        let inv = Invocation::parse("tree", &w, &[]).ok().unwrap();
        assert_eq!(inv.number::<usize>("N").err().unwrap().exit_code(), 2);
        let w = words(&["1", "2"]);
        let inv = Invocation::parse("exit", &w, &[]).ok().unwrap();
        assert!(inv.number::<i32>("N").is_err());
    }
}
