#!/usr/bin/env bash
# Runs every test of the workspace, installing what the tests need first.
# Usage: bash scripts/test.sh        (MUONTRAP_STRICT=1 turns every SKIP into a failure)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v escript >/dev/null 2>&1 || need_apt+=(erlang-base)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing: ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "== cannot install ${need_apt[*]} (not root or no apt-get): dependent tests will SKIP"
  fi
fi

echo "== build (all targets, so fixtures and examples exist before any test runs)"
cargo build --workspace --all-targets --quiet

echo "== tests"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
