#!/usr/bin/env bash
# scripts/compare.py --quick end to end, as small as it goes: glibc against
# libmagpage, one repetition, pagealloc at two batch sizes and xthread's
# server mode for 0.2 s, on one thread.  Passes when it exits 0, printed a
# pagealloc and an xthread table with both columns, and wrote results.json
# and summary.md with samples from both allocators.
#
# usage: compare_smoke.sh path/to/compare.py BUILD_DIR path/to/libmagpage.so OUT_DIR
set -euo pipefail
compare=$1 build=$2 lib=$3 out=$4
rm -rf "$out" "$out.old"
python3 "$compare" --quick --bench pagealloc,xthread --alloc glibc,magpage --reps 1 \
	--baseline glibc --build "$build" --lib "$lib" --threads 1 \
	--pagealloc-batches 1,64 --pagealloc-args "-r 3 -i 10" \
	--xthread-modes server --xthread-seconds 0.2 --out "$out" \
	| tee "$out.stdout"
grep -q '^order-0 total-64 .*(  0.00%)' "$out/tables.txt" \
	|| { echo "compare_smoke: no pagealloc table row in $out/tables.txt" >&2; exit 1; }
grep -q '^server-1t Mops/s .*(  0.00%)' "$out/tables.txt" \
	|| { echo "compare_smoke: no xthread table row in $out/tables.txt" >&2; exit 1; }
grep -q '^| server-1t peak RSS MiB | ' "$out/summary.md" \
	|| { echo "compare_smoke: no xthread-memory row in $out/summary.md" >&2; exit 1; }
python3 - "$out/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for bench in ("pagealloc", "xthread"):
    got = {s["alloc"] for s in r["samples"] if s["bench"] == bench}
    assert got == {"glibc", "magpage"}, f"{bench} samples from {got}"
assert not r["failures"], r["failures"]
assert r["machine"]["nproc"] and r["machine"]["allocators"], "machine info missing"
print(f"compare_smoke: results.json has {len(r['samples'])} samples from {sorted(got)}")
PY
