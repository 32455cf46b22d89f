//! [`LaunchSpec`]: a fully resolved command, ready to hand to a keeper.
//!
//! Everything that can fail because of bad input (program lookup, user and group names, NUL
//! bytes) is resolved by the face *before* a spec exists, so a keeper only fails for reasons
//! the kernel gives. The spec travels from the owner to the keeper over a socket, so it has a
//! small, versioned binary encoding; descriptors travel beside it (`SCM_RIGHTS`) and are
//! referred to by index.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::time::Duration;

use crate::cgroup::CgroupPlan;
use crate::sys::exec::{ExecPlan, FdAction, GroupsAction};

/// What one of the command's standard descriptors is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioSpec {
    /// The keeper's own descriptor.
    Inherit,
    /// `/dev/null`.
    Null,
    /// The descriptor at this index of the descriptors passed with the spec.
    Passed(u8),
}

/// A resolved command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// Path that is executed (already resolved against `PATH`).
    pub program: OsString,
    /// The full argument vector, `argv[0]` included.
    pub argv: Vec<OsString>,
    /// The complete environment, as `KEY=VALUE`.
    pub env: Vec<OsString>,
    /// Working directory, if it must change.
    pub cwd: Option<OsString>,
    /// User id to switch to.
    pub uid: Option<u32>,
    /// Group id to switch to.
    pub gid: Option<u32>,
    /// Supplementary groups to set (None: keep the inherited ones).
    pub groups: Option<Vec<u32>>,
    /// stdin, stdout, stderr.
    pub stdio: [StdioSpec; 3],
    /// Start the command with SIGPIPE ignored.
    pub ignore_sigpipe: bool,
    /// File mode creation mask for the command (None: keep the keeper's).
    pub umask: Option<u32>,
    /// Grace period between SIGTERM and SIGKILL.
    pub delay_to_sigkill: Duration,
    /// Stop the tree after this long.
    pub timeout: Option<Duration>,
    /// The command's cgroup, resolved by the owner; the keeper creates it before spawning.
    pub cgroup: Option<CgroupPlan>,
}

impl LaunchSpec {
    /// Builds the pre-fork exec plan. `passed` are the descriptors referenced by
    /// [`StdioSpec::Passed`]; `null` is an open `/dev/null` (both >= 3).
    pub fn exec_plan(&self, passed: &[RawFd], null: RawFd) -> io::Result<ExecPlan> {
        let c = |s: &OsStr| {
            CString::new(s.as_bytes()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in command data")
            })
        };
        let argv = self
            .argv
            .iter()
            .map(|a| c(a))
            .collect::<io::Result<Vec<_>>>()?;
        let env = self
            .env
            .iter()
            .map(|a| c(a))
            .collect::<io::Result<Vec<_>>>()?;
        let mut plan = ExecPlan::new(c(&self.program)?, argv, env);
        plan.cwd(self.cwd.as_deref().map(c).transpose()?);
        for (n, s) in self.stdio.iter().enumerate() {
            let action = match *s {
                StdioSpec::Inherit => FdAction::Inherit,
                StdioSpec::Null => FdAction::Dup(null),
                StdioSpec::Passed(i) => {
                    FdAction::Dup(*passed.get(i as usize).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidInput, "missing passed descriptor")
                    })?)
                }
            };
            plan.stdio(n, action);
        }
        let groups = match &self.groups {
            Some(g) => GroupsAction::Set(g.clone()),
            None => GroupsAction::Keep,
        };
        plan.credentials(self.uid, self.gid, groups);
        plan.ignore_sigpipe(self.ignore_sigpipe);
        plan.umask(self.umask);
        Ok(plan)
    }

    /// Encodes the spec.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(4096));
        w.u32(VERSION);
        w.bytes(self.program.as_bytes());
        w.list(&self.argv);
        w.list(&self.env);
        w.opt_bytes(self.cwd.as_deref().map(OsStr::as_bytes));
        w.opt_u32(self.uid);
        w.opt_u32(self.gid);
        match &self.groups {
            Some(g) => {
                w.u32(1);
                w.u32(g.len() as u32);
                g.iter().for_each(|&x| w.u32(x));
            }
            None => w.u32(0),
        }
        for s in &self.stdio {
            let v = match *s {
                StdioSpec::Inherit => 0,
                StdioSpec::Null => 1,
                StdioSpec::Passed(i) => 2 + i as u32,
            };
            w.u32(v);
        }
        w.u32(self.ignore_sigpipe as u32);
        w.opt_u32(self.umask);
        w.u64(self.delay_to_sigkill.as_nanos().min(u64::MAX as u128) as u64);
        match self.timeout {
            Some(t) => {
                w.u32(1);
                w.u64(t.as_nanos().min(u64::MAX as u128) as u64);
            }
            None => w.u32(0),
        }
        match &self.cgroup {
            Some(c) => {
                w.u32(1);
                w.bytes(&c.encode());
            }
            None => w.u32(0),
        }
        w.0
    }

    /// Decodes a spec produced by [`LaunchSpec::encode`].
    pub fn decode(buf: &[u8]) -> io::Result<LaunchSpec> {
        let mut r = Reader(buf);
        if r.u32()? != VERSION {
            return Err(bad("launch spec version mismatch"));
        }
        let program = OsString::from_vec(r.bytes()?);
        let argv = r.list()?;
        let env = r.list()?;
        let cwd = r.opt_bytes()?.map(OsString::from_vec);
        let uid = r.opt_u32()?;
        let gid = r.opt_u32()?;
        let groups = if r.u32()? == 1 {
            let n = r.u32()? as usize;
            if n > 65536 {
                return Err(bad("too many groups"));
            }
            Some((0..n).map(|_| r.u32()).collect::<io::Result<Vec<_>>>()?)
        } else {
            None
        };
        let mut stdio = [StdioSpec::Inherit; 3];
        for s in &mut stdio {
            *s = match r.u32()? {
                0 => StdioSpec::Inherit,
                1 => StdioSpec::Null,
                v if v < 2 + 8 => StdioSpec::Passed((v - 2) as u8),
                _ => return Err(bad("bad stdio")),
            };
        }
        let ignore_sigpipe = r.u32()? != 0;
        let umask = r.opt_u32()?;
        let delay_to_sigkill = Duration::from_nanos(r.u64()?);
        let timeout = if r.u32()? == 1 {
            Some(Duration::from_nanos(r.u64()?))
        } else {
            None
        };
        let cgroup = if r.u32()? == 1 {
            Some(CgroupPlan::decode(&r.bytes()?)?)
        } else {
            None
        };
        Ok(LaunchSpec {
            cgroup,
            program,
            argv,
            env,
            cwd,
            uid,
            gid,
            groups,
            stdio,
            ignore_sigpipe,
            umask,
            delay_to_sigkill,
            timeout,
        })
    }
}

const VERSION: u32 = 3;

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.u32(1);
                self.bytes(b);
            }
            None => self.u32(0),
        }
    }
    fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            Some(v) => {
                self.u32(1);
                self.u32(v);
            }
            None => self.u32(0),
        }
    }
    fn list(&mut self, l: &[OsString]) {
        self.u32(l.len() as u32);
        l.iter().for_each(|s| self.bytes(s.as_bytes()));
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(bad("truncated launch spec"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn opt_bytes(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.u32()? == 1 {
            self.bytes().map(Some)
        } else {
            Ok(None)
        }
    }
    fn opt_u32(&mut self) -> io::Result<Option<u32>> {
        if self.u32()? == 1 {
            self.u32().map(Some)
        } else {
            Ok(None)
        }
    }
    fn list(&mut self) -> io::Result<Vec<OsString>> {
        let n = self.u32()? as usize;
        if n > self.0.len() / 4 {
            return Err(bad("list longer than the message"));
        }
        (0..n)
            .map(|_| self.bytes().map(OsString::from_vec))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let spec = LaunchSpec {
            program: "/bin/echo".into(),
            argv: vec!["echo".into(), OsString::from_vec(vec![0xff, b'a'])],
            env: vec!["A=B".into()],
            cwd: Some("/tmp".into()),
            uid: Some(65534),
            gid: None,
            groups: Some(vec![1, 2]),
            stdio: [StdioSpec::Null, StdioSpec::Passed(0), StdioSpec::Inherit],
            ignore_sigpipe: true,
            umask: Some(0o027),
            delay_to_sigkill: Duration::from_millis(250),
            timeout: Some(Duration::from_secs(3)),
            cgroup: None,
        };
        assert_eq!(LaunchSpec::decode(&spec.encode()).unwrap(), spec);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let spec = LaunchSpec {
            program: "/bin/true".into(),
            argv: vec!["true".into()],
            env: vec![],
            cwd: None,
            uid: None,
            gid: None,
            groups: None,
            stdio: [StdioSpec::Inherit; 3],
            ignore_sigpipe: false,
            umask: None,
            delay_to_sigkill: Duration::ZERO,
            timeout: None,
            cgroup: None,
        };
        let buf = spec.encode();
        for n in 0..buf.len() {
            assert!(LaunchSpec::decode(&buf[..n]).is_err());
        }
    }
}
