#!/usr/bin/env bash
# kernbench for scripts/compare.py: the RFC's kernel-build benchmark, with
# every process of the build (make, sh, gcc, cc1, as, ld ...) running under
# the allocator being measured.
#
# usage: scripts/kernbench.sh prepare CACHE          once: unpack, configure,
#                                               warm-up build, make clean
#        scripts/kernbench.sh run CACHE OUT [VAR=VALUE ...]
#                                               one timed build; VAR=VALUE
#                                               (LD_PRELOAD=..., MAGPAGE_CONF=...)
#                                               are exported to make and so to
#                                               every process under it
#
# The source is Debian's linux-source package (/usr/src/linux-source-*.tar.xz;
# scripts/install-deps.sh bench), unpacked once into CACHE and reused.  The
# configuration is tinyconfig made 64-bit with a block layer, ext4, TCP/IP,
# PCI and virtio added (KB_OPTIONS below): `make -j$(nproc) vmlinux` of it
# takes about 2-3 minutes on 2 cores (a plain tinyconfig is under 1.5).
# With KBUILD_BUILD_TIMESTAMP/USER/HOST/VERSION fixed the build is
# reproducible, so vmlinux must have the same sha256 whatever allocator
# built it; compare.py fails loudly when it does not.
#
# run writes OUT as "key value" lines: elapsed, user, system (seconds, from
# /usr/bin/time, i.e. wait4 of make and everything it waited for), cpu (%),
# sha256 (of vmlinux), objects (compiled), and then runs make clean
# (untimed), as the RFC's runs did.  Exit status: 0; 1 when the build fails
# or ld.so could not preload the library into some process (it only warns,
# and the process would run unpreloaded).
#
# Environment: KB_JOBS (default nproc), KB_CONFIG=tiny for plain tinyconfig.
# Holds a lock on CACHE while it works (flock), so two comparisons sharing
# CACHE take turns instead of cleaning each other's build.
case "${1:-}" in -h|--help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail

die() { echo "kernbench: FAILED: $*" >&2; exit 1; }
[ $# -ge 2 ] || { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
cmd=$1
mkdir -p "$2"
cache=$(cd "$2" && pwd)
shift 2
jobs=${KB_JOBS:-$(nproc)}

# Added to tinyconfig.  Each grows the build by a subsystem whose code is
# ordinary kernel C, so the mix of compiler work stays like a real build.
KB_OPTIONS="64BIT SMP PRINTK BLOCK EXT4_FS NET INET UNIX PCI PROC_FS SYSFS
TTY SERIAL_8250 SERIAL_8250_CONSOLE FUTEX EPOLL MULTIUSER SHMEM TMPFS
BINFMT_ELF VIRTIO_MENU VIRTIO VIRTIO_PCI VIRTIO_BLK NETDEVICES VIRTIO_NET"
[ "${KB_CONFIG:-}" != tiny ] || KB_OPTIONS=""
# shellcheck disable=SC2086  # word splitting joins the lines
KB_OPTIONS=$(echo $KB_OPTIONS)

# One user of CACHE at a time: a second comparison running kernbench on the
# same source tree would clean it under the first one's build.  Waits for
# the other to finish (its builds would skew the timing anyway).
exec 9>>"$cache/.kernbench.lock"
if ! flock -n 9; then
	echo "kernbench: waiting for another kernbench using $cache to finish" >&2
	flock 9
fi

# A reproducible build: these end up in vmlinux (init/version.c).
export KBUILD_BUILD_TIMESTAMP='Wed May  8 00:00:00 UTC 2013'
export KBUILD_BUILD_USER=magpage KBUILD_BUILD_HOST=kernbench KBUILD_BUILD_VERSION=1
export LC_ALL=C

srcdir() {
	local d
	d=$(find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*' | sort | tail -1)
	[ -n "$d" ] || die "no unpacked source in $cache (run: $0 prepare $cache)"
	echo "$d"
}

case $cmd in
prepare)
	tarball=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -1 || true)
	[ -n "$tarball" ] || die "no /usr/src/linux-source-*.tar.xz (apt install linux-source; scripts/install-deps.sh bench)"
	for p in gcc make flex bison bc xz; do
		command -v "$p" >/dev/null || die "$p is not installed (scripts/install-deps.sh bench)"
	done
	[ -e /usr/include/libelf.h ] || die "libelf-dev is not installed (scripts/install-deps.sh bench)"
	name=$(basename "$tarball" .tar.xz)
	if [ ! -e "$cache/$name/.kernbench-unpacked" ]; then
		echo "kernbench: unpacking $tarball into $cache (once)" >&2
		rm -rf "${cache:?}/$name"
		tar -C "$cache" -xJf "$tarball"
		touch "$cache/$name/.kernbench-unpacked"
	fi
	cd "$cache/$name"
	want="tinyconfig + ${KB_OPTIONS:-nothing}"
	if [ ! -e .kernbench-config ] || [ "$(cat .kernbench-config)" != "$want" ]; then
		echo "kernbench: configuring: $want" >&2
		make -s mrproper
		make -s tinyconfig >/dev/null
		opts=()
		for o in $KB_OPTIONS; do opts+=(--enable "$o"); done
		[ ${#opts[@]} -eq 0 ] || scripts/config "${opts[@]}"
		make -s olddefconfig >/dev/null
		for o in $KB_OPTIONS; do
			grep -q "^CONFIG_$o=y" .config || die "CONFIG_$o did not stay enabled"
		done
		cp .config .config.kernbench
		echo "$want" >.kernbench-config
	fi
	cmp -s .config .config.kernbench || die ".config changed since prepare; rm $PWD/.kernbench-config and prepare again"
	echo "kernbench: warm-up build (untimed, not preloaded)" >&2
	make -s clean
	t0=$SECONDS
	make -j"$jobs" vmlinux >"$cache/warmup.log" 2>&1 || { tail -20 "$cache/warmup.log" >&2; die "warm-up build failed"; }
	kv=$(make -s kernelversion)
	echo "built: Linux $kv ($name from $(basename "$tarball")), $want;" \
	     "$(grep -c '=y$' .config) options =y; make -j$jobs vmlinux:" \
	     "$(grep -c '^  CC ' "$cache/warmup.log") C files compiled," \
	     "vmlinux $(stat -c %s vmlinux) bytes, sha256 $(sha256sum vmlinux | cut -c1-16)...;" \
	     "warm-up took $((SECONDS - t0)) s"
	make -s clean
	;;
run)
	[ $# -ge 1 ] || die "run needs CACHE OUT [VAR=VALUE ...]"
	out=$1
	shift
	for a in "$@"; do
		case $a in *=*) ;; *) die "'$a' is not VAR=VALUE" ;; esac
	done
	src=$(srcdir)
	cd "$src"
	cmp -s .config .config.kernbench || die ".config changed since prepare (run: $0 prepare $cache)"
	[ ! -e vmlinux ] || make -s clean
	log=$out.log
	rc=0
	/usr/bin/time -f 'elapsed %e\nuser %U\nsystem %S\ncpu %P' -o "$out.time" \
		env "$@" make -j"$jobs" vmlinux >"$log" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || { tail -20 "$log" >&2; die "make vmlinux exited with $rc (log: $log)"; }
	if grep -n 'ld\.so\|cannot be preloaded' "$log" >&2; then
		die "the allocator was not preloaded into every process (log: $log)"
	fi
	[ -f vmlinux ] || die "no vmlinux after a successful make"
	{
		sed 's/%$//' "$out.time"
		echo "sha256 $(sha256sum vmlinux | cut -d' ' -f1)"
		echo "objects $(grep -c '^  CC ' "$log" || true)"
	} >"$out"
	rm -f "$out.time"
	make -s clean
	;;
*)
	die "unknown command '$cmd' (prepare or run)"
	;;
esac
