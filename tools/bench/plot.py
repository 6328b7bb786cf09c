#!/usr/bin/python3
"""Bar charts of benchmark rows: throughput per shape, fraction of the machine's GEMM rate.

cpu_bench.py and gpu_bench.py call draw() (through try_draw()) with their rows, one per
shape, thread count and contender:

  {"shape": "switch", "tokens": 4096, "flops": 2.4e10, "who": "moe-run fused",
   "samples_s": [0.482, 0.479, 0.490], "threads": 1}

("threads" is optional, other keys are ignored). Each (shape, threads) is a group of bars,
one bar per contender at the median of samples_s, with the min..max of the samples as
error bars where there is more than one. The top panel shows tokens/s; the bottom panel
the rate of the expert GEMMs (flops / median) as a fraction of the machine's GEMM rate:
either the rate of one contender of the same group (reference=, the CPU's GEMM-only
OpenBLAS peer) or a fixed rate (peak_flops=, the GPU's measured bf16 matmul).

As a program it plots a JSON file a benchmark wrote with --json (a list of rows, or an
object with them under "results"; its "reference" or "peak_flops", "title" (else
"cpu" or "device") and "rate_label" are used where the options do not say otherwise):

  /usr/bin/python3 tools/bench/plot.py BENCH.json OUT.png [--reference WHO]
      [--peak-flops FLOP/S] [--title TEXT]

Bad rows (a missing key, a non-positive time, no reference row for a group, two rows of
one contender in a group) are reported in one line, exit status 1, and no PNG is written.
"""

import argparse
import json
import math
import os
import statistics
import sys
import textwrap


class RowError(ValueError):
    """The rows cannot be plotted; the message says which row and why."""


def _positive(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def _describe(row):
    parts = [str(row.get("shape", "?"))]
    if row.get("threads") is not None:
        parts.append(f"{row['threads']} thr")
    parts.append(str(row.get("who", "?")))
    return ", ".join(parts)


def check_rows(rows, reference=None, peak_flops=None):
    """Validates the rows; returns (groups, contenders, table): the group keys
    (shape, threads, tokens) and the contenders in the order they first appear, and
    {(group, who): row}. Raises RowError."""
    if (reference is None) == (peak_flops is None):
        raise RowError("give either a reference contender or a peak rate, not "
                       + ("both" if reference is not None else "neither"))
    if peak_flops is not None and not _positive(peak_flops):
        raise RowError(f"the peak rate must be a positive number, got {peak_flops!r}")
    if not isinstance(rows, list) or not rows:
        raise RowError("no rows to plot")
    groups, contenders, table = [], [], {}
    for index, row in enumerate(rows):
        where = f"row {index}"
        if not isinstance(row, dict):
            raise RowError(f"{where}: expected an object, got {type(row).__name__}")
        where = f"row {index} ({_describe(row)})"
        for key in ("shape", "who"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise RowError(f"{where}: '{key}' must be a non-empty string")
        tokens, threads = row.get("tokens"), row.get("threads")
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens <= 0:
            raise RowError(f"{where}: 'tokens' must be a positive integer, got {tokens!r}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                    or threads <= 0):
            raise RowError(f"{where}: 'threads' must be a positive integer, got {threads!r}")
        if not _positive(row.get("flops")):
            raise RowError(f"{where}: 'flops' must be a positive number, got "
                           f"{row.get('flops')!r}")
        samples = row.get("samples_s")
        if not isinstance(samples, list) or not samples:
            raise RowError(f"{where}: 'samples_s' must be a non-empty list of seconds")
        bad = [s for s in samples if not _positive(s)]
        if bad:
            raise RowError(f"{where}: 'samples_s' holds {bad[0]!r}, not a positive time")
        group = (row["shape"], threads, tokens)
        if (group, row["who"]) in table:
            raise RowError(f"{where}: a second row of this contender in this group")
        if group not in groups:
            groups.append(group)
        if row["who"] not in contenders:
            contenders.append(row["who"])
        table[(group, row["who"])] = row
    if reference is not None:
        for group in groups:
            if (group, reference) not in table:
                shape, threads, tokens = group
                at = f" with {threads} thread{'s' if threads != 1 else ''}" if threads else ""
                raise RowError(f"shape '{shape}' (T {tokens}){at} has no '{reference}' row "
                               "to measure the others against")
    return groups, contenders, table


def _label(group):
    shape, threads, tokens = group
    return f"{shape}\nT {tokens}" + (f"\n{threads} thr" if threads is not None else "")


def draw(rows, out_path, title, reference=None, peak_flops=None, rate_label=None):
    """Writes the two-panel PNG of the rows to out_path. Raises RowError for bad rows
    (before anything is written) and ImportError when matplotlib is missing."""
    groups, contenders, table = check_rows(rows, reference, peak_flops)
    # No pyplot: no display, no global state; the Agg canvas writes the PNG.
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    width = 0.8 / len(contenders)
    inches = max(7.0, 2.0 + len(groups) * (0.45 + 0.3 * len(contenders)))
    fig = Figure(figsize=(inches, 8.5), constrained_layout=True)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    # About 12 characters of 9-point text to the inch: long lines are wrapped.
    fig.suptitle("\n".join(textwrap.fill(line, int(inches * 12))
                           for line in title.splitlines()), fontsize=9)
    throughputs, any_spread, frac_tops = [], False, [1.0]
    for i, who in enumerate(contenders):
        offset = (i - (len(contenders) - 1) / 2) * width
        xs, rate, rate_err, frac, frac_err = [], [], [[], []], [], [[], []]
        for g, group in enumerate(groups):
            row = table.get((group, who))
            if row is None:
                continue
            samples = row["samples_s"]
            med, fast, slow = statistics.median(samples), min(samples), max(samples)
            ref = (row["flops"] / statistics.median(table[(group, reference)]["samples_s"])
                   if reference is not None else peak_flops)
            xs.append(g + offset)
            tps = row["tokens"] / med
            rate.append(tps)
            rate_err[0].append(tps - row["tokens"] / slow)
            rate_err[1].append(row["tokens"] / fast - tps)
            f = row["flops"] / med / ref
            frac.append(f)
            frac_err[0].append(f - row["flops"] / slow / ref)
            frac_err[1].append(row["flops"] / fast / ref - f)
        spread = any(len(table[(group, who)]["samples_s"]) > 1
                     for group in groups if (group, who) in table)
        style = dict(width=width, color=f"C{i}", label=who, capsize=2,
                     error_kw=dict(elinewidth=0.8, ecolor="0.25"))
        top.bar(xs, rate, yerr=rate_err if spread else None, **style)
        bars = bottom.bar(xs, frac, yerr=frac_err if spread else None, **style)
        for bar, f, up in zip(bars, frac, frac_err[1]):
            bottom.annotate(f"{f:.2f}", (bar.get_x() + bar.get_width() / 2,
                                         f + (up if spread else 0)),
                            xytext=(0, 3), textcoords="offset points", ha="center",
                            va="bottom", fontsize=7, rotation=90)
        throughputs += rate
        any_spread |= spread
        frac_tops += [f + up for f, up in zip(frac, frac_err[1])]

    if max(throughputs) / min(throughputs) > 10:
        top.set_yscale("log")
    top.set_ylabel("tokens/s" + (" (median; error bars: min..max)" if any_spread else ""))
    top.grid(axis="y", which="both", alpha=0.3)
    top.legend(loc="lower left", bbox_to_anchor=(0, 1.01), fontsize=8, frameon=False,
               ncol=min(len(contenders), max(1, int(inches / 2.4))))
    bottom.axhline(1.0, color="0.3", linestyle="--", linewidth=0.8)
    for g in range(1, len(groups)):
        if groups[g][0] != groups[g - 1][0]:  # a line between shapes
            for ax in (top, bottom):
                ax.axvline(g - 0.5, color="0.6", linewidth=0.8)
    if rate_label is None:
        rate_label = (f"expert GEMM rate / {reference}" if reference is not None
                      else f"expert GEMM rate / {peak_flops * 1e-12:.1f} TFLOP/s")
    bottom.set_ylabel(rate_label, fontsize=9)
    bottom.set_ylim(0, max(frac_tops) * 1.3)  # room for the values above the bars
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(range(len(groups)))
    bottom.set_xticklabels([_label(g) for g in groups], fontsize=8)
    folder = os.path.dirname(out_path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(out_path, dpi=110)


def try_draw(out_path, rows, title, **options):
    """draw() for a benchmark whose table is already printed: a missing matplotlib, bad
    rows or an unwritable path cost one line on stderr, not the run. True if written."""
    try:
        draw(rows, out_path, title, **options)
    except ImportError as error:
        why = f"cannot import matplotlib ({error}): apt-get install python3-matplotlib"
    except (OSError, ValueError) as error:  # RowError, an unwritable or unknown image file
        why = str(error)
    else:
        print(f"plot written to {out_path}", file=sys.stderr, flush=True)
        return True
    print(f"plot skipped: {why}".replace("\n", " "), file=sys.stderr, flush=True)
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_json", help="rows written by cpu_bench.py or gpu_bench.py --json")
    parser.add_argument("out_png")
    parser.add_argument("--reference", help="the contender whose rate is 1 in each group "
                        "(default: the file's, else 'GEMM-only (OpenBLAS)')")
    parser.add_argument("--peak-flops", type=float,
                        help="a fixed machine rate in FLOP/s instead of a reference contender")
    parser.add_argument("--title", help="default: the file's title, CPU or device")
    args = parser.parse_args()
    prog = os.path.basename(sys.argv[0])
    try:
        with open(args.bench_json) as f:
            data = json.load(f)
    except (OSError, ValueError) as error:
        sys.exit(f"{prog}: error: {args.bench_json}: {error}")
    info = data if isinstance(data, dict) else {}
    rows = info.get("results") if isinstance(data, dict) else data
    peak, reference, rate_label = args.peak_flops, args.reference, None
    if peak is None and reference is None:  # the file's measure, and its label
        peak, rate_label = info.get("peak_flops"), info.get("rate_label")
        if peak is None:
            reference = info.get("reference", "GEMM-only (OpenBLAS)")
    title = str(args.title or info.get("title") or info.get("cpu") or info.get("device")
                or os.path.basename(args.bench_json))
    try:
        draw(rows, args.out_png, title, reference=reference, peak_flops=peak,
             rate_label=rate_label if isinstance(rate_label, str) else None)
    except RowError as error:
        sys.exit(f"{prog}: error: {args.bench_json}: {error}")
    except ImportError as error:
        sys.exit(f"{prog}: error: cannot import matplotlib ({error}): "
                 "apt-get install python3-matplotlib")
    except (OSError, ValueError) as error:  # an unwritable or unknown image file
        sys.exit(f"{prog}: error: {args.out_png}: {error}")


if __name__ == "__main__":
    main()
