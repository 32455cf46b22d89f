//! `contain -- PROGRAM [ARGS]`: a tiny owner program that runs a command through muontrap and
//! waits for it. Kill this process in any way (even `kill -9`) and the whole tree goes with it.
//!
//! Environment knobs for experiments and black-box tests:
//! `CONTAIN_DELAY_MS` (grace period), `CONTAIN_TIMEOUT_MS`, `CONTAIN_CGROUP_BASE` (run the
//! command in a new cgroup under this base, see `Command::cgroup_base`), and `CONTAIN_PANIC=1` /
//! `CONTAIN_EXIT=1` (after the command prints its first line on stdout, panic or call
//! `std::process::exit` instead of waiting, to show that the tree still goes).

use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    let program = match first.as_deref().and_then(|a| a.to_str()) {
        Some("--") => args.next(),
        _ => first,
    };
    let Some(program) = program else {
        eprintln!("usage: contain -- PROGRAM [ARGS]");
        return ExitCode::from(2);
    };
    let ms = |var: &str| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
    };
    let mut cmd = muontrap::Command::new(&program);
    cmd.args(args);
    if let Some(d) = ms("CONTAIN_DELAY_MS") {
        cmd.delay_to_sigkill(d);
    }
    if let Some(t) = ms("CONTAIN_TIMEOUT_MS") {
        cmd.timeout(t);
    }
    if let Some(base) = std::env::var_os("CONTAIN_CGROUP_BASE") {
        cmd.cgroup_base(base.to_string_lossy());
    }
    let abrupt = std::env::var("CONTAIN_PANIC").is_ok() || std::env::var("CONTAIN_EXIT").is_ok();
    if abrupt {
        cmd.stdout(muontrap::Stdio::piped());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("contain: {e}");
            return ExitCode::from(127);
        }
    };
    if abrupt {
        // Relay the first line so the caller knows the tree is up, then go away abruptly.
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
        print!("{line}");
        let _ = std::io::stdout().flush();
        if std::env::var("CONTAIN_PANIC").is_ok() {
            panic!("contain: panicking on purpose");
        }
        std::process::exit(3);
    }
    match child.wait() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            let code = status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            ExitCode::from(code as u8)
        }
        Err(muontrap::Error::TimedOut { .. }) => ExitCode::from(124),
        Err(e) => {
            eprintln!("contain: {e}");
            ExitCode::from(1)
        }
    }
}
