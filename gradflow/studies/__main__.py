"""Run studies and combine their reports: ``python -m gradflow.studies [STUDY ...] [--quick|--full]
[--out reports] [--seed S] [--config FILE.toml]`` (also ``gradflow report``).

Every argument and the whole config file are checked before the first study starts, so
bad input writes nothing; it exits 2 with one readable line, as does a study that fails.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

from gradflow.report import combine_pdfs

from . import STUDIES
from ._cli import ConfigError, StudyParser, config_from_mapping, read_config_file, study_section


def contents_entry(name: str, result: dict) -> dict:
    """A study's line in the combined report's contents: its claim, source, verdict, interval and PDF."""
    entry = {"name": name, "verdict": result["verdict"], "pdf": result["pdf"]}
    claim, decision = result.get("claim"), result.get("decision")
    if claim is not None:
        entry.update(claim=claim.text, source=f"{claim.source}: {claim.source_title}")
    if decision is not None:
        entry["interval"] = decision.numbers + (f" ({claim.quantity})" if claim is not None else "")
    return entry


def main(argv=None, prog: str = "python -m gradflow.studies") -> int:
    parser = StudyParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument(
        "studies", nargs="*", metavar="STUDY", help=f"any of {', '.join(STUDIES)} (default: all)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, minutes (the default)")
    mode.add_argument("--full", action="store_true", help="paper-grade sizes (slow)")
    parser.add_argument("--out", default="reports", help="output folder (default: reports)")
    parser.add_argument("--seed", type=int, help="base seed of every study (default: 0)")
    parser.add_argument("--config", metavar="FILE.toml", help="a [study] table of Config values per study")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    studies = args.studies or list(STUDIES)
    unknown = [s for s in studies if s not in STUDIES]
    if unknown:
        print(f"error: unknown study {unknown[0]!r}; expected one of {', '.join(STUDIES)}", file=sys.stderr)
        return 2
    if args.seed is not None and args.seed < 0:
        print(f"error: --seed must be a non-negative integer; got {args.seed}", file=sys.stderr)
        return 2
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"error: --out {args.out!r} is a file; give a folder", file=sys.stderr)
        return 2
    try:
        return _run(args, studies)
    except KeyboardInterrupt:  # one line and 130, as `gradflow sweep`: finished sweep points are cached
        from gradflow.sweep._executors import stop_pools

        stop_pools()  # no worker may outlive the command or print after its one line
        print(
            f"{prog}: interrupted; the studies finished so far are published, the running one left "
            f"no files; run the same command again to resume",
            file=sys.stderr,
        )
        return 130


def _run(args, studies) -> int:
    # A config file may hold tables for studies not run now: those are checked too.
    wanted = STUDIES if args.config else studies
    modules = {name: importlib.import_module(f"gradflow.studies.{name}") for name in wanted}
    if args.config:
        try:
            document = read_config_file(args.config)
            for name, module in modules.items():  # every table checked before anything runs
                config_from_mapping(
                    name, module.FULL if args.full else module.QUICK, study_section(name, document, STUDIES)
                )
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    from tqdm.auto import tqdm

    done = []
    bar = tqdm(studies, desc="studies", unit="study", disable=not sys.stderr.isatty(), leave=False)
    for name in bar:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        sub = ["--out", args.out, "--full" if args.full else "--quick"]
        sub += ["--seed", str(args.seed)] if args.seed is not None else []
        sub += ["--config", args.config] if args.config else []
        try:
            result = modules[name].main(sub)
        except (ValueError, FloatingPointError, OSError) as exc:
            print(f"error: study {name!r} failed: {exc}", file=sys.stderr)
            return 2
        bar.write(
            f"{name}: {result['verdict']} [{time.perf_counter() - start:.1f} s] -> {result['pdf']}",
            file=sys.stdout,
        )
        done.append(contents_entry(name, result))
    bar.close()
    combined = os.path.join(args.out, "gradflow-report.pdf")
    pages = combine_pdfs(combined, done, title="gradflow: the folklore claims, measured")
    print(f"combined: {len(done)} studies, {pages} pages -> {combined}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
