"""``graphunlearn bench``: run (or resume) a benchmark configuration, or list them."""

from __future__ import annotations

from pathlib import Path

from .. import distributed as dist
from .common import CLIError


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("bench", help="run (or resume) a benchmark configuration")
    s.add_argument("--config", metavar="NAME_OR_PATH",
                   help="configuration name (see --list) or the path of a configuration .json file")
    s.add_argument("--out", help="results folder (default: results/unlearning-CONFIG)")
    s.add_argument("--list", action="store_true", help="list the configurations")
    s.add_argument("--quiet", action="store_true", help="no per-epoch progress bars")
    s.set_defaults(fn=run)


def run(args) -> None:
    from .. import bench

    if args.list or not args.config:
        lines = bench.describe()
        print("\n".join(lines) if lines else "no benchmark configurations found; searched "
              + ", ".join(str(d) for d in bench.config_dirs()))
        if not args.list:
            print("choose one with --config NAME (or the path of a .json configuration)")
        return
    try:
        # an unknown name, a malformed file, an unknown task, method or setting is refused before any work
        bench.plan(bench.load_config(args.config))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    out = Path(args.out or Path("results") / f"unlearning-{bench.config_label(args.config)}")
    try:
        md = bench.run_config(args.config, out, progress=not args.quiet)
    except (ValueError, RuntimeError, OSError) as exc:  # finished cells stay cached; a rerun resumes
        raise CLIError(f"{args.config}: {exc}") from None
    if not dist.is_main():  # rank 0 wrote the results and speaks for the job
        return
    print(md.read_text())
    print(f"wrote {out / 'results.csv'}, {out / 'results.json'}, {md} and {out / 'plots.png'}")
