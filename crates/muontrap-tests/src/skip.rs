//! Skipping a test that cannot run here, visibly.
//!
//! Some tests need what a machine may lack (cgroup v2 delegation, user
//! namespaces, root). Such a test calls [`skip`] and returns. Locally that
//! prints a line and passes; in CI, where `MUONTRAP_STRICT=1` is set, it
//! fails instead, so CI cannot go green by skipping everything.

/// Environment variable that turns skips into failures when set to `1`.
pub const STRICT_VAR: &str = "MUONTRAP_STRICT";

/// Reports that the current test cannot run here, then returns so the test
/// can `return` (pass).
///
/// Prints `SKIP: <test name>: <reason>` to stderr; the test name is taken
/// from the thread name that libtest gives each test.
///
/// # Panics
/// If `MUONTRAP_STRICT=1` is set in the environment.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    if std::env::var_os(STRICT_VAR).is_some_and(|v| v == "1") {
        panic!("SKIP not allowed with {STRICT_VAR}=1: {test}: {reason}");
    }
    eprintln!("SKIP: {test}: {reason}");
}

/// Environment variable set by `scripts/test.sh` when the pure cgroup v2 VM run
/// (`scripts/qemu/run-v2.sh`) follows the host run and will execute the v2-only tests.
pub const V2_IN_VM_VAR: &str = "MUONTRAP_V2_IN_VM";

/// Set (to `1`) inside the cgroup v2 VM by `scripts/qemu/run-v2.sh`.
pub const IN_VM_VAR: &str = "MUONTRAP_TEST_VM";

/// Like [`skip`], for a test that needs pure cgroup v2: when [`V2_IN_VM_VAR`] is `1` the skip
/// is allowed even under `MUONTRAP_STRICT=1`, because the VM run executes the same test
/// binary under cgroup v2 (where this test does not skip, so strictness still applies there).
pub fn skip_needs_v2(reason: &str) {
    skip_covered_by(V2_IN_VM_VAR, reason, "runs in the cgroup v2 VM")
}

/// Like [`skip`], for a test that needs cgroup v1: inside the VM ([`IN_VM_VAR`]) the skip is
/// allowed even under `MUONTRAP_STRICT=1`, because the host run (hybrid v1 here) executes it.
pub fn skip_needs_v1(reason: &str) {
    skip_covered_by(IN_VM_VAR, reason, "runs on the host")
}

/// A skip that strictness tolerates when `var` is `1`, i.e. when another run covers the test.
fn skip_covered_by(var: &str, reason: &str, where_it_runs: &str) {
    if std::env::var_os(var).is_some_and(|v| v == "1") {
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("<unnamed test>");
        eprintln!("SKIP: {test}: {reason} ({where_it_runs})");
        return;
    }
    skip(reason)
}
