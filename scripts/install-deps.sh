#!/usr/bin/env bash
# Installs the Debian packages libmagpage needs to build, test and benchmark.
# Idempotent: packages already present are not touched, and nothing is
# downloaded from anywhere but Debian's archive.
# usage: scripts/install-deps.sh [main|bench]
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh main     also gnuplot, for the main command's
#                                    plots, and the peer allocators it
#                                    compares against (mimalloc, tcmalloc)
#   scripts/install-deps.sh bench    also the workloads (scripts/compare.py,
#                                    kernbench)
set -euo pipefail

case "${1:-}" in
-h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
''|main|bench) ;;
*) echo "install-deps: unknown set '$1' (none, main or bench; --help)" >&2; exit 2 ;;
esac

want=(build-essential cmake pkg-config libcriterion-dev
      libjemalloc2 libjemalloc-dev liburing-dev numactl libnuma-dev
      python3 git sqlite3 postgresql redis-server redis-tools time
      procps valgrind
      systemtap-sdt-dev bpftrace   # USDT probes: <sys/sdt.h>; tests/probes
      clang libclang-rt-dev)   # tests/fuzz; clang only recommends libFuzzer's runtime
want+=(tmux)   # magpage-top's screen test (tests/integration/live_tmux.sh)
if [ "${1:-}" = main ] || [ "${1:-}" = bench ]; then
  # The main command draws its plots, and compares against the fastest
  # peers beside jemalloc (scripts/harness_allocs.py).
  want+=(gnuplot-nox libmimalloc2.0 libgoogle-perftools4)
fi
if [ "${1:-}" = bench ]; then
  # kernbench's kernel source and the packages a tinyconfig vmlinux build
  # needs (scripts/kernbench.sh).
  want+=(hyperfine linux-source xz-utils bc flex bison libelf-dev libssl-dev)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start their services; tests start their own on private
# sockets, so stop the system ones to keep the machine quiet.
for svc in redis-server postgresql; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
