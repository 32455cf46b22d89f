//! `mt-owner`: a realistic owner program for the containment tests that need the owner to be
//! a separate process (so the test can make it exit, panic or be SIGKILLed).
//!
//! Usage: `mt-owner MODE MARKER DELAY_MS FIXTURE_ARGS...`
//!
//! It is shaped like the programs muontrap is for: a multi-threaded tokio runtime (four
//! workers, with tasks ticking on them) and a few plain threads allocating and freeing in a
//! loop, so the command is spawned — and the owner dies — while other threads run and hold
//! allocator locks. It spawns `mt-fixture FIXTURE_ARGS...` through muontrap with piped stdout,
//! the test marker `MUONTRAP_TEST_ID=MARKER` and the given `delay_to_sigkill`, waits for the
//! fixture's `ready` line, prints `ready <pid>` on its own stdout, and then, by MODE:
//!
//! - `wait`: waits (asynchronously) for the command, which never ends: the test SIGKILLs us;
//! - `exit`: once a line (or EOF) arrives on stdin, `std::process::exit(3)`, which runs no
//!   destructors;
//! - `panic`: once a line (or EOF) arrives on stdin, panics on the main thread (exit status 101
//!   after unwinding).
//!
//! The owner itself does not carry the marker: only the fixture tree does, so the test's
//! "nothing marked is left" check is about the contained tree.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use muontrap_tests::{MARKER_VAR, fixture, wait_for_line};

/// Generous: only reached when something is broken.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Wait,
    Exit,
    Panic,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, marker, delay_ms, fixture_args) = match args.as_slice() {
        [mode, marker, delay, rest @ ..] if !rest.is_empty() => {
            let mode = match mode.as_str() {
                "wait" => Mode::Wait,
                "exit" => Mode::Exit,
                "panic" => Mode::Panic,
                _ => return usage(),
            };
            let Ok(delay) = delay.parse::<u64>() else {
                return usage();
            };
            (mode, marker.clone(), delay, rest.to_vec())
        }
        _ => return usage(),
    };

    // Background allocation churn on plain threads, for the whole life of the process.
    for n in 0..3u8 {
        std::thread::spawn(move || {
            let mut keep: Vec<Vec<u8>> = Vec::new();
            loop {
                keep.push(vec![n; 1024 + keep.len() * 64]);
                if keep.len() > 256 {
                    keep.clear();
                }
                std::thread::yield_now();
            }
        });
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mt-owner: building the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // Tasks busy on the workers while the command is spawned and the owner dies.
    for _ in 0..4 {
        runtime.spawn(async {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            loop {
                tick.tick().await;
                std::hint::black_box(vec![0u8; 4096]);
            }
        });
    }

    let mut child = match muontrap::Command::new(fixture())
        .args(&fixture_args)
        .env(MARKER_VAR, &marker)
        .stdout(muontrap::Stdio::piped())
        .delay_to_sigkill(Duration::from_millis(delay_ms))
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mt-owner: spawning mt-fixture {fixture_args:?}: {e}");
            return ExitCode::from(1);
        }
    };
    let stdout = child.stdout.take().expect("stdout is piped");
    if let Err(e) = wait_for_line(&stdout, "ready", READY_TIMEOUT) {
        eprintln!("mt-owner: {e}");
        return ExitCode::from(1);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {}", child.id());
    let _ = out.flush();
    drop(out);
    if mode != Mode::Wait {
        // Go away only when the test says so (a line or EOF on stdin): it first makes sure it
        // has seen the whole tree.
        let _ = std::io::stdin().lock().read_line(&mut String::new());
    }

    match mode {
        Mode::Wait => {
            let status = runtime.block_on(child.wait_async());
            eprintln!("mt-owner: the command ended unexpectedly: {status:?}");
            ExitCode::from(1)
        }
        Mode::Exit => std::process::exit(3),
        Mode::Panic => {
            // A real panic with unwinding through `main` (the handle and the runtime are
            // dropped on the way out or not at all, whichever the runtime does); the default
            // hook's message would only be noise in the test output.
            std::panic::set_hook(Box::new(|_| {}));
            panic!("mt-owner: panicking on purpose");
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: mt-owner wait|exit|panic MARKER DELAY_MS FIXTURE_ARGS...");
    ExitCode::from(2)
}
