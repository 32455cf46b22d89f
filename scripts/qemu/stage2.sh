#!/bin/sh
# Second stage inside the VM, run by init.sh chrooted into the host's `/` (shared over 9p),
# with the host's own /bin/sh, as root, in a pure cgroup v2 hierarchy (in the root cgroup, or
# in /muontrap-test-vm/runner: see init.sh). Usage: stage2.sh RUN_DIR
#
# RUN_DIR (a host path; writes land on the host) holds plan.sh, written by run-v2.sh: it
# exports the tests' environment, sets "$@" to the extra test arguments, and calls
# `run_test NAME CWD EXECUTABLE` once per test binary. For each, this writes
#   RUN_DIR/NAME.out   everything the binary printed (stdout and stderr)
#   RUN_DIR/NAME.rc    its exit code (absent if the VM died before it ended)
# and shows the output live on the console, each line prefixed with "[vm] " (so the VM's
# libtest lines are not mistaken for the host's cargo test summary).
RUN="$1"
cd / || exit 1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export TMPDIR=/tmp

say() { echo "muontrap-vm: $*"; }

say "cgroup fs type: $(stat -fc %T /sys/fs/cgroup)"
say "root cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
say "root cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
say "muontrap-test-vm cgroup.subtree_control: $(cat /sys/fs/cgroup/muontrap-test-vm/cgroup.subtree_control)"
say "own cgroup: $(cat /proc/self/cgroup)"
say "cgroup mounts: $(grep cgroup /proc/self/mounts | tr '\n' ';')"
{
  echo "fstype $(stat -fc %T /sys/fs/cgroup)"
  echo "root.subtree_control $(cat /sys/fs/cgroup/cgroup.subtree_control)"
  echo "base.subtree_control $(cat /sys/fs/cgroup/muontrap-test-vm/cgroup.subtree_control)"
  echo "self $(cat /proc/self/cgroup)"
} > "$RUN/cgroup-facts.txt"

# run_test NAME CWD EXECUTABLE [ARGS...]
run_test() {
  name="$1" dir="$2" exe="$3"
  shift 3
  say "== $name: $exe $*"
  start=$(cut -d' ' -f1 /proc/uptime)
  rm -f "$RUN/$name.rc"
  # The exit code goes to a file from inside the subshell: no pipefail in POSIX sh.
  ( cd "$dir" && "$exe" "$@" ; echo $? > "$RUN/$name.rc" ) 2>&1 < /dev/null \
    | tee "$RUN/$name.out" | sed 's/^/[vm] /'
  end=$(cut -d' ' -f1 /proc/uptime)
  say "== $name: exit $(cat "$RUN/$name.rc" 2>/dev/null || echo '?') after $(echo "$start $end" | awk '{printf "%.1f", $2 - $1}') s"
}

. "$RUN/plan.sh"
sync
