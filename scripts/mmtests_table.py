"""mmtests-style comparison tables, as pure functions (no I/O).

The RFC's tables come from mmtests' Compare.pm: each row is a label, then
per kernel (here: per allocator) the value followed by its percentage
difference from the baseline column, printed " (%6.2f%%)":

    order-0 alloc-64    331.33 (  0.00%)    324.56 (  2.05%)

A positive percentage always means "better than the baseline":
    lower is better  (times, cycles):    pndiff = 100 - new * 100 / base
    higher is better (rates, faults/s):  pdiff  = new * 100 / base - 100
Variance rows (stddev, range) use pndiff too, so more spread reads
negative, exactly as in the RFC's kernbench table (-312.18%).

Summaries follow mmtests: trimmed mean = drop the single largest sample and
average the rest (calc_trimoutlier_mean); stddev is the sample standard
deviation (n - 1).  Each table can be followed by its spread: the
coefficient of variation of the values behind each cell, and summarised in
Markdown as median [min..max] (format_markdown).  Used by scripts/compare.py;
unit-tested by
tests/harness/test_mmtests_table.py.
"""

import statistics

LOWER = "lower"     # lower is better: pndiff
HIGHER = "higher"   # higher is better: pdiff


def pndiff(base, new):
    """Lower-is-better difference in percent; None when undefined."""
    if base is None or new is None:
        return None
    if base == 0:
        return 0.0 if new == 0 else None
    return 100.0 - new * 100.0 / base


def pdiff(base, new):
    """Higher-is-better difference in percent; None when undefined."""
    if base is None or new is None:
        return None
    if base == 0:
        return 0.0 if new == 0 else None
    return new * 100.0 / base - 100.0


def pct_diff(base, new, better):
    """The percentage Compare.pm prints for one cell (better: LOWER/HIGHER)."""
    if better == LOWER:
        return pndiff(base, new)
    if better == HIGHER:
        return pdiff(base, new)
    raise ValueError(f"better must be {LOWER!r} or {HIGHER!r}, not {better!r}")


def format_pct(pct):
    """' (  2.05%)', ' (-312.18%)'; ' (    n/a)' when undefined."""
    if pct is None:
        return " (    n/a)"
    return " (%6.2f%%)" % pct


def format_cell(value, pct, width=10, prec=2):
    """One cell: the value right-aligned in width with prec decimals, then
    the percentage.  A missing value prints n/a in both places."""
    if value is None:
        return "n/a".rjust(width) + format_pct(None)
    return "%*.*f" % (width, prec, value) + format_pct(pct)


def trimmed_mean(xs):
    """mmtests calc_trimoutlier_mean: drop the single largest, average the
    rest (a single sample is its own mean)."""
    xs = list(xs)
    if not xs:
        return None
    if len(xs) == 1:
        return float(xs[0])
    return statistics.fmean(sorted(xs)[:-1])


def mean(xs):
    """The arithmetic mean; None for no samples."""
    xs = list(xs)
    return float(statistics.fmean(xs)) if xs else None


def median(xs):
    """The middle value (the mean of the two middle ones for an even count)."""
    xs = list(xs)
    return float(statistics.median(xs)) if xs else None


def stddev(xs):
    """Sample standard deviation (n - 1); 0 for a single sample."""
    xs = list(xs)
    if not xs:
        return None
    if len(xs) == 1:
        return 0.0
    return statistics.stdev(xs)


def summary(xs):
    """The kernbench rows: min, mean, stddev, max, range."""
    xs = list(xs)
    if not xs:
        return {k: None for k in ("min", "mean", "stddev", "max", "range")}
    return {"min": min(xs), "mean": mean(xs), "stddev": stddev(xs),
            "max": max(xs), "range": max(xs) - min(xs)}


def table_rows(rows, columns, baseline):
    """Turns rows into cells.

    rows:     [(label, {column: value or None}, LOWER | HIGHER), ...]
    columns:  column names in print order; baseline must be one of them
              (when it is missing from a row, that row's percentages are n/a)
    Returns [(label, [(value, pct), ...]), ...] with the baseline's own
    pct 0.0 whenever it has a value.
    """
    out = []
    for label, values, better in rows:
        base = values.get(baseline)
        cells = []
        for col in columns:
            v = values.get(col)
            if v is None:
                cells.append((None, None))
            elif col == baseline:
                cells.append((v, 0.0))
            else:
                cells.append((v, pct_diff(base, v, better)))
        out.append((label, cells))
    return out


def format_table(title, columns, rows, baseline, prec=2):
    """A whole Compare.pm-style table as a string.

    The first line names the benchmark and the columns, each column as wide
    as its widest cell; the baseline column shows (  0.00%).  prec is the
    number of decimals ('%.2f' for cycles and seconds, '%.4f' for pft).
    """
    cells = table_rows(rows, columns, baseline)
    label_w = max([len(title)] + [len(label) for label, _ in cells])
    # Widest value per column, so the percentages line up.
    val_w = []
    for i, col in enumerate(columns):
        w = max([len("n/a")] + [len("%.*f" % (prec, c[i][0]))
                                for _, c in cells if c[i][0] is not None])
        val_w.append(max(w, len(col) - len(format_pct(0.0))))
    head = title.ljust(label_w)
    for i, col in enumerate(columns):
        head += "  " + col.rjust(val_w[i] + len(format_pct(0.0)))
    lines = [head.rstrip()]
    for label, c in cells:
        line = label.ljust(label_w)
        for i, (v, p) in enumerate(c):
            line += "  " + format_cell(v, p, val_w[i], prec)
        lines.append(line)
    return "\n".join(lines) + "\n"


def format_spread(title, columns, rows):
    """The companion of a table: per cell the coefficient of variation
    (stddev / mean, in %) of the values behind it, and how many there were.

    rows: [(label, {column: [values]}), ...]
    """
    label_w = max([len(title) + len(" spread")] + [len(label) for label, _ in rows])
    w = max([len(c) for c in columns] + [12])
    lines = [(title + " spread").ljust(label_w) +
             "".join("  " + c.rjust(w) for c in columns)]
    for label, vals in rows:
        line = label.ljust(label_w)
        for c in columns:
            xs = [x for x in vals.get(c) or [] if isinstance(x, (int, float))]
            if not xs:
                cell = "n/a"
            else:
                m = mean(xs)
                cv = 100 * stddev(xs) / m if m else 0.0
                cell = f"{cv:5.1f}% n={len(xs)}"
            line += "  " + cell.rjust(w)
        lines.append(line)
    return "\n".join(lines) + "\n"


def format_markdown(title, columns, rows, prec=2):
    """A Markdown table of the values behind a table's cells: per cell the
    median [min..max] over them, the best median of each row in bold
    (lowest or highest as the row says), n/a where there is none.

    rows: [(label, {column: [values]}, LOWER | HIGHER), ...]
    """
    def num(x):
        return "%.*f" % (prec, x)

    lines = [f"| {title} | " + " | ".join(columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for label, vals, better in rows:
        meds = {}
        for c in columns:
            xs = [x for x in vals.get(c) or [] if isinstance(x, (int, float))]
            if xs:
                meds[c] = (median(xs), min(xs), max(xs))
        pick = min if better == LOWER else max
        best = pick(m[0] for m in meds.values()) if meds else None
        cells = []
        for c in columns:
            if c not in meds:
                cells.append("n/a")
                continue
            m, lo, hi = meds[c]
            cell = f"{num(m)} [{num(lo)}..{num(hi)}]"
            if len(meds) > 1 and num(m) == num(best):
                cell = f"**{num(m)}** [{num(lo)}..{num(hi)}]"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys
    print("usage: a module of scripts/compare.py, imported, not run "
          "(scripts/compare.py --help)\n")
    print(__doc__)
    sys.exit(0)
