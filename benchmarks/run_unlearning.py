"""The unlearning benchmark: tasks x datasets x backbones x methods x forget fractions x settings x seeds.

A thin front end to ``graphunlearn.bench`` (also reachable as ``graphunlearn bench``): runs or resumes a
configuration (a name from ``benchmarks/configs/``, or the path of a ``.json`` file), then writes
``results.csv``, ``results.json``, ``results.md`` (mean +- std over seeds, the gold row beside every method,
the configuration's targets checked, machine and versions in the header) and ``plots.png`` under ``--out``
(default ``benchmarks/results/unlearning-CONFIG``).

    python benchmarks/run_unlearning.py --list
    python benchmarks/run_unlearning.py --config smoke             # seconds: synthetic graph, one seed
    python benchmarks/run_unlearning.py --config cora-gcn-target   # Cora, GCN, 2.5% "in", 5 seeds
    python benchmarks/run_unlearning.py --config movielens-target  # item-group deletion, reverse BPR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from graphunlearn import bench


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="smoke", metavar="NAME_OR_PATH",
                   help=f"one of {', '.join(bench.config_names())}, or the path of a .json configuration")
    p.add_argument("--out", default=None, help="results folder (default: benchmarks/results/unlearning-CONFIG)")
    p.add_argument("--list", action="store_true", help="list the configurations and exit")
    p.add_argument("--no-progress", action="store_true", help="no per-epoch progress bars")
    args = p.parse_args()
    if args.list:
        print("\n".join(bench.describe()))
        return
    try:
        # an unknown name, a malformed file, an unknown task, method or setting: refused before any work
        bench.plan(bench.load_config(args.config))
    except ValueError as exc:
        p.error(str(exc))
    label = bench.config_label(args.config)
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"unlearning-{label}"
    md = bench.run_config(args.config, out, progress=not args.no_progress)
    print(md.read_text())
    print(f"wrote {out / 'results.csv'}, {out / 'results.json'}, {md} and {out / 'plots.png'}")


if __name__ == "__main__":
    main()
