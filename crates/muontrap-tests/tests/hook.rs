//! The pre-`main` hook turns a program into a keeper server only when asked by a muontrap
//! owner: the hidden argument *and* a Unix socket on fd 0, and never in a setuid program.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use muontrap_tests::{example_binary, skip};

const HIDDEN: &str = "--muontrap-keeper-server-v1";

#[test]
fn hidden_argument_without_a_socket_runs_the_program_itself() {
    let out = Command::new(example_binary("contain"))
        .arg(HIDDEN)
        .stdin(Stdio::null())
        .output()
        .expect("run contain");
    // `contain` treated the argument as the program to run: its own main ran.
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn setuid_program_is_never_a_keeper_server_and_refuses_to_start_one() {
    if !rustix::process::geteuid().is_root() {
        return skip("needs root to make a setuid copy and run it as another user");
    }
    let dir = std::env::temp_dir().join(format!("mt-hook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let copy = dir.join("contain-suid");
    std::fs::copy(example_binary("contain"), &copy).expect("copy");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).expect("setuid");
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&copy)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("setpriv")
    };
    // Spawning through muontrap in a setuid program is refused with a clear error.
    let out = as_nobody(&["--", "/bin/true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("setuid"), "{stderr}");
    // And the hidden argument does not turn it into a server (its main runs instead).
    let out = as_nobody(&[HIDDEN]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
