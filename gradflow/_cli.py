"""The ``gradflow`` command: ``gradflow sweep GRID.toml ...`` and ``gradflow cache info|clear``.

Exit codes: 0 done; 1 some points failed (each is listed on stderr with its
configuration and error); 2 bad input (one line on stderr, never a traceback);
130 interrupted (finished points are cached: the same command resumes).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from ._sweep_cache import cache_info, clear_cache, default_cache_dir

PROG = "gradflow"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message):
        raise _BadInput(f"{self.prog}: {message} (see {self.prog} --help)")


class _BadInput(Exception):
    pass


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 0,1,2; got {text!r}"
                                         ) from None


def _parser() -> _Parser:
    parser = _Parser(prog=PROG, description="Measure and predict gradient flow in recurrent networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sweep = sub.add_parser("sweep", help="run a parameter grid (TOML); CSV to --out or stdout",
                           description="Run the task at every point of GRID.toml x seeds; finished "
                                       "points are cached, so a re-run computes only what is missing.")
    sweep.add_argument("grid", help="TOML file: [grid] parameter lists, optional seeds and task")
    sweep.add_argument("--executor", choices=("serial", "process", "dask"),
                       help="serial (this process), process (local pool; default with --workers) or "
                            "dask (default with --scheduler or --dask-local); default serial")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="an existing Dask cluster, e.g. tcp://host:8786")
    sweep.add_argument("--dask-local", type=_positive, metavar="N",
                       help="start a Dask LocalCluster of N worker processes for the sweep")
    sweep.add_argument("--workers", type=_positive, metavar="N",
                       help="processes of the local pool (default: every core)")
    sweep.add_argument("--seeds", type=_seeds, metavar="S,S,...",
                       help="seeds (default: the file's seeds, else 0)")
    sweep.add_argument("--batch-size", type=_positive, metavar="N", help="most points per job")
    sweep.add_argument("--out", metavar="FILE.csv", help="write the table here (atomically)")
    sweep.add_argument("--cache-dir", metavar="DIR", help=f"cache folder (default {default_cache_dir()})")
    sweep.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    cache = sub.add_parser("cache", help="inspect or empty the sweep cache")
    cache.add_argument("action", choices=("info", "clear"))
    cache.add_argument("--cache-dir", metavar="DIR", help=f"cache folder (default {default_cache_dir()})")
    return parser


def _sweep(args) -> int:
    from ._files import write_csv
    from ._sweep import SweepWarning, describe, run

    if args.dask_local is not None and args.scheduler is not None:
        raise _BadInput(f"{PROG} sweep: give --scheduler (an existing cluster) or --dask-local N "
                        f"(a new one), not both")
    if (args.dask_local is not None or args.scheduler is not None) and args.executor not in (None, "dask"):
        raise _BadInput(f"{PROG} sweep: --scheduler and --dask-local need --executor dask; "
                        f"got --executor {args.executor}")
    if args.no_cache and args.cache_dir:
        raise _BadInput(f"{PROG} sweep: give --cache-dir or --no-cache, not both")
    executor = args.executor
    if executor is None:
        dask = args.dask_local is not None or args.scheduler is not None
        executor = "dask" if dask else "process" if args.workers is not None else "serial"
    workers = args.dask_local if args.dask_local is not None else args.workers
    cache = False if args.no_cache else (args.cache_dir or True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SweepWarning)  # the failed points are listed below instead
        frame = run(args.grid, seeds=args.seeds, executor=executor, scheduler=args.scheduler,
                    cache=cache, workers=workers, batch_size=args.batch_size,
                    progress=not args.quiet)
    failed = frame[frame.error != ""]
    stats = frame.attrs.get("sweep", {})
    for _, row in failed.iterrows():
        point = {k: row[k] for k in frame.columns[: list(frame.columns).index("seed") + 1]
                 if not _missing(row[k])}
        print(f"failed: {describe(point)}: {row.error}", file=sys.stderr)
    summary = (f"{stats.get('points', len(frame))} points: {stats.get('cached', 0)} from the cache, "
               f"{stats.get('computed', 0)} computed, {len(failed)} failed")
    if args.out:
        write_csv(args.out, frame)
        print(f"{summary} -> {args.out}")
    else:
        frame.to_csv(sys.stdout, index=False, float_format="%.10g")
        print(summary, file=sys.stderr)
    return 1 if len(failed) else 0


def _missing(value) -> bool:
    return isinstance(value, float) and value != value  # NaN: a parameter this sub-grid lacks


def _cache(args) -> int:
    if args.action == "info":
        print(cache_info(args.cache_dir))
    else:
        path = args.cache_dir or default_cache_dir()
        print(f"removed {clear_cache(path)} entries from {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gradflow`` command line; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
        return _sweep(args) if args.command == "sweep" else _cache(args)
    except _BadInput as exc:
        print(exc, file=sys.stderr)
    except (ValueError, ImportError, OSError) as exc:  # bad grid, parameter, path or scheduler
        print(f"{PROG}: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished points are cached: run the same command again to resume",
              file=sys.stderr)
        return 130
    return 2
