//! Black-box tests of `muontrap supervise FILE.toml`: the real binary, a temporary TOML file,
//! `<name> | <line>` output, ordered shutdown on SIGTERM with exit 0, exit 1 when the restart
//! intensity is exceeded, 125 for a bad file, and no process left behind in any case — also
//! when muontrap itself is SIGKILLed.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use muontrap_tests::{MARKER_VAR, TestId, fixture, wait_for_line, wait_until_gone};

const MUONTRAP: &str = env!("CARGO_BIN_EXE_muontrap");
const TIMEOUT: Duration = Duration::from_secs(20);

fn write_config(id: &TestId, body: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("muontrap-supervise-{id}.toml"));
    let body = body.replace("FIXTURE", &fixture().to_string_lossy());
    std::fs::write(&path, body).unwrap();
    path
}

fn supervise(id: &TestId, config: &std::path::Path) -> Child {
    Command::new(MUONTRAP)
        .arg("supervise")
        .arg(config)
        .env(MARKER_VAR, id.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn muontrap")
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

fn gone(id: &TestId) {
    if let Err(left) = wait_until_gone(id, TIMEOUT) {
        panic!("marked processes left behind: {left:?}");
    }
}

const TWO: &str = r#"
[[daemon]]
name = "first"
command = "FIXTURE"
args = ["forever"]

[[daemon]]
name = "second"
command = "FIXTURE"
args = ["tree", "2", "--ignore-term"]
delay_to_sigkill = "100ms"
"#;

#[test]
fn sigterm_stops_daemons_in_reverse_order_and_exits_zero() {
    let id = TestId::new("cli-term");
    let config = write_config(&id, TWO);
    let mut child = supervise(&id, &config);
    let mut err = child.stderr.take().unwrap();
    both_ready(&err);
    signal(&child, rustix::process::Signal::TERM);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    let second = rest.find("second stopped").expect(&rest);
    let first = rest.find("first stopped").expect(&rest);
    assert!(second < first, "reverse start order: {rest}");
    assert!(rest.contains("all daemons stopped"), "{rest}");
    gone(&id);
    let _ = std::fs::remove_file(config);
}

#[test]
fn exceeding_the_intensity_exits_one_with_everything_stopped() {
    let id = TestId::new("cli-gaveup");
    let config = write_config(
        &id,
        r#"
[supervisor]
max_restarts = 2
max_seconds = 60

[[daemon]]
name = "steady"
command = "FIXTURE"
args = ["forever"]

[[daemon]]
name = "crashy"
command = "sh"
args = ["-c", "echo crashing; exit 3"]
"#,
    );
    let mut child = supervise(&id, &config);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.matches("crashy | crashing").count(), 3, "{err}");
    assert!(err.contains("crashy exited with status 3"), "{err}");
    assert!(err.contains("giving up: crashy"), "{err}");
    assert!(err.contains("steady stopped"), "{err}");
    gone(&id);
    let _ = std::fs::remove_file(config);
}

/// Reads stderr lines until both daemons' prefixed "ready" lines arrived, in whatever order:
/// the two daemons write concurrently, so "second" may come first.
fn both_ready(err: &impl std::os::fd::AsFd) {
    let (mut first, mut second) = (false, false);
    while !(first && second) {
        let line = wait_for_line(err, "", TIMEOUT).expect("daemon output, prefixed");
        first |= line.starts_with("first | ready");
        second |= line.starts_with("second | ready");
    }
}

#[test]
fn killing_muontrap_takes_every_daemon_tree_with_it() {
    let id = TestId::new("cli-kill");
    let config = write_config(&id, TWO);
    let mut child = supervise(&id, &config);
    let err = child.stderr.take().unwrap();
    both_ready(&err);
    signal(&child, rustix::process::Signal::KILL);
    child.wait().unwrap();
    gone(&id);
    let _ = std::fs::remove_file(config);
}

#[test]
fn a_bad_file_names_the_key_and_line_and_starts_nothing() {
    let id = TestId::new("cli-bad");
    let config = write_config(
        &id,
        "[[daemon]]\nname = \"a\"\ncommand = \"FIXTURE\"\nargs = [\"forever\"]\nrestart = \"always\"\n",
    );
    let out = Command::new(MUONTRAP)
        .arg("supervise")
        .arg(&config)
        .env(MARKER_VAR, id.as_str())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("line 5") && err.contains("always"), "{err}");
    assert!(muontrap_tests::marked_processes(&id).is_empty());
    let _ = std::fs::remove_file(config);
}
