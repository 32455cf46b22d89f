//! A command starts with the owner's descriptor limit, and its *current* directory and umask, even after the owner
//! changed them following its first spawn (the keeper server keeps what it started with).
//! Alone in its own test binary because it changes process-wide state; one test, in order.

use muontrap::Command;
use muontrap_tests::{MARKER_VAR, TestId, fixture};

fn cwd_of_command(id: &TestId) -> String {
    let out = Command::new(fixture())
        .arg("cwd")
        .env(MARKER_VAR, id.as_str())
        .output()
        .expect("spawn");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

#[test]
fn commands_follow_the_owners_current_directory_and_umask() {
    let id = TestId::new("owner-cwd");
    // Before the first spawn (which starts the keeper server): a descriptor limit of our own.
    // The server lifts its limit to hold many sockets; the command must still get ours.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(1000),
            maximum: nofile.maximum,
        },
    )
    .expect("setrlimit");
    let out = Command::new("sh")
        .args(["-c", "ulimit -Sn"])
        .env(MARKER_VAR, id.as_str())
        .output()
        .expect("spawn");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000");
    let first = std::env::current_dir().expect("cwd");
    assert_eq!(cwd_of_command(&id), first.to_string_lossy());
    let tmp = std::env::temp_dir().canonicalize().expect("tmp");
    std::env::set_current_dir(&tmp).expect("chdir");
    assert_eq!(cwd_of_command(&id), tmp.to_string_lossy());
    // A relative current_dir is relative to the owner's directory too.
    let sub = tmp.join(format!("mt-owner-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&sub).expect("mkdir");
    let out = Command::new(fixture())
        .arg("cwd")
        .current_dir(sub.file_name().expect("name"))
        .env(MARKER_VAR, id.as_str())
        .output()
        .expect("spawn");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        sub.to_string_lossy()
    );
    std::fs::remove_dir(&sub).expect("rmdir");

    // umask: the owner's, now.
    // SAFETY: umask(2) only swaps an integer of this process; no memory is involved.
    let old = unsafe { libc::umask(0o077) };
    let out = Command::new("sh")
        .args(["-c", "umask"])
        .env(MARKER_VAR, id.as_str())
        .output()
        .expect("spawn");
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0077");
}
