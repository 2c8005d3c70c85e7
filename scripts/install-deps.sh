#!/usr/bin/env bash
# Installs the Debian packages libmagpage needs to build, test and benchmark.
# Idempotent: packages already present are not touched, and nothing is
# downloaded from anywhere but Debian's archive.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh main     also gnuplot, for the main command's plots
#   scripts/install-deps.sh bench    also the peer allocators and workloads
#                                    (scripts/compare.py, kernbench)
set -euo pipefail

want=(build-essential cmake pkg-config libcriterion-dev
      libjemalloc2 libjemalloc-dev liburing-dev numactl libnuma-dev
      python3 git sqlite3 postgresql redis-server redis-tools time
      procps valgrind)
if [ "${1:-}" = main ] || [ "${1:-}" = bench ]; then
  want+=(gnuplot-nox)    # the main command draws its plots
fi
if [ "${1:-}" = bench ]; then
  # The peer allocators, plots, and kernbench's kernel source and the
  # packages a tinyconfig vmlinux build needs (scripts/kernbench.sh).
  want+=(libmimalloc2.0 libgoogle-perftools4 gnuplot-nox hyperfine
         linux-source xz-utils bc flex bison libelf-dev libssl-dev)
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
