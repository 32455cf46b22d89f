//! [`CgroupHandle`]: the owner's view of a command's cgroup, by path.
//!
//! The keeper created the directories; the owner reads statistics and settings, changes
//! settings and freezes the cgroup through the file system, with no round trip to the keeper.
//! Once the command has been waited for, the keeper has removed the cgroup: settings reads
//! fail with the path in the error, and [`CgroupHandle::statistics`] returns the final
//! statistics the keeper read just before removing it (every clone of the handle sees them).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::error::CgroupError;
use super::layout::LayoutKind;
use super::limits::Limits;
use super::plan::Dirs;
use super::stats::{Statistics, parse_flat_keyed};
use super::{dir_for_key, fs, v1, v2};

/// How long [`CgroupHandle::freeze`] waits for the kernel to report the cgroup frozen.
const FREEZE_BOUND: Duration = Duration::from_secs(5);

/// A command's cgroup (see [`crate::Child::cgroup`]). Clones share the final statistics.
/// Two handles are equal when they name the same directories.
#[derive(Debug, Clone)]
pub struct CgroupHandle {
    kind: LayoutKind,
    dirs: Dirs,
    /// Set once, by the owner's `Child`, from the keeper's report at the end.
    last: Arc<OnceLock<Statistics>>,
}

impl PartialEq for CgroupHandle {
    fn eq(&self, other: &CgroupHandle) -> bool {
        self.kind == other.kind && self.dirs == other.dirs
    }
}

impl Eq for CgroupHandle {}

impl CgroupHandle {
    pub(crate) fn new(kind: LayoutKind, dirs: Dirs) -> CgroupHandle {
        CgroupHandle {
            kind,
            dirs,
            last: Arc::default(),
        }
    }

    /// Records the statistics the keeper read just before removing the cgroup.
    pub(crate) fn set_final_statistics(&self, stats: Statistics) {
        let _ = self.last.set(stats);
    }

    /// The statistics the keeper read just before it removed the cgroup, once the command has
    /// ended (after [`crate::Child::wait`] or a successful [`crate::Child::try_wait`]);
    /// `None` while it runs, or if the keeper could not read them.
    pub fn final_statistics(&self) -> Option<&Statistics> {
        self.last.get()
    }

    /// The cgroup's main directory: the v2 one on a pure v2 machine, otherwise the memory
    /// hierarchy's (or the first v1 one). [`CgroupHandle::dirs`] lists them all.
    pub fn path(&self) -> &Path {
        match self.kind {
            LayoutKind::V2 => self.dirs.unified.as_deref(),
            _ => self
                .dirs
                .v1_of("memory")
                .or_else(|| self.dirs.v1.first().map(|d| d.path.as_path()))
                .or(self.dirs.unified.as_deref()),
        }
        .unwrap_or(Path::new("/"))
    }

    /// Every directory of the cgroup (the v2 one, and one per v1 hierarchy).
    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    /// The layout the cgroup lives in.
    pub fn kind(&self) -> LayoutKind {
        self.kind
    }

    /// What the cgroup has used so far, read now. Once the command has ended, the final
    /// statistics ([`CgroupHandle::final_statistics`]); fails if the cgroup is gone and those
    /// are not known (yet).
    pub fn statistics(&self) -> Result<Statistics, CgroupError> {
        if let Some(last) = self.last.get() {
            return Ok(last.clone());
        }
        let main = self.path();
        if !main.is_dir() {
            return Err(CgroupError::Read {
                path: main.to_owned(),
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            });
        }
        let mut s = Statistics::default();
        match self.kind {
            LayoutKind::V2 => {
                if let Some(u) = &self.dirs.unified {
                    v2::stats(u, &mut s);
                }
            }
            LayoutKind::Hybrid | LayoutKind::V1 => {
                for d in &self.dirs.v1 {
                    v1::stats(&d.controllers, &d.path, &d.label(), &mut s);
                }
                if let Some(u) = &self.dirs.unified {
                    v2::core_stats(u, &mut s);
                    // The v2 hierarchy counts CPU time without any controller, in µs.
                    if let Some(text) = fs::read_opt(u, "cpu.stat") {
                        let m = parse_flat_keyed(&text);
                        s.cpu_usage_usec = s.cpu_usage_usec.or(m.get("usage_usec").copied());
                        s.cpu_user_usec = s.cpu_user_usec.or(m.get("user_usec").copied());
                        s.cpu_system_usec = s.cpu_system_usec.or(m.get("system_usec").copied());
                        s.raw.insert("cpu.stat".into(), text);
                    }
                }
            }
        }
        Ok(s)
    }

    /// The settings, read back in the typed form of [`Limits`] (raw settings are not listed).
    pub fn config(&self) -> Result<Limits, CgroupError> {
        let mut l = Limits::default();
        match self.kind {
            LayoutKind::V2 => {
                let u = self
                    .dirs
                    .unified
                    .as_deref()
                    .ok_or(CgroupError::NotMounted)?;
                fs::read(&u.join("cgroup.procs"))?;
                l = v2::read_back(u);
            }
            _ => {
                fs::read(&self.path().join("cgroup.procs"))?;
                for d in &self.dirs.v1 {
                    v1::read_back(&d.controllers, &d.path, &mut l);
                }
            }
        }
        Ok(l)
    }

    /// Reads the cgroup file `key` (on v1, in the hierarchy of the controller the key's prefix
    /// names), raw.
    pub fn get(&self, key: &str) -> Result<String, CgroupError> {
        fs::read(&self.file(key)?)
    }

    /// Writes `value` to the cgroup file `key`; the kernel's verdict is the result.
    pub fn set(&self, key: &str, value: &str) -> Result<(), CgroupError> {
        fs::write(&self.file(key)?, value)
    }

    fn file(&self, key: &str) -> Result<std::path::PathBuf, CgroupError> {
        if key.is_empty() || key.contains('/') || key == ".." || key == "." {
            return Err(CgroupError::BadKey(key.to_owned()));
        }
        let dir = dir_for_key(&self.dirs, key).ok_or(CgroupError::NotMounted)?;
        Ok(dir.join(key))
    }

    /// Stops every process of the cgroup (they cannot be killed by anything but SIGKILL until
    /// thawed) and waits until the kernel reports the whole cgroup frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.set_frozen(true)
    }

    /// Lets the processes of a frozen cgroup run again.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let deadline = Instant::now() + FREEZE_BOUND;
        let state = if frozen { "frozen" } else { "thawed" };
        if let Some(u) = &self.dirs.unified {
            fs::write(&u.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
            let want = if frozen { "frozen 1" } else { "frozen 0" };
            loop {
                let ev = fs::read(&u.join("cgroup.events"))?;
                if ev.lines().any(|l| l.trim() == want) {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(CgroupError::FreezeTimeout {
                        path: u.clone(),
                        state,
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let f = self.dirs.v1_of("freezer").ok_or(CgroupError::NoFreezer)?;
        let want = if frozen { "FROZEN" } else { "THAWED" };
        fs::write(&f.join("freezer.state"), want)?;
        loop {
            if fs::read(&f.join("freezer.state"))?.trim() == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CgroupError::FreezeTimeout {
                    path: f.to_owned(),
                    state,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The pids of the processes in the cgroup now.
    pub fn pids(&self) -> Vec<i32> {
        fs::pids(self.path())
    }
}
