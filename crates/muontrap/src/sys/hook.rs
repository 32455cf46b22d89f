//! The pre-`main` hook that turns a re-exec of the owner's own executable into a keeper
//! server.
//!
//! Library users must not need a separate keeper binary (`cargo add muontrap` is the whole
//! install). So the keeper server is the owner's own executable (`/proc/self/exe`), started
//! with one hidden argument. A function in `.init_array` runs in *every* process that links
//! this crate, before `main`: it compares `argv[1]` with that argument (a few nanoseconds) and
//! otherwise returns. When it matches, the server runs and the process `_exit`s, so the host
//! program's `main` never runs. The hook also records that it ran ([`armed`]): the owner
//! refuses to re-exec an executable whose hook is not known to be present, because that would
//! run the host program itself with strange arguments.

use std::ffi::{CStr, c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

/// The hidden argument that selects keeper-server mode.
pub const KEEPER_ARG: &CStr = c"--muontrap-keeper-server-v1";

static ARMED: AtomicBool = AtomicBool::new(false);

type InitFn = extern "C" fn(c_int, *const *const c_char, *const *const c_char);

#[used]
// SAFETY: a function pointer of the signature glibc calls `.init_array` entries with
// (argc, argv, envp). It is the only thing placed in this section by us.
#[unsafe(link_section = ".init_array")]
static HOOK: InitFn = hook;

extern "C" fn hook(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    ARMED.store(true, Ordering::Relaxed);
    if argc != 2 || argv.is_null() {
        return;
    }
    // SAFETY: glibc passes the real argv: `argc` valid pointers to NUL-terminated strings.
    let arg1 = unsafe { *argv.add(1) };
    if arg1.is_null() {
        return;
    }
    // SAFETY: see above; the string lives for the whole process.
    if unsafe { CStr::from_ptr(arg1) } != KEEPER_ARG {
        return;
    }
    // A setuid/setgid (or file-capability) program that links muontrap must never become a
    // keeper server on request: whoever ran it could then make it spawn commands with its
    // privileges. The kernel tells us through AT_SECURE.
    if secure_mode() {
        return;
    }
    // And the owner always hands the server a Unix socket as fd 0.
    let is_socket = rustix::fs::fstat(rustix::stdio::stdin()).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
    });
    if is_socket {
        crate::engine::server::serve_stdin();
    }
}

/// Whether the hook ran in this process, which proves that `/proc/self/exe` contains it.
pub fn armed() -> bool {
    // Referencing the static keeps its object (and so the `.init_array` entry) in the link.
    std::hint::black_box(&HOOK);
    ARMED.load(Ordering::Relaxed)
}

/// Whether this process runs in secure-execution mode (setuid, setgid or file capabilities:
/// `AT_SECURE`). Such a process never serves as, nor starts, a keeper server.
pub fn secure_mode() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}
