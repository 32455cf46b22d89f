//! Finding a keeper's descendants through `/proc`, and pinning them with pidfds.
//!
//! Without cgroups, the only kernel record of "who belongs to this command" is the parent
//! link. The keeper is a child subreaper, so every orphan of its tree is re-parented to it
//! rather than to init: the set of the keeper's descendants *is* the tree, and a
//! `setsid` + double-fork cannot leave it. We walk it through
//! `/proc/<pid>/task/<tid>/children` (falling back to scanning every `/proc/<pid>/stat` when a
//! kernel lacks `CONFIG_PROC_CHILDREN`).
//!
//! A pid read from `/proc` may die and be reused before we signal it. So each one is pinned
//! with `pidfd_open` and its parent is re-read *after* pinning: if the pinned process still has
//! the parent we found it under, it is the same process (a reused pid would have a parent
//! outside the tree), and every later signal goes through the pidfd, which can never hit a
//! different process.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::process::{Pid, PidfdFlags};

/// A descendant pinned by a pidfd.
#[derive(Debug)]
pub struct Pinned {
    /// Its pid (only for display and bookkeeping; never signalled directly).
    pub pid: i32,
    /// The pidfd through which it is signalled and watched.
    pub pidfd: OwnedFd,
}

/// Reads and walks `/proc` (the root is a parameter so tests can point it elsewhere).
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: PathBuf,
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs {
            root: PathBuf::from("/proc"),
        }
    }
}

impl ProcFs {
    /// A `/proc` mounted at `root`.
    pub fn at(root: impl Into<PathBuf>) -> ProcFs {
        ProcFs { root: root.into() }
    }

    /// Direct children of `pid` (all of its threads), or `None` if the kernel has no
    /// `children` files.
    fn children(&self, pid: i32) -> Option<Vec<i32>> {
        let tasks = self.root.join(pid.to_string()).join("task");
        let dir = match fs::read_dir(&tasks) {
            Ok(d) => d,
            Err(_) => return Some(Vec::new()),
        };
        let mut out = Vec::new();
        for task in dir.flatten() {
            match fs::read_to_string(task.path().join("children")) {
                Ok(s) => out.extend(
                    s.split_ascii_whitespace()
                        .filter_map(|t| t.parse::<i32>().ok()),
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound && !task.path().exists() => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
                Err(_) => {}
            }
        }
        Some(out)
    }

    /// The parent pid of `pid`, from `/proc/<pid>/stat`.
    pub fn ppid(&self, pid: i32) -> Option<i32> {
        let stat = fs::read_to_string(self.root.join(pid.to_string()).join("stat")).ok()?;
        parse_stat(&stat).map(|s| s.ppid)
    }

    /// Every descendant of `root` as `(pid, parent)` pairs, parents before children.
    pub fn descendants(&self, root: i32) -> Vec<(i32, i32)> {
        self.descendants_where(root, |_| true)
    }

    /// Like [`ProcFs::descendants`], but the children of a process are read only if
    /// `descend(pid)` is true. (A SIGKILLed process can no longer fork, and its live children
    /// are re-parented to the subreaper, so a kill sweep need not look below it.)
    pub fn descendants_where(&self, root: i32, descend: impl Fn(i32) -> bool) -> Vec<(i32, i32)> {
        let mut out = Vec::new();
        self.walk(root, descend, |pid, parent| out.push((pid, parent)));
        out
    }

    /// Walks the descendants of `root` depth-first and calls `visit(pid, parent)` for each one,
    /// parents before children, right *after* its own children have been read (when
    /// `descend(pid)`): so `visit` may kill it without its children escaping the walk by being
    /// re-parented, and a kill sweep overlaps the kernel's exit work with the rest of the walk.
    pub fn walk(&self, root: i32, descend: impl Fn(i32) -> bool, mut visit: impl FnMut(i32, i32)) {
        let mut stack = vec![(root, 0)];
        let mut seen = HashSet::new();
        let mut fallback: Option<HashMap<i32, Vec<i32>>> = None;
        while let Some((pid, parent)) = stack.pop() {
            let kids = if pid != root && !descend(pid) {
                Vec::new()
            } else {
                match &fallback {
                    Some(map) => map.get(&pid).cloned().unwrap_or_default(),
                    None => match self.children(pid) {
                        Some(k) => k,
                        None => {
                            let map = self.parent_map();
                            let k = map.get(&pid).cloned().unwrap_or_default();
                            fallback = Some(map);
                            k
                        }
                    },
                }
            };
            if pid != root {
                visit(pid, parent);
            }
            for k in kids {
                if seen.insert(k) {
                    stack.push((k, pid));
                }
            }
        }
    }

    /// Parent → children for every process, by scanning `/proc/*/stat`.
    fn parent_map(&self) -> HashMap<i32, Vec<i32>> {
        let mut map: HashMap<i32, Vec<i32>> = HashMap::new();
        if let Ok(dir) = fs::read_dir(&self.root) {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                if let Some(ppid) = self.ppid(pid) {
                    map.entry(ppid).or_default().push(pid);
                }
            }
        }
        map
    }

    /// Pins every current descendant of `root` that is not in `known`, confirming its parent
    /// after pinning. Below a known process the walk continues only if `descend_known`.
    pub fn pin_new(&self, root: i32, known: &HashSet<i32>, descend_known: bool) -> Vec<Pinned> {
        self.descendants_where(root, |p| descend_known || !known.contains(&p))
            .into_iter()
            .filter(|(pid, _)| !known.contains(pid))
            .filter_map(|(pid, parent)| self.pin(pid, parent, root))
            .collect()
    }

    /// Pins `pid` if, once pinned, its parent is still `parent` (or it was re-parented to
    /// `reaper`, the subreaper whose tree is walked, which happens when its parent died in
    /// between and is still our tree).
    pub fn pin(&self, pid: i32, parent: i32, reaper: i32) -> Option<Pinned> {
        let pidfd = rustix::process::pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
        let now = self.ppid(pid)?;
        (now == parent || now == reaper).then_some(Pinned { pid, pidfd })
    }
}

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The command name (may contain spaces and parentheses).
    pub comm: String,
    /// State letter (`R`, `S`, `Z`, …).
    pub state: char,
    /// Parent pid.
    pub ppid: i32,
}

/// Parses a `stat` line. The command name is everything between the first `(` and the *last*
/// `)`, since it may itself contain `)`.
pub fn parse_stat(s: &str) -> Option<Stat> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_string();
    let mut rest = s.get(close + 1..)?.split_ascii_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Stat { comm, state, ppid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_tricky_comm() {
        let s = parse_stat("123 (a b) c) S 1 123 123 0 -1").unwrap();
        assert_eq!(s.comm, "a b) c");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn fake_proc_children_of_every_thread() {
        let dir = std::env::temp_dir().join(format!("mt-proc-kids-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let task = |pid: i32, tid: i32, kids: &str| {
            let t = dir.join(pid.to_string()).join("task").join(tid.to_string());
            fs::create_dir_all(&t).unwrap();
            fs::write(t.join("children"), kids).unwrap();
        };
        // 10 has two threads, each with children; 13 has 2000 (more than a page of text).
        task(10, 10, "11 ");
        task(10, 15, "13 ");
        task(11, 11, "12 ");
        task(12, 12, "");
        let many: Vec<i32> = (100..2100).collect();
        let text: String = many.iter().map(|p| format!("{p} ")).collect();
        assert!(text.len() > 8192);
        task(13, 13, &text);
        let procfs = ProcFs::at(&dir);
        let mut d: Vec<i32> = procfs.descendants(10).into_iter().map(|(p, _)| p).collect();
        d.sort();
        let mut expected = vec![11, 12, 13];
        expected.extend(&many);
        assert_eq!(d, expected);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fake_proc_fallback_walk() {
        let dir = std::env::temp_dir().join(format!("mt-proc-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // 10 -> 11 -> 12, 10 -> 13; no task/children files, so the stat scan is used.
        for (pid, ppid) in [(10, 1), (11, 10), (12, 11), (13, 10), (20, 1)] {
            let p = dir.join(pid.to_string());
            fs::create_dir_all(p.join("task").join(pid.to_string())).unwrap();
            fs::write(p.join("stat"), format!("{pid} (x) S {ppid} 0 0")).unwrap();
        }
        let procfs = ProcFs::at(&dir);
        let mut d: Vec<i32> = procfs.descendants(10).into_iter().map(|(p, _)| p).collect();
        d.sort();
        assert_eq!(d, vec![11, 12, 13]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
