//! Finding binaries built by cargo from inside a test.
//!
//! `env!("CARGO_BIN_EXE_<name>")` only works for a package's own binaries, so
//! other crates' tests find `mt-fixture` (and examples) next to themselves:
//! integration tests run from `target/<profile>/deps/`, binaries live in
//! `target/<profile>/`, examples in `target/<profile>/examples/`. This holds
//! for any `--target` triple or `CARGO_TARGET_DIR`, since it is all relative.

use std::path::{Path, PathBuf};

/// Name of the fixture binary built from this crate.
pub const FIXTURE_NAME: &str = "mt-fixture";

/// Path of the built `mt-fixture` binary.
///
/// # Panics
/// If it has not been built; run `cargo build -p muontrap-tests --bins`
/// (or `cargo test --workspace`, which builds it).
pub fn fixture() -> PathBuf {
    find(
        FIXTURE_NAME,
        Place::Bin,
        "run `cargo build -p muontrap-tests --bins` (or `cargo test --workspace`, which builds it)",
    )
}

/// Path of the built binary `name` of any workspace package.
///
/// # Panics
/// If it has not been built; the message says how to build it.
pub fn target_binary(name: &str) -> PathBuf {
    find(name, Place::Bin, "run `cargo build --workspace --bins`")
}

/// Path of the built example `name` of any workspace package.
///
/// # Panics
/// If it has not been built; the message says how to build it.
pub fn example_binary(name: &str) -> PathBuf {
    find(
        name,
        Place::Example,
        "run `cargo build --workspace --examples`",
    )
}

/// Where cargo puts a kind of artifact, relative to `target/<profile>/`.
#[derive(Clone, Copy)]
enum Place {
    Bin,
    Example,
}

fn find(name: &str, place: Place, hint: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe is readable on Linux");
    let path = locate(&exe, name, place);
    assert!(
        path.is_file(),
        "{name} not found at {}: {hint}",
        path.display()
    );
    path
}

/// `target/<profile>/` given the running executable, wherever it sits in there.
fn profile_dir(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("."));
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

fn locate(exe: &Path, name: &str, place: Place) -> PathBuf {
    let profile = profile_dir(exe);
    match place {
        Place::Bin => profile.join(name),
        Place::Example => profile.join("examples").join(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_profile_dir() {
        let test = Path::new("/t/target/debug/deps/suite-0123abcd");
        assert_eq!(
            locate(test, "mt-fixture", Place::Bin),
            Path::new("/t/target/debug/mt-fixture")
        );
        assert_eq!(
            locate(test, "demo", Place::Example),
            Path::new("/t/target/debug/examples/demo")
        );
        let example = Path::new("/t/target/x86_64-unknown-linux-gnu/release/examples/demo");
        assert_eq!(
            locate(example, "mt-fixture", Place::Bin),
            Path::new("/t/target/x86_64-unknown-linux-gnu/release/mt-fixture")
        );
        let bin = Path::new("/t/target/debug/muontrap");
        assert_eq!(
            locate(bin, "mt-fixture", Place::Bin),
            Path::new("/t/target/debug/mt-fixture")
        );
    }

    #[test]
    #[should_panic(expected = "cargo build --workspace --bins")]
    fn missing_binary_panics_with_a_build_hint() {
        target_binary("no-such-binary-anywhere");
    }
}
