#!/usr/bin/env bash
# The README's main command: install what is missing, build Release into
# build/, then run one real program — gcc -O2 compiling a large generated,
# kernel-style C file (cc1 makes ~8.8 M malloc-family calls, ~173 K of them
# page-sized, mostly 8032 bytes as in a kernel build) — under libmagpage,
# glibc and jemalloc, interleaved, 3 times each; then the pagealloc quick
# check (scripts/bench-quick.sh).  Everything lands in results/.
#
#   scripts/main.sh
#
# Environment: MAIN_REPS (3), MAIN_FUNCS (1000: size of the generated file),
# MAIN_SKIP_QUICK=1 to leave out the quick check.  About 1.5 minutes on 2
# cores, clean build included.  Exits non-zero if the build fails, a compile
# fails under any allocator, the object files differ between allocators, or
# the quick check fails.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
reps=${MAIN_REPS:-3}
funcs=${MAIN_FUNCS:-1000}
results=results
work=$results/main
stats_file=$results/main-stats.txt
lib=$repo/build/libmagpage.so
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2

say() { printf '\n== %s\n' "$*"; }

say "dependencies (scripts/install-deps.sh)"
scripts/install-deps.sh

say "build: Release into build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
[ -f "$lib" ] || { echo "main: the build did not produce $lib" >&2; exit 1; }

say "main job: gcc -O2 -c on a generated kernel-style file ($funcs functions), $reps rounds"
rm -rf "$work"
mkdir -p "$work"
: >"$stats_file"
python3 bench/gen-cc1-tu.py "$funcs" >"$work/tu.c"
echo "input: $work/tu.c ($(wc -c <"$work/tu.c") bytes); gcc: $(gcc --version | head -1)"

# name | LD_PRELOAD | MAGPAGE_CONF ('-' = unset)
allocs=("libmagpage|$lib|stats:1,stats_file:$stats_file" "glibc|-|-")
if [ -f "$jemalloc" ]; then
	allocs+=("jemalloc|$jemalloc|-")
else
	echo "main: skipping jemalloc: $jemalloc not installed" >&2
fi

# One untimed compile: warms the page cache and gives the reference object.
gcc -O2 -c "$work/tu.c" -o "$work/reference.o"

fail=0
for ((r = 1; r <= reps; r++)); do
	for a in "${allocs[@]}"; do
		IFS='|' read -r name pre conf <<<"$a"
		envs=(env -u LD_PRELOAD -u MAGPAGE_CONF)
		[ "$pre" = - ] || envs+=("LD_PRELOAD=$pre")
		[ "$conf" = - ] || envs+=("MAGPAGE_CONF=$conf")
		out=$work/$name.r$r
		before=$(wc -c <"$stats_file")
		rc=0
		# %e elapsed, %U user, %S system, %M peak RSS (KiB, largest of
		# gcc/cc1/as), %R minor and %F major page faults (all processes).
		/usr/bin/time -f '%e %U %S %M %R %F' -o "$out.time" \
			"${envs[@]}" gcc -O2 -c "$work/tu.c" -o "$out.o" \
			2>"$out.err" || rc=$?
		if [ "$rc" -ne 0 ] || [ -s "$out.err" ]; then
			# A failed preload only warns on stderr, so stderr must be empty.
			echo "main: FAILED: gcc under $name, round $r (exit $rc):" >&2
			tail -20 "$out.err" | sed 's/^/    /' >&2
			fail=1
			continue
		fi
		if ! cmp -s "$out.o" "$work/reference.o"; then
			echo "main: FAILED: $out.o differs from $work/reference.o" \
			     "(gcc under $name produced a different object)" >&2
			fail=1
			continue
		fi
		if [ "$name" = libmagpage ] && [ "$(wc -c <"$stats_file")" -le "$before" ]; then
			echo "main: FAILED: libmagpage wrote no statistics to $stats_file;" \
			     "was it preloaded?" >&2
			fail=1
		fi
		rm -f "$out.o" "$out.err"
		echo "round $r: $name $(cat "$out.time")"
	done
done
[ "$fail" -eq 0 ] && echo "all object files identical to $work/reference.o"

python3 - "$work" "$reps" "${allocs[@]}" <<'EOF' | tee "$results/main.txt"
import glob, os, statistics, sys

work, reps, names = sys.argv[1], int(sys.argv[2]), [a.split('|')[0] for a in sys.argv[3:]]
runs = {}
for n in names:
    for p in sorted(glob.glob(os.path.join(work, f"{n}.r*.time"))):
        with open(p) as f:
            v = f.read().split()
        if len(v) == 6:
            runs.setdefault(n, []).append([float(x) for x in v])

def cell(vals, fmt):
    m = statistics.median(vals)
    return f"{fmt % m} [{fmt % min(vals)}..{fmt % max(vals)}]", m

base = statistics.median(r[0] for r in runs["jemalloc"]) if "jemalloc" in runs else None
head = ["allocator", "runs", "elapsed s", "vs jemalloc", "user s", "sys s",
        "peak RSS MiB", "minor faults", "major"]
rows = []
for n in names:
    v = runs.get(n)
    if not v:
        rows.append([n, "0"] + ["FAILED"] + [""] * 6)
        continue
    col = list(zip(*v))
    el, m = cell(col[0], "%.2f")
    rows.append([n, str(len(v)), el, f"{m / base:.2f}x" if base else "-",
                 cell(col[1], "%.2f")[0], cell(col[2], "%.2f")[0],
                 cell([x / 1024 for x in col[3]], "%.1f")[0],
                 cell(col[4], "%.0f")[0], "%.0f" % statistics.median(col[5])])
print(f"# gcc -O2 -c of the generated file: median of {reps} interleaved rounds "
      f"[min..max]; elapsed lower is better, ratio = median / jemalloc's median")
w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
fmt = lambda r: "  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r))
print(fmt(head))
print("  ".join("-" * x for x in w))
for r in rows:
    print(fmt(r))
# gcc is single-threaded: elapsed well above user + sys means it waited for
# a CPU, so the machine was busy and elapsed is the less reliable column.
busy = [f"{n} r{i + 1}" for n in names for i, v in enumerate(runs.get(n, []))
        if v[0] > 1.15 * (v[1] + v[2])]
if busy:
    print(f"# note: {len(busy)} run(s) waited for a CPU over 15% of their elapsed time "
          f"({', '.join(busy)}): the machine was busy; compare user + sys")
EOF

say "libmagpage statistics: cc1 of each round, then its last report in full"
echo "(every preloaded process — gcc, cc1, as — appended its report to $repo/$stats_file)"
python3 scripts/stats-summary.py "$stats_file" cc1 | tee "$results/main-stats-summary.txt"

if [ "${MAIN_SKIP_QUICK:-0}" != 1 ]; then
	say "pagealloc quick check (scripts/bench-quick.sh)"
	scripts/bench-quick.sh "$lib" "$repo/build/bench/bench_pagealloc" || fail=1
fi

say "results"
echo "main job table:        $repo/$results/main.txt"
echo "libmagpage statistics: $repo/$stats_file (MAGPAGE_CONF=stats:1,stats_file:$stats_file)"
echo "  cc1 summary:         $repo/$results/main-stats-summary.txt"
[ "${MAIN_SKIP_QUICK:-0}" = 1 ] ||
	echo "quick check:           $repo/$results/bench-quick.txt (raw: $repo/$results/bench-quick/)"
exit "$fail"
