//! Which cgroup hierarchies this machine has, read from `/proc/self/mountinfo`, and where this
//! process sits in each of them, read from `/proc/self/cgroup`.
//!
//! Why not just look at `/sys/fs/cgroup`: on a *hybrid* machine that directory is a tmpfs with
//! one cgroup v1 hierarchy per controller in it and the v2 hierarchy at
//! `/sys/fs/cgroup/unified`, usually without controllers; on a pure v1 machine there is no v2 at
//! all; in a container the mounts may show only a sub-tree (the mount's *root* field is not
//! `/`). Code that assumes `/sys/fs/cgroup` is v2 writes `memory.max` into a tmpfs and
//! silently limits nothing. Both files are parameters, so this is tested against fixtures.

use std::path::{Component, Path, PathBuf};

use super::error::CgroupError;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Which cgroup of the hierarchy appears at the mount point (`/` unless in a container).
    pub root: PathBuf,
}

impl Mount {
    /// The directory of cgroup `cgroup` (a path in the hierarchy, such as `/a/b`), if the mount
    /// shows it.
    pub fn dir_of(&self, cgroup: &Path) -> Option<PathBuf> {
        let rel = cgroup.strip_prefix(&self.root).ok()?;
        Some(self.mount_point.join(rel))
    }
}

/// A cgroup v1 hierarchy and the controllers bound to it (`name=systemd` included as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Controllers from the mount options, e.g. `["cpu", "cpuacct"]`.
    pub controllers: Vec<String>,
    /// Where it is mounted.
    pub mount: Mount,
}

impl V1Hierarchy {
    /// Whether `controller` is bound to this hierarchy.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The three shapes a Linux machine's cgroups come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    /// Only cgroup v2.
    V2,
    /// cgroup v1 controllers, plus a v2 hierarchy (usually without controllers).
    Hybrid,
    /// Only cgroup v1.
    V1,
}

/// The cgroup hierarchies of this machine, and this process's place in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The v2 hierarchy, if mounted.
    pub unified: Option<Mount>,
    /// The v1 hierarchies that carry controllers (named-only hierarchies such as
    /// `name=systemd` are left out: nothing to limit there).
    pub v1: Vec<V1Hierarchy>,
    /// This process's cgroup in the v2 hierarchy (`0::/path`).
    pub own_unified: Option<PathBuf>,
    /// This process's cgroup in each entry of [`Layout::v1`], same order.
    pub own_v1: Vec<Option<PathBuf>>,
}

/// The default sources of [`Layout::detect`].
pub const MOUNTINFO: &str = "/proc/self/mountinfo";
/// This process's cgroups.
pub const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";

impl Layout {
    /// Reads the layout from `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn detect() -> Result<Layout, CgroupError> {
        Layout::from_files(Path::new(MOUNTINFO), Path::new(PROC_SELF_CGROUP))
    }

    /// Reads the layout from the given mountinfo and `/proc/<pid>/cgroup` files.
    pub fn from_files(mountinfo: &Path, cgroup: &Path) -> Result<Layout, CgroupError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| CgroupError::Read {
                path: p.to_owned(),
                source,
            })
        };
        let layout = Layout::parse(&read(mountinfo)?, &read(cgroup)?);
        if layout.unified.is_none() && layout.v1.is_empty() {
            return Err(CgroupError::NotMounted);
        }
        Ok(layout)
    }

    /// Parses the contents of a mountinfo file and a `/proc/<pid>/cgroup` file.
    pub fn parse(mountinfo: &str, cgroup: &str) -> Layout {
        let mut unified = None;
        let mut v1: Vec<V1Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let (Some(fstype), Some(_source), Some(superopts)) =
                (right.next(), right.next(), right.next())
            else {
                continue;
            };
            if fields.len() < 5 {
                continue;
            }
            let mount = Mount {
                root: PathBuf::from(unescape(fields[3])),
                mount_point: PathBuf::from(unescape(fields[4])),
            };
            match fstype {
                "cgroup2" if unified.is_none() => unified = Some(mount),
                "cgroup" => {
                    let controllers: Vec<String> = superopts
                        .split(',')
                        .filter(|o| !is_generic_option(o))
                        .map(str::to_owned)
                        .collect();
                    let real = controllers.iter().any(|c| !c.starts_with("name="));
                    let seen = v1.iter().any(|h| h.controllers == controllers);
                    if real && !seen {
                        v1.push(V1Hierarchy { controllers, mount });
                    }
                }
                _ => {}
            }
        }
        let mut own_unified = None;
        let mut own_v1 = vec![None; v1.len()];
        for line in cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if ctrls.is_empty() {
                own_unified = Some(PathBuf::from(path));
                continue;
            }
            let list: Vec<&str> = ctrls.split(',').collect();
            for (i, h) in v1.iter().enumerate() {
                if list.iter().any(|c| h.has(c)) {
                    own_v1[i] = Some(PathBuf::from(path));
                }
            }
        }
        Layout {
            unified,
            v1,
            own_unified,
            own_v1,
        }
    }

    /// Which shape this is.
    pub fn kind(&self) -> LayoutKind {
        match (self.unified.is_some(), self.v1.is_empty()) {
            (true, true) => LayoutKind::V2,
            (true, false) => LayoutKind::Hybrid,
            (false, _) => LayoutKind::V1,
        }
    }

    /// The v1 hierarchy carrying `controller`, if any.
    pub fn v1_index(&self, controller: &str) -> Option<usize> {
        self.v1.iter().position(|h| h.has(controller))
    }
}

/// Mount options that are not controller names.
fn is_generic_option(o: &str) -> bool {
    matches!(
        o,
        "rw" | "ro"
            | "nosuid"
            | "nodev"
            | "noexec"
            | "relatime"
            | "noatime"
            | "xattr"
            | "clone_children"
            | "noprefix"
            | "cpuset_v2_mode"
            | "favordynmods"
    ) || o.starts_with("release_agent=")
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() + 1 && b[i + 1..].len() >= 3 {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a cgroup path given by a user is anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// Under the hierarchy's mount point (`a/b`, `/a/b`).
    MountRoot,
    /// Under this process's own cgroup (`./a/b`, `.`).
    Own,
}

/// Splits a user's cgroup path into its anchor and clean relative components. Rejects `..`,
/// NUL bytes and anything that is not a plain relative path.
pub fn split_user_path(given: &str) -> Result<(Anchor, PathBuf), CgroupError> {
    let bad = |why: &'static str| CgroupError::BadPath {
        path: given.to_owned(),
        why,
    };
    if given.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    let (anchor, rest) = if given == "." {
        (Anchor::Own, "")
    } else if let Some(rest) = given.strip_prefix("./") {
        (Anchor::Own, rest)
    } else {
        (Anchor::MountRoot, given)
    };
    let mut clean = PathBuf::new();
    for c in Path::new(rest).components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(bad("'..' may not be used")),
            Component::Prefix(_) => return Err(bad("not a cgroup path")),
        }
    }
    if anchor == Anchor::MountRoot && clean.as_os_str().is_empty() {
        return Err(bad("it names the root of the hierarchy"));
    }
    Ok((anchor, clean))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_SELF: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_is_not_mistaken_for_v2() {
        let l = Layout::parse(HYBRID, HYBRID_SELF);
        assert_eq!(l.kind(), LayoutKind::Hybrid);
        assert_eq!(
            l.unified.as_ref().unwrap().mount_point,
            Path::new("/sys/fs/cgroup/unified")
        );
        assert_eq!(l.v1.len(), 4, "name=systemd is left out: {:?}", l.v1);
        let mem = l.v1_index("memory").unwrap();
        assert_eq!(
            l.own_v1[mem].as_deref(),
            Some(Path::new("/process_api/abc"))
        );
        assert_eq!(l.own_unified.as_deref(), Some(Path::new("/")));
        assert!(l.v1_index("freezer").is_none());
    }

    #[test]
    fn pure_v2_and_pure_v1() {
        let v2 = Layout::parse(
            "24 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
            "0::/user.slice\n",
        );
        assert_eq!(v2.kind(), LayoutKind::V2);
        let v1 = Layout::parse(
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
            "3:cpu,cpuacct:/x\n",
        );
        assert_eq!(v1.kind(), LayoutKind::V1);
        assert_eq!(v1.v1[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(v1.v1_index("cpuacct"), Some(0));
        assert_eq!(v1.own_v1[0].as_deref(), Some(Path::new("/x")));
    }

    #[test]
    fn container_mount_root_is_translated() {
        let l = Layout::parse(
            "24 1 0:22 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/docker/abc/sub\n",
        );
        let m = l.unified.unwrap();
        assert_eq!(
            m.dir_of(Path::new("/docker/abc/sub")).unwrap(),
            Path::new("/sys/fs/cgroup/sub")
        );
        assert!(m.dir_of(Path::new("/elsewhere")).is_none());
    }

    #[test]
    fn escaped_mount_points() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/a\\"), r"/a\\");
    }

    #[test]
    fn user_paths() {
        assert_eq!(
            split_user_path("./t/x").unwrap(),
            (Anchor::Own, PathBuf::from("t/x"))
        );
        assert_eq!(split_user_path(".").unwrap(), (Anchor::Own, PathBuf::new()));
        assert_eq!(
            split_user_path("/a//b/").unwrap(),
            (Anchor::MountRoot, PathBuf::from("a/b"))
        );
        for bad in ["../x", "a/../../b", "./..", "", "/", "a\0b"] {
            assert!(split_user_path(bad).is_err(), "{bad:?}");
        }
    }
}
