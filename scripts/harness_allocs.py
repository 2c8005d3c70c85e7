"""Allocators under comparison, and the machine they run on (compare.py).

An allocator is a named spec that becomes an environment for the program
under test: which library LD_PRELOAD names (none for glibc) and which
variables it needs (MAGPAGE_CONF, MALLOC_CONF ...).  Known names:

  glibc             no preload: the system malloc
  jemalloc          libjemalloc.so.2; MALLOC_CONF as given (default unset)
  mimalloc          libmimalloc.so.2 (Debian libmimalloc2.0)
  tcmalloc          libtcmalloc.so.4 (gperftools, Debian libgoogle-perftools4)
  magpage           libmagpage.so, default configuration (MAGPAGE_CONF unset)
  magpage-NAME      libmagpage.so with MAGPAGE_CONF from --magpage-conf
                    NAME=CONF, or a built-in: rfc2013, none, vanilla39, linux6

A missing library, a preload that does not load cleanly, or a MAGPAGE_CONF
that `magpage-conf` rejects makes the allocator skipped with a message.
"""

import hashlib
import os
import platform
import re
import subprocess

BUILTIN_MAGPAGE_CONFS = {
    "rfc2013": "preset:rfc2013",
    "none": "cache:none",
    "vanilla39": "preset:vanilla39",
    "linux6": "preset:linux6",
}

# Variables that must not leak from the caller into a run: each allocator
# sets exactly the ones it needs.
SCRUBBED = ("LD_PRELOAD", "MAGPAGE_CONF", "MALLOC_CONF", "MIMALLOC_OPTIONS",
            "TCMALLOC_RELEASE_RATE", "GLIBC_TUNABLES")

PEERS = {
    # name: (soname, Debian package, note recorded with the results)
    "jemalloc": ("libjemalloc.so.2", "libjemalloc2",
                 "baseline; MALLOC_CONF as recorded (unset = jemalloc's defaults)"),
    "mimalloc": ("libmimalloc.so.2", "libmimalloc2.0", "defaults (MIMALLOC_* unset)"),
    "tcmalloc": ("libtcmalloc.so.4", "libgoogle-perftools4",
                 "gperftools tcmalloc: per-thread caches, no rseq per-CPU mode, "
                 "so no GLIBC_TUNABLES needed; TCMALLOC_* unset"),
}


class Alloc:
    """One column of the tables."""

    def __init__(self, name, preload=None, env=None, note=""):
        self.name = name
        self.preload = preload          # absolute path or None
        self.env = dict(env or {})      # variables set for the program
        self.note = note

    def environ(self, base=None):
        """The full environment for a run under this allocator."""
        e = dict(os.environ if base is None else base)
        for k in SCRUBBED:
            e.pop(k, None)
        if self.preload:
            e["LD_PRELOAD"] = self.preload
        e.update(self.env)
        return e

    def assignments(self):
        """VAR=VALUE words for scripts that export them to their program."""
        out = [f"LD_PRELOAD={self.preload}"] if self.preload else []
        return out + [f"{k}={v}" for k, v in sorted(self.env.items())]

    def describe(self):
        d = {"name": self.name, "preload": self.preload, "env": self.env,
             "note": self.note}
        if self.preload:
            with open(self.preload, "rb") as f:
                d["preload_sha256"] = hashlib.sha256(f.read()).hexdigest()
        return d


def find_library(soname):
    """Path of a shared library by soname, from ld.so's cache or the usual
    Debian directories; None if it is not installed."""
    want_64 = platform.machine() == "x86_64"
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                             check=False).stdout
        for line in out.splitlines():
            desc, sep, path = line.strip().partition(" => ")
            if not sep or desc.split()[0] != soname:
                continue
            if want_64 and "x86-64" not in desc:
                continue
            if os.path.exists(path):
                return path
    except OSError:
        pass
    for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
              "/usr/lib64", "/usr/lib", "/usr/local/lib"):
        p = os.path.join(d, soname)
        if os.path.exists(p):
            return p
    return None


def preload_problem(path):
    """None if `LD_PRELOAD=path /bin/true` runs silently, else the reason
    (ld.so only warns, and runs the program unpreloaded, on a bad preload)."""
    r = subprocess.run(["/bin/true"], env=dict(os.environ, LD_PRELOAD=path),
                       capture_output=True, text=True, check=False)
    if r.returncode != 0 or r.stderr.strip():
        return (r.stderr.strip() or f"exit status {r.returncode}")
    return None


def resolve(names, lib, conf_tool, magpage_confs, jemalloc_conf, say,
            lib_paths=None):
    """Turns allocator names into Allocs, skipping (with a message from say)
    those that are not installed or not valid.  Order is kept.  lib_paths
    maps a peer's name to its library where it is not the installed one."""
    lib_paths = lib_paths or {}
    confs = dict(BUILTIN_MAGPAGE_CONFS)
    confs.update(magpage_confs)
    out = []
    for name in names:
        if name in [a.name for a in out]:
            continue
        if name == "glibc":
            out.append(Alloc("glibc", note="no preload: the system malloc"))
            continue
        if name in PEERS:
            soname, pkg, note = PEERS[name]
            path = lib_paths.get(name) or find_library(soname)
            if not path or not os.path.exists(path):
                say(f"skipping {name}: {soname} not installed "
                    f"(apt install {pkg}, or scripts/install-deps.sh bench)")
                continue
            problem = preload_problem(path)
            if problem:
                say(f"skipping {name}: {path} does not preload cleanly: {problem}")
                continue
            env = {}
            if name == "jemalloc" and jemalloc_conf:
                env["MALLOC_CONF"] = jemalloc_conf
            out.append(Alloc(name, path, env, note))
            continue
        if name == "magpage" or name.startswith("magpage-"):
            if not os.path.exists(lib):
                say(f"skipping {name}: {lib} not found (build it: cmake --build build)")
                continue
            problem = preload_problem(lib)
            if problem:
                say(f"skipping {name}: {lib} does not preload cleanly: {problem}")
                continue
            env, note = {}, "default configuration (MAGPAGE_CONF unset)"
            if name != "magpage":
                key = name[len("magpage-"):]
                if key not in confs:
                    say(f"skipping {name}: no MAGPAGE_CONF for '{key}'; "
                        f"give one with --magpage-conf {key}=CONF")
                    continue
                env["MAGPAGE_CONF"] = confs[key]
                note = f"MAGPAGE_CONF={confs[key]}"
                bad = conf_problem(conf_tool, confs[key])
                if bad:
                    say(f"skipping {name}: the library rejects MAGPAGE_CONF="
                        f"{confs[key]}: {bad}")
                    continue
            out.append(Alloc(name, lib, env, note))
            continue
        say(f"skipping {name}: unknown allocator (known: glibc, jemalloc, "
            f"mimalloc, tcmalloc, magpage, magpage-NAME)")
    return out


def conf_problem(conf_tool, conf):
    """None if `magpage-conf CONF` accepts the configuration, else its
    message.  Without the tool the configuration is taken on trust."""
    if not conf_tool or not os.path.exists(conf_tool):
        return None
    r = subprocess.run([conf_tool, conf], capture_output=True, text=True,
                       check=False)
    if r.returncode == 0:
        return None
    msg = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
    return msg


def _run(cmd, cwd=None):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, check=False,
                           cwd=cwd)
        return r.stdout.strip() if r.returncode == 0 else None
    except OSError:
        return None


def machine_info(repo, allocs):
    """What the results were measured on, for results.json."""
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass
    thp = None
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            m = re.search(r"\[(\w+)\]", f.read())
            thp = m.group(1) if m else None
    except OSError:
        pass
    versions = {}
    for pkg in ("libc6", "libjemalloc2", "libmimalloc2.0", "libgoogle-perftools4",
                "liburing2", "gcc", "linux-source", "redis-server",
                "postgresql-15", "git", "python3"):
        v = _run(["dpkg-query", "-W", "-f=${Version}", pkg])
        versions[pkg] = v or None
    commit = _run(["git", "rev-parse", "HEAD"], cwd=repo)
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo)
    modified = [ln[3:] for ln in (dirty or "").splitlines()]
    return {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_total_kib": mem_kib,
        "kernel": platform.release(),
        "thp": thp,
        "glibc": platform.libc_ver()[1] or versions.get("libc6"),
        "packages": versions,
        "libmagpage_commit": (commit + ("-dirty" if dirty else "")) if commit else None,
        "libmagpage_modified_files": modified,
        "allocators": [a.describe() for a in allocs],
    }


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    import sys
    print("usage: a module of scripts/compare.py, imported, not run "
          "(scripts/compare.py --help)\n")
    print(__doc__)
    sys.exit(0)
