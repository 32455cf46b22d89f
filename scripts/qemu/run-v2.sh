#!/usr/bin/env bash
# Runs the project's test binaries under PURE cgroup v2 with every controller, in Debian's
# kernel booted by qemu (plain emulation: no KVM needed, none used).
#
# Usage: bash scripts/qemu/run-v2.sh [SELECTOR...] [-- TEST-ARGS...]
#   SELECTOR   [PACKAGE:]TARGET, shell globs allowed: the cargo test executables to run, by
#              target name (an integration test's file name, or a lib/bin name for unit tests)
#              and optionally package. Default: the cgroup, containment, api, concurrency and
#              supervise tests of muontrap-tests and the port_mode and run_mode tests of the CLI
#              (a default that does not exist yet is left out with a note).
#   TEST-ARGS  passed to every test binary, like `cargo test -- ARGS` (a name filter,
#              --test-threads=1, --nocapture, ...).
# Environment:
#   MUONTRAP_STRICT and every other MUONTRAP_* variable, RUST_BACKTRACE, RUST_LOG,
#   RUST_TEST_THREADS are passed to the tests. In the VM the tests also get
#   MUONTRAP_TEST_VM=1, MUONTRAP_TEST_CGROUP_BASE=muontrap-test-vm (see init.sh),
#   MUONTRAP_TEST_TIME_SCALE (default 10; MUONTRAP_VM_TIME_SCALE sets it), and
#   RUST_TEST_THREADS=1 unless set on the host.
#   MUONTRAP_VM_TIMEOUT  seconds before qemu is killed and the run fails (default 900)
#   MUONTRAP_VM_MEM      guest memory in MiB (default 1024); MUONTRAP_VM_SMP cpus (default 2)
#   MUONTRAP_VM_DEBUG=1  kernel messages on the console
#   MUONTRAP_VM_9P_CACHE 9p cache mode of the share (default loose: see init.sh)
#   MUONTRAP_VM_CGROUP   root (default) or leaf: the cgroup the tests run in (see init.sh)
#
# How: the host's `/` is shared into the VM over 9p; the initramfs (busybox-static and the
# virtio/9p modules) mounts it, mounts fresh proc/sys/dev/tmp and cgroup2 inside it, and
# chroots: the ordinary test executables under target/ run unchanged and find their fixtures
# relative to themselves. The cgroup layout inside (see init.sh): the tests run in the root
# cgroup, which has every controller enabled, so a test's `./muontrap-test-<unique>` cgroup gets
# every controller; MUONTRAP_TEST_CGROUP_BASE=muontrap-test-vm names a non-root cgroup, relative
# to the mount root, with every controller enabled for its children.
#
# Output: target/qemu/run-*/ holds NAME.out / NAME.rc per test binary, dmesg.txt, the console
# log and cgroup-facts.txt.
# Exit status: 0 all selected test binaries passed; 1 a test failed or did not finish;
# 77 the VM could not be set up or booted (a "SKIP: pure cgroup v2 VM: <reason>" line says why).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=scripts/qemu
T0=$SECONDS

skip() {
  echo "SKIP: pure cgroup v2 VM: $*"
  exit 77
}
say() { echo "== qemu-v2: $*"; }

# ---------------------------------------------------------------- arguments
selectors=()
test_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; test_args=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) selectors+=("$1"); shift ;;
  esac
done
defaults=0
if [ ${#selectors[@]} -eq 0 ]; then
  selectors=(muontrap-tests:cgroup muontrap-tests:containment muontrap-tests:api muontrap-tests:concurrency muontrap-tests:supervise muontrap-cli:port_mode muontrap-cli:run_mode)
  defaults=1
fi

# ---------------------------------------------------------------- packages
pick_kernel() {
  # Newest /boot/vmlinuz-<ver> whose /lib/modules/<ver> has the 9p module.
  KVER=
  local v
  for v in $(ls /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -rV); do
    if [ -r "/boot/vmlinuz-$v" ] && [ -f "/lib/modules/$v/modules.dep" ] &&
       grep -qE '(^|/)9p\.ko' "/lib/modules/$v/modules.dep"; then
      KVER=$v
      return 0
    fi
  done
  return 1
}

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
pick_kernel || need+=(linux-image-amd64)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
  need+=(busybox-static)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
command -v jq >/dev/null 2>&1 || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    skip "missing ${need[*]} and cannot install them (not root or no apt-get)"
  fi
  say "installing: ${need[*]}"
  apt_log=${TMPDIR:-/tmp}/muontrap-qemu-apt.$$.log
  t=$SECONDS
  apt-get update -qq >/dev/null 2>&1 || say "apt-get update failed; trying the install anyway"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
    > "$apt_log" 2>&1 || { tail -20 "$apt_log"; skip "apt-get install ${need[*]} failed"; }
  say "installed in $((SECONDS - t)) s"
fi
command -v qemu-system-x86_64 >/dev/null 2>&1 || skip "qemu-system-x86_64 not found after install"
pick_kernel || skip "no /boot/vmlinuz-* with 9p modules in /lib/modules after install"
[ "$(id -u)" = 0 ] || skip "not root: qemu must share / with security_model=passthrough"
KERNEL=/boot/vmlinuz-$KVER
MODDIR=/lib/modules/$KVER

# ---------------------------------------------------------------- test executables
say "building test executables (cargo test --workspace --no-run)"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
mkdir -p "$TARGET_DIR/qemu"
# One TSV line per test executable: package name (from cargo metadata), target name, kind,
# executable, manifest dir.
cargo metadata --format-version 1 --no-deps |
  jq -c '[.packages[] | {key: .id, value: .name}] | from_entries' > "$TARGET_DIR/qemu/pkgnames.json"
# --no-fail-fast: a target that does not compile (work in progress elsewhere) does not stop the
# others; the run still fails at the end.
build_failed=0
cargo test --workspace --no-run --no-fail-fast --quiet --message-format=json-render-diagnostics \
  > "$TARGET_DIR/qemu/no-run.json" || build_failed=1
[ $build_failed = 0 ] || say "BUILD FAILED (see above): running what did build; the run fails"
mapfile -t executables < <(jq -r --slurpfile names "$TARGET_DIR/qemu/pkgnames.json" '
  select(.reason == "compiler-artifact" and .profile.test and .executable != null)
  | [($names[0][.package_id] // .target.name), .target.name, .target.kind[0], .executable,
     (.manifest_path | sub("/Cargo.toml$"; ""))] | @tsv' "$TARGET_DIR/qemu/no-run.json")

chosen=()   # "name<TAB>package<TAB>executable<TAB>dir"
for sel in "${selectors[@]}"; do
  if [[ $sel == *:* ]]; then spat=${sel%%:*}; tpat=${sel#*:}; else spat='*'; tpat=$sel; fi
  found=0
  for line in "${executables[@]}"; do
    IFS=$'\t' read -r pkg tgt kind exe dir <<< "$line"
    # shellcheck disable=SC2053 # globs on purpose
    if [[ $pkg == $spat && $tgt == $tpat ]]; then
      found=1
      dup=0
      for c in "${chosen[@]}"; do [[ $c == *$'\t'"$exe"$'\t'* ]] && dup=1; done
      [ $dup = 1 ] || chosen+=("$pkg.$tgt$([ "$kind" = test ] || echo ".$kind")"$'\t'"$pkg"$'\t'"$exe"$'\t'"$dir")
    fi
  done
  if [ $found = 0 ]; then
    if [ $defaults = 1 ]; then
      say "note: no test executable $sel (yet); left out"
    else
      echo "run-v2.sh: no test executable matches '$sel'; there are:" >&2
      for line in "${executables[@]}"; do IFS=$'\t' read -r pkg tgt _ <<< "$line"; echo "  $pkg:$tgt" >&2; done
      exit 2
    fi
  fi
done
[ ${#chosen[@]} -gt 0 ] || { echo "run-v2.sh: nothing to run" >&2; exit 2; }

# ---------------------------------------------------------------- run directory + initramfs
RUN=$(cd "$TARGET_DIR/qemu" && pwd -P)/run-$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$RUN"
# Keep the five newest runs.
ls -1dt "$TARGET_DIR"/qemu/run-* 2>/dev/null | tail -n +6 | xargs -r rm -rf
case "$RUN/" in
  /proc/*|/sys/*|/dev/*) skip "target dir $RUN is under /proc, /sys or /dev: invisible in the VM" ;;
  *[[:space:]]*) skip "target dir '$RUN' has white space: it cannot go on the kernel command line" ;;
esac

cp "$HERE/stage2.sh" "$RUN/stage2.sh"
q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
  echo "# generated by run-v2.sh"
  while IFS='=' read -r var _; do
    case "$var" in
      MUONTRAP_TEST_CGROUP_BASE|MUONTRAP_TEST_VM|MUONTRAP_TEST_TIME_SCALE|MUONTRAP_VM_*) ;;
      MUONTRAP_*|RUST_BACKTRACE|RUST_LOG|RUST_TEST_THREADS|CARGO_TERM_COLOR)
        echo "export $var=$(q "${!var}")" ;;
    esac
  done < <(env)
  # One test at a time unless the caller says otherwise: 2 emulated cpus run some 10-30x slower
  # than the host, and tests with wall-clock bounds (containment's 1.2 s "gone" bound with 200
  # processes) miss them when 9 tests spawn at once; serial, they pass.
  [ -n "${RUST_TEST_THREADS:-}" ] || echo "export RUST_TEST_THREADS=1"
  # How much slower than the host this is, roughly: tests with wall-clock bounds may multiply
  # them by it (nothing reads it yet).
  echo "export MUONTRAP_TEST_TIME_SCALE=${MUONTRAP_VM_TIME_SCALE:-10}"
  echo "export MUONTRAP_TEST_VM=1"
  echo "export MUONTRAP_TEST_CGROUP_BASE=muontrap-test-vm"
  printf 'set --'
  for a in "${test_args[@]}"; do printf ' %s' "$(q "$a")"; done
  echo
  for c in "${chosen[@]}"; do
    IFS=$'\t' read -r name pkg exe dir <<< "$c"
    echo "export CARGO_MANIFEST_DIR=$(q "$dir") CARGO_PKG_NAME=$(q "$pkg")"
    echo "run_test $(q "$name") $(q "$dir") $(q "$exe") \"\$@\""
  done
} > "$RUN/plan.sh"

INITRD_DIR=$RUN/initramfs
mkdir -p "$INITRD_DIR"/{bin,dev,proc,sys,mnt/host,modules}
cp /bin/busybox "$INITRD_DIR/bin/busybox"
cp "$HERE/init.sh" "$INITRD_DIR/init"
chmod 755 "$INITRD_DIR/init"
# Modules and their dependencies in load order, from modules.dep (which lists a module's
# dependencies transitively, in the reverse of the order they load in); built-ins are skipped.
order=()
add_module() {
  local name=$1 entry rel deps d i
  entry=$(grep -E "(^|/)$name\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" | head -1 || true)
  if [ -z "$entry" ]; then
    grep -qE "(^|/)$name\.ko$" "$MODDIR/modules.builtin" 2>/dev/null && return 0
    skip "kernel $KVER has no module $name"
  fi
  rel=${entry%%:*}
  read -r -a deps <<< "${entry#*:}"
  for ((i = ${#deps[@]} - 1; i >= 0; i--)); do add_file "${deps[i]}"; done
  add_file "$rel"
}
add_file() {
  local rel=$1 base
  base=$(basename "$rel"); base=${base%%.ko*}
  for o in "${order[@]}"; do [ "$o" = "$base" ] && return 0; done
  case "$rel" in
    *.ko) cp "$MODDIR/$rel" "$INITRD_DIR/modules/$base.ko" ;;
    *.ko.xz) xz -dc "$MODDIR/$rel" > "$INITRD_DIR/modules/$base.ko" ;;
    *.ko.gz) gzip -dc "$MODDIR/$rel" > "$INITRD_DIR/modules/$base.ko" ;;
    *.ko.zst)
      command -v zstd >/dev/null 2>&1 ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zstd >/dev/null 2>&1 ||
        skip "zstd needed to unpack $rel"
      zstd -qdc "$MODDIR/$rel" > "$INITRD_DIR/modules/$base.ko" ;;
    *) skip "unknown module format $rel" ;;
  esac
  order+=("$base")
}
for m in virtio_pci 9pnet_virtio 9p; do add_module "$m"; done
printf '%s\n' "${order[@]}" > "$INITRD_DIR/modules/order"
(cd "$INITRD_DIR" && find . | cpio -o -H newc --quiet | gzip -1) > "$RUN/initramfs.cpio.gz"
rm -rf "$INITRD_DIR"

# ---------------------------------------------------------------- boot
cmdline="console=ttyS0 quiet panic=-1 cgroup_no_v1=all muontrap.run=$RUN"
# The VM mounts a fresh tmpfs on /tmp and /run, unless something it needs lives there.
paths=("$RUN")
for c in "${chosen[@]}"; do IFS=$'\t' read -r _ _ exe dir <<< "$c"; paths+=("$exe" "$dir"); done
for p in "${paths[@]}"; do
  case "$p/" in
    /tmp/*|/run/*)
      cmdline+=" muontrap.tmp=host"
      say "note: $p is under /tmp or /run: the VM keeps the host's (tests write there)"
      break ;;
  esac
done
cmdline+=" muontrap.cache=${MUONTRAP_VM_9P_CACHE:-loose} muontrap.cgroup=${MUONTRAP_VM_CGROUP:-root}"
if [ "${MUONTRAP_VM_DEBUG:-0}" = 1 ]; then cmdline=${cmdline/ quiet/}; cmdline+=" muontrap.debug=1"; fi
timeout_s=${MUONTRAP_VM_TIMEOUT:-900}
say "kernel $KVER, modules: ${order[*]}"
say "tests: $(for c in "${chosen[@]}"; do printf '%s ' "${c%%$'\t'*}"; done)${test_args[*]:+-- ${test_args[*]}}"
say "booting (no KVM, timeout ${timeout_s} s); run dir $RUN"
BOOT0=$SECONDS
set +e
# stdin from /dev/null: qemu must not read (or put into raw mode) a terminal, and timeout runs
# it in a background process group.
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
  -machine pc -accel tcg,thread=multi -cpu max \
  -m "${MUONTRAP_VM_MEM:-1024}" -smp "${MUONTRAP_VM_SMP:-2}" \
  -nographic -no-reboot -nic none \
  -kernel "$KERNEL" -initrd "$RUN/initramfs.cpio.gz" -append "$cmdline" \
  -virtfs local,path=/,mount_tag=host,security_model=passthrough,multidevs=remap \
  < /dev/null 2>&1 |
  sed -u 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g; s/\r$//' |
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\n' "$line"
    printf '%s\n' "$line" >> "$RUN/console.log"
    case "$line" in
      "muontrap-vm: ready after"*) echo $((SECONDS - BOOT0)) > "$RUN/boot-wall" ;;
    esac
  done
qemu_rc=${PIPESTATUS[0]}
set -e
BOOT_WALL=$(cat "$RUN/boot-wall" 2>/dev/null || echo '?')
say "VM ran $((SECONDS - BOOT0)) s (boot to tests: ${BOOT_WALL} s wall, $(cat "$RUN/booted" 2>/dev/null || echo '?') s guest); total $((SECONDS - T0)) s"

# ---------------------------------------------------------------- verdict
if [ ! -f "$RUN/booted" ]; then
  [ "$qemu_rc" = 124 ] && skip "the VM did not boot within ${timeout_s} s (see $RUN/console.log)"
  [ -f "$RUN/fatal" ] && skip "VM setup failed: $(cat "$RUN/fatal")"
  skip "the VM did not boot (qemu exit $qemu_rc; see $RUN/console.log)"
fi
if [ "$(sed -n 's/^fstype //p' "$RUN/cgroup-facts.txt" 2>/dev/null)" != cgroup2fs ]; then
  say "FAIL: /sys/fs/cgroup in the VM is not cgroup2fs"
  exit 1
fi
fail=0
for c in "${chosen[@]}"; do
  name=${c%%$'\t'*}
  if [ ! -f "$RUN/$name.rc" ]; then
    say "FAIL $name: did not finish (qemu exit $qemu_rc$([ "$qemu_rc" = 124 ] && echo ": timed out after ${timeout_s} s"))"
    fail=1
  elif [ "$(cat "$RUN/$name.rc")" != 0 ]; then
    say "FAIL $name: exit $(cat "$RUN/$name.rc"); output in $RUN/$name.out"
    fail=1
  else
    say "ok   $name: $(grep -E '^test result:' "$RUN/$name.out" | tail -1 | sed 's/^test result: //')"
  fi
done
if [ $build_failed = 1 ]; then
  say "FAIL: cargo test --no-run failed on the host (see the start of this output)"
  fail=1
fi
if [ $fail = 0 ]; then
  say "PASS: all ${#chosen[@]} test binaries passed under pure cgroup v2"
else
  say "FAILED under pure cgroup v2"
fi
exit $fail
