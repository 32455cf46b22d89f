//! Section 1: spawn + wait of `/bin/true` through each library.

use std::time::{Duration, Instant};

use crate::Config;
use crate::procscan::{self, MARKER_VAR};
use crate::report::{Row, Value, timed};
use crate::stats::Stats;

const TRUE: &str = "/bin/true";
const SPAWN_TARGET: &str = "≤ 1.5× std (ambition < 1.2×)";

pub(crate) type BoxErr = Box<dyn std::error::Error>;

/// One measured way of running `/bin/true`: returns the time of one spawn + wait.
pub(crate) type Sampler<'a> = Box<dyn FnMut() -> Result<Duration, String> + 'a>;

/// Times a synchronous body.
pub(crate) fn sync<'a>(mut f: impl FnMut() -> Result<(), BoxErr> + 'a) -> Sampler<'a> {
    Box::new(move || {
        let t0 = Instant::now();
        f().map_err(|e| e.to_string())?;
        Ok(t0.elapsed())
    })
}

fn current_thread() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Times an async body on this sampler's own current-thread runtime (the clock runs inside
/// `block_on`, so entering the runtime is not counted).
macro_rules! on_tokio {
    ($marker:expr, |$m:ident| $body:expr) => {{
        let rt = current_thread();
        let $m: String = $marker.to_string();
        Box::new(move || -> Result<Duration, String> {
            let rt = rt.as_ref().map_err(Clone::clone)?;
            let $m: &str = &$m;
            rt.block_on(async {
                let t0 = Instant::now();
                let r: Result<(), BoxErr> = $body.await;
                r.map_err(|e| e.to_string())?;
                Ok(t0.elapsed())
            })
        }) as Sampler<'_>
    }};
}

/// Runs the samplers round-robin (a warm-up block each, then `cfg.iters` samples each in
/// blocks of `cfg.block`), so that drift (CPU frequency, caches, the host) is shared by all
/// instead of favouring whichever runs last.
pub(crate) fn round_robin(
    cfg: &Config,
    samplers: &mut [Sampler<'_>],
) -> Vec<Result<Stats, String>> {
    let mut results: Vec<Result<Vec<Duration>, String>> =
        samplers.iter().map(|_| Ok(Vec::new())).collect();
    let mut run = |i: usize, s: &mut Sampler<'_>, n: usize, keep: bool| {
        for _ in 0..n {
            let Ok(v) = &mut results[i] else { return };
            match s() {
                Ok(d) if keep => v.push(d),
                Ok(_) => {}
                Err(e) => {
                    results[i] = Err(e);
                    return;
                }
            }
        }
    };
    for (i, s) in samplers.iter_mut().enumerate() {
        run(i, s, cfg.warmup, false);
    }
    let mut done = 0;
    while done < cfg.iters {
        let n = cfg.block.min(cfg.iters - done);
        for (i, s) in samplers.iter_mut().enumerate() {
            run(i, s, n, true);
        }
        done += n;
    }
    results
        .into_iter()
        .map(|r| r.map(|v| Stats::of(&v)))
        .collect()
}

fn check(ok: bool, what: &str) -> Result<(), BoxErr> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: /bin/true did not succeed").into())
    }
}

/// The first muontrap spawn of a fresh process (it starts the keeper server), measured in
/// fresh copies of this binary (`__first`).
fn first_spawn(cfg: &Config, marker: &str) -> Result<Stats, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut v = Vec::new();
    for _ in 0..cfg.first_runs {
        let out = std::process::Command::new(&exe)
            .args(["__first", marker])
            .env(MARKER_VAR, marker)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let ns: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("__first printed garbage: {e}"))?;
        v.push(Duration::from_nanos(ns));
    }
    Ok(Stats::of(&v))
}

#[cfg(feature = "processkit")]
fn processkit_sampler(marker: &str) -> (Option<Sampler<'static>>, String) {
    let sampler = on_tokio!(marker, |m| async {
        let out = processkit::Command::new(TRUE)
            .env(MARKER_VAR, m)
            .start()
            .await?
            .wait()
            .await?;
        check(matches!(out, processkit::Outcome::Exited(0)), "processkit")
    });
    let mech = format!("{:?}", processkit::host_containment().mechanism());
    (
        Some(sampler),
        format!("containment `host_containment()` reports here: {mech}"),
    )
}

#[cfg(not(feature = "processkit"))]
fn processkit_sampler(_marker: &str) -> (Option<Sampler<'static>>, String) {
    (None, "built without the `processkit` feature".into())
}

/// All spawn rows.
pub fn run(cfg: &Config) -> Vec<Row> {
    let markers: Vec<String> = (0..8).map(|_| crate::next_marker()).collect();
    let m = |i: usize| markers[i].as_str();

    // Each entry: row name, target, note, sampler (None: not available, note says why).
    let mut plan: Vec<(&str, &str, String, Option<Sampler<'_>>)> = vec![
        (
            "std `Command::status()`",
            "",
            "baseline".into(),
            Some(sync(|| {
                let s = std::process::Command::new(TRUE)
                    .env(MARKER_VAR, m(0))
                    .status()?;
                check(s.success(), "std")
            })),
        ),
        (
            "tokio `spawn()` + `wait().await` (current-thread)",
            "",
            String::new(),
            Some(on_tokio!(m(1), |mk| async {
                let mut c = tokio::process::Command::new(TRUE)
                    .env(MARKER_VAR, mk)
                    .spawn()?;
                check(c.wait().await?.success(), "tokio")
            })),
        ),
        (
            "process-wrap (std) `ProcessGroup::leader()` spawn + wait",
            "",
            "the std flavour has no `KillOnDrop` (tokio-only)".into(),
            Some(sync(|| {
                use process_wrap::std::{CommandWrap, ProcessGroup};
                let mut c = CommandWrap::with_new(TRUE, |c| {
                    c.env(MARKER_VAR, m(2));
                })
                .wrap(ProcessGroup::leader())
                .spawn()?;
                check(c.wait()?.success(), "process-wrap")
            })),
        ),
        (
            "process-wrap (tokio) `ProcessGroup::leader()` + `KillOnDrop`",
            "",
            String::new(),
            Some(on_tokio!(m(3), |mk| async {
                use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
                let mut c = CommandWrap::with_new(TRUE, |c| {
                    c.env(MARKER_VAR, mk);
                })
                .wrap(ProcessGroup::leader())
                .wrap(KillOnDrop)
                .spawn()?;
                check(c.wait().await?.success(), "process-wrap tokio")
            })),
        ),
        {
            let (s, note) = processkit_sampler(m(4));
            (
                "processkit `start().await` + `wait().await` (tokio current-thread)",
                "",
                note,
                s,
            )
        },
        (
            "muontrap `Command::status()` (server warm)",
            SPAWN_TARGET,
            String::new(),
            Some(sync(|| {
                let s = muontrap::Command::new(TRUE)
                    .env(MARKER_VAR, m(5))
                    .status()?;
                check(s.success(), "muontrap")
            })),
        ),
        (
            "muontrap `spawn()` + `wait_async().await` (tokio current-thread)",
            SPAWN_TARGET,
            String::new(),
            Some(on_tokio!(m(6), |mk| async {
                let mut c = muontrap::Command::new(TRUE).env(MARKER_VAR, mk).spawn()?;
                check(c.wait_async().await?.success(), "muontrap async")
            })),
        ),
    ];

    // The first spawn runs in fresh processes, before this one's keeper server exists.
    let first = first_spawn(cfg, m(7));

    let available: Vec<bool> = plan.iter().map(|p| p.3.is_some()).collect();
    let mut samplers: Vec<Sampler<'_>> = plan.iter_mut().filter_map(|p| p.3.take()).collect();
    let mut results = round_robin(cfg, &mut samplers).into_iter();
    drop(samplers);

    let mut rows = Vec::new();
    let mut base = None;
    for (i, (name, target, note, _)) in plan.into_iter().enumerate() {
        let row = if available[i] {
            timed(name, results.next().expect("one result per sampler")).note(note)
        } else {
            Row::new(name, Value::NotAvailable(note))
        };
        if i == 0 {
            base = row.stats();
            rows.push(row.leftovers(procscan::settle(m(i), Duration::from_millis(200))));
            continue;
        }
        let row = row.baseline(base).target(target);
        let row = if matches!(row.value, Value::NotAvailable(_)) {
            row
        } else {
            row.leftovers(procscan::settle(m(i), Duration::from_millis(200)))
        };
        rows.push(row);
        if i == 4 {
            rows.push(
                timed("muontrap first spawn (starts keeper server)", first.clone())
                    .baseline(base)
                    .leftovers(procscan::settle(m(7), Duration::from_millis(200)))
                    .note(format!(
                        "`status()` of /bin/true as the first muontrap call of a fresh process, {} processes",
                        cfg.first_runs
                    )),
            );
        }
    }
    rows
}
