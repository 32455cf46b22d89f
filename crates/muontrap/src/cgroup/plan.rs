//! [`CgroupPlan`]: every step of setting up a command's cgroup, resolved by the owner and
//! executed by the keeper; [`LiveCgroup`]: the keeper's side afterwards, up to teardown.
//!
//! Why a plan of concrete steps instead of sending the [`Limits`]: the owner must know every
//! path (for [`crate::Child::cgroup`]) without asking the keeper, and a keeper that fails can
//! only report "step N, errno E" over the 16-byte control message; the owner holds the same
//! plan and turns that back into a full error with the path and the value.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::CgroupError;
use super::handle::CgroupHandle;
use super::layout::{Anchor, Layout, LayoutKind, Mount, split_user_path};
use super::limits::{Limits, Placement};
use super::stats::Statistics;
use super::{fs, v1, v2};

/// The directory of one v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Dir {
    /// The controllers of the hierarchy (`cpu`, or `cpu,cpuacct` when co-mounted).
    pub controllers: Vec<String>,
    /// The cgroup directory in that hierarchy.
    pub path: PathBuf,
}

impl V1Dir {
    /// `cpu,cpuacct`: how statistics name this hierarchy.
    pub fn label(&self) -> String {
        self.controllers.join(",")
    }
}

/// The directories of one command's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// The v2 directory (all of it on pure v2; kill, events and freeze on hybrid).
    pub unified: Option<PathBuf>,
    /// One directory per v1 hierarchy used.
    pub v1: Vec<V1Dir>,
}

impl Dirs {
    /// Every directory, v2 first.
    pub fn all(&self) -> impl Iterator<Item = &Path> {
        self.unified
            .iter()
            .map(PathBuf::as_path)
            .chain(self.v1.iter().map(|d| d.path.as_path()))
    }

    /// The files the command writes `0` ("the writer") to in order to join, v2 first:
    /// `cgroup.procs` on v2, and on v1 `tasks`. Moving a single thread that way (the command
    /// is single-threaded until it execs) lets the kernel skip the global threadgroup lock, and
    /// with it an RCU grace period that made each isolated v1 join cost ~10 ms here.
    pub fn join_files(&self) -> Vec<PathBuf> {
        self.unified
            .iter()
            .map(|d| d.join("cgroup.procs"))
            .chain(self.v1.iter().map(|d| d.path.join("tasks")))
            .collect()
    }

    /// The v1 directory of the hierarchy carrying `controller`.
    pub fn v1_of(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.path.as_path())
    }
}

/// One setup step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `mkdir`; an existing directory is fine unless it is the leaf.
    MakeDir {
        /// The directory.
        path: PathBuf,
        /// Whether this is the command's own cgroup (must not exist yet).
        leaf: bool,
    },
    /// Best effort: `+controller` into `dir/cgroup.subtree_control` (v2).
    Enable {
        /// The parent directory.
        dir: PathBuf,
        /// The controller.
        controller: String,
    },
    /// The controller must be listed in `dir/cgroup.controllers` (v2).
    Require {
        /// The cgroup.
        dir: PathBuf,
        /// The controller.
        controller: String,
    },
    /// Copy `from` into `to` if `to` is empty (v1 cpuset files of a new directory).
    CopyIfEmpty {
        /// The parent's file.
        from: PathBuf,
        /// The new directory's file.
        to: PathBuf,
    },
    /// Write a setting.
    Write {
        /// The file.
        path: PathBuf,
        /// The value.
        value: String,
    },
}

/// The resolved cgroup setup of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPlan {
    kind: LayoutKind,
    ops: Vec<Op>,
    dirs: Dirs,
}

/// A setup step failed: its index in the plan (steps after the last op are the `cgroup.procs`
/// opens, one per directory) and the error.
#[derive(Debug)]
pub struct SetupError {
    /// The failed step.
    pub step: usize,
    /// What went wrong.
    pub error: CgroupError,
}

/// Failure stages at or above this number, in a keeper's `Failed` report, are cgroup setup
/// steps: `stage - CGROUP_STAGE_BASE` is the index of the failed step (see
/// [`CgroupPlan::failure`]).
pub const CGROUP_STAGE_BASE: u32 = 0x100;

/// v1 controllers whose hierarchies a command always joins when they are mounted, so its
/// usage can be reported even without limits.
const V1_ACCOUNTING: [&str; 4] = ["memory", "cpu", "cpuacct", "pids"];

impl CgroupPlan {
    /// Resolves `placement` and `limits` against `layout`. `unique` names the new cgroup of a
    /// [`Placement::Base`]. Reads the existing ancestors' `cgroup.subtree_control` (v2) so that
    /// controllers already enabled are not written again.
    pub fn new(
        layout: &Layout,
        placement: &Placement,
        limits: &Limits,
        unique: &str,
    ) -> Result<CgroupPlan, CgroupError> {
        for (k, _) in &limits.raw {
            if k.is_empty() || k.contains('/') || k == "." || k == ".." || k.contains('\0') {
                return Err(CgroupError::BadKey(k.clone()));
            }
        }
        let (given, base) = match placement {
            Placement::Path(p) => (p, false),
            Placement::Base(p) => (p, true),
        };
        let (anchor, mut rel) = split_user_path(given)?;
        if base {
            rel.push(unique);
        } else if rel.as_os_str().is_empty() {
            return Err(CgroupError::BadPath {
                path: given.clone(),
                why: "it names muontrap's own cgroup; use it as a cgroup_base instead",
            });
        }
        let mut plan = CgroupPlan {
            kind: layout.kind(),
            ops: Vec::new(),
            dirs: Dirs {
                unified: None,
                v1: Vec::new(),
            },
        };
        match layout.kind() {
            LayoutKind::V2 => plan.build_v2(layout, &anchor, &rel, limits)?,
            LayoutKind::Hybrid | LayoutKind::V1 => plan.build_v1(layout, &anchor, &rel, limits)?,
        }
        Ok(plan)
    }

    fn build_v2(
        &mut self,
        layout: &Layout,
        anchor: &Anchor,
        rel: &Path,
        limits: &Limits,
    ) -> Result<(), CgroupError> {
        let mount = layout.unified.as_ref().ok_or(CgroupError::NotMounted)?;
        let writes = v2::apply(limits);
        let mut needed: Vec<String> = Vec::new();
        let asked = limits.controllers.iter();
        for c in asked.chain(writes.iter().map(|w| &w.controller)) {
            if c != "cgroup" && !needed.contains(c) {
                needed.push(c.clone());
            }
        }
        let root_ctrl = mount.mount_point.join("cgroup.controllers");
        let available = std::fs::read_to_string(&root_ctrl).unwrap_or_default();
        for c in &needed {
            if !available.split_whitespace().any(|a| a == c) {
                return Err(CgroupError::MissingController {
                    controller: c.clone(),
                    fix: format!(
                        "the kernel does not offer it in {} (is it bound to a cgroup v1 hierarchy?)",
                        root_ctrl.display()
                    ),
                    source: None,
                });
            }
        }
        let base_dir = base_dir(mount, anchor, layout.own_unified.as_deref(), "v2")?;
        // Existing ancestors, from the mount point down to the base: enable what is missing.
        let mut chain = vec![base_dir.clone()];
        let mut cur = base_dir.as_path();
        while cur != mount.mount_point {
            match cur.parent() {
                Some(p) if p.starts_with(&mount.mount_point) => {
                    chain.push(p.to_owned());
                    cur = p;
                }
                _ => break,
            }
        }
        chain.reverse();
        for dir in &chain {
            let enabled =
                std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            for c in &needed {
                if !enabled.split_whitespace().any(|e| e == c) {
                    self.ops.push(Op::Enable {
                        dir: dir.clone(),
                        controller: c.clone(),
                    });
                }
            }
        }
        let leaf = self.make_dirs(&base_dir, rel, None, &needed);
        for c in &needed {
            self.ops.push(Op::Require {
                dir: leaf.clone(),
                controller: c.clone(),
            });
        }
        for w in writes {
            self.ops.push(Op::Write {
                path: leaf.join(&w.file),
                value: w.value,
            });
        }
        self.dirs.unified = Some(leaf);
        Ok(())
    }

    fn build_v1(
        &mut self,
        layout: &Layout,
        anchor: &Anchor,
        rel: &Path,
        limits: &Limits,
    ) -> Result<(), CgroupError> {
        let writes = v1::apply(limits)?;
        let mut used: Vec<usize> = Vec::new();
        let asked = limits.controllers.iter();
        for c in asked.chain(writes.iter().map(|w| &w.controller)) {
            match layout.v1_index(c) {
                Some(i) if !used.contains(&i) => used.push(i),
                Some(_) => {}
                None if layout.unified.is_some() && !is_v1_controller(c) => {}
                None => {
                    return Err(CgroupError::MissingController {
                        controller: c.clone(),
                        fix: "no cgroup v1 hierarchy for it is mounted (see /proc/self/mountinfo)"
                            .into(),
                        source: None,
                    });
                }
            }
        }
        let mut extra: Vec<&str> = V1_ACCOUNTING.to_vec();
        if layout.unified.is_none() {
            extra.push("freezer");
        }
        for c in extra {
            if let Some(i) = layout.v1_index(c) {
                if !used.contains(&i) {
                    used.push(i);
                }
            }
        }
        used.sort_unstable();
        for i in used {
            let h = &layout.v1[i];
            let label = h.controllers.join(",");
            let base = base_dir(&h.mount, anchor, layout.own_v1[i].as_deref(), &label)?;
            let cpuset = h.has("cpuset");
            let leaf = self.make_dirs(&base, rel, cpuset.then_some(()), &[]);
            self.dirs.v1.push(V1Dir {
                controllers: h.controllers.clone(),
                path: leaf,
            });
        }
        if let Some(mount) = &layout.unified {
            let base = base_dir(mount, anchor, layout.own_unified.as_deref(), "v2")?;
            let leaf = self.make_dirs(&base, rel, None, &[]);
            self.dirs.unified = Some(leaf);
        }
        for w in writes {
            let dir = self
                .dirs
                .v1_of(&w.controller)
                .map(Path::to_owned)
                .or_else(|| self.dirs.unified.clone())
                .ok_or(CgroupError::NotMounted)?;
            self.ops.push(Op::Write {
                path: dir.join(&w.file),
                value: w.value,
            });
        }
        Ok(())
    }

    /// `mkdir` steps from `base` down to `base/rel`; on v2, controllers are enabled in every
    /// new directory above the leaf; in a v1 cpuset hierarchy, each new directory inherits
    /// the parent's `cpuset.cpus` and `cpuset.mems`. Returns the leaf.
    fn make_dirs(
        &mut self,
        base: &Path,
        rel: &Path,
        cpuset: Option<()>,
        enable: &[String],
    ) -> PathBuf {
        let n = rel.components().count();
        let mut cur = base.to_owned();
        for (i, comp) in rel.components().enumerate() {
            let parent = cur.clone();
            cur.push(comp);
            let leaf = i + 1 == n;
            self.ops.push(Op::MakeDir {
                path: cur.clone(),
                leaf,
            });
            if cpuset.is_some() {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    self.ops.push(Op::CopyIfEmpty {
                        from: parent.join(f),
                        to: cur.join(f),
                    });
                }
            }
            if !leaf {
                for c in enable {
                    self.ops.push(Op::Enable {
                        dir: cur.clone(),
                        controller: c.clone(),
                    });
                }
            }
        }
        cur
    }

    /// The directories the command will run in.
    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    /// The layout the plan was made for.
    pub fn kind(&self) -> LayoutKind {
        self.kind
    }

    /// The steps, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// An owner-side handle on the cgroup.
    pub fn handle(&self) -> CgroupHandle {
        CgroupHandle::new(self.kind, self.dirs.clone())
    }

    /// Executes the plan (in the keeper, before spawning) and opens the `cgroup.procs` files
    /// the command will write its pid to. On any error, every directory created so far is
    /// removed again.
    pub fn create(&self) -> Result<LiveCgroup, SetupError> {
        let mut live = LiveCgroup {
            kind: self.kind,
            dirs: self.dirs.clone(),
            created: Vec::new(),
            procs: Vec::new(),
            v2_dir: None,
            released: false,
        };
        let mut enable_errors: Vec<(String, io::Error)> = Vec::new();
        for (step, op) in self.ops.iter().enumerate() {
            if let Err(error) = run_op(op, &mut live.created, &mut enable_errors) {
                live.remove_dirs(Duration::from_millis(100));
                live.released = true;
                return Err(SetupError { step, error });
            }
        }
        for (i, path) in self.dirs.join_files().into_iter().enumerate() {
            let opened = rustix::fs::open(
                &path,
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(io::Error::from)
            .and_then(crate::sys::exec::above_stdio);
            match opened {
                Ok(fd) => live.procs.push(fd),
                Err(source) => {
                    live.remove_dirs(Duration::from_millis(100));
                    live.released = true;
                    return Err(SetupError {
                        step: self.ops.len() + i,
                        error: CgroupError::Write {
                            path,
                            value: "(open for joining)".into(),
                            source,
                        },
                    });
                }
            }
        }
        // For `clone3(CLONE_INTO_CGROUP)`; without it (old kernels) the command joins the v2
        // directory through its `cgroup.procs` like the others.
        live.v2_dir = self.dirs.unified.as_ref().and_then(|dir| {
            rustix::fs::open(
                dir,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(io::Error::from)
            .and_then(crate::sys::exec::above_stdio)
            .ok()
        });
        Ok(live)
    }

    /// The cgroup of a keeper that died before removing it, given the directories it
    /// created ([`LiveCgroup::created`]): dropping (or releasing) the result kills what is
    /// left in it, waits until it is empty and removes those directories, like the keeper
    /// would have.
    pub fn leftover(&self, created: Vec<PathBuf>) -> LiveCgroup {
        LiveCgroup {
            kind: self.kind,
            dirs: self.dirs.clone(),
            created,
            procs: Vec::new(),
            v2_dir: None,
            released: false,
        }
    }

    /// Rebuilds the error of a failed step reported by a keeper as `(step, errno)`.
    pub fn failure(&self, step: usize, errno: i32) -> CgroupError {
        let source = io::Error::from_raw_os_error(errno);
        match self.ops.get(step) {
            Some(op) => op_error(op, source, None),
            None => {
                let path = self
                    .dirs
                    .join_files()
                    .into_iter()
                    .nth(step - self.ops.len().min(step))
                    .unwrap_or_default();
                CgroupError::Write {
                    path,
                    value: "(open for joining)".into(),
                    source,
                }
            }
        }
    }

    /// The wire form (inside the launch spec).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::new();
        let put = |w: &mut Vec<u8>, b: &[u8]| {
            w.extend_from_slice(&(b.len() as u32).to_le_bytes());
            w.extend_from_slice(b);
        };
        let path = |p: &Path| p.as_os_str().as_encoded_bytes().to_vec();
        w.push(match self.kind {
            LayoutKind::V2 => 0,
            LayoutKind::Hybrid => 1,
            LayoutKind::V1 => 2,
        });
        match &self.dirs.unified {
            Some(p) => {
                w.push(1);
                put(&mut w, &path(p));
            }
            None => w.push(0),
        }
        w.extend_from_slice(&(self.dirs.v1.len() as u32).to_le_bytes());
        for d in &self.dirs.v1 {
            put(&mut w, d.label().as_bytes());
            put(&mut w, &path(&d.path));
        }
        w.extend_from_slice(&(self.ops.len() as u32).to_le_bytes());
        for op in &self.ops {
            let (tag, a, b): (u8, &Path, Vec<u8>) = match op {
                Op::MakeDir { path, leaf } => (0, path, vec![*leaf as u8]),
                Op::Enable { dir, controller } => (1, dir, controller.as_bytes().to_vec()),
                Op::Require { dir, controller } => (2, dir, controller.as_bytes().to_vec()),
                Op::CopyIfEmpty { from, to } => {
                    (3, to, from.as_os_str().as_encoded_bytes().to_vec())
                }
                Op::Write { path, value } => (4, path, value.as_bytes().to_vec()),
            };
            w.push(tag);
            put(&mut w, &path(a));
            put(&mut w, &b);
        }
        w
    }

    /// Decodes [`CgroupPlan::encode`].
    pub fn decode(buf: &[u8]) -> io::Result<CgroupPlan> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad cgroup plan");
        let mut r = buf;
        let mut take = |n: usize| -> io::Result<Vec<u8>> {
            if r.len() < n {
                return Err(bad());
            }
            let (a, b) = r.split_at(n);
            r = b;
            Ok(a.to_vec())
        };
        let u32_ = |take: &mut dyn FnMut(usize) -> io::Result<Vec<u8>>| -> io::Result<usize> {
            let b = take(4)?;
            Ok(u32::from_le_bytes(b.try_into().map_err(|_| bad())?) as usize)
        };
        let bytes = |take: &mut dyn FnMut(usize) -> io::Result<Vec<u8>>| -> io::Result<Vec<u8>> {
            let b = take(4)?;
            let n = u32::from_le_bytes(b.try_into().map_err(|_| bad())?) as usize;
            take(n)
        };
        let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| bad());
        let pathb = |b: Vec<u8>| {
            use std::os::unix::ffi::OsStringExt;
            PathBuf::from(std::ffi::OsString::from_vec(b))
        };
        let kind = match take(1)?[0] {
            0 => LayoutKind::V2,
            1 => LayoutKind::Hybrid,
            2 => LayoutKind::V1,
            _ => return Err(bad()),
        };
        let unified = match take(1)?[0] {
            1 => Some(pathb(bytes(&mut take)?)),
            _ => None,
        };
        let n = u32_(&mut take)?;
        if n > 64 {
            return Err(bad());
        }
        let mut v1 = Vec::new();
        for _ in 0..n {
            let label = text(bytes(&mut take)?)?;
            let path = pathb(bytes(&mut take)?);
            v1.push(V1Dir {
                controllers: label.split(',').map(str::to_owned).collect(),
                path,
            });
        }
        let n = u32_(&mut take)?;
        if n > 1 << 16 {
            return Err(bad());
        }
        let mut ops = Vec::new();
        for _ in 0..n {
            let tag = take(1)?[0];
            let a = pathb(bytes(&mut take)?);
            let b = bytes(&mut take)?;
            ops.push(match tag {
                0 => Op::MakeDir {
                    path: a,
                    leaf: b.first() == Some(&1),
                },
                1 => Op::Enable {
                    dir: a,
                    controller: text(b)?,
                },
                2 => Op::Require {
                    dir: a,
                    controller: text(b)?,
                },
                3 => Op::CopyIfEmpty {
                    to: a,
                    from: pathb(b),
                },
                4 => Op::Write {
                    path: a,
                    value: text(b)?,
                },
                _ => return Err(bad()),
            });
        }
        Ok(CgroupPlan {
            kind,
            ops,
            dirs: Dirs { unified, v1 },
        })
    }
}

fn is_v1_controller(c: &str) -> bool {
    matches!(
        c,
        "cpu"
            | "cpuacct"
            | "cpuset"
            | "memory"
            | "devices"
            | "freezer"
            | "net_cls"
            | "blkio"
            | "perf_event"
            | "net_prio"
            | "hugetlb"
            | "pids"
            | "rdma"
            | "misc"
    )
}

/// The directory a placement is anchored at in one hierarchy.
fn base_dir(
    mount: &Mount,
    anchor: &Anchor,
    own: Option<&Path>,
    hierarchy: &str,
) -> Result<PathBuf, CgroupError> {
    let unknown = || CgroupError::OwnCgroupUnknown {
        hierarchy: hierarchy.to_owned(),
        mount: mount.mount_point.clone(),
    };
    match anchor {
        Anchor::MountRoot => Ok(mount.mount_point.clone()),
        Anchor::Own => mount.dir_of(own.ok_or_else(unknown)?).ok_or_else(unknown),
    }
}

fn run_op(
    op: &Op,
    created: &mut Vec<PathBuf>,
    enable_errors: &mut Vec<(String, io::Error)>,
) -> Result<(), CgroupError> {
    match op {
        Op::MakeDir { path, leaf } => match std::fs::create_dir(path) {
            Ok(()) => {
                created.push(path.clone());
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !leaf => Ok(()),
            Err(e) => Err(op_error(op, e, None)),
        },
        Op::Enable { dir, controller } => {
            if let Err(e) = fs::write_io(
                &dir.join("cgroup.subtree_control"),
                &format!("+{controller}"),
            ) {
                tracing::debug!(dir = %dir.display(), controller, error = %e, "enabling a controller failed");
                enable_errors.push((controller.clone(), e));
            }
            Ok(())
        }
        Op::Require { dir, controller } => {
            let text = fs::read(&dir.join("cgroup.controllers"))?;
            if text.split_whitespace().any(|c| c == controller) {
                Ok(())
            } else {
                let source = enable_errors
                    .iter()
                    .position(|(c, _)| c == controller)
                    .map(|i| enable_errors.swap_remove(i).1);
                Err(op_error(
                    op,
                    io::Error::from_raw_os_error(libc::ENOENT),
                    Some(source),
                ))
            }
        }
        Op::CopyIfEmpty { from, to } => {
            let current = fs::read(to)?;
            if current.trim().is_empty() {
                let value = fs::read(from)?;
                fs::write(to, value.trim())?;
            }
            Ok(())
        }
        Op::Write { path, value } => fs::write(path, value),
    }
}

/// The error of a failed step. For `Require`, `enable` is the error of our own attempt to
/// enable the controller (`Some(None)`: no attempt failed).
fn op_error(op: &Op, source: io::Error, enable: Option<Option<io::Error>>) -> CgroupError {
    match op {
        Op::MakeDir { path, leaf: true } if source.kind() == io::ErrorKind::AlreadyExists => {
            CgroupError::AlreadyExists { path: path.clone() }
        }
        Op::MakeDir { path, .. } => CgroupError::Create {
            path: path.clone(),
            source,
        },
        Op::Require { dir, controller } => {
            let parent = dir.parent().unwrap_or(dir);
            let enable_error = match enable {
                Some(e) => e,
                // Rebuilt from a keeper's errno: ENOENT is "simply not listed".
                None if source.raw_os_error() == Some(libc::ENOENT) => None,
                None => Some(source),
            };
            CgroupError::MissingController {
                controller: controller.clone(),
                fix: format!(
                    "it is not enabled for '{}': add it to '{}' (echo +{controller} > {})",
                    dir.display(),
                    parent.join("cgroup.subtree_control").display(),
                    parent.join("cgroup.subtree_control").display(),
                ),
                source: enable_error,
            }
        }
        Op::Enable { dir, controller } => CgroupError::Write {
            path: dir.join("cgroup.subtree_control"),
            value: format!("+{controller}"),
            source,
        },
        Op::CopyIfEmpty { to, .. } => CgroupError::Write {
            path: to.clone(),
            value: "(the parent's value)".into(),
            source,
        },
        Op::Write { path, value } => CgroupError::Write {
            path: path.clone(),
            value: value.clone(),
            source,
        },
    }
}

/// The keeper's side of a created cgroup: the `cgroup.procs` descriptors the command joins
/// through, and what to remove at the end. Dropping it tears the cgroup down.
#[derive(Debug)]
pub struct LiveCgroup {
    kind: LayoutKind,
    dirs: Dirs,
    created: Vec<PathBuf>,
    procs: Vec<OwnedFd>,
    /// The v2 directory, open, for the command to be cloned straight into.
    v2_dir: Option<OwnedFd>,
    released: bool,
}

/// How long teardown may wait for the cgroup to empty and for `rmdir` to succeed.
const TEARDOWN_BOUND: Duration = Duration::from_secs(5);

impl LiveCgroup {
    /// The open `cgroup.procs` descriptors, for the child to write its pid to (v2 first).
    pub fn join_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The v2 directory, open, if there is one: [`crate::sys::exec::spawn`] clones the
    /// command straight into it (`CLONE_INTO_CGROUP`), and then the first of
    /// [`LiveCgroup::join_fds`] needs no write.
    pub fn v2_dir_fd(&self) -> Option<RawFd> {
        self.v2_dir.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Closes the join descriptors (after the command was spawned).
    pub fn close_join_fds(&mut self) {
        self.procs.clear();
        self.v2_dir = None;
    }

    /// The directories.
    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    /// The directories this cgroup's creation made (and its release removes), in creation
    /// order.
    pub fn created(&self) -> &[PathBuf] {
        &self.created
    }

    /// Kills every process in the cgroup at once: `cgroup.kill` where the v2 hierarchy has it,
    /// otherwise one SIGKILL pass over `cgroup.procs` (the caller re-checks).
    pub fn kill(&self) -> bool {
        if let Some(u) = &self.dirs.unified {
            if fs::write_io(&u.join("cgroup.kill"), "1").is_ok() {
                return true;
            }
        }
        self.kill_listed();
        false
    }

    fn kill_listed(&self) -> usize {
        let mut n = 0;
        for dir in self.dirs.all() {
            for pid in fs::pids(dir) {
                // A member that is our descendant stays a zombie until we reap it, so its pid
                // cannot be reused under us; a stranger that exits meanwhile is a tiny race
                // accepted here (the v2 path, cgroup.kill, has none).
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    n += 1;
                }
            }
        }
        n
    }

    /// Whether any process is still in the cgroup.
    pub fn populated(&self) -> bool {
        if let Some(u) = &self.dirs.unified {
            if let Some(ev) = fs::read_opt(u, "cgroup.events") {
                return ev.lines().any(|l| l.trim() == "populated 1");
            }
        }
        self.dirs.all().any(|d| !fs::pids(d).is_empty())
    }

    /// Empties the cgroup (kill, then freeze + kill sweeps on v1), waits until it is empty
    /// (bounded), reads its final statistics and removes every directory muontrap created.
    pub fn release(&mut self) -> Option<Statistics> {
        if self.released {
            return None;
        }
        self.released = true;
        self.procs.clear();
        let deadline = Instant::now() + TEARDOWN_BOUND;
        if self.populated() {
            self.kill();
            let freezer = self.dirs.v1_of("freezer").map(Path::to_owned);
            while self.populated() && Instant::now() < deadline {
                match (&self.dirs.unified, &freezer) {
                    (Some(u), _) => {
                        let _ = fs::write_io(&u.join("cgroup.kill"), "1");
                        wait_events(u, Duration::from_millis(10));
                    }
                    (None, Some(f)) => {
                        // Frozen members cannot fork while we collect their pids.
                        let _ = fs::write_io(&f.join("freezer.state"), "FROZEN");
                        self.kill_listed();
                        let _ = fs::write_io(&f.join("freezer.state"), "THAWED");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    (None, None) => {
                        self.kill_listed();
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        let stats = CgroupHandle::new(self.kind, self.dirs.clone())
            .statistics()
            .ok();
        self.remove_dirs(deadline.saturating_duration_since(Instant::now()));
        stats
    }

    /// `rmdir` of what was created, deepest first; EBUSY (a member still exiting) is retried
    /// until `bound`. A directory that holds cgroups muontrap did not create (a base shared
    /// with a command still running) is EBUSY for that reason, not ours: it stays, at once.
    fn remove_dirs(&mut self, bound: Duration) {
        let deadline = Instant::now() + bound;
        while let Some(dir) = self.created.pop() {
            loop {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && has_subdirs(&dir) => {
                        tracing::debug!(dir = %dir.display(), "cgroup still holds other cgroups; left in place");
                        break;
                    }
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the cgroup");
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for LiveCgroup {
    fn drop(&mut self) {
        self.release();
    }
}

/// Whether `dir` contains a directory (a child cgroup).
fn has_subdirs(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}

/// Sleeps until `dir/cgroup.events` changes (the kernel raises POLLPRI on it) or `timeout`.
fn wait_events(dir: &Path, timeout: Duration) {
    use rustix::event::{PollFd, PollFlags};
    let Ok(fd) = rustix::fs::open(
        dir.join("cgroup.events"),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        std::thread::sleep(timeout.min(Duration::from_millis(1)));
        return;
    };
    let mut buf = [0u8; 256];
    let _ = rustix::io::read(&fd, &mut buf);
    let mut fds = [PollFd::new(&fd, PollFlags::PRI)];
    let _ = crate::engine::keeper::poll(&mut fds, Some(timeout));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::limits::PidsLimit;
    use crate::cgroup::size::SizeLimit;
    use crate::cgroup::v2::fixture::FakeCgroup;

    fn fake_v2(root: &Path) -> Layout {
        Layout::parse(
            &format!("24 1 0:22 / {} rw - cgroup2 cgroup2 rw\n", root.display()),
            "0::/svc\n",
        )
    }

    #[test]
    fn v2_plan_enables_controllers_creates_and_writes() {
        let fake = FakeCgroup::new("planv2");
        fake.file("cgroup.controllers", "cpu memory pids\n")
            .file("cgroup.subtree_control", "memory\n")
            .file("svc/cgroup.subtree_control", "\n");
        let mut l = Limits::new();
        l.memory_max(SizeLimit::Bytes(1 << 20))
            .pids_max(PidsLimit::Count(5));
        let plan = CgroupPlan::new(
            &fake_v2(fake.path()),
            &Placement::Base("./jobs".into()),
            &l,
            "u1",
        )
        .unwrap();
        let root = fake.path();
        let svc = root.join("svc");
        let leaf = svc.join("jobs/u1");
        assert_eq!(plan.dirs().unified.as_deref(), Some(leaf.as_path()));
        let expect = vec![
            Op::Enable {
                dir: root.to_owned(),
                controller: "pids".into(),
            },
            Op::Enable {
                dir: svc.clone(),
                controller: "memory".into(),
            },
            Op::Enable {
                dir: svc.clone(),
                controller: "pids".into(),
            },
            Op::MakeDir {
                path: svc.join("jobs"),
                leaf: false,
            },
            Op::Enable {
                dir: svc.join("jobs"),
                controller: "memory".into(),
            },
            Op::Enable {
                dir: svc.join("jobs"),
                controller: "pids".into(),
            },
            Op::MakeDir {
                path: leaf.clone(),
                leaf: true,
            },
            Op::Require {
                dir: leaf.clone(),
                controller: "memory".into(),
            },
            Op::Require {
                dir: leaf.clone(),
                controller: "pids".into(),
            },
            Op::Write {
                path: leaf.join("memory.max"),
                value: "1048576".into(),
            },
            Op::Write {
                path: leaf.join("pids.max"),
                value: "5".into(),
            },
        ];
        assert_eq!(plan.ops(), expect.as_slice());
        assert_eq!(CgroupPlan::decode(&plan.encode()).unwrap(), plan);
    }

    #[test]
    fn missing_v2_controller_is_named_with_the_file() {
        let fake = FakeCgroup::new("planmiss");
        fake.file("cgroup.controllers", "cpu\n");
        let mut l = Limits::new();
        l.memory_max(SizeLimit::Max);
        let err = CgroupPlan::new(&fake_v2(fake.path()), &Placement::Path("x".into()), &l, "u")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'memory'") && err.contains("cgroup.controllers"),
            "{err}"
        );
    }

    #[test]
    fn failed_setting_removes_what_was_created() {
        // A fake v2 tree: mkdir works (temp dir), but the leaf gets no control files, so the
        // first write fails (no O_CREAT) and everything created must go.
        let fake = FakeCgroup::new("planfail");
        fake.file("cgroup.controllers", "pids\n")
            .file("cgroup.subtree_control", "pids\n");
        let layout = Layout::parse(
            &format!(
                "24 1 0:22 / {} rw - cgroup2 cgroup2 rw\n",
                fake.path().display()
            ),
            "0::/\n",
        );
        let mut l = Limits::new();
        l.set("cgroup.max.depth", "3");
        let plan = CgroupPlan::new(&layout, &Placement::Path("a/b".into()), &l, "u").unwrap();
        let err = plan.create().unwrap_err();
        assert_eq!(err.step, 2, "{:?}", plan.ops());
        assert!(
            err.error.to_string().contains("cgroup.max.depth"),
            "{}",
            err.error
        );
        assert!(
            !fake.path().join("a").exists(),
            "created directories are removed"
        );
        let rebuilt = plan.failure(err.step, libc::ENOENT).to_string();
        assert_eq!(rebuilt, err.error.to_string());
    }

    #[test]
    fn hybrid_plan_uses_v1_hierarchies_and_the_unified_one() {
        let fake = FakeCgroup::new("planhy");
        let r = fake.path().display().to_string();
        let layout = Layout::parse(
            &format!(
                "1 0 0:1 / {r}/memory rw - cgroup cgroup rw,memory\n\
                 2 0 0:2 / {r}/cpu rw - cgroup cgroup rw,cpu,cpuacct\n\
                 3 0 0:3 / {r}/cpuset rw - cgroup cgroup rw,cpuset\n\
                 4 0 0:4 / {r}/unified rw - cgroup2 cgroup2 rw\n"
            ),
            "3:memory:/m\n2:cpu,cpuacct:/\n1:cpuset:/\n0::/\n",
        );
        let mut l = Limits::new();
        l.memory_max(SizeLimit::Bytes(4096)).cpuset_cpus("0");
        let plan = CgroupPlan::new(&layout, &Placement::Base("./t".into()), &l, "u").unwrap();
        let d = plan.dirs();
        assert_eq!(d.v1_of("memory").unwrap(), fake.path().join("memory/m/t/u"));
        assert_eq!(d.v1_of("cpuacct").unwrap(), fake.path().join("cpu/t/u"));
        assert_eq!(d.v1_of("cpuset").unwrap(), fake.path().join("cpuset/t/u"));
        assert_eq!(
            d.unified.as_deref().unwrap(),
            fake.path().join("unified/t/u")
        );
        assert!(plan.ops().contains(&Op::Write {
            path: fake.path().join("memory/m/t/u/memory.limit_in_bytes"),
            value: "4096".into()
        }));
        assert!(plan.ops().contains(&Op::CopyIfEmpty {
            from: fake.path().join("cpuset/t/cpuset.mems"),
            to: fake.path().join("cpuset/t/u/cpuset.mems"),
        }));
        assert_eq!(CgroupPlan::decode(&plan.encode()).unwrap(), plan);
    }

    #[test]
    fn escapes_and_bad_keys_are_refused() {
        let fake = FakeCgroup::new("planesc");
        let layout = fake_v2(fake.path());
        let l = Limits::new();
        for p in ["../x", "./../x", "a/../../x", "."] {
            assert!(
                CgroupPlan::new(&layout, &Placement::Path(p.into()), &l, "u").is_err(),
                "{p}"
            );
        }
        let mut bad = Limits::new();
        bad.set("../memory.max", "1");
        assert!(matches!(
            CgroupPlan::new(&layout, &Placement::Base(".".into()), &bad, "u"),
            Err(CgroupError::BadKey(_))
        ));
    }
}
