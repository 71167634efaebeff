#!/bin/bash
# Runs as PID 1 inside the test VM (started by the initramfs's /init, with
# the host's root file system under a tmpfs overlay): prepares the system,
# loads the kernel modules the tests need, runs the test binaries that
# run.sh built and listed in /kernelvm/env, writes the exit status to
# /kernelvm/rc and powers the VM off.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp LANG=C.UTF-8

off() {
	sync
	echo o >/proc/sysrq-trigger
	sleep 60
}
trap off EXIT

mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
hostname kernelvm
ip link set lo up

# The binaries run from memory: the share at /kernelvm is uncached, and the
# tests start the raftguard binary for every CLI call.
mkdir -p /run/kernelvm
cp /kernelvm/*.test /kernelvm/raftguard /run/kernelvm/

# shellcheck source=/dev/null
. /kernelvm/env

# The repository (the tests read files in it) comes through a share of its
# own and is mounted at its host path: a checkout under /tmp or /run, which
# are fresh tmpfs mounts here, is found all the same. Writes go to a tmpfs.
mkdir -p /run/repo/lower /run/repo/rw
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose repo /run/repo/lower &&
	mount -t tmpfs -o mode=0755 tmpfs /run/repo/rw &&
	mkdir -p /run/repo/rw/upper /run/repo/rw/work "$RG_REPO" &&
	mount -t overlay overlay -o "lowerdir=/run/repo/lower,upperdir=/run/repo/rw/upper,workdir=/run/repo/rw/work" "$RG_REPO"
if [ ! -f "$RG_REPO/go.mod" ]; then
	echo 1 >/kernelvm/rc
	echo "kernelvm: the repository is not at $RG_REPO in the VM"
	exit
fi

echo "kernelvm: kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
if ! modprobe -a wireguard veth bridge tun nf_tables; then
	echo 1 >/kernelvm/rc
	echo "kernelvm: modprobe failed"
	exit
fi
lsmod | awk 'NR > 1 && $1 ~ /^(wireguard|veth|bridge|tun|nf_tables)$/ {print "kernelvm: module " $1 " loaded"}'

rc=0
# step NAME DIR ARGS...: runs one test binary in DIR, its output on the
# console and in /kernelvm/test.log; records the first failure in rc.
step() {
	local name=$1 dir=$2
	shift 2
	echo "==> kernelvm: $name" | tee -a /kernelvm/test.log
	local start=$SECONDS
	(cd "$dir" && exec "$@") 2>&1 | tee -a /kernelvm/test.log
	local r=${PIPESTATUS[0]}
	echo "<== kernelvm: $name: exit $r after $((SECONDS - start))s" | tee -a /kernelvm/test.log
	if [ "$r" -ne 0 ] && [ "$rc" -eq 0 ]; then
		rc=$r
	fi
}

# RG_STEPS (from /kernelvm/env): "name|dir|args", args split on spaces.
for s in "${RG_STEPS[@]}"; do
	IFS='|' read -r name dir args <<<"$s"
	# shellcheck disable=SC2086
	step "$name" "$dir" $args
done
echo "$rc" >/kernelvm/rc
echo "kernelvm: done, exit $rc"
