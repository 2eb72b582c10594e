"""Run every study: ``python -m analyses [--out reports] [--full] [--seed S]``.

Exits non-zero with one readable line when a study fails.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from gradflow.report import combine_pdfs

from . import STUDIES


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analyses", description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", default=list(STUDIES), help=f"any of {', '.join(STUDIES)}")
    parser.add_argument("--out", default="reports", help="output folder (default: reports)")
    parser.add_argument("--full", action="store_true", help="paper-grade sizes (slow)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.studies if s not in STUDIES]
    if unknown:
        print(f"error: unknown study {unknown[0]!r}; expected one of {', '.join(STUDIES)}",
              file=sys.stderr)
        return 2
    done = []
    for name in args.studies:
        study = importlib.import_module(f"analyses.{name}")
        start = time.perf_counter()
        sub = ["--out", args.out, "--seed", str(args.seed)] + (["--full"] if args.full else [])
        try:
            result = study.main(sub)
        except (ValueError, FloatingPointError, OSError) as exc:
            print(f"error: study {name!r} failed: {exc}", file=sys.stderr)
            return 2
        print(f"{name}: {result['verdict']} [{time.perf_counter() - start:.1f} s] -> {result['pdf']}")
        done.append((name, result["verdict"], result["pdf"]))
    combined = os.path.join(args.out, "gradflow-report.pdf")
    pages = combine_pdfs(combined, done, title="gradflow: the seed claims, measured")
    print(f"combined: {len(done)} studies, {pages} pages -> {combined}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
