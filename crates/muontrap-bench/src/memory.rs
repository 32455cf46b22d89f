//! Section 3: resident memory of the keeper processes, on the owner's side.

use std::time::Duration;

use crate::next_marker;
use crate::procscan::{self, MARKER_VAR};
use crate::report::{Row, Value};

fn na(name: &str, why: impl Into<String>) -> Row {
    Row::new(name, Value::NotAvailable(why.into()))
}

/// Keeper server and per-command keeper RSS while `sleep 1000` runs.
pub fn run() -> Vec<Row> {
    let server_name = "muontrap keeper server (VmRSS)";
    let keeper_name = "muontrap per-command keeper (VmRSS)";
    let marker = next_marker();
    let mut child = match muontrap::Command::new("sleep")
        .arg("1000")
        .env(MARKER_VAR, &marker)
        .delay_to_sigkill(Duration::from_millis(100))
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return vec![na(server_name, e.to_string()), na(keeper_name, "")],
    };
    let me = std::process::id() as i32;
    let cmd = child.id() as i32;
    let keeper = procscan::ppid(cmd).unwrap_or(0);
    let server = procscan::ppid(keeper).unwrap_or(0);
    // Cross-check: the server is our child and calls itself muontrap-keeper.
    let servers: Vec<i32> = procscan::children(me)
        .into_iter()
        .filter(|&p| procscan::argv0(p).as_deref() == Some("muontrap-keeper"))
        .collect();
    let mut rows = Vec::new();
    if servers.contains(&server) && procscan::ppid(server) == Some(me) {
        let row = |name: &str, pid: i32, what: &str| match procscan::status_kb(pid, "VmRSS") {
            Some(kb) => Row::new(name, Value::Kb(kb)).note(format!(
                "{what}: pid {pid}, argv0 {:?}, comm {:?}; RssAnon {} KB, RssFile {} KB",
                procscan::argv0(pid).unwrap_or_default(),
                procscan::comm(pid).unwrap_or_default(),
                procscan::status_kb(pid, "RssAnon").unwrap_or(0),
                procscan::status_kb(pid, "RssFile").unwrap_or(0),
            )),
            None => na(name, format!("no VmRSS for pid {pid}")),
        };
        rows.push(row(server_name, server, "child of the owner"));
        rows.push(row(
            keeper_name,
            keeper,
            "child of the server, parent of `sleep`",
        ));
    } else {
        rows.push(na(
            server_name,
            format!("could not identify it (sleep {cmd}, parent {keeper}, its parent {server}, servers {servers:?})"),
        ));
        rows.push(na(keeper_name, "see above"));
    }
    let _ = child.kill();
    let _ = child.wait();
    let left = procscan::settle(&marker, Duration::from_millis(500));
    if left > 0 {
        procscan::kill_marked(&marker);
    }
    rows.into_iter().map(|r| r.leftovers(left)).collect()
}
