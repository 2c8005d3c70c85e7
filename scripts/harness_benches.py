"""The benchmarks scripts/compare.py runs, one class each.

A benchmark prepares once (prepare), runs once per (repetition, allocator)
(run -> samples), then turns all samples into mmtests-style tables (tables)
and plot data (plots).  A sample is
    {"metric": str, "params": {...}, "value": float | str}
and compare.py adds bench, alloc and rep.  A run that fails (non-zero exit,
timeout, a check of the program's own output) raises RunFailed; the other
runs go on and compare.py exits 1 at the end.

Table rows are (label, {alloc: [values]}, better, how): how turns the list
(one value per repetition or iteration) into the printed number; the
values themselves give the spread (coefficient of variation).
"""

import os
import shlex
import subprocess

from harness_allocs import Alloc
from mmtests_table import HIGHER, LOWER, mean, median, summary

PRELOAD_WARNING = ("ld.so", "cannot be preloaded")

# Peak RSS (KiB, /usr/bin/time %M) of every program run_program ran under an
# allocator since compare.py last emptied it, keyed by the run's log name:
# compare.py turns them into peak_rss_kib samples, shown in a "-rss" table
# under each benchmark.
RSS_RUNS = []
TIME = "/usr/bin/time"


class RunFailed(Exception):
    """A run that crashed, hung or produced wrong output; samples holds
    what the run measured before it failed (kept, but flagged)."""

    def __init__(self, msg, samples=None):
        super().__init__(msg)
        self.samples = samples or []


class Skip(Exception):
    """A benchmark that cannot run here (missing program or input)."""


def run_program(cmd, alloc, timeout, log, cwd=None, env_extra=None):
    """Runs cmd under alloc; returns stdout.  stdout and stderr also go to
    log (+ .err).  Raises RunFailed on a non-zero exit, a timeout or a
    preload that ld.so refused."""
    # No allocator: a script that preloads only its own measured program.
    env = (alloc or Alloc("none")).environ()
    env.update(env_extra or {})
    rss_file = None
    if alloc is not None and os.access(TIME, os.X_OK):
        rss_file = log + ".rss"
        cmd = [TIME, "-f", "%M", "-o", rss_file, "--"] + list(cmd)
    with open(log, "w") as out, open(log + ".err", "w") as err:
        out.write(f"# {' '.join(shlex.quote(c) for c in cmd)}\n")
        out.flush()
        try:
            p = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=err, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise RunFailed(f"timed out after {timeout} s (hung?): {' '.join(cmd)}; "
                            f"see {log}.err")
        out.write(p.stdout)
    with open(log + ".err") as f:
        errtext = f.read()
    if p.returncode != 0:
        tail = "\n    ".join(errtext.strip().splitlines()[-8:])
        how = (f"killed by signal {-p.returncode}" if p.returncode < 0
               else f"exit status {p.returncode}")
        raise RunFailed(f"{os.path.basename(cmd[0])} {how}:\n    {tail}")
    if alloc is not None and alloc.preload and \
            any(w in errtext for w in PRELOAD_WARNING):
        raise RunFailed(f"ld.so did not preload {alloc.preload}: {errtext.strip()}")
    if rss_file:
        try:
            with open(rss_file) as f:
                RSS_RUNS.append((os.path.splitext(os.path.basename(log))[0],
                                 float(f.read().split()[-1])))
        except (OSError, ValueError, IndexError):
            pass
    return p.stdout


def csv_lines(text):
    """Non-comment, non-empty lines split on commas."""
    return [ln.split(",") for ln in text.splitlines()
            if ln.strip() and not ln.startswith("#")]


def values(samples, alloc, metric, **params):
    """The values of one allocator's samples matching metric and params."""
    return [s["value"] for s in samples
            if s["alloc"] == alloc and s["metric"] == metric
            and all(s["params"].get(k) == v for k, v in params.items())]


def param_values(samples, key, metric=None):
    return sorted({s["params"][key] for s in samples
                   if key in s["params"] and (metric is None or s["metric"] == metric)})


class Bench:
    name = ""
    spread = True           # print a spread table next to the main one
    stop_after_failure = True   # a failed (bench, alloc) is not run again

    def __init__(self, ctx):
        self.ctx = ctx

    def prepare(self):
        """Once, before any run; returns a line saying what will run."""
        return None

    def run(self, alloc, rep, rawdir):
        raise NotImplementedError

    def tables(self, samples, columns):
        """[(title, description, rows, prec)]"""
        return []

    def plots(self, samples, columns):
        """[plot spec dicts for harness_plots]"""
        return []

    def check(self, samples):
        """Cross-allocator checks after all runs; returns failure strings."""
        return []

    def binary(self, name):
        p = os.path.join(self.ctx.bench_dir, name)
        if not os.access(p, os.X_OK):
            raise Skip(f"{p} not built (cmake --build {self.ctx.build_dir})")
        return p


# ------------------------------------------------------------- pagealloc

class PageAlloc(Bench):
    """bench/pagealloc.c: cycles per block, alloc/free/total vs batch."""
    name = "pagealloc"

    def prepare(self):
        self.bin = self.binary("bench_pagealloc")
        c = self.ctx
        self.batches = c.pagealloc_batches or (
            "1,2,4,8,16,32,64,128,256,1024,4096,16384" if c.quick else None)
        self.args = shlex.split(c.pagealloc_args or "")
        return (f"bench_pagealloc, batches {self.batches or '1,2,4..16384'}, "
                f"threads {','.join(map(str, c.threads))} {' '.join(self.args)}")

    def run(self, alloc, rep, rawdir):
        out = []
        for t in self.ctx.threads:
            cmd = [self.bin, "-t", str(t)] + (["-b", self.batches] if self.batches else []) \
                + self.args
            text = run_program(cmd, alloc, 1800, os.path.join(rawdir, f"t{t}.csv"))
            if "all blocks verified" not in text:
                raise RunFailed("bench_pagealloc did not report its blocks verified")
            for tok in text.split():
                for key in ("tsc_hz", "outer"):
                    if tok.startswith(key + "="):
                        out.append({"metric": key, "params": {"threads": t},
                                    "value": float(tok[len(key) + 1:])})
            for row in csv_lines(text):
                b, size = int(row[0]), int(row[2])
                for i, m in ((3, "alloc"), (4, "free"), (5, "total")):
                    out.append({"metric": m, "params": {"batch": b, "threads": t,
                                                        "size": size},
                                "value": float(row[i])})
        return out

    def tables(self, samples, columns):
        res = []
        for t in param_values(samples, "threads", "total"):
            sizes = param_values([s for s in samples if s["params"].get("threads") == t],
                                 "size", "total")
            for size in sizes:
                order = (size // 4096).bit_length() - 1 if size >= 4096 else 0
                rows = []
                for m in ("alloc", "free", "total"):
                    for b in param_values(samples, "batch", m):
                        rows.append((f"order-{order} {m}-{b}",
                                     {a: values(samples, a, m, batch=b, threads=t, size=size)
                                      for a in columns}, LOWER, mean))
                hz = [s["value"] for s in samples if s["metric"] == "tsc_hz"]
                outer = [s["value"] for s in samples if s["metric"] == "outer"]
                desc = (f"TSC cycles per {size}-byte block ({mean(hz) / 1e9:.3f} GHz), "
                        f"{t} thread{'s' if t > 1 else ''}; each cell the mean over "
                        f"repetitions of bench_pagealloc's trimmed mean "
                        f"({int(max(outer or [0]))} samples, largest dropped); "
                        f"lower is better")
                res.append((f"pagealloc-{t}t", desc, rows, 2))
        return res

    def plots(self, samples, columns):
        res = []
        for t in param_values(samples, "threads", "total"):
            series = {}
            for m in ("alloc", "free", "total"):
                for a in columns:
                    pts = [(b, mean(values(samples, a, m, batch=b, threads=t)))
                           for b in param_values(samples, "batch", m)]
                    series[(m, a)] = [(x, y) for x, y in pts if y is not None]
            res.append({"kind": "pagealloc", "name": f"pagealloc-{t}t",
                        "title": f"pagealloc, {t} thread{'s' if t > 1 else ''}: "
                                 f"cycles per page vs batch",
                        "series": series, "columns": columns})
        return res


# ------------------------------------------------------------------- pft

class Pft(Bench):
    """bench/pft.c: faults per CPU-second and per wall second vs tasks."""
    name = "pft"

    def prepare(self):
        self.bin = self.binary("bench_pft")
        c = self.ctx
        if c.pft_mem:
            self.mem = c.pft_mem
        elif c.quick:
            self.mem = "256m"
        else:
            # The RFC's MemTotal/5, rounded down to MiB.
            with open("/proc/meminfo") as f:
                kib = next(int(ln.split()[1]) for ln in f if ln.startswith("MemTotal:"))
            self.mem = f"{kib // 5 // 1024}m"
        self.iters = c.pft_iters or (3 if c.quick else 5)
        self.modes = c.pft_modes or (["threads"] if c.quick else ["threads", "processes"])
        return (f"bench_pft -m {self.mem} -r {self.iters}, {'/'.join(self.modes)} "
                f"{','.join(map(str, c.threads))}")

    def run(self, alloc, rep, rawdir):
        out = []
        for mode in self.modes:
            for t in self.ctx.threads:
                flag = "-t" if mode == "threads" else "-p"
                text = run_program([self.bin, flag, str(t), "-m", self.mem,
                                    "-r", str(self.iters)], alloc, 1800,
                                   os.path.join(rawdir, f"{mode}{t}.csv"))
                if "all pages verified" not in text:
                    raise RunFailed("bench_pft did not report its pages verified")
                for row in csv_lines(text):
                    pages, minflt = float(row[5]), float(row[6])
                    p = {"mode": mode, "tasks": t}
                    for i, m in ((11, "faults_per_cpu"), (12, "faults_per_sec"),
                                 (13, "pages_per_sec"), (10, "wall_s")):
                        out.append({"metric": m, "params": p, "value": float(row[i])})
                    out.append({"metric": "cpu_s", "params": p,
                                "value": float(row[8]) + float(row[9])})
                    out.append({"metric": "minflt_per_page", "params": p,
                                "value": minflt / pages if pages else 0.0})
        return out

    def tables(self, samples, columns):
        res = []
        for mode in param_values(samples, "mode"):
            rows = []
            for m, label, better in (("faults_per_cpu", "Faults/cpu", HIGHER),
                                     ("faults_per_sec", "Faults/sec", HIGHER),
                                     ("pages_per_sec", "Pages/sec", HIGHER),
                                     ("minflt_per_page", "Kfaults/page", LOWER)):
                for t in param_values(samples, "tasks", m):
                    rows.append((f"{label} {t}",
                                 {a: values(samples, a, m, mode=mode, tasks=t)
                                  for a in columns}, better, mean))
            desc = (f"{mode}: Faults/* = kernel-counted minor faults (getrusage) per "
                    f"CPU-second (user+sys of all tasks) and per wall second, "
                    f"Pages/sec = pages written per wall second, Kfaults/page = kernel "
                    f"faults per page written; mean of every iteration of every "
                    f"repetition; higher is better except Kfaults/page")
            res.append((f"pft-{mode}", desc, rows, 4))
        return res

    def plots(self, samples, columns):
        res = []
        for mode in param_values(samples, "mode"):
            series = {}
            for a in columns:
                pts = [(t, mean(values(samples, a, "faults_per_sec", mode=mode, tasks=t)))
                       for t in param_values(samples, "tasks")]
                series[a] = [(x, y) for x, y in pts if y is not None]
            res.append({"kind": "lines", "name": f"pft-{mode}",
                        "title": f"pft ({mode}): faults per second vs tasks",
                        "xlabel": mode, "ylabel": "faults / wall second",
                        "logx": False, "series": series})
        return res


# --------------------------------------------------------------- xthread

XTHREAD_MODES = ("server", "prodcons", "random", "remote")
XTHREAD_UNITS = {"server": "Mops/s", "prodcons": "Mobj/s", "random": "Mops/s"}


class XThread(Bench):
    """bench/xthread.c (issue 9's cross-thread patterns: server, prodcons,
    random), one process per mode and thread count so that each has its own
    peak RSS, and bench_pagealloc -m remote (one thread allocates a batch,
    its partner frees it) at even thread counts.  Cells are medians over
    repetitions."""
    name = "xthread"

    def prepare(self):
        c = self.ctx
        self.modes = c.xthread_modes or list(XTHREAD_MODES)
        bad = [m for m in self.modes if m not in XTHREAD_MODES]
        if bad:
            raise Skip(f"unknown xthread mode(s) {','.join(bad)}; known: "
                       f"{','.join(XTHREAD_MODES)}")
        if any(m != "remote" for m in self.modes):
            self.bin = self.binary("bench_xthread")
        if "remote" in self.modes:
            self.pagealloc = self.binary("bench_pagealloc")
        self.seconds = c.xthread_seconds or (0.5 if c.quick else 2.0)
        self.args = shlex.split(c.xthread_args or "")
        self.batches = c.xthread_remote_batches or "1,64,1024"
        self.runs = []      # (mode, threads)
        for m in self.modes:
            for t in c.threads:
                if (m == "prodcons" and t < 2) or (m == "remote" and t % 2):
                    continue
                self.runs.append((m, t))
        if not self.runs:
            raise Skip(f"no xthread run fits threads {c.threads} (prodcons "
                       f"needs 2 or more, remote an even count)")
        return (f"bench_xthread -d {self.seconds} {' '.join(self.args)}, "
                f"bench_pagealloc -m remote -b {self.batches}: "
                + " ".join(f"{m}-{t}t" for m, t in self.runs))

    def run(self, alloc, rep, rawdir):
        out, failures = [], []
        for m, t in self.runs:
            log = os.path.join(rawdir, f"{m}-t{t}.csv")
            try:
                if m == "remote":
                    out.extend(self._remote(alloc, t, log))
                else:
                    out.extend(self._xthread(alloc, m, t, log))
            except RunFailed as e:
                failures.append(f"{m} -t {t}: {e}")
        if failures:
            raise RunFailed("; ".join(failures), out)
        return out

    def _xthread(self, alloc, mode, t, log):
        cmd = [self.bin, "-m", mode, "-t", str(t), "-d", str(self.seconds)] + self.args
        text = run_program(cmd, alloc, 120 + 4 * self.seconds, log)
        if "all blocks verified" not in text:
            raise RunFailed("bench_xthread did not report its blocks verified")
        rows = csv_lines(text)
        if len(rows) != 1 or len(rows[0]) != 9:
            raise RunFailed(f"bench_xthread printed {len(rows)} result lines, "
                            f"not one of 9 fields")
        r = rows[0]
        p = {"mode": mode, "threads": t}
        return [{"metric": "mops", "params": p, "value": float(r[4])},
                {"metric": "maxrss_mib", "params": p, "value": float(r[5]) / 1024},
                {"metric": "live_mib", "params": p, "value": float(r[6]) / 1024},
                {"metric": "minflt", "params": p, "value": float(r[7])},
                {"metric": "handed_pct", "params": p, "value": float(r[8])}]

    def _remote(self, alloc, t, log):
        cmd = [self.pagealloc, "-m", "remote", "-t", str(t), "-b", self.batches,
               "-r", "5"]
        text = run_program(cmd, alloc, 600, log)
        if "all blocks verified" not in text:
            raise RunFailed("bench_pagealloc did not report its blocks verified")
        return [{"metric": "remote_ns", "params": {"mode": "remote", "threads": t,
                                                   "batch": int(r[0])},
                 "value": float(r[6])} for r in csv_lines(text)]

    def _labels(self, samples):
        """(label, metric, params) of each row, in the order of the runs."""
        rows = []
        for m in XTHREAD_MODES:
            for t in param_values([s for s in samples
                                   if s["params"].get("mode") == m], "threads"):
                if m == "remote":
                    for b in param_values([s for s in samples
                                           if s["metric"] == "remote_ns"
                                           and s["params"]["threads"] == t], "batch"):
                        rows.append((f"remote-{t}t ns/block b{b}", "remote_ns",
                                     {"mode": m, "threads": t, "batch": b}))
                else:
                    rows.append((f"{m}-{t}t {XTHREAD_UNITS[m]}", "mops",
                                 {"mode": m, "threads": t}))
        return rows

    def tables(self, samples, columns):
        speed, mem = [], []
        for label, metric, p in self._labels(samples):
            vals = {a: values(samples, a, metric, **p) for a in columns}
            speed.append((label, vals, LOWER if metric == "remote_ns" else HIGHER,
                          median))
            if metric != "mops":
                continue
            run = label.split()[0]
            for mm, what in (("maxrss_mib", "peak RSS MiB"),
                             ("live_mib", "live MiB"),
                             ("minflt", "minor faults")):
                mem.append((f"{run} {what}",
                            {a: values(samples, a, mm, **p) for a in columns},
                            LOWER, median))
        n = max([len(v) for _, vals, _, _ in speed for v in vals.values()] + [0])
        return [("xthread", f"page-sized blocks freed by other threads (bench/xthread.c; "
                            f"remote: bench_pagealloc -m remote, ns per 4 KiB "
                            f"malloc+free); median of {n} repetitions; M ops/s "
                            f"higher is better, ns lower", speed, 3),
                ("xthread-memory", "peak RSS of each run (VmHWM), requested "
                                   "bytes live at the sampled peak (the same "
                                   "workload asks for about the same under every "
                                   "allocator), minor faults; median over "
                                   "repetitions; lower is better", mem, 1)]

    def plots(self, samples, columns):
        res = []
        for m in ("server", "prodcons", "random"):
            ts = param_values([s for s in samples if s["params"].get("mode") == m],
                              "threads", "mops")
            if len(ts) < 2:
                continue
            series = {}
            for a in columns:
                pts = [(t, median(values(samples, a, "mops", mode=m, threads=t)))
                       for t in ts]
                series[a] = [(x, y) for x, y in pts if y is not None]
            res.append({"kind": "lines", "name": f"xthread-{m}",
                        "title": f"xthread {m}: throughput vs threads",
                        "xlabel": "threads", "ylabel": XTHREAD_UNITS[m],
                        "logx": False, "series": series})
        return res


# ------------------------------------------------------------- kernbench

class Kernbench(Bench):
    """scripts/kernbench.sh: a kernel build under the allocator."""
    name = "kernbench"
    spread = False          # its rows are the spread

    def prepare(self):
        if self.ctx.quick:
            raise Skip("kernbench is long: it runs only in the full comparison, "
                       "not with --quick")
        self.script = os.path.join(self.ctx.repo, "scripts", "kernbench.sh")
        self.cache = self.ctx.kernbench_cache
        r = subprocess.run([self.script, "prepare", self.cache], capture_output=True,
                           text=True, check=False)
        with open(os.path.join(self.ctx.raw, "kernbench-prepare.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode != 0:
            raise Skip("kernbench.sh prepare failed:\n    " +
                       "\n    ".join((r.stdout + r.stderr).strip().splitlines()[-6:]))
        return r.stdout.strip()

    def run(self, alloc, rep, rawdir):
        out_file = os.path.join(rawdir, "build.txt")
        run_program([self.script, "run", self.cache, out_file] + alloc.assignments(),
                    None, 3600, os.path.join(rawdir, "kernbench.log"))
        kv = {}
        with open(out_file) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                kv[k] = v
        out = [{"metric": m, "params": {}, "value": float(kv[m])}
               for m in ("user", "system", "elapsed", "cpu")]
        out.append({"metric": "sha256", "params": {}, "value": kv["sha256"]})
        return out

    def tables(self, samples, columns):
        rows = []
        for m, label in (("user", "User"), ("system", "System"),
                         ("elapsed", "Elapsed"), ("cpu", "CPU")):
            for stat in ("min", "mean", "stddev", "max", "range"):
                rows.append((f"{label} {stat}",
                             {a: values(samples, a, m) for a in columns}, LOWER,
                             (lambda st: lambda xs: summary(xs)[st])(stat)))
        n = max([len(values(samples, a, "elapsed")) for a in columns] + [0])
        desc = (f"seconds (CPU: percent) of make -j{os.cpu_count()} vmlinux over {n} "
                f"runs, every process preloaded; all rows lower is better, as in "
                f"the RFC (so more spread, or more CPU use, reads negative)")
        return [("kernbench", desc, rows, 2)]

    def check(self, samples):
        shas = {}
        for s in samples:
            if s["metric"] == "sha256":
                shas.setdefault(s["value"], []).append(f"{s['alloc']} r{s['rep']}")
        if len(shas) > 1:
            return ["kernbench: vmlinux differs between builds: " +
                    "; ".join(f"{sha[:16]}... from {', '.join(who)}"
                              for sha, who in shas.items())]
        return []


# ----------------------------------------------------------------- uring

class Uring(Bench):
    """bench/uring.c: MB/s and latency of page-sized buffered I/O."""
    name = "uring"

    def prepare(self):
        self.bin = self.binary("bench_uring")
        c = self.ctx
        self.mem = c.uring_mem or ("64m" if c.quick else "512m")
        self.iters = 3 if c.quick else 5
        return f"bench_uring -m {self.mem} -r {self.iters} (file in {c.tmp})"

    def run(self, alloc, rep, rawdir):
        r = subprocess.run([self.bin, "-m", "4k", "-r", "1", "-d", self.ctx.tmp],
                           capture_output=True, text=True, check=False)
        if r.returncode == 77:
            raise Skip(r.stderr.strip())
        text = run_program([self.bin, "-m", self.mem, "-r", str(self.iters),
                            "-d", self.ctx.tmp], alloc, 1800,
                           os.path.join(rawdir, "uring.csv"))
        out = []
        for row in csv_lines(text):
            p = {"phase": row[1]}
            for i, m in ((8, "mb_per_s"), (9, "p50_us"), (10, "p99_us")):
                out.append({"metric": m, "params": p, "value": float(row[i])})
        return out

    def tables(self, samples, columns):
        rows = []
        for ph in ("write", "read"):
            for m, label, better in (("mb_per_s", "MB/s", HIGHER),
                                     ("p50_us", "p50 us", LOWER),
                                     ("p99_us", "p99 us", LOWER)):
                rows.append((f"{ph} {label}", {a: values(samples, a, m, phase=ph)
                                               for a in columns}, better, mean))
        desc = ("page-sized buffers malloc'ed at submission, freed by the reaper "
                "thread on the other CPU; MB/s higher is better, completion "
                "latency (us) lower; mean over iterations and repetitions")
        return [("uring", desc, rows, 2)]


# -------------------------------------------------------------- sigbench

class SigBench(Bench):
    """bench/sigbench.c (signals issue): throughput vs signal rate."""
    name = "sigbench"

    def prepare(self):
        self.bin = self.binary("bench_sigbench")
        c = self.ctx
        self.args = shlex.split(c.sigbench_args) if c.sigbench_args is not None else \
            (["-d", "0.3", "-R", "1", "-r", "0,1000,10000"] if c.quick else [])
        return f"bench_sigbench {' '.join(self.args)}"

    def run(self, alloc, rep, rawdir):
        text = run_program([self.bin] + self.args, alloc, 60 if self.ctx.quick else 180,
                           os.path.join(rawdir, "sigbench.csv"))
        out = []
        for row in csv_lines(text):
            if row[0] == "rate":
                continue
            rate = -1 if row[0] == "none" else int(row[0])
            out.append({"metric": "ops_per_sec", "params": {"rate": rate},
                        "value": float(row[2])})
            out.append({"metric": "handler_calls", "params": {"rate": rate},
                        "value": float(row[3])})
        return out

    def tables(self, samples, columns):
        rows = [(f"ops/s {'none' if r < 0 else str(r) + 'Hz'}",
                 {a: values(samples, a, "ops_per_sec", rate=r) for a in columns},
                 HIGHER, mean) for r in param_values(samples, "rate")]
        desc = ("malloc+free pairs per second in thread code while per-thread timer "
                "signals whose handlers allocate arrive at the given rate; higher is "
                "better ('none': no handler installed)")
        return [("sigbench", desc, rows, 0)]

    def plots(self, samples, columns):
        series = {}
        for a in columns:
            pts = [(r, mean(values(samples, a, "ops_per_sec", rate=r)))
                   for r in param_values(samples, "rate") if r >= 0]
            series[a] = [(x, y) for x, y in pts if y is not None]
        return [{"kind": "lines", "name": "sigbench",
                 "title": "sigbench: throughput vs signal rate",
                 "xlabel": "signals per second per thread", "ylabel": "ops / s",
                 "logx": False, "series": series}]


# ----------------------------------------------------------------- burst

class Burst(Bench):
    """bench/burst.c (issue 10): a burst of page-sized values, freed, then
    idle; RSS sampled every 100 ms, so what each allocator gives back, and
    when, shows.  Extra libmagpage settings (a purge) come as variants:
    --magpage-conf purge=purge_thread:1,purge_delay_ms:1000."""
    name = "burst"
    spread = False

    def prepare(self):
        self.bin = self.binary("bench_burst")
        c = self.ctx
        self.args = shlex.split(c.burst_args) if c.burst_args is not None else \
            (["-m", "128", "-i", "4"] if c.quick else ["-m", "512", "-i", "15"])
        return f"bench_burst {' '.join(self.args)}"

    def run(self, alloc, rep, rawdir):
        text = run_program([self.bin] + self.args, alloc, 600,
                           os.path.join(rawdir, "burst.csv"))
        out = []
        for row in csv_lines(text):
            out.append({"metric": "rss_mib", "params": {"t": round(float(row[0]), 1),
                                                        "phase": row[2]},
                        "value": float(row[1])})
        for line in text.splitlines():
            w = line.split()
            if line.startswith("# peak_rss_mib") and len(w) >= 5:
                out.append({"metric": "peak_mib", "params": {}, "value": float(w[2])})
                out.append({"metric": "end_mib", "params": {}, "value": float(w[4])})
        if not any(s["metric"] == "end_mib" for s in out):
            raise RunFailed("bench_burst printed no summary line", out)
        return out

    def tables(self, samples, columns):
        def idle_after(a, secs):
            """RSS of the first idle sample at or after secs of idleness."""
            res = []
            for rep in sorted({s["rep"] for s in samples if s["alloc"] == a}):
                idle = sorted((s["params"]["t"], s["value"]) for s in samples
                              if s["alloc"] == a and s["rep"] == rep and
                              s["metric"] == "rss_mib" and s["params"]["phase"] == "idle")
                if idle:
                    t0 = idle[0][0]
                    later = [v for t, v in idle if t - t0 >= secs]
                    if later:
                        res.append(later[0])
            return res
        rows = [("peak RSS MiB", {a: values(samples, a, "peak_mib") for a in columns},
                 LOWER, mean),
                ("RSS after free MiB", {a: idle_after(a, 0) for a in columns}, LOWER, mean)]
        for secs in (1, 3, 5, 12):
            rows.append((f"RSS after {secs} s idle MiB",
                         {a: idle_after(a, secs) for a in columns}, LOWER, mean))
        rows.append(("RSS at the end MiB", {a: values(samples, a, "end_mib") for a in columns},
                     LOWER, mean))
        return [("burst", f"bench_burst {' '.join(getattr(self, 'args', []))}: RSS (MiB) "
                          "of a burst of page-sized values freed, then idle (no "
                          "allocator call unless -c); lower is better", rows, 1)]

    def plots(self, samples, columns):
        series = {}
        for a in columns:
            ts = sorted({s["params"]["t"] for s in samples
                         if s["alloc"] == a and s["metric"] == "rss_mib"})
            series[a] = [(t, mean(values(samples, a, "rss_mib", t=t))) for t in ts]
        return [{"kind": "lines", "name": "burst-rss",
                 "title": "burst then idle: RSS over time (mean over repetitions)",
                 "xlabel": "seconds", "ylabel": "RSS MiB", "logx": False,
                 "points": False, "series": series}]


# ------------------------------------------------------------------ apps

APP_LABELS = {
    ("redis", "SET"): "redis SET req/s",
    ("redis", "GET"): "redis GET req/s",
    ("postgres", "tps"): "pgbench tps",
    ("git", "gc_s"): "git gc s",
    ("git", "log_p_s"): "git log -p s",
    ("python", "compileall_s"): "compileall s",
    ("gcc", "gcc_O2_s"): "gcc -O2 s",
    ("sqlite", "build_s"): "sqlite3 build s",
    ("pybytes", "pybytes_s"): "python bytes s",
}


class Apps(Bench):
    """scripts/apps.sh: real programs with their own figures of merit.
    A failed application is not run again under that allocator; the other
    applications go on."""
    name = "apps"
    stop_after_failure = False

    def prepare(self):
        self.script = os.path.join(self.ctx.repo, "scripts", "apps.sh")
        self.work = os.path.join(self.ctx.tmp, "apps")
        self.apps = self.ctx.apps or ["redis", "postgres", "git", "python", "gcc", "sqlite",
                                     "pybytes"]
        env = dict(os.environ, APPS_SCALE="quick" if self.ctx.quick else "full")
        r = subprocess.run([self.script, "prepare", self.work] + self.apps,
                           capture_output=True, text=True, check=False, env=env)
        if r.returncode != 0:
            raise Skip("apps.sh prepare failed:\n    " +
                       "\n    ".join((r.stdout + r.stderr).strip().splitlines()[-6:]))
        self.skipped = set()        # apps not installed
        self.failed = set()         # (alloc, app) that failed once
        return f"apps {','.join(self.apps)} (scale {env['APPS_SCALE']})"

    def run(self, alloc, rep, rawdir):
        out, failures = [], []
        env = {"APPS_SCALE": "quick" if self.ctx.quick else "full"}
        for app in self.apps:
            if app in self.skipped or (alloc.name, app) in self.failed:
                continue
            res = os.path.join(rawdir, f"{app}.txt")
            cmd = [self.script, "run", app, self.work, res] + alloc.assignments()
            try:
                run_program(cmd, None, 1800, os.path.join(rawdir, f"{app}.log"),
                            env_extra=env)
            except RunFailed as e:
                if "exit status 77" in str(e):
                    self.ctx.say(f"apps: skipping {app}: not installed")
                    self.skipped.add(app)
                    continue
                failures.append(f"{app}: {e}")
                self.failed.add((alloc.name, app))
                continue
            with open(res) as f:
                for line in f:
                    w = line.split()
                    if not w:
                        continue
                    if w[0] == "figure":
                        out.append({"metric": "figure", "params": {
                            "app": app, "name": w[1], "better": w[3], "unit": w[4]},
                            "value": float(w[2])})
                    elif w[0] in ("rss_kib", "minflt"):
                        out.append({"metric": w[0], "params": {"app": app},
                                    "value": float(w[1])})
                    elif w[0] == "check":
                        out.append({"metric": "check", "params": {"app": app},
                                    "value": line[6:].strip()})
        if failures:
            # Keep what passed; the failures still fail the run.
            raise RunFailed("; ".join(failures), out)
        return out

    def tables(self, samples, columns):
        order = getattr(self, "apps", None) or \
            list(dict.fromkeys(s["params"]["app"] for s in samples))
        figs = sorted({(s["params"]["app"], s["params"]["name"], s["params"]["better"])
                       for s in samples if s["metric"] == "figure"},
                      key=lambda x: (order.index(x[0]) if x[0] in order else 99, x[1]))
        rows = [(APP_LABELS.get((app, n), f"{app} {n}"),
                 {a: values(samples, a, "figure", app=app, name=n) for a in columns},
                 HIGHER if better == "higher" else LOWER, mean)
                for app, n, better in figs]
        mem = []
        for app in [a for a in order if any(s["params"].get("app") == a for s in samples)]:
            mem.append((f"{app} peak RSS MiB",
                        {a: [v / 1024 for v in values(samples, a, "rss_kib", app=app)]
                         for a in columns}, LOWER, mean))
            mem.append((f"{app} minor faults",
                        {a: values(samples, a, "minflt", app=app) for a in columns},
                        LOWER, mean))
        return [("apps", "each program's figure of merit (req/s and tps higher is "
                         "better, seconds lower); mean over repetitions", rows, 2),
                ("apps-memory", "peak RSS of the largest measured process and minor "
                                "faults of all of them (/usr/bin/time); lower is better",
                 mem, 1)]


BENCHES = {b.name: b for b in (PageAlloc, Pft, XThread, Kernbench, Uring, Apps,
                               SigBench, Burst)}


if __name__ == "__main__":
    import sys
    print("usage: a module of scripts/compare.py, imported, not run "
          "(scripts/compare.py --help)\n")
    print(__doc__)
    sys.exit(0)
