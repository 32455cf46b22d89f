//! Section 2: how long stopping a whole tree takes, and what is left behind.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use crate::procscan::{self, MARKER_VAR};
use crate::report::{Row, timed};
use crate::stats::Stats;
use crate::{Config, next_marker};

/// The shape of the tree under test (a hidden mode of this binary, see `helper`).
#[derive(Clone, Copy)]
pub enum Shape {
    /// `__fanout N`.
    Fanout(usize),
    /// `__fanout N ignore-term`.
    FanoutIgnoringTerm(usize),
    /// `__chain DEPTH`.
    Chain(usize),
}

impl Shape {
    fn args(self) -> Vec<String> {
        match self {
            Shape::Fanout(n) => vec!["__fanout".into(), n.to_string()],
            Shape::FanoutIgnoringTerm(n) => {
                vec!["__fanout".into(), n.to_string(), "ignore-term".into()]
            }
            Shape::Chain(d) => vec!["__chain".into(), d.to_string()],
        }
    }
    fn size(self) -> usize {
        match self {
            Shape::Fanout(n) | Shape::FanoutIgnoringTerm(n) | Shape::Chain(n) => n,
        }
    }
}

/// How the tree is stopped.
#[derive(Clone, Copy)]
pub enum Op {
    /// muontrap `terminate()` (SIGTERM to all, grace, SIGKILL the rest; waits).
    Terminate,
    /// `kill()` then `wait()`.
    KillWait,
}

/// Which library spawned the tree.
#[derive(Clone, Copy)]
pub enum Lib {
    Muontrap { delay: Duration },
    Std,
    ProcessWrap,
}

pub(crate) fn read_ready(r: impl Read) -> Result<(), String> {
    let mut line = String::new();
    BufReader::new(r)
        .read_line(&mut line)
        .map_err(|e| format!("reading the ready line: {e}"))?;
    if line.trim() == "ready" {
        Ok(())
    } else {
        Err(format!("tree did not report ready (got {line:?})"))
    }
}

pub(crate) fn check_size(marker: &str, expect: usize) -> Result<(), String> {
    let present = procscan::with_marker(marker).len();
    if present == expect {
        Ok(())
    } else {
        Err(format!(
            "tree has {present} processes carrying its marker, expected {expect}"
        ))
    }
}

/// One tree: spawn, wait until complete, time the stop. Returns the time and how many
/// processes of the tree were still alive right after the stop returned (then kills those).
fn once(lib: Lib, shape: Shape, op: Op) -> Result<(Duration, usize), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let marker = next_marker();
    let args = shape.args();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let dt = match lib {
        Lib::Muontrap { delay } => {
            let mut child = muontrap::Command::new(&exe)
                .args(&args)
                .env(MARKER_VAR, &marker)
                .stdin(muontrap::Stdio::null())
                .stdout(muontrap::Stdio::piped())
                .delay_to_sigkill(delay)
                .spawn()
                .map_err(|x| e(&x))?;
            read_ready(child.stdout.as_mut().expect("piped"))?;
            check_size(&marker, shape.size())?;
            let t0 = Instant::now();
            match op {
                Op::Terminate => {
                    child.terminate().map_err(|x| e(&x))?;
                }
                Op::KillWait => {
                    child.kill().map_err(|x| e(&x))?;
                    child.wait().map_err(|x| e(&x))?;
                }
            }
            t0.elapsed()
        }
        Lib::Std => {
            let mut child = std::process::Command::new(&exe)
                .args(&args)
                .env(MARKER_VAR, &marker)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|x| e(&x))?;
            read_ready(child.stdout.as_mut().expect("piped"))?;
            check_size(&marker, shape.size())?;
            let t0 = Instant::now();
            child.kill().map_err(|x| e(&x))?;
            child.wait().map_err(|x| e(&x))?;
            t0.elapsed()
        }
        Lib::ProcessWrap => {
            use process_wrap::std::{CommandWrap, ProcessGroup};
            let mut child = CommandWrap::with_new(&exe, |c| {
                c.args(&args)
                    .env(MARKER_VAR, &marker)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped());
            })
            .wrap(ProcessGroup::leader())
            .spawn()
            .map_err(|x| e(&x))?;
            read_ready(child.stdout().as_mut().expect("piped"))?;
            check_size(&marker, shape.size())?;
            let t0 = Instant::now();
            child.start_kill().map_err(|x| e(&x))?;
            child.wait().map_err(|x| e(&x))?;
            t0.elapsed()
        }
    };
    let left = procscan::with_marker(&marker).len();
    if left > 0 {
        // Leftovers are ours to clean: SIGKILL pid by pid, only processes with this marker.
        procscan::kill_marked(&marker);
        let still = procscan::settle(&marker, Duration::from_secs(2));
        if still > 0 {
            eprintln!("warning: {still} processes with marker {marker} survived SIGKILL");
        }
    }
    Ok((dt, left))
}

fn measure(cfg: &Config, lib: Lib, shape: Shape, op: Op) -> (Result<Stats, String>, usize) {
    let mut times = Vec::new();
    let mut left = 0;
    for _ in 0..cfg.tree_iters {
        match once(lib, shape, op) {
            Ok((dt, l)) => {
                times.push(dt);
                left += l;
            }
            Err(e) => return (Err(e), left),
        }
    }
    (Ok(Stats::of(&times)), left)
}

const TEARDOWN_TARGET: &str = "≤ 100 ms, 0 left";

/// All teardown rows.
pub fn run(cfg: &Config) -> Vec<Row> {
    let fan = Shape::Fanout(cfg.fanout);
    let chain = Shape::Chain(cfg.chain);
    let fan_ign = Shape::FanoutIgnoringTerm(cfg.fanout);
    let mt500 = Lib::Muontrap {
        delay: Duration::from_millis(500),
    };
    let mt100 = Lib::Muontrap {
        delay: Duration::from_millis(100),
    };
    let (nf, nc) = (cfg.fanout, cfg.chain);
    let per = |left: usize| format!("{} per tree", left / cfg.tree_iters.max(1));

    let mut rows = Vec::new();
    let (std_fan, left) = measure(cfg, Lib::Std, fan, Op::KillWait);
    let base_fan = std_fan.clone().ok();
    rows.push(
        timed(
            &format!("std: fan-out {nf}, `kill()` + `wait()` (direct child only)"),
            std_fan,
        )
        .leftovers(left)
        .note(format!(
            "baseline; leaves the rest: {}, cleaned up by marker",
            per(left)
        )),
    );
    let (std_chain, left) = measure(cfg, Lib::Std, chain, Op::KillWait);
    let base_chain = std_chain.clone().ok();
    rows.push(
        timed(
            &format!("std: chain {nc}, `kill()` + `wait()` (direct child only)"),
            std_chain,
        )
        .leftovers(left)
        .note(format!(
            "baseline; leaves the rest: {}, cleaned up by marker",
            per(left)
        )),
    );
    let (r, left) = measure(cfg, Lib::ProcessWrap, fan, Op::KillWait);
    rows.push(
        timed(
            &format!("process-wrap: fan-out {nf}, `ProcessGroup` `start_kill()` + `wait()`"),
            r,
        )
        .baseline(base_fan)
        .leftovers(left)
        .note("killpg; a `setsid` member would escape"),
    );
    let (r, left) = measure(cfg, Lib::ProcessWrap, chain, Op::KillWait);
    rows.push(
        timed(
            &format!("process-wrap: chain {nc}, `ProcessGroup` `start_kill()` + `wait()`"),
            r,
        )
        .baseline(base_chain)
        .leftovers(left)
        .note("killpg: one signal for the whole group; what remains is the kernel's exit work"),
    );

    for (shape, base, label) in [
        (fan, base_fan, format!("fan-out {nf}")),
        (chain, base_chain, format!("chain {nc}")),
    ] {
        let (r, left) = measure(cfg, mt500, shape, Op::Terminate);
        rows.push(
            timed(
                &format!("muontrap: {label}, `terminate()` (obeys SIGTERM; delay 500 ms)"),
                r,
            )
            .baseline(base)
            .target(TEARDOWN_TARGET)
            .leftovers(left),
        );
        let (r, left) = measure(cfg, mt500, shape, Op::KillWait);
        rows.push(
            timed(&format!("muontrap: {label}, `kill()` + `wait()`"), r)
                .baseline(base)
                .target(TEARDOWN_TARGET)
                .leftovers(left),
        );
    }
    let (r, left) = measure(cfg, mt100, fan_ign, Op::Terminate);
    rows.push(
        timed(
            &format!("muontrap: fan-out {nf} ignoring SIGTERM, `terminate()` (delay 100 ms)"),
            r,
        )
        .baseline(base_fan)
        .target("≈ 100 ms delay + kill sweep, 0 left")
        .leftovers(left),
    );
    rows
}
