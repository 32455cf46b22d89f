#!/bin/busybox sh
# /init of the initramfs that scripts/qemu/run-v2.sh builds (busybox-static + the kernel modules
# that 9p over virtio needs, listed in order in /modules/order).
#
# What it does, in order:
#   1. mounts proc, sys, devtmpfs; loads the modules; mounts the host's `/` (9p tag `host`) at
#      /mnt/host;
#   2. mounts fresh proc, sysfs, devtmpfs (+ devpts, /dev/shm), tmpfs /run and /tmp inside it,
#      and cgroup2 at /mnt/host/sys/fs/cgroup: the VM has no cgroup v1 at all (the kernel is
#      also booted with cgroup_no_v1=all), so this is PURE cgroup v2;
#   3. lays out the cgroups (see below) and moves itself into the runner leaf;
#   4. chroots into the share and runs scripts/qemu/stage2.sh from the host's tree, which runs
#      the test binaries and writes their output and exit codes into the run directory;
#   5. saves dmesg there, syncs, `poweroff -f`.
#
# cgroup layout inside the VM (coordinate any change with the cgroup tests):
#
#   /sys/fs/cgroup                      root; subtree_control = every controller it has;
#   │                                   init, stage2 and the test binaries live HERE (default)
#   ├── muontrap-test-<...>             what a test creates as `./muontrap-test-<...>`:
#   │                                   every controller
#   └── muontrap-test-vm                subtree_control = every controller; no processes
#       ├── runner                      (muontrap.cgroup=leaf: the tests live here instead)
#       └── <name>                      a test's `muontrap-test-vm/<name>`: every controller
#
# Why the root by default: cgroup v2's "no internal processes" rule. A non-root cgroup that
# has processes cannot enable controllers for its children, and only the root is exempt. The
# tests create their cgroups as `./muontrap-test-<unique>`, relative to their OWN cgroup; that
# child gets controllers only if the own cgroup is the root (or has no processes, which the
# test process itself rules out). So the tests run in the root, and `./x` means `/x`.
#
# muontrap.cgroup=leaf runs them in /muontrap-test-vm/runner instead: the shape of a
# delegated systemd service (a populated non-root cgroup). There a `./x` child exists but has
# NO controllers; a cgroup relative to the mount root under $MUONTRAP_TEST_CGROUP_BASE
# (`muontrap-test-vm`, exported by run-v2.sh in both modes) has every controller.
#
# Kernel command line parameters read here:
#   muontrap.run=<host path of the run directory>      (required)
#   muontrap.tmp=host   keep the host's /tmp and /run visible (the target dir is under them)
#   muontrap.debug=1    leave kernel messages on the console
#   muontrap.cache=MODE 9p cache mode (default loose; none, mmap, fscache)
#   muontrap.cgroup=root|leaf  where the tests run (default root; see above)
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

say() { echo "muontrap-vm: $*"; }
die() {
  say "FATAL: $*"
  [ -n "$RUN" ] && [ -d "/mnt/host$RUN" ] && echo "$*" > "/mnt/host$RUN/fatal" && sync
  poweroff -f
  sleep 5
  exit 1
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

RUN=
TMP=vm
DEBUG=0
CACHE=loose
CGMODE=root
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    muontrap.run=*) RUN="${arg#muontrap.run=}" ;;
    muontrap.tmp=*) TMP="${arg#muontrap.tmp=}" ;;
    muontrap.debug=*) DEBUG="${arg#muontrap.debug=}" ;;
    muontrap.cache=*) CACHE="${arg#muontrap.cache=}" ;;
    muontrap.cgroup=*) CGMODE="${arg#muontrap.cgroup=}" ;;
  esac
done
[ "$DEBUG" = 1 ] || echo 1 > /proc/sys/kernel/printk
say "kernel $(uname -r) up after $(cut -d' ' -f1 /proc/uptime) s (guest clock)"

for m in $(cat /modules/order); do
  insmod "/modules/$m.ko" || die "insmod $m failed"
done

mkdir -p /mnt/host
# cache=loose: the guest keeps file data and metadata in its page cache. Without it every page
# fault of an executable is a 9p round trip, and exec-heavy tests run ~50x slower than on the
# host. Safe here because nothing on the host changes the shared files while the VM runs.
mount -t 9p -o "trans=virtio,version=9p2000.L,msize=524288,access=any,cache=$CACHE" host /mnt/host \
  || die "cannot mount the 9p share 'host'"
[ -n "$RUN" ] || die "no muontrap.run= on the kernel command line"
[ -d "/mnt/host$RUN" ] || die "run directory $RUN not visible through 9p"

H=/mnt/host
mount -t proc proc "$H/proc" || die "mount proc"
mount -t sysfs sysfs "$H/sys" || die "mount sysfs"
mount -t devtmpfs devtmpfs "$H/dev" || die "mount devtmpfs"
mkdir -p "$H/dev/pts" "$H/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$H/dev/pts" || die "mount devpts"
mount -t tmpfs -o mode=1777 tmpfs "$H/dev/shm" || die "mount /dev/shm"
if [ "$TMP" != host ]; then
  mount -t tmpfs -o mode=1777 tmpfs "$H/tmp" || die "mount /tmp"
  mount -t tmpfs -o mode=0755 tmpfs "$H/run" || die "mount /run"
fi

CG="$H/sys/fs/cgroup"
mount -t cgroup2 -o nsdelegate cgroup2 "$CG" || die "mount cgroup2"
for c in $(cat "$CG/cgroup.controllers"); do
  echo "+$c" > "$CG/cgroup.subtree_control" || say "could not enable $c in the root"
done
mkdir "$CG/muontrap-test-vm" "$CG/muontrap-test-vm/runner" || die "mkdir cgroups"
for c in $(cat "$CG/muontrap-test-vm/cgroup.controllers"); do
  echo "+$c" > "$CG/muontrap-test-vm/cgroup.subtree_control" \
    || say "could not enable $c in muontrap-test-vm"
done
if [ "$CGMODE" = leaf ]; then
  echo $$ > "$CG/muontrap-test-vm/runner/cgroup.procs" || die "cannot join the runner cgroup"
fi

say "ready after $(cut -d' ' -f1 /proc/uptime) s (guest clock)"
cut -d' ' -f1 /proc/uptime > "$H$RUN/booted"

# The host's own /bin/sh runs stage2 (the chroot sees only the host's files), in a session of
# its own: init's session id is 0, which no ordinary process has (tests call getsid). This shell
# stays pid 1 and reaps the orphans reparented to it while it waits.
(setsid chroot "$H" /bin/sh "$RUN/stage2.sh" "$RUN")
echo $? > "$H$RUN/stage2.rc"

dmesg > "$H$RUN/dmesg.txt" 2>/dev/null
say "done after $(cut -d' ' -f1 /proc/uptime) s (guest clock); powering off"
sync
poweroff -f
sleep 5
