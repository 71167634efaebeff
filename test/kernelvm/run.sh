#!/usr/bin/env bash
# make test-kernel: runs the namespace end-to-end tests and the fault
# scenarios with the kernel WireGuard data plane inside Debian's stock
# kernel, booted in qemu (TCG), for hosts whose kernel has no WireGuard.
#
# As root, from anywhere in the repository:
#   test/kernelvm/run.sh
# Environment (all optional):
#   KERNELVM_CACHE    cache dir (kernel package, extracted tree, initramfs)
#                     default /var/cache/raftguard-kernelvm
#   KERNELVM_KERNEL   Debian kernel package; default: what linux-image-amd64
#                     depends on
#   KERNELVM_UNIT     -run pattern of the data plane package's tests;
#                     empty: none
#   KERNELVM_E2E      -run pattern of the end-to-end tests (test/e2e_test.go);
#                     empty: none
#   KERNELVM_FAULTS   -run pattern of the fault scenarios (test/faults_test.go);
#                     empty: none
#   KERNELVM_MEM, KERNELVM_SMP   VM memory and CPUs (4G, 2)
#   KERNELVM_ACCEL    qemu -accel value (default tcg,thread=multi; a KVM
#                     guest hung at boot on the machines this was built on)
#   KERNELVM_TIMEOUT  bound of the whole VM run (default 45m)
#   KERNELVM_E2E_TIMEOUT  bound of the end-to-end step (default 25m)
#   KERNELVM_TIME_SCALE  RAFTGUARD_TEST_TIME_SCALE in the VM (default 4): the
#                     emulated CPU is slower; waits, speed targets and Raft
#                     timeouts stretch by it, correctness bounds do not
#                     (test/timescale_test.go)
#   KERNELVM_FAULTS_ROUNDS  RAFTGUARD_FAULTS_ROUNDS in the VM (default 2):
#                     each fault scenario repeats at most this often
#   KERNELVM_FENCE_ROUNDS  RAFTGUARD_FENCE_ROUNDS in the VM (default 1):
#                     kills and stops of the leader in TestFenceDeadLeader
#   KERNELVM_KEEP=1   keep the run directory (logs, binaries) afterwards
#
# The host's / is shared read-only with the VM (9p) under a tmpfs overlay;
# a per-run directory is shared writable at /kernelvm and carries the test
# binaries (built here, so the VM compiles nothing), guest.sh, the step list,
# the full log and the exit status. Timings inside TCG are not figures.
set -euo pipefail
exec </dev/null

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$repo/test/kernelvm"
cache=${KERNELVM_CACHE:-/var/cache/raftguard-kernelvm}
mem=${KERNELVM_MEM:-4G}
smp=${KERNELVM_SMP:-2}
timeout=${KERNELVM_TIMEOUT:-45m}
e2etimeout=${KERNELVM_E2E_TIMEOUT:-25m}
scale=${KERNELVM_TIME_SCALE:-4}
accel=${KERNELVM_ACCEL:-tcg,thread=multi}
frounds=${KERNELVM_FAULTS_ROUNDS:-2}
unit=${KERNELVM_UNIT-'^(TestOpen|TestKernel.*)$'}
e2e=${KERNELVM_E2E-'^(TestFenceDeadLeader|TestCleanupAfterKill|TestCrashedLeaderForgetsDeletedPeer|TestFailoverKillAndTransfer|TestLeaderPartitioned|TestIPv6AndPeerLifecycle|TestNATFollowsLeader|TestPeerStatusAcrossFailover|TestPeerExpiryAcrossFailover|TestBootstrapImportTakesOverServer)$'}
faults=${KERNELVM_FAULTS-'^(TestFaultsKillLeader|TestFaultsPartitionLeader|TestFaultsStopLeader|TestFaultsRestarts)$'}

log() { printf 'kernelvm: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (the VM shares the host's / read-only, and the tests need root inside)"
for t in qemu-system-x86_64 apt-get dpkg depmod cpio go; do
	command -v "$t" >/dev/null || die "$t not found (apt-get install qemu-system-x86 busybox-static kmod cpio)"
done
busybox=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"

mkdir -p "$cache"
pkg=${KERNELVM_KERNEL:-}
if [ -z "$pkg" ]; then
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*-amd64\)$/\1/p' | head -n 1)
	[ -n "$pkg" ] || die "cannot tell which kernel linux-image-amd64 depends on (apt-get update?); set KERNELVM_KERNEL"
fi
kroot="$cache/$pkg"
if [ ! -e "$kroot/.done" ]; then
	log "fetching $pkg"
	rm -rf "$kroot" "$cache/dl"
	mkdir -p "$cache/dl"
	(cd "$cache/dl" && apt-get download "$pkg") || die "apt-get download $pkg failed"
	mkdir -p "$kroot"
	dpkg -x "$cache"/dl/"$pkg"_*.deb "$kroot"
	rm -rf "$cache/dl"
	kver=$(ls "$kroot/lib/modules")
	depmod -b "$kroot" "$kver"
	touch "$kroot/.done"
fi
kver=$(ls "$kroot/lib/modules")
vmlinuz="$kroot/boot/vmlinuz-$kver"
mods="$kroot/lib/modules/$kver"
[ -f "$vmlinuz" ] || die "no kernel image in $kroot"
[ -n "$(find "$mods" -name 'wireguard.ko*' | head -n 1)" ] || die "$pkg has no wireguard module"

run=$(mktemp -d "$cache/run.XXXXXX")
if [ -z "${KERNELVM_KEEP:-}" ]; then
	trap 'rm -rf "$run"' EXIT
fi
chmod 0755 "$run"

# The initramfs: busybox, /init and the modules that mount the host's root.
# (small: built afresh for every run)
initrd="$run/initrd.cpio.gz"
(
	ir="$run/initramfs"
	mkdir -p "$ir/bin" "$ir/modules"
	cp "$busybox" "$ir/bin/busybox"
	cp "$here/init" "$ir/init"
	# Load order from modules.dep: every module after what it depends on.
	order=()
	want() {
		local path=$1 d deps
		for d in "${order[@]}"; do
			[ "$d" = "$path" ] && return
		done
		deps=$(awk -v m="$path:" '$1 == m {for (i = NF; i > 1; i--) print $i}' "$mods/modules.dep")
		for d in $deps; do
			want "$d"
		done
		order+=("$path")
	}
	for m in virtio_pci 9pnet_virtio 9p overlay; do
		path=$(awk -F: -v m="$m" '{n = $1; sub(/.*\//, "", n); sub(/\.ko.*/, "", n)} n == m {print $1; exit}' "$mods/modules.dep")
		[ -n "$path" ] || die "module $m not in $pkg"
		want "$path"
	done
	for path in "${order[@]}"; do
		f="$mods/$path"
		m=$(basename "$path")
		m=${m%%.ko*}
		case "$f" in
		*.ko.xz) xz -dc "$f" >"$ir/modules/$m.ko" ;;
		*.ko.zst) zstd -qdc "$f" >"$ir/modules/$m.ko" ;;
		*) cp "$f" "$ir/modules/$m.ko" ;;
		esac
		echo "$m" >>"$ir/modules.order"
	done
	(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd"
	rm -rf "$ir"
)

log "building the binaries into $run"
(
	cd "$repo"
	go build -o "$run/raftguard" ./cmd/raftguard
	go test -c -o "$run/test.test" ./test
	go test -c -o "$run/dataplane.test" ./dataplane
)
cp "$here/guest.sh" "$run/guest.sh"

{
	echo "export RAFTGUARD_TEST_BINARY=/run/kernelvm/raftguard"
	printf 'RG_REPO=%q\n' "$repo"
	echo "export RAFTGUARD_TEST_DATAPLANE=kernel"
	echo "export RAFTGUARD_TEST_TIME_SCALE=$scale"
	echo "export RAFTGUARD_FAULTS_ROUNDS=$frounds"
	echo "export RAFTGUARD_FENCE_ROUNDS=${KERNELVM_FENCE_ROUNDS:-1}"
	echo "RG_STEPS=("
	if [ -n "$unit" ]; then
		printf '%q\n' "data plane unit tests of the kernel device|$repo/dataplane|/run/kernelvm/dataplane.test -test.v -test.count=1 -test.timeout 3m -test.run $unit"
	fi
	if [ -n "$e2e" ]; then
		printf '%q\n' "end-to-end tests, kernel data plane|$repo/test|/run/kernelvm/test.test -test.v -test.count=1 -test.timeout $e2etimeout -test.run $e2e"
	fi
	if [ -n "$faults" ]; then
		printf '%q\n' "fault scenarios, kernel data plane|$repo/test|env RAFTGUARD_FAULTS=1 /run/kernelvm/test.test -test.v -test.count=1 -test.timeout 20m -test.run $faults"
	fi
	echo ")"
} >"$run/env"

log "booting $pkg ($kver) with -accel $accel: -m $mem -smp $smp, bounded by $timeout"
start=$SECONDS
set +e
timeout --foreground -k 10s "$timeout" qemu-system-x86_64 \
	-machine q35 -accel "$accel" -cpu max -m "$mem" -smp "$smp" \
	-kernel "$vmlinuz" -initrd "$initrd" \
	-append "console=ttyS0 quiet loglevel=3 panic=-1 rgmodules=$mods" \
	-fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap" \
	-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
	-fsdev "local,id=out,path=$run,security_model=none" \
	-device virtio-9p-pci,fsdev=out,mount_tag=out \
	-fsdev "local,id=repo,path=$repo,security_model=none,readonly=on,multidevs=remap" \
	-device virtio-9p-pci,fsdev=repo,mount_tag=repo \
	-nic none -display none -serial stdio -monitor none -no-reboot
qrc=$?
set -e
log "the VM ran $((SECONDS - start))s (qemu exit $qrc)"
[ "$qrc" -eq 0 ] || die "qemu failed or timed out (exit $qrc)"
[ -s "$run/rc" ] || die "the VM wrote no exit status (see the output above)"
rc=$(cat "$run/rc")
if [ -n "${KERNELVM_KEEP:-}" ]; then
	log "run directory kept: $run"
fi
if [ "$rc" -ne 0 ]; then
	die "tests failed in the VM (exit $rc)"
fi
log "ok"
