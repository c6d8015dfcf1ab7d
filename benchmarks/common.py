"""Shared helpers for the benchmark scripts: timing, machine description, result files."""

from __future__ import annotations

import csv
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timeit(fn: Callable[[], object], device: str = "cpu", repeat: int = 5, warmup: int = 1,
           min_time: float = 0.0) -> dict[str, float]:
    """Median and spread (min, max) of ``fn``'s wall time in seconds, after ``warmup`` calls.

    On CUDA, times come from CUDA events around each call."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    start_all = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start_all < min_time:
        if torch.device(device).type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "n": len(times)}



def recorded_argv(argv=None) -> list[str]:
    """A benchmark's command line as its results record it (``argv``, default ``sys.argv[1:]``): without
    ``--out`` and its folder (where the files went, not what they measured; a results file holds no absolute
    path)."""
    items, out = list(sys.argv[1:] if argv is None else argv), []
    skip = False
    for item in items:
        if skip:
            skip = False
        elif item == "--out":
            skip = True
        elif not item.startswith("--out="):
            out.append(item)
    return out


def machine(device: str = "cpu") -> dict[str, str]:
    """``graphunlearn.bench.machine_info()`` plus the device the figures were measured on."""
    from graphunlearn.bench import machine_info

    info = machine_info()
    info["device"] = torch.cuda.get_device_name() if torch.device(device).type == "cuda" else "cpu"
    return info


def append_rows(name: str, rows: list[dict]) -> Path:
    """Append ``rows`` to ``benchmarks/results/<name>.csv`` (header written once; new columns start a new file)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.csv"
    if not rows:
        return path
    fields = list(rows[0].keys())
    if path.exists():
        with path.open() as f:
            header = next(csv.reader(f), None)
        if header != fields:
            path = RESULTS / f"{name}-{dt.datetime.now():%Y%m%d%H%M%S}.csv"
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerows(rows)
    return path


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def mean_std(values: list[float]) -> str:
    """``mean ± std`` (sample std) to four decimals; the value alone for one."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def gold_table(rows: list[dict], group: str, columns: list[tuple[str, Callable[[list[dict], list[dict]], str]]],
               gold: str = "gold (retrain)") -> str:
    """A markdown table of per-seed result rows: one line per value of ``group`` and method (in first-seen
    order), the cells given by ``columns``, each a header and a function of the method's rows and gold's rows
    for the same seeds (paired by position), so a column can read per-seed distances to gold.

    Rows need ``seed``, ``method`` and ``group``; every (seed, group) needs a ``gold`` row (``KeyError``)."""
    golds = {(r["seed"], r[group]): r for r in rows if r["method"] == gold}
    out = ["| " + " | ".join([group, "method"] + [h for h, _ in columns]) + " |", "|---" * (len(columns) + 2) + "|"]
    for value in dict.fromkeys(r[group] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows):
            rs = [r for r in rows if r[group] == value and r["method"] == method]
            if rs:
                g = [golds[(r["seed"], value)] for r in rs]
                out.append("| " + " | ".join([str(value), method] + [fn(rs, g) for _, fn in columns]) + " |")
    return "\n".join(out)


def column(metric: str) -> Callable[[list[dict], list[dict]], str]:
    """A :func:`gold_table` column: ``metric``'s mean ± std over the seeds."""
    return lambda rs, _g: mean_std([r[metric] for r in rs])


def distance(metric: str, digits: int = 4) -> Callable[[list[dict], list[dict]], str]:
    """A :func:`gold_table` column: the mean over seeds of ``|method - gold|`` on ``metric``."""
    return lambda rs, g: f"{statistics.mean(abs(r[metric] - x[metric]) for r, x in zip(rs, g)):.{digits}f}"


def median_seconds(rs: list[dict], _g: list[dict]) -> str:
    return f"{statistics.median(r['seconds'] for r in rs):.2f}"


def epochs_kept(rs: list[dict], _g: list[dict]) -> str:
    return ", ".join(str(r["selected_epoch"]) for r in rs) if rs[0]["selected_epoch"] is not None else "-"


def calibration_meter(model, store, req, split, task):
    """Calibrated forgetting's own measure (:class:`graphunlearn.unlearning.base.Calibration`) of ``req``,
    built outside any method, so that gold and the original are read by it too."""
    import copy

    from graphunlearn.unlearning.base import Calibration, Context

    ctx = Context(copy.deepcopy(model), model, store, (req,), task, split, 0, False, None, method="bench")
    return Calibration(ctx, 0.0)
