//! Section 4: what a cgroup per command costs (issue 5).
//!
//! - spawn + wait of `/bin/true` through muontrap with a fresh cgroup per command
//!   (`cgroup_base("./muontrap-test-bench-<pid>")` with a `pids.max`, so a controller is
//!   involved) against the same without a cgroup, round-robin like section 1;
//! - teardown of a 1000-process fan-out with `kill()` + `wait()` in a cgroup (`cgroup.kill`,
//!   or the v1 freezer sweep) against the same without one (the subreaper walk).
//!
//! The base directory `./muontrap-test-bench-<pid>` is created by the bench in each of its own
//! cgroups (relative to this process's cgroup in every hierarchy but cpuset's), so each command
//! creates and removes only its own leaf; it is removed at the end. "left behind" counts live
//! processes of the row carrying its marker plus cgroup directories still present after
//! `wait()` returned (both must be 0).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use muontrap::cgroup::{Layout, Limits, PidsLimit};

use crate::procscan::{self, MARKER_VAR};
use crate::report::{Row, Value, timed};
use crate::spawn::{Sampler, round_robin, sync};
use crate::stats::Stats;
use crate::teardown::{check_size, read_ready};
use crate::{Config, next_marker};

const TRUE: &str = "/bin/true";

/// The bench's base cgroup, `muontrap-test-bench-<pid>`, in each of its own cgroups.
struct Base {
    name: String,
    dirs: Vec<PathBuf>,
}

impl Base {
    /// Creates the base in every hierarchy this process is in (cpuset's excepted: a new v1
    /// cpuset directory starts without CPUs). `Err` says why cgroups cannot be used here.
    fn create() -> Result<Base, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("creating cgroups needs root".into());
        }
        let layout = Layout::detect().map_err(|e| format!("no cgroups: {e}"))?;
        let name = format!("muontrap-test-bench-{}", std::process::id());
        let mut own = Vec::new();
        if let (Some(m), Some(o)) = (&layout.unified, &layout.own_unified) {
            own.extend(m.dir_of(o));
        }
        for (h, o) in layout.v1.iter().zip(&layout.own_v1) {
            if let Some(o) = o.as_ref().filter(|_| !h.has("cpuset")) {
                own.extend(h.mount.dir_of(o));
            }
        }
        let mut base = Base {
            name,
            dirs: Vec::new(),
        };
        for d in own {
            let dir = d.join(&base.name);
            match std::fs::create_dir(&dir) {
                Ok(()) => base.dirs.push(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => base.dirs.push(dir),
                Err(e) => return Err(format!("creating {}: {e}", dir.display())),
            }
        }
        Ok(base)
    }

    /// The `cgroup_base` to give muontrap.
    fn placement(&self) -> String {
        format!("./{}", self.name)
    }

    /// Cgroup directories left under the base (each command's leaf must be gone).
    fn leftover_dirs(&self) -> usize {
        self.dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|rd| rd.flatten())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .count()
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        for d in &self.dirs {
            if let Err(e) = std::fs::remove_dir(d) {
                eprintln!("warning: cannot remove {}: {e}", d.display());
            }
        }
    }
}

/// A muontrap command running `/bin/true`, optionally with a fresh cgroup.
fn true_cmd(marker: &str, cgroup: Option<&str>) -> muontrap::Command {
    let mut cmd = muontrap::Command::new(TRUE);
    cmd.env(MARKER_VAR, marker);
    if let Some(base) = cgroup {
        let mut limits = Limits::new();
        limits.pids_max(PidsLimit::Count(64));
        cmd.cgroup_base(base).cgroup_limits(limits);
    }
    cmd
}

/// One torn-down tree.
struct Tree {
    took: Duration,
    /// Live processes carrying the marker right after `wait()`.
    left: usize,
    /// Cgroup directories still present after `wait()`.
    dirs_left: usize,
    /// How the cgroup was emptied (empty without a cgroup).
    mechanism: &'static str,
}

/// One fan-out of `n` processes, stopped with `kill()` + `wait()`.
fn tree_once(n: usize, cgroup: Option<&str>) -> Result<Tree, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let marker = next_marker();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut cmd = muontrap::Command::new(&exe);
    cmd.args(["__fanout".to_string(), n.to_string()])
        .env(MARKER_VAR, &marker)
        .stdin(muontrap::Stdio::null())
        .stdout(muontrap::Stdio::piped())
        .delay_to_sigkill(Duration::from_millis(500));
    if let Some(base) = cgroup {
        cmd.cgroup_base(base);
    }
    let mut child = cmd.spawn().map_err(|x| e(&x))?;
    read_ready(child.stdout.as_mut().expect("piped"))?;
    check_size(&marker, n)?;
    let mut mechanism = "";
    if let Some(cg) = child.cgroup() {
        mechanism = kill_mechanism(cg);
        let inside = cg.pids().len();
        if inside != n {
            return Err(format!("{inside} of {n} processes are in the cgroup"));
        }
    }
    let t0 = Instant::now();
    child.kill().map_err(|x| e(&x))?;
    child.wait().map_err(|x| e(&x))?;
    let dt = t0.elapsed();
    let left = procscan::with_marker(&marker).len();
    let dirs_left = child
        .cgroup()
        .map_or(0, |cg| cg.dirs().all().filter(|d| d.exists()).count());
    if left > 0 {
        procscan::kill_marked(&marker);
        procscan::settle(&marker, Duration::from_secs(2));
    }
    Ok(Tree {
        took: dt,
        left,
        dirs_left,
        mechanism,
    })
}

/// `cfg.tree_iters` trees: the times, the processes + directories left (summed), the
/// mechanism.
fn tree_rows(
    cfg: &Config,
    n: usize,
    cgroup: Option<&str>,
) -> (Result<Stats, String>, usize, &'static str) {
    let mut times = Vec::new();
    let mut left = 0;
    let mut mechanism = "";
    for _ in 0..cfg.tree_iters {
        match tree_once(n, cgroup) {
            Ok(t) => {
                times.push(t.took);
                left += t.left + t.dirs_left;
                mechanism = t.mechanism;
            }
            Err(e) => return (Err(e), left, mechanism),
        }
    }
    (Ok(Stats::of(&times)), left, mechanism)
}

/// Which mechanism the keeper's cgroup teardown uses for this cgroup.
/// Alternating spawns without and with a cgroup, each after 300 ms of quiet.
fn isolated(
    cfg: &Config,
    m_plain: &str,
    m_cg: &str,
    placement: &str,
) -> (Result<Stats, String>, Result<Stats, String>) {
    let runs = if cfg.quick { 3 } else { 15 };
    let (mut plain, mut with_cg) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (cgroup, out) in [(None, &mut plain), (Some(placement), &mut with_cg)] {
            std::thread::sleep(Duration::from_millis(300));
            let marker = if cgroup.is_some() { m_cg } else { m_plain };
            let t = Instant::now();
            match true_cmd(marker, cgroup).status() {
                Ok(s) if s.success() => out.push(t.elapsed()),
                Ok(s) => return (Err(format!("{s}")), Err(format!("{s}"))),
                Err(e) => return (Err(e.to_string()), Err(e.to_string())),
            }
        }
    }
    (Ok(Stats::of(&plain)), Ok(Stats::of(&with_cg)))
}

fn kill_mechanism(cg: &muontrap::cgroup::CgroupHandle) -> &'static str {
    match &cg.dirs().unified {
        Some(u) if u.join("cgroup.kill").exists() => "`cgroup.kill` (v2 hierarchy)",
        _ if cg.dirs().v1_of("freezer").is_some() => "v1 freezer + SIGKILL of `cgroup.procs`",
        _ => "SIGKILL of `cgroup.procs`",
    }
}

/// All rows of the section. `n` is the size of the torn-down tree.
pub fn run(cfg: &Config, n: usize) -> Vec<Row> {
    let base = match Base::create() {
        Ok(b) => b,
        Err(why) => {
            return vec![
                Row::new(
                    "muontrap `status()` of /bin/true with a fresh cgroup",
                    Value::NotAvailable(why.clone()),
                ),
                Row::new(
                    format!("muontrap: fan-out {n} in a cgroup, `kill()` + `wait()`"),
                    Value::NotAvailable(why),
                ),
            ];
        }
    };
    let placement = base.placement();
    let (m_plain, m_cg) = (next_marker(), next_marker());
    let mut samplers: Vec<Sampler<'_>> = vec![
        sync(|| {
            let s = true_cmd(&m_plain, None).status()?;
            if s.success() {
                Ok(())
            } else {
                Err("/bin/true failed".into())
            }
        }),
        sync(|| {
            let s = true_cmd(&m_cg, Some(&placement)).status()?;
            if s.success() {
                Ok(())
            } else {
                Err("/bin/true failed in a cgroup".into())
            }
        }),
    ];
    let mut results = round_robin(cfg, &mut samplers).into_iter();
    drop(samplers);
    let plain = results.next().expect("two samplers");
    let with_cg = results.next().expect("two samplers");
    let dirs_after_spawns = base.leftover_dirs();

    let mut rows = Vec::new();
    let spawn_base = plain.as_ref().ok().copied();
    rows.push(
        timed(
            "muontrap `Command::status()` of /bin/true, no cgroup",
            plain,
        )
        .leftovers(procscan::settle(&m_plain, Duration::from_millis(200)))
        .note("baseline of the spawn rows"),
    );
    rows.push(
        timed(
            "muontrap `Command::status()` of /bin/true, fresh cgroup per command",
            with_cg,
        )
        .baseline(spawn_base)
        .leftovers(procscan::settle(&m_cg, Duration::from_millis(200)) + dirs_after_spawns)
        .note(format!(
            "`cgroup_base(\"{placement}\")` + `pids_max(64)`: the keeper creates, joins, empties \
             and removes one leaf per command; {dirs_after_spawns} leaf directories left"
        )),
    );

    // Spawns far apart: what a lone command with limits pays. Back-to-back spawns hide a
    // cost the kernel has for migrating a task between cgroups (an RCU grace period when it
    // takes the global threadgroup lock), which a lone spawn pays in full.
    let (iso_plain, iso_cg) = isolated(cfg, &m_plain, &m_cg, &placement);
    let iso_base = iso_plain.as_ref().ok().copied();
    rows.push(
        timed(
            "muontrap `Command::status()` of /bin/true, no cgroup, isolated (300 ms apart)",
            iso_plain,
        )
        .note("baseline of the isolated row"),
    );
    rows.push(
        timed(
            "muontrap `Command::status()` of /bin/true, fresh cgroup, isolated (300 ms apart)",
            iso_cg,
        )
        .baseline(iso_base)
        .leftovers(procscan::settle(&m_cg, Duration::from_millis(200)) + base.leftover_dirs())
        .note("the command joins v1 hierarchies by writing `0` to `tasks` (single-thread move)"),
    );

    let (plain, left, _) = tree_rows(cfg, n, None);
    let tree_base = plain.as_ref().ok().copied();
    rows.push(
        timed(
            &format!("muontrap: fan-out {n}, `kill()` + `wait()`, no cgroup"),
            plain,
        )
        .leftovers(left)
        .note("baseline of the teardown rows: subreaper `/proc` walk + pidfd SIGKILL sweeps"),
    );
    let (with_cg, left, mechanism) = tree_rows(cfg, n, Some(&placement));
    rows.push(
        timed(
            &format!("muontrap: fan-out {n} in a cgroup, `kill()` + `wait()`"),
            with_cg,
        )
        .baseline(tree_base)
        .target("0 left, no directory left")
        .leftovers(left)
        .note(format!(
            "{mechanism}, then the keeper's sweep reaps; left behind = processes + cgroup \
             directories still present after `wait()`"
        )),
    );
    let stray = base.leftover_dirs();
    if stray > 0 {
        eprintln!(
            "warning: {stray} cgroup directories left under {}",
            base.name
        );
    }
    rows
}
