"""The ``gradflow`` command: ``gradflow report [STUDY ...]``, ``gradflow analyze MODEL [--inputs ...] |
--cell ...``, ``gradflow sweep GRID.toml ...`` and ``gradflow cache info|clear``.

Exit codes: 0 done; 1 some points failed (each is listed on stderr with its
configuration and error); 2 bad input (one line on stderr, never a traceback);
130 interrupted (finished points are cached: the same command resumes).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Sequence

from .cells._builtin import INITS
from .core._registry import cell_kind, cell_kinds
from .sweep._cache import cache_info, clear_cache, default_cache_dir

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


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number; got {text!r}")
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
    sweep.add_argument("grid", help="TOML file: [grid] parameter lists, optional seeds and task (the name "
                                    "of a gradflow task: a grid file never runs other code)")
    sweep.add_argument("--task-module", metavar="MODULE:FUNCTION",
                       help="your own task: imports MODULE (also from the working directory) and runs "
                            "FUNCTION at every point; only for code you trust")
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
    sweep.add_argument("--yes", action="store_true",
                       help="run a grid of more than 100,000 points (refused otherwise, with an estimate)")
    report = sub.add_parser("report", help="run the studies in gradflow/studies/ and write their PDF reports",
                            add_help=False)
    report.add_argument("rest", nargs=argparse.REMAINDER)  # parsed by the study runner itself
    analyze = sub.add_parser(
        "analyze", help="a PDF report on one model: your weights (.pt/.pth/.npz) or a cell built from flags",
        description="The gradient of the output your model reads, by layer, direction and state part, "
                    "on your inputs; spectra, every predictor, the Lyapunov spectrum and fixed points.")
    analyze.add_argument("weights", nargs="?", metavar="MODEL",
                         help="a state_dict saved with torch.save (.pt/.pth, needs torch) or numpy.savez "
                              "(.npz; keys may carry module prefixes: lstm.weight_ih_l0, fc.weight), "
                              "or a gf.Cell.save file")
    analyze.add_argument("--inputs", metavar="XS.npy|task:NAME:T",
                         help="the model's own inputs: a .npy array (T, batch, inputs), or a task "
                              "generator task:adding:T, task:copy_memory:T, task:digits (default: "
                              "synthetic Gaussian inputs, and the report says so)")
    analyze.add_argument("--batch-first", action="store_true",
                         help="the --inputs array is (batch, T, inputs)")
    analyze.add_argument("--prefix", help="which recurrent block, when the weights hold several")
    analyze.add_argument("--head", help="module name of the linear layer reading the output (e.g. fc); "
                                        "default: the one linear layer that fits")
    analyze.add_argument("--readout", choices=("last", "sum"), default="last",
                         help="measure the head's output at the last step, or summed over every step "
                              "(a loss on the whole output sequence); default last")
    analyze.add_argument("--predictors", choices=("auto", "on", "off"), default="auto",
                         help=f"run gf.predict (its moment maps dominate the cost on large cells); auto: "
                              f"on up to state size {AUTO_PREDICTORS_STATE} (default auto)")
    analyze.add_argument("--cell", choices=cell_kinds(), help="kind of cell (inferred from a weights file)")
    analyze.add_argument("--hidden", type=_positive, help="hidden size of a new cell")
    analyze.add_argument("--input-size", type=_positive, help="input size of a new cell (default 8)")
    analyze.add_argument("--layers", type=_positive, help="stacked layers of a new cell (default 1)")
    analyze.add_argument("--gain", type=_finite, help="recurrent gain of a new cell (default 1)")
    analyze.add_argument("--init", choices=INITS, help="initialiser of a new cell (default gaussian)")
    analyze.add_argument("--activation", choices=("tanh", "relu", "sigmoid", "linear"),
                         help="vanilla cells' activation (weights files: tanh or relu, as nn.RNN)")
    analyze.add_argument("--forget-bias", type=_finite, help="LSTM forget-gate bias of a new cell")
    analyze.add_argument("--update-bias", type=_finite, help="GRU update-gate bias of a new cell")
    analyze.add_argument("--steps", type=_positive, default=500,
                         help="sequence length T of synthetic inputs (default 500)")
    analyze.add_argument("--batch", type=_positive, default=4, help="input sequences (default 4)")
    analyze.add_argument("--input-scale", type=_finite, default=1.0,
                         help="standard deviation of synthetic gaussian inputs (default 1)")
    analyze.add_argument("--exponents", type=_positive, default=16,
                         help="largest Lyapunov exponents to compute (default 16)")
    analyze.add_argument("--seed", type=int, default=0, help="seed of new weights, inputs and probes")
    analyze.add_argument("--out", default="reports", help="output folder (default reports)")
    analyze.add_argument("--name", help="file stem of the report (default: the model's name)")
    analyze.add_argument("--quiet", action="store_true", help="no progress bar")
    cache = sub.add_parser("cache", help="inspect or empty the sweep cache")
    cache.add_argument("action", choices=("info", "clear"))
    cache.add_argument("--cache-dir", metavar="DIR", help=f"cache folder (default {default_cache_dir()})")
    return parser


def check_out_file(flag: str, path: str) -> None:
    """Refuse an output file path that cannot be written, before any work is done."""
    if os.path.isdir(path):
        raise _BadInput(f"{flag} {path!r} is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # atomic_path creates the missing folders
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise _BadInput(f"{flag} {path!r}: {parent!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _BadInput(f"{flag} {path!r}: cannot write in {parent!r}")


def _task_module(spec: str):
    """The user's own task, imported because they asked for it (``--task-module``)."""
    from .sweep._jobs import load_task

    if os.getcwd() not in sys.path:  # the user's module usually sits where they run the command
        sys.path.append(os.getcwd())
    try:
        return load_task(spec)
    except ValueError as exc:
        raise _BadInput(f"{PROG} sweep: --task-module: {exc}") from None


def _sweep(args) -> int:
    from .core._files import write_csv
    from .sweep._run import SweepWarning, describe, run

    if args.dask_local is not None and args.scheduler is not None:
        raise _BadInput(f"{PROG} sweep: give --scheduler (an existing cluster) or --dask-local N "
                        f"(a new one), not both")
    if (args.dask_local is not None or args.scheduler is not None) and args.executor not in (None, "dask"):
        raise _BadInput(f"{PROG} sweep: --scheduler and --dask-local need --executor dask; "
                        f"got --executor {args.executor}")
    if args.no_cache and args.cache_dir:
        raise _BadInput(f"{PROG} sweep: give --cache-dir or --no-cache, not both")
    if args.out:
        check_out_file(f"{PROG} sweep: --out", args.out)
    task = _task_module(args.task_module) if args.task_module else None
    executor = args.executor
    if executor is None:
        dask = args.dask_local is not None or args.scheduler is not None
        executor = "dask" if dask else "process" if args.workers is not None else "serial"
    workers = args.dask_local if args.dask_local is not None else args.workers
    cache = False if args.no_cache else (args.cache_dir or True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SweepWarning)  # the failed points are listed below instead
        frame = run(args.grid, task=task, seeds=args.seeds, executor=executor, scheduler=args.scheduler,
                    cache=cache, workers=workers, batch_size=args.batch_size,
                    progress=not args.quiet, allow_large=args.yes)
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


# gf.predict's moment maps cost ~2 CPU minutes for a 2-layer 128-unit LSTM (state 512) at T = 1000,
# the flow, Lyapunov spectrum and fixed points together ~20 s: auto runs predict on smaller states.
AUTO_PREDICTORS_STATE = 256
_NEW_CELL_FLAGS = ("hidden", "input_size", "layers", "gain", "init", "forget_bias", "update_bias")
_TASK = re.compile(r"^task:(adding|copy_memory):([1-9][0-9]{0,6})$|^task:(digits)$")


def _analyzed_model(args):
    """The model ``gradflow analyze`` reports on: read from ``args.weights`` or built from the flags."""
    from .models._io import from_torch
    from .models._npz import load, read_npz

    given = [f"--{f.replace('_', '-')}" for f in _NEW_CELL_FLAGS if getattr(args, f) is not None]
    if args.weights is None:
        if args.cell is None or args.hidden is None:
            raise _BadInput(f"{PROG} analyze: give a weights file, or --cell and --hidden for a new cell")
        if args.prefix or args.head:
            raise _BadInput(f"{PROG} analyze: --prefix and --head choose parts of a weights file; "
                            f"none was given")
        kwargs = {k: getattr(args, k) for k in ("layers", "gain", "init") if getattr(args, k) is not None}
        record = cell_kind(args.cell)
        if "activation" in record.options and args.activation:
            kwargs["activation"] = args.activation
        for flag in ("forget_bias", "update_bias"):  # each a constructor option of one kind
            if getattr(args, flag) is not None:
                if flag not in record.options:
                    owner = next(k for k in cell_kinds() if flag in cell_kind(k).options)
                    raise _BadInput(f"{PROG} analyze: --{flag.replace('_', '-')} applies to --cell {owner} "
                                    f"only; got --cell {args.cell}")
                kwargs[flag] = getattr(args, flag)
        return record.make(args.hidden, args.input_size or 8, seed=args.seed, **kwargs), None
    if given:
        raise _BadInput(f"{PROG} analyze: {given[0]} builds a new cell; it cannot change the weights in "
                        f"{args.weights!r}")
    path = args.weights
    if not path.lower().endswith((".pt", ".pth")):
        arrays = read_npz(path)  # one clear error for a missing, truncated or non-npz file
        if "__gradflow__" in arrays:
            if args.prefix or args.head:
                raise _BadInput(f"{PROG} analyze: {path!r} is a gradflow cell file: it has no "
                                f"prefixes or head to choose")
            return load(path), path
    name = os.path.splitext(os.path.basename(path))[0]
    model = from_torch(path, prefix=args.prefix, head=args.head, kind=args.cell,
                       activation=args.activation or "tanh", name=name)
    return model, path


def _analyzed_inputs(args, input_size: int):
    """``(xs, label)`` from ``--inputs`` (time-major), or ``(None, None)`` for synthetic inputs."""
    import numpy as np

    from . import tasks

    spec = args.inputs
    if spec is None:
        if args.batch_first:
            raise _BadInput(f"{PROG} analyze: --batch-first describes an --inputs array; none was given")
        return None, None
    if spec.startswith("task:"):
        match = _TASK.match(spec)
        if match is None:
            raise _BadInput(f"{PROG} analyze: --inputs {spec!r} is not a task; expected task:adding:T, "
                            f"task:copy_memory:T or task:digits")
        if match.group(3):
            task = tasks.sequential_digits(seed=args.seed)
        else:
            task = getattr(tasks, match.group(1))(int(match.group(2)), seed=args.seed)
        xs, _ = task.batch(args.batch, 0)
        label = f"{task.name} inputs (batch 0 of seed {args.seed})"
    else:
        if not spec.lower().endswith(".npy"):
            raise _BadInput(f"{PROG} analyze: --inputs {spec!r} must be a .npy array or task:NAME:T")
        try:
            xs = np.load(spec, allow_pickle=False)
        except FileNotFoundError:
            raise _BadInput(f"{PROG} analyze: --inputs {spec!r} does not exist") from None
        except (OSError, ValueError, EOFError) as exc:
            raise _BadInput(f"{PROG} analyze: --inputs {spec!r} is not a readable .npy array: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if not isinstance(xs, np.ndarray) or xs.ndim != 3 or not np.issubdtype(xs.dtype, np.number) or \
                np.issubdtype(xs.dtype, np.complexfloating):
            layout = "(batch, T, inputs)" if args.batch_first else "(T, batch, inputs)"
            raise _BadInput(f"{PROG} analyze: --inputs {spec!r} must be a real 3-D array {layout}; "
                            f"got {getattr(xs, 'dtype', '?')} shape {getattr(xs, 'shape', '?')}")
        if not np.all(np.isfinite(xs)):
            raise _BadInput(f"{PROG} analyze: --inputs {spec!r} contains non-finite values")
        xs = np.asarray(xs, dtype=float)
        if args.batch_first:
            xs = np.swapaxes(xs, 0, 1)
        label = f"{os.path.basename(spec)}"
    if xs.shape[2] != input_size or xs.shape[0] < 2:
        raise _BadInput(f"{PROG} analyze: --inputs {spec!r} gives shape {xs.shape} (T, batch, inputs); "
                        f"the model reads {input_size} inputs per step and needs T >= 2")
    return np.ascontiguousarray(xs), label


def _analyze(args, argv) -> int:
    import hashlib
    import shlex

    from .report import model_report

    if args.steps < 2:
        raise _BadInput(f"{PROG} analyze: --steps must be at least 2 (the predictors use pairs of steps); "
                        f"got {args.steps}")
    model, source = _analyzed_model(args)
    cells = [model] if hasattr(model, "input_size") else list(model.cells.values())
    first = cells[0]
    predictors = args.predictors == "on" or (
        args.predictors == "auto" and max(c.state_size for c in cells) <= AUTO_PREDICTORS_STATE)
    xs, label = _analyzed_inputs(args, first.input_size)
    if source is not None:
        with open(source, "rb") as fh:
            source = f"{source} (sha256 {hashlib.sha256(fh.read()).hexdigest()[:16]}...)"
    if hasattr(model, "ignored") and model.ignored:
        print(f"{PROG} analyze: ignored keys (not the recurrent block or its head): "
              f"{', '.join(model.ignored)}", file=sys.stderr)
    result = model_report(model, xs, args.out, name=args.name, seed=args.seed, exponents=args.exponents,
                          source=source or "weights drawn from the flags below",
                          command=shlex.join([PROG, *argv]), batch_first=False,
                          predictors=predictors, steps=args.steps, batch=args.batch,
                          input_scale=args.input_scale, inputs_label=label, readout=args.readout,
                          progress=not args.quiet)
    print(f"{model.name}: {result['verdict']} -> {result['pdf']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gradflow`` command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:  # the study runner owns these arguments (and its Ctrl-C: exit 130)
        from gradflow.studies.__main__ import main as run_studies

        return run_studies(argv[1:], prog=f"{PROG} report")
    try:
        args = _parser().parse_args(argv)
        if args.command == "analyze":
            return _analyze(args, argv)
        return _sweep(args) if args.command == "sweep" else _cache(args)
    except _BadInput as exc:
        print(exc, file=sys.stderr)
    except (ValueError, ImportError, OSError) as exc:  # bad grid, parameter, path or scheduler
        print(f"{PROG}: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        if "gradflow.sweep._executors" in sys.modules:
            sys.modules["gradflow.sweep._executors"].stop_pools()
        print(f"{PROG}: interrupted; finished points are cached: run the same command again to resume",
              file=sys.stderr)
        return 130
    return 2
