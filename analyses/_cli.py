"""The command line every study shares: ``--out``, ``--full``, ``--seed`` and size overrides."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence


def study_main(argv, *, name: str, doc: str, quick, full, run: Callable,
               overrides: Sequence[str] = ("hidden", "steps")) -> dict:
    """Parse ``argv`` and call ``run(config, out)`` with the quick or full config, overridden."""
    parser = argparse.ArgumentParser(prog=f"python -m analyses.{name}",
                                     description=doc.splitlines()[0])
    parser.add_argument("--out", default="reports", help="output folder (default: reports)")
    parser.add_argument("--full", action="store_true", help="paper-grade sizes")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    for field in overrides:
        parser.add_argument(f"--{field}", type=int, help=f"override {field} (a positive integer)")
    args = parser.parse_args(argv)
    chosen = {k: getattr(args, k) for k in overrides if getattr(args, k) is not None}
    for key, value in chosen.items():
        if value < 1:
            parser.error(f"--{key} must be a positive integer; got {value}")
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative integer; got {args.seed}")
    config = dataclasses.replace(full if args.full else quick, **chosen, seed=args.seed)
    return run(config, args.out)
