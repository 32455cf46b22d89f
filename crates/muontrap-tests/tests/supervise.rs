//! Black-box tests of supervision (`muontrap::supervise`): restart policies × exit kinds,
//! strategies, intensity and escalation, backoff, readiness gates, logging, ordered shutdown
//! and containment.
//!
//! Every test waits on supervisor events or on `/proc` conditions, never on fixed sleeps, and
//! every process tree carries a [`TestId`] marker that is proven gone at the end.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use muontrap::Command;
use muontrap::supervise::{
    Backoff, ChildExit, ChildState, Daemon, Error, Event, Events, LogLevel, Reason, RestartPolicy,
    RunningSupervisor, Strategy, Supervisor,
};
use muontrap_tests::{MARKER_VAR, TestId, fixture, wait_until_gone};

/// Generous: only reached when something is broken.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A daemon running `mt-fixture ARGS`, marked with `id`.
fn fixture_daemon(name: &str, id: &TestId, args: &[&str]) -> Daemon {
    let marker = id.as_str().to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut d = Daemon::new(name, move || {
        let mut c = Command::new(fixture());
        c.args(&args).env(MARKER_VAR, &marker);
        c
    });
    d.shutdown_timeout(Duration::from_millis(200));
    d
}

/// The next event, or a panic naming what we waited for.
async fn next(events: &mut Events, what: &str) -> Event {
    match tokio::time::timeout(TIMEOUT, events.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("event stream closed while waiting for {what}"),
        Err(_) => panic!("no event within {TIMEOUT:?} while waiting for {what}"),
    }
}

/// Skips events until one matches; returns it and the ones skipped.
async fn until(events: &mut Events, what: &str, f: impl Fn(&Event) -> bool) -> (Event, Vec<Event>) {
    let mut skipped = Vec::new();
    loop {
        let e = next(events, what).await;
        if f(&e) {
            return (e, skipped);
        }
        skipped.push(e);
    }
}

fn started(e: &Event, want: &str) -> Option<u32> {
    match e {
        Event::Started { id, pid } if id == want => *pid,
        _ => None,
    }
}

/// Waits for `Started` of each id in `ids`, in this order, and returns their pids.
async fn started_in_order(events: &mut Events, ids: &[&str]) -> Vec<u32> {
    let mut pids = Vec::new();
    for want in ids {
        let (e, _) = until(events, &format!("Started {want}"), |e| {
            matches!(e, Event::Started { .. })
        })
        .await;
        match e {
            Event::Started { id, pid } => {
                assert_eq!(&id, want, "start order");
                pids.push(pid.expect("a daemon has a pid"));
            }
            _ => unreachable!(),
        }
    }
    pids
}

fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
}

fn gone(id: &TestId) {
    if let Err(left) = wait_until_gone(id, TIMEOUT) {
        panic!("marked processes left behind: {left:?}");
    }
}

/// A one-for-one supervisor with a generous intensity.
fn sup() -> Supervisor {
    let mut s = Supervisor::new();
    s.intensity(100, Duration::from_secs(60));
    s
}

async fn shutdown(running: RunningSupervisor, id: &TestId) {
    running.shutdown().await.expect("clean shutdown");
    // `shutdown` returns only when every tree is gone: no wait needed.
    let left = muontrap_tests::marked_processes(id)
        .into_iter()
        .filter(|p| !p.is_zombie())
        .count();
    assert_eq!(left, 0, "live marked processes after shutdown returned");
    gone(id);
}

// ---------------------------------------------------------------------------------------
// Restart policy × exit kind

#[derive(Clone, Copy, Debug)]
enum Kind {
    Normal,
    Failure,
    Signal,
}

async fn policy_case(policy: RestartPolicy, kind: Kind, restarts: bool) {
    let id = TestId::new("policy");
    let args: &[&str] = match kind {
        Kind::Normal => &["exit", "0"],
        Kind::Failure => &["exit", "3"],
        Kind::Signal => &["signal", "9"],
    };
    let mut d = fixture_daemon("d", &id, args);
    d.restart(policy);
    let mut s = sup();
    s.child("d", d);
    let running = s.start().await.expect("start");
    let mut events = running.subscribe();
    let (e, _) = until(&mut events, "Exited", |e| matches!(e, Event::Exited { .. })).await;
    let Event::Exited { exit, reason, .. } = e else {
        unreachable!()
    };
    let status = exit.status().expect("a status");
    match kind {
        Kind::Normal => assert_eq!((status.code(), reason), (Some(0), Reason::Normal)),
        Kind::Failure => assert_eq!((status.code(), reason), (Some(3), Reason::Failure)),
        Kind::Signal => assert_eq!((status.signal(), reason), (Some(9), Reason::Failure)),
    }
    // The supervisor handles one message at a time: its answer reflects the decision.
    let children = running.which_children().await.expect("which");
    if restarts {
        let e = next(&mut events, "Restarting").await;
        assert!(
            matches!(&e, Event::Restarting { id, attempt: 1, .. } if id == "d"),
            "{policy:?} after {kind:?}: {e:?}"
        );
        let e = next(&mut events, "Started").await;
        assert!(started(&e, "d").is_some(), "{e:?}");
    } else if policy == RestartPolicy::Temporary {
        assert!(
            children.is_empty(),
            "a temporary child is removed: {children:?}"
        );
    } else {
        assert_eq!(children.len(), 1);
        assert_eq!(
            children[0].state,
            ChildState::Stopped,
            "{policy:?} after {kind:?}"
        );
        assert!(events.try_recv().is_none(), "no restart expected");
    }
    shutdown(running, &id).await;
}

#[tokio::test]
async fn permanent_restarts_after_normal_exit() {
    policy_case(RestartPolicy::Permanent, Kind::Normal, true).await;
}
#[tokio::test]
async fn permanent_restarts_after_failure() {
    policy_case(RestartPolicy::Permanent, Kind::Failure, true).await;
}
#[tokio::test]
async fn permanent_restarts_after_signal() {
    policy_case(RestartPolicy::Permanent, Kind::Signal, true).await;
}
#[tokio::test]
async fn transient_stays_down_after_normal_exit() {
    policy_case(RestartPolicy::Transient, Kind::Normal, false).await;
}
#[tokio::test]
async fn transient_restarts_after_failure() {
    policy_case(RestartPolicy::Transient, Kind::Failure, true).await;
}
#[tokio::test]
async fn transient_restarts_after_signal() {
    policy_case(RestartPolicy::Transient, Kind::Signal, true).await;
}
#[tokio::test]
async fn temporary_is_removed_after_normal_exit() {
    policy_case(RestartPolicy::Temporary, Kind::Normal, false).await;
}
#[tokio::test]
async fn temporary_is_removed_after_failure() {
    policy_case(RestartPolicy::Temporary, Kind::Failure, false).await;
}
#[tokio::test]
async fn temporary_is_removed_after_signal() {
    policy_case(RestartPolicy::Temporary, Kind::Signal, false).await;
}

#[tokio::test]
async fn exit_status_to_reason_makes_a_code_normal_for_transient() {
    let id = TestId::new("reason");
    let mut d = fixture_daemon("d", &id, &["exit", "3"]);
    d.restart(RestartPolicy::Transient)
        .exit_status_to_reason(|s: ExitStatus| {
            if s.code() == Some(3) {
                Reason::Normal
            } else {
                Reason::Failure
            }
        });
    let mut s = sup();
    s.child("d", d);
    let running = s.start().await.expect("start");
    let mut events = running.subscribe();
    let (e, _) = until(&mut events, "Exited", |e| matches!(e, Event::Exited { .. })).await;
    assert!(
        matches!(
            e,
            Event::Exited {
                reason: Reason::Normal,
                ..
            }
        ),
        "{e:?}"
    );
    let children = running.which_children().await.unwrap();
    assert_eq!(children[0].state, ChildState::Stopped);
    shutdown(running, &id).await;
}

// ---------------------------------------------------------------------------------------
// Strategies

async fn strategy_case(strategy: Strategy) -> Vec<Event> {
    let id = TestId::new("strategy");
    let mut s = sup();
    s.strategy(strategy);
    for name in ["a", "b", "c"] {
        s.child(name, fixture_daemon(name, &id, &["forever"]));
    }
    let running = s.start().await.expect("start");
    let mut events = running.subscribe();
    let pids = started_in_order(&mut events, &["a", "b", "c"]).await;
    kill(pids[1]);
    let (_, _) = until(
        &mut events,
        "Exited b",
        |e| matches!(e, Event::Exited { id, .. } if id == "b"),
    )
    .await;
    // Collect until b is running again and the strategy's restarts are done: the supervisor
    // answers `which_children` only after it has handled the exit completely.
    let children = running.which_children().await.unwrap();
    assert!(
        children.iter().all(|c| c.state == ChildState::Running),
        "{children:?}"
    );
    let mut seen = Vec::new();
    while let Some(e) = events.try_recv() {
        seen.push(e);
    }
    let new_pids: Vec<u32> = children.iter().map(|c| c.pid.unwrap()).collect();
    assert_ne!(new_pids[1], pids[1], "b has a new pid");
    if strategy == Strategy::OneForOne {
        assert_eq!(
            (new_pids[0], new_pids[2]),
            (pids[0], pids[2]),
            "siblings untouched"
        );
    } else {
        assert_ne!(new_pids[2], pids[2], "c restarted too");
    }
    shutdown(running, &id).await;
    seen
}

fn compact(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::Started { id, .. } => format!("start {id}"),
            Event::Stopped { id, .. } => format!("stop {id}"),
            Event::Restarting { id, .. } => format!("restarting {id}"),
            Event::Exited { id, .. } => format!("exit {id}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn one_for_one_restarts_only_the_dead_child() {
    let seen = strategy_case(Strategy::OneForOne).await;
    assert_eq!(compact(&seen), ["restarting b", "start b"]);
}

#[tokio::test]
async fn one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order() {
    let seen = strategy_case(Strategy::OneForAll).await;
    assert_eq!(
        compact(&seen),
        [
            "stop c",
            "stop a",
            "restarting b",
            "start a",
            "start b",
            "start c"
        ]
    );
}

#[tokio::test]
async fn rest_for_one_restarts_the_dead_child_and_those_after_it() {
    let seen = strategy_case(Strategy::RestForOne).await;
    assert_eq!(
        compact(&seen),
        ["stop c", "restarting b", "start b", "start c"]
    );
}

// ---------------------------------------------------------------------------------------
// Intensity and escalation

#[tokio::test]
async fn exceeding_the_intensity_stops_everything_and_fails_the_supervisor() {
    let id = TestId::new("intensity");
    let mut s = Supervisor::new();
    s.intensity(2, Duration::from_secs(60))
        .child("steady", fixture_daemon("steady", &id, &["forever"]))
        .child("crashy", fixture_daemon("crashy", &id, &["exit", "1"]));
    let running = s.start().await.expect("start");
    let mut events = running.subscribe();
    let (e, skipped) = until(&mut events, "GaveUp", |e| matches!(e, Event::GaveUp { .. })).await;
    assert!(
        matches!(&e, Event::GaveUp { id, restarts: 3, .. } if id == "crashy"),
        "{e:?}"
    );
    let restarts = skipped
        .iter()
        .filter(|e| matches!(e, Event::Restarting { .. }))
        .count();
    assert_eq!(
        restarts, 2,
        "two restarts allowed, the third exceeds: {skipped:?}"
    );
    let (e, _) = until(&mut events, "SupervisorStopped", |e| {
        matches!(e, Event::SupervisorStopped { .. })
    })
    .await;
    assert_eq!(e, Event::SupervisorStopped { normal: false });
    match running.wait().await {
        Err(Error::GaveUp {
            child, restarts: 3, ..
        }) => assert_eq!(child, "crashy"),
        other => panic!("expected GaveUp, got {other:?}"),
    }
    // Everything was stopped before the supervisor reported its failure.
    gone(&id);
}

#[tokio::test]
async fn a_failing_nested_supervisor_is_a_child_failure_of_its_parent() {
    let id = TestId::new("escalate");
    let mut inner = Supervisor::new();
    inner
        .intensity(1, Duration::from_secs(60))
        .child("crashy", fixture_daemon("crashy", &id, &["exit", "1"]));
    let mut outer = Supervisor::new();
    outer
        .intensity(0, Duration::from_secs(60))
        .child("sibling", fixture_daemon("sibling", &id, &["forever"]))
        .child("inner", inner);
    let running = outer.start().await.expect("start");
    let mut events = running.subscribe();
    let (e, _) = until(
        &mut events,
        "Exited inner",
        |e| matches!(e, Event::Exited { id, .. } if id == "inner"),
    )
    .await;
    assert_eq!(
        e,
        Event::Exited {
            id: "inner".into(),
            exit: ChildExit::SupervisorFailed,
            reason: Reason::Failure
        }
    );
    // The parent's own intensity (0) is exceeded by that failure in turn.
    assert!(matches!(running.wait().await, Err(Error::GaveUp { child, .. }) if child == "inner"));
    gone(&id);
}

// ---------------------------------------------------------------------------------------
// Backoff

#[tokio::test]
async fn backoff_delays_grow_per_consecutive_crash() {
    let id = TestId::new("backoff");
    let mut s = Supervisor::new();
    s.intensity(10, Duration::from_secs(60))
        .backoff(Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(40),
        ))
        .child("crashy", fixture_daemon("crashy", &id, &["exit", "1"]));
    let running = s.start().await.expect("start");
    let mut events = running.subscribe();
    let mut delays = Vec::new();
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    while delays.len() < 4 {
        let (e, _) = until(&mut events, "Restarting", |e| {
            matches!(e, Event::Restarting { .. })
        })
        .await;
        if let Event::Restarting { attempt, delay, .. } = e {
            assert_eq!(attempt as usize, delays.len() + 1);
            delays.push(delay.as_millis());
        }
        let (_, _) = until(&mut events, "Started", |e| {
            matches!(e, Event::Started { .. })
        })
        .await;
        gaps.push(last.elapsed());
        last = Instant::now();
    }
    assert_eq!(delays, [10, 20, 40, 40]);
    // The delay really elapsed before each start (the first gap includes the first run).
    for (gap, want) in gaps.iter().zip([10u64, 20, 40, 40]).skip(1) {
        assert!(*gap >= Duration::from_millis(want), "{gaps:?}");
    }
    shutdown(running, &id).await;
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_on_tokio_time_so_paused_time_skips_it() {
    // With tokio's clock paused, a 1-hour backoff costs nothing: the runtime advances the
    // clock as soon as it is idle. This proves the delay is a tokio timer, not a sleep.
    // (No `timeout` here: paused time would fire it while we wait for a real process.)
    let id = TestId::new("paused");
    let mut s = Supervisor::new();
    s.intensity(10, Duration::from_secs(86_400))
        .backoff(Backoff::new(
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        ))
        .child("crashy", fixture_daemon("crashy", &id, &["exit", "1"]));
    let running = s.start().await.expect("start");
    let mut events = running.subscribe();
    let wall = Instant::now();
    let mut restarts = 0;
    while restarts < 2 {
        match events.recv().await.expect("events") {
            Event::Restarting { delay, .. } => {
                assert_eq!(delay, Duration::from_secs(3600));
                restarts += 1;
            }
            Event::GaveUp { .. } => panic!("gave up"),
            _ => {}
        }
    }
    loop {
        if let Event::Started { .. } = events.recv().await.expect("events") {
            break;
        }
    }
    assert!(wall.elapsed() < Duration::from_secs(60));
    shutdown(running, &id).await;
}

// ---------------------------------------------------------------------------------------
// Readiness gate

#[tokio::test]
async fn wait_for_gates_each_launch() {
    let id = TestId::new("waitfor");
    let calls = Arc::new(Mutex::new(0u32));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut d = fixture_daemon("d", &id, &["forever"]);
    let c = calls.clone();
    d.wait_for(move || {
        *c.lock().unwrap() += 1;
        let mut rx = rx.clone();
        async move {
            rx.wait_for(|open| *open)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    });
    let mut s = sup();
    s.child("d", d);
    let starting = tokio::spawn(async move { s.start().await });
    // Not launched while the gate is closed.
    tokio::task::yield_now().await;
    assert!(muontrap_tests::marked_processes(&id).is_empty());
    tx.send(true).unwrap();
    let running = starting
        .await
        .unwrap()
        .expect("start after the gate opened");
    let mut events = running.subscribe();
    let pid = started(&next(&mut events, "Started").await, "d").expect("first start");
    kill(pid);
    until(&mut events, "Restarting", |e| {
        matches!(e, Event::Restarting { .. })
    })
    .await;
    until(&mut events, "Started", |e| started(e, "d").is_some()).await;
    assert_eq!(
        *calls.lock().unwrap(),
        2,
        "the gate runs before every launch"
    );
    shutdown(running, &id).await;
}

#[tokio::test]
async fn a_failing_wait_for_is_a_failed_start() {
    let id = TestId::new("waitfor-fail");
    let mut d = fixture_daemon("d", &id, &["forever"]);
    d.wait_for(|| async { Err::<(), _>("port 5432 not open") });
    let mut s = sup();
    s.child("first", fixture_daemon("first", &id, &["forever"]))
        .child("d", d);
    let err = s.start().await.expect_err("start must fail");
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("child 'd' failed to start"), "{text}");
    assert!(
        matches!(err, Error::ChildStart { ref source, .. } if matches!(**source, Error::NotReady { .. }))
    );
    // The child started before it was stopped again.
    gone(&id);
}

#[tokio::test]
async fn a_slow_wait_for_times_out_as_a_failed_start() {
    let id = TestId::new("waitfor-slow");
    let mut d = fixture_daemon("d", &id, &["forever"]);
    d.wait_for(std::future::pending::<Result<(), std::io::Error>>)
        .wait_for_timeout(Duration::from_millis(50));
    let running = sup().start().await.unwrap();
    let started = Instant::now();
    let err = running.start_child("d", d).await.expect_err("times out");
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(
        matches!(err, Error::ChildStart { ref source, .. } if matches!(**source, Error::ReadinessTimeout { .. })),
        "{err:?}"
    );
    assert!(
        running.which_children().await.unwrap().is_empty(),
        "not kept"
    );
    shutdown(running, &id).await;
}

// ---------------------------------------------------------------------------------------
// Shutdown and containment

#[tokio::test]
async fn shutdown_stops_children_in_reverse_order_each_with_its_timeout() {
    let id = TestId::new("order");
    let mut s = sup();
    // `Started` comes at spawn; the fixture ignores SIGTERM only once it says `ready`.
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    for name in ["a", "b", "c"] {
        let mut d = fixture_daemon(name, &id, &["tree", "2", "--ignore-term"]);
        let tx = ready_tx.clone();
        d.shutdown_timeout(Duration::from_millis(100))
            .on_line(move |line| {
                if line.bytes == b"ready" {
                    let _ = tx.send(());
                }
            });
        s.child(name, d);
    }
    let running = s.start().await.unwrap();
    let mut events = running.subscribe();
    started_in_order(&mut events, &["a", "b", "c"]).await;
    for _ in 0..3 {
        tokio::time::timeout(TIMEOUT, ready.recv())
            .await
            .expect("ready");
    }
    let t = Instant::now();
    running.shutdown().await.unwrap();
    let took = t.elapsed();
    let mut stops = Vec::new();
    while let Some(e) = events.try_recv() {
        if let Event::Stopped { id, exit } = e {
            assert_eq!(exit.status().and_then(|s| s.signal()), Some(9), "SIGKILLed");
            stops.push(id);
        }
    }
    assert_eq!(stops, ["c", "b", "a"]);
    assert!(
        took >= Duration::from_millis(300),
        "each waited its 100 ms: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    gone(&id);
}

#[tokio::test]
async fn dropping_the_supervisor_takes_every_tree_with_it() {
    let id = TestId::new("drop");
    let mut s = sup();
    s.child("a", fixture_daemon("a", &id, &["daemon", "--stay"]))
        .child("b", fixture_daemon("b", &id, &["tree", "3"]));
    let running = s.start().await.unwrap();
    muontrap_tests::wait_for_count(&id, 2 + 4, TIMEOUT).expect("trees up");
    drop(running);
    // The aborted tasks drop their `Child` handles on the runtime's next tick; the keepers
    // then stop the trees. Wait off the runtime so that it keeps ticking.
    let id = Arc::new(id);
    let waiter = id.clone();
    tokio::task::spawn_blocking(move || gone(&waiter))
        .await
        .unwrap();
}

#[test]
fn shutting_down_the_runtime_takes_every_tree_with_it() {
    let id = TestId::new("runtime-drop");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let running = rt.block_on(async {
        let mut s = sup();
        s.child("a", fixture_daemon("a", &id, &["tree", "2"]));
        s.start().await.unwrap()
    });
    muontrap_tests::wait_for_count(&id, 3, TIMEOUT).expect("tree up");
    // The supervisor handle outlives the runtime: dropping the runtime drops every task,
    // and with them the `Child` handles, synchronously.
    drop(rt);
    gone(&id);
    drop(running);
}

#[tokio::test]
async fn child_operations_follow_otp() {
    let id = TestId::new("ops");
    let running = sup().start().await.unwrap();
    let mut events = running.subscribe();
    running
        .start_child("a", fixture_daemon("a", &id, &["forever"]))
        .await
        .unwrap();
    assert!(matches!(
        running
            .start_child("a", fixture_daemon("a", &id, &["forever"]))
            .await,
        Err(Error::DuplicateChild(_))
    ));
    let pid = started(&next(&mut events, "Started a").await, "a").unwrap();
    assert_eq!(running.os_pid("a").await.unwrap(), Some(pid));
    assert!(matches!(
        running.delete_child("a").await,
        Err(Error::ChildRunning(_))
    ));
    assert!(matches!(
        running.restart_child("a").await,
        Err(Error::ChildRunning(_))
    ));
    running.terminate_child("a").await.unwrap();
    assert!(matches!(
        next(&mut events, "Stopped").await,
        Event::Stopped { .. }
    ));
    let children = running.which_children().await.unwrap();
    assert_eq!(
        (children[0].state, children[0].pid),
        (ChildState::Stopped, None)
    );
    gone(&id);
    running.restart_child("a").await.unwrap();
    assert!(started(&next(&mut events, "Started a").await, "a").is_some());
    running.terminate_child("a").await.unwrap();
    running.delete_child("a").await.unwrap();
    assert!(running.which_children().await.unwrap().is_empty());
    assert!(matches!(
        running.terminate_child("a").await,
        Err(Error::NoSuchChild(_))
    ));
    shutdown(running, &id).await;
}

#[tokio::test]
async fn statistics_count_output_restarts_and_last_exit() {
    let id = TestId::new("stats");
    let flag = std::env::temp_dir().join(format!("muontrap-stats-{id}"));
    let script = format!(
        "if [ -e '{f}' ]; then echo second; exit 0; else : > '{f}'; echo first; exit 1; fi",
        f = flag.display()
    );
    let mut d = sh("d", &id, &script);
    d.restart(RestartPolicy::Transient).on_line(|_| {});
    let mut s = sup();
    s.child("d", d);
    let running = s.start().await.unwrap();
    let mut events = running.subscribe();
    let (e, _) = until(&mut events, "Exited 0", |e| {
        matches!(
            e,
            Event::Exited {
                reason: Reason::Normal,
                ..
            }
        )
    })
    .await;
    assert!(matches!(e, Event::Exited { .. }));
    let st = running.statistics("d").await.unwrap();
    assert_eq!(st.restarts, 1);
    assert_eq!(st.output_bytes, "first\nsecond\n".len() as u64);
    assert_eq!(st.last_exit.and_then(|s| s.code()), Some(0));
    assert_eq!((st.os_pid, st.uptime), (None, None));
    let _ = std::fs::remove_file(&flag);
    shutdown(running, &id).await;
}

// ---------------------------------------------------------------------------------------
// Logging

#[derive(Debug, Clone, PartialEq)]
struct Logged {
    level: tracing::Level,
    daemon: String,
    message: String,
}

/// A subscriber that records every event (level, `daemon` field, message).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Logged>>>);

impl Capture {
    fn lines(&self, daemon: &str) -> Vec<Logged> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.daemon == daemon)
            .cloned()
            .collect()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct V {
            daemon: String,
            message: String,
        }
        impl tracing::field::Visit for V {
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                if f.name() == "daemon" {
                    self.daemon = v.to_owned();
                }
            }
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                match f.name() {
                    "message" => self.message = format!("{v:?}"),
                    "daemon" => self.daemon = format!("{v:?}"),
                    _ => {}
                }
            }
        }
        let mut v = V::default();
        event.record(&mut v);
        self.0.lock().unwrap().push(Logged {
            level: *event.metadata().level(),
            daemon: v.daemon,
            message: v.message,
        });
    }
}

/// Runs `d` once to completion under a capturing subscriber (on this thread: the test
/// runtime is single-threaded, so the output readers log here too).
async fn run_logged(d: Daemon) -> Capture {
    use tracing_subscriber::layer::SubscriberExt;
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut running = d.start().await.expect("start");
    running.wait().await.expect("wait");
    capture
}

fn sh(name: &str, id: &TestId, script: &str) -> Daemon {
    let marker = id.as_str().to_owned();
    let script = script.to_owned();
    Daemon::new(name, move || {
        let mut c = Command::new("sh");
        c.args(["-c", &script]).env(MARKER_VAR, &marker);
        c
    })
}

#[tokio::test]
async fn output_lines_become_tracing_events_with_prefix_level_and_name() {
    let id = TestId::new("log");
    let mut d = fixture_daemon("web", &id, &["lines", "2"]);
    d.log_output(LogLevel::Warn);
    let got = run_logged(d).await.lines("web");
    let prog = fixture().to_string_lossy().into_owned();
    assert_eq!(
        got,
        [1, 2]
            .map(|n| Logged {
                level: tracing::Level::WARN,
                daemon: "web".into(),
                message: format!("{prog}: line {n}"),
            })
            .to_vec()
    );
    gone(&id);
}

#[tokio::test]
async fn log_prefix_and_transform_apply_to_each_line() {
    let id = TestId::new("log-transform");
    let mut d = sh("t", &id, "echo hello; echo world");
    d.log_output(LogLevel::Debug)
        .log_prefix("[t] ")
        .log_transform(|b| String::from_utf8_lossy(b).to_uppercase());
    let got: Vec<String> = run_logged(d)
        .await
        .lines("t")
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(got, ["[t] HELLO", "[t] WORLD"]);
    gone(&id);
}

#[tokio::test]
async fn a_partial_last_line_is_logged_at_exit() {
    let id = TestId::new("log-partial");
    let mut d = sh("p", &id, "printf 'one\\ntwo'");
    d.log_output(LogLevel::Info).log_prefix("");
    let got: Vec<String> = run_logged(d)
        .await
        .lines("p")
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(got, ["one", "two"]);
    gone(&id);
}

#[tokio::test]
async fn invalid_utf8_is_replaced_never_a_panic() {
    let id = TestId::new("log-utf8");
    let mut d = sh("u", &id, "printf 'ok \\377\\376 end\\n'");
    d.log_output(LogLevel::Info).log_prefix("");
    let got: Vec<String> = run_logged(d)
        .await
        .lines("u")
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(got, ["ok \u{fffd}\u{fffd} end"]);
    gone(&id);
}

#[tokio::test]
async fn long_lines_are_split_not_truncated() {
    let id = TestId::new("log-long");
    let mut d = fixture_daemon("l", &id, &["print", "1000"]);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    d.max_line(256)
        .on_line(move |line| l.lock().unwrap().push(line.bytes.to_vec()));
    d.start().await.unwrap().wait().await.unwrap();
    let lines = lines.lock().unwrap();
    assert_eq!(
        lines.iter().map(Vec::len).collect::<Vec<_>>(),
        [256, 256, 256, 232]
    );
    let all: Vec<u8> = lines.concat();
    let want: Vec<u8> = b"0123456789abcdef"
        .iter()
        .copied()
        .cycle()
        .take(1000)
        .collect();
    assert_eq!(all, want, "nothing lost in the middle");
    gone(&id);
}

#[tokio::test]
async fn stderr_to_stdout_and_capture_stderr_only_choose_what_is_logged() {
    let id = TestId::new("log-stderr");
    let collect = |d: &mut Daemon| {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        d.on_line(move |line| {
            l.lock().unwrap().push((
                line.stream,
                String::from_utf8_lossy(line.bytes).into_owned(),
            ))
        });
        lines
    };
    let script = "echo out; echo err >&2";
    let mut both = sh("both", &id, script);
    both.stderr_to_stdout(true);
    let got = collect(&mut both);
    both.start().await.unwrap().wait().await.unwrap();
    assert_eq!(
        *got.lock().unwrap(),
        [
            (muontrap::Stream::Stdout, "out".to_string()),
            (muontrap::Stream::Stdout, "err".to_string())
        ]
    );
    let mut only = sh("only", &id, script);
    only.capture_stderr_only(true);
    let got = collect(&mut only);
    only.start().await.unwrap().wait().await.unwrap();
    assert_eq!(
        *got.lock().unwrap(),
        [(muontrap::Stream::Stderr, "err".to_string())]
    );
    gone(&id);
}
