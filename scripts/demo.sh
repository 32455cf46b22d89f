#!/usr/bin/env bash
# The main job, shown: `muontrap run` on a tree that escapes its process group and session
# (a setsid'd, SIGTERM-ignoring daemon), then proof that nothing is left.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p muontrap-cli
mark="muontrap-demo-$$"
echo "\$ muontrap run --delay-to-sigkill 300ms --timeout 1s -- sh -c '<setsid daemon ignoring SIGTERM>; sleep 60'"
set +e
MUONTRAP_DEMO="$mark" ./target/release/muontrap run --delay-to-sigkill 300ms --timeout 1s -- \
  sh -c 'setsid sh -c "trap \"\" TERM; exec sleep 600" & echo "daemon started (setsid, ignores SIGTERM)"; sleep 60'
code=$?
set -e
echo "muontrap exited with $code (124 = timed out, like timeout(1))"
left=$(grep -l -a "MUONTRAP_DEMO=$mark" /proc/[0-9]*/environ 2>/dev/null | grep -v "/proc/$$/" || true)
if [ -z "$left" ]; then
  echo "OK: no process of the tree is left (the setsid daemon was found and killed)"
else
  echo "LEAK: $left"; exit 1
fi
