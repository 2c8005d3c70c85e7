#!/bin/sh
# run_fuzzer.sh FUZZER SEEDS WORK SECONDS [libFuzzer options...]
#
# Runs a libFuzzer target for SECONDS on a copy of the committed seed corpus
# in SEEDS, so that the inputs it adds land in WORK (in the build tree) and
# the repository is never written.  A crash input is saved in WORK/artifacts;
# the exit status is libFuzzer's, non-zero on any finding.
set -eu
fuzzer=$1 seeds=$2 work=$3 secs=$4
shift 4
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"
exec "$fuzzer" -max_total_time="$secs" -print_final_stats=1 \
	-artifact_prefix="$work/artifacts/" "$@" "$work/corpus"
