//! What can go wrong with cgroups, carrying what a user needs to fix it: the path, the value,
//! the controller.

use std::io;
use std::path::PathBuf;

/// A cgroup error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// No cgroup hierarchy is mounted at all.
    #[error("no cgroup hierarchy is mounted (see /proc/self/mountinfo)")]
    NotMounted,
    /// A cgroup path that is not allowed.
    #[error("invalid cgroup path '{path}': {why}")]
    BadPath {
        /// The path as given.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// A raw setting's file name that is not a plain file name.
    #[error("invalid cgroup file name '{0}': expected a name such as memory.max")]
    BadKey(String),
    /// This process's own cgroup is not visible (a `./` path cannot be resolved).
    #[error("this process's cgroup in the {hierarchy} hierarchy is not visible under {mount}")]
    OwnCgroupUnknown {
        /// Which hierarchy.
        hierarchy: String,
        /// Where it is mounted.
        mount: PathBuf,
    },
    /// Limits were given without saying where the cgroup goes.
    #[error("cgroup limits need a placement: set cgroup_base or cgroup_path")]
    NoPlacement,
    /// A controller that is not mounted or not available.
    #[error("cgroup controller '{controller}' is not available: {fix}")]
    MissingController {
        /// The controller.
        controller: String,
        /// What to do about it (names the file to change).
        fix: String,
        /// The error of our own attempt to enable it, if there was one.
        #[source]
        source: Option<io::Error>,
    },
    /// A setting that has no equivalent in the cgroup version at hand.
    #[error("'{setting}' is not supported with cgroup {version}: {hint}")]
    Unsupported {
        /// The setting.
        setting: &'static str,
        /// "v1".
        version: &'static str,
        /// What to use instead.
        hint: &'static str,
    },
    /// The cgroup directory exists already (muontrap only runs in cgroups it creates).
    #[error("'{}' already exists; use a deeper path or remove the cgroup", path.display())]
    AlreadyExists {
        /// The directory.
        path: PathBuf,
    },
    /// Creating a cgroup directory failed.
    #[error("cannot create the cgroup '{}'", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Writing a cgroup file failed.
    #[error("cannot write '{value}' to '{}'", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The value.
        value: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Reading a cgroup file failed.
    #[error("cannot read '{}'", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A cgroup file had unexpected contents.
    #[error("unexpected contents in '{}': '{text}'", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was read.
        text: String,
    },
    /// Freezing or thawing did not take effect in time.
    #[error("the cgroup '{}' did not reach the {state} state in time", path.display())]
    FreezeTimeout {
        /// The cgroup directory.
        path: PathBuf,
        /// "frozen" or "thawed".
        state: &'static str,
    },
    /// Neither a v2 hierarchy nor a v1 freezer is available to freeze this cgroup.
    #[error("no freezer available for this cgroup (needs cgroup v2 or the v1 freezer)")]
    NoFreezer,
}

impl CgroupError {
    /// The OS error number behind this error (`EINVAL` when there is none), for reports that
    /// carry only an errno.
    pub fn raw_os_error(&self) -> i32 {
        let io = match self {
            CgroupError::Create { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Read { source, .. } => Some(source),
            CgroupError::MissingController { source: None, .. } => return libc::ENOENT,
            CgroupError::MissingController { source, .. } => source.as_ref(),
            CgroupError::AlreadyExists { .. } => return libc::EEXIST,
            _ => None,
        };
        io.and_then(io::Error::raw_os_error).unwrap_or(libc::EINVAL)
    }
}
