//! The blocking supervisor facade: no runtime in the caller, same semantics.

use std::time::Duration;

use muontrap::Command;
use muontrap::supervise::blocking::BlockingSupervisor;
use muontrap::supervise::{Daemon, Event, Supervisor};
use muontrap_tests::{MARKER_VAR, TestId, fixture, wait_for_count, wait_until_gone};

#[test]
fn blocking_supervisor_restarts_a_killed_daemon_and_shutdown_leaves_nothing() {
    let id = TestId::new("sup-blocking");
    let marker = id.as_str().to_owned();
    let mut daemon = Daemon::new("worker", move || {
        let mut c = Command::new(fixture());
        c.args(["tree", "2"]).env(MARKER_VAR, &marker);
        c
    });
    daemon.shutdown_timeout(Duration::from_millis(200));
    let mut sup = Supervisor::new();
    sup.child("worker", daemon);
    let running = BlockingSupervisor::start(&sup).expect("start");
    let mut events = running.subscribe();
    let first = running.os_pid("worker").expect("os_pid").expect("running");
    wait_for_count(&id, 3, Duration::from_secs(10)).expect("tree of 3 up");

    // Crash it: the supervisor (permanent restart) starts a new one.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    let second = loop {
        match events.blocking_recv().expect("event stream open") {
            Event::Started { id, pid: Some(pid) } if id == "worker" && pid != first => break pid,
            _ => {}
        }
    };
    assert_eq!(running.os_pid("worker").expect("os_pid"), Some(second));

    running.shutdown().expect("shutdown");
    // Every process of every run (the crashed run's orphans included) is gone.
    wait_until_gone(&id, Duration::from_secs(2)).expect("nothing left");
    drop(running);
}
