//! User and group lookup through the C library (NSS), which rustix does not offer.
//!
//! Lookups use the reentrant `_r` variants with a growing buffer, so they are safe to call
//! from any thread of the owner. They run before anything is spawned: a bad name is an error
//! at `spawn()`, not a failed child.

use std::ffi::{CStr, CString};
use std::io;

/// A user found in the account database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Primary group id from the passwd entry.
    pub gid: u32,
}

/// Looks a user up by name. `Ok(None)` means "no such user".
pub fn user_by_name(name: &str) -> io::Result<Option<UserEntry>> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: passwd is plain data filled by getpwnam_r; buf outlives the call and the
        // pointers it stores into `pwd` are only read before `buf` is dropped or resized.
        let (rc, found, entry) = unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            let entry = if rc == 0 && !result.is_null() {
                Some(UserEntry {
                    name: CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned(),
                    uid: pwd.pw_uid,
                    gid: pwd.pw_gid,
                })
            } else {
                None
            };
            (rc, !result.is_null(), entry)
        };
        match rc {
            0 => return Ok(if found { entry } else { None }),
            libc::ERANGE if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Looks a group up by name. `Ok(None)` means "no such group".
pub fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: as in `user_by_name`, for `group`.
        let (rc, gid) = unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut result: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            (rc, (!result.is_null()).then_some(grp.gr_gid))
        };
        match rc {
            0 => return Ok(gid),
            libc::ERANGE if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// The supplementary groups `initgroups(name, gid)` would set: every group listing `name`
/// as a member, plus `gid`. Computed in the owner so that the child only calls `setgroups`.
pub fn group_list(name: &str, gid: u32) -> io::Result<Vec<u32>> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: `groups` has room for `n` entries; getgrouplist writes at most that many and
        // updates `n` to the number needed.
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n as usize);
            return Ok(groups);
        }
        if n as usize <= groups.len() {
            groups.resize(groups.len() * 2, 0);
        } else {
            groups.resize(n as usize, 0);
        }
        if groups.len() > 65536 {
            return Err(io::Error::other("too many groups"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_missing_user() {
        let root = user_by_name("root").unwrap().expect("root exists");
        assert_eq!(root.uid, 0);
        assert_eq!(user_by_name("no-such-user-muontrap").unwrap(), None);
        assert_eq!(group_by_name("root").unwrap(), Some(0));
        assert_eq!(group_by_name("no-such-group-muontrap").unwrap(), None);
    }

    #[test]
    fn group_list_contains_primary() {
        let list = group_list("root", 0).unwrap();
        assert!(list.contains(&0));
    }
}
