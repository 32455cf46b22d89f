//! The one place that reads and writes cgroup files. Every error carries the path (and, for a
//! write, the value): a bare `EINVAL` from `write(2)` is useless to someone who set ten files.
//!
//! Writes go through a single `write(2)` of the whole value on a descriptor opened without
//! `O_CREAT` (cgroup files exist or the controller is missing; creating a regular file in a
//! tmpfs that only looks like a cgroup would limit nothing). The kernel validates the value in
//! that `write`, so its result is the answer; a short write is an error too.

use std::io;
use std::path::{Path, PathBuf};

use super::error::CgroupError;

/// Writes `value` to the cgroup file `path`.
pub fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_io(path, value).map_err(|source| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// [`write()`] without the wrapping, for callers that decide themselves what an error means.
pub fn write_io(path: &Path, value: &str) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    loop {
        match rustix::io::write(&fd, value.as_bytes()) {
            Ok(n) if n == value.len() => return Ok(()),
            Ok(_) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads the cgroup file `path`.
pub fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads `dir/file` if it exists; `None` for a missing or unreadable file.
pub fn read_opt(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// Reads `dir/file` as one unsigned integer (trimmed); `None` if missing or not a number.
pub fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read_opt(dir, file)?.trim().parse().ok()
}

/// The pids listed in a `cgroup.procs` (or v1 `tasks`) file.
pub fn pids(dir: &Path) -> Vec<i32> {
    read_opt(dir, "cgroup.procs")
        .map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `dir/file`.
pub fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_errors_name_path_and_value_and_never_create() {
        let dir = std::env::temp_dir().join(format!("mt-cg-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("memory.max");
        let err = write(&missing, "1G").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("memory.max") && text.contains("'1G'"),
            "{text}"
        );
        assert!(!missing.exists(), "a write must not create the file");
        std::fs::write(&missing, "").unwrap();
        write(&missing, "1073741824").unwrap();
        assert_eq!(read_u64(&dir, "memory.max"), Some(1 << 30));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
