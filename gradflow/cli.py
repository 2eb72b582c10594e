"""The ``gradflow`` command: ``gradflow report [STUDY ...]``, ``gradflow analyze MODEL [--inputs ...] |
--cell ...``, ``gradflow sweep GRID.toml ...`` and ``gradflow cache info|clear``.

Exit codes: 0 done; 1 some points failed (each is listed on stderr with its
configuration and error); 2 bad input (one line on stderr, never a traceback);
130 interrupted (finished points are cached: the same command resumes). The argument parser,
its flags and `BadInput` are in ``_cli_parser``; this module runs the parsed command.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Sequence

from ._cli_parser import AUTO_PREDICTORS_STATE, PROG, BadInput, build_parser
from .core._registry import cell_kind, cell_kinds
from .sweep._cache import cache_info, clear_cache, default_cache_dir


def check_out_file(flag: str, path: str) -> None:
    """Refuse an output file path that cannot be written, before any work is done."""
    if os.path.isdir(path):
        raise BadInput(f"{flag} {path!r} is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # atomic_path creates the missing folders
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise BadInput(f"{flag} {path!r}: {parent!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"{flag} {path!r}: cannot write in {parent!r}")


def _task_module(spec: str):
    """The user's own task, imported because they asked for it (``--task-module``)."""
    from .sweep._jobs import load_task

    if os.getcwd() not in sys.path:  # the user's module usually sits where they run the command
        sys.path.append(os.getcwd())
    try:
        return load_task(spec)
    except ValueError as exc:
        raise BadInput(f"{PROG} sweep: --task-module: {exc}") from None


def _sweep(args) -> int:
    from .core._files import write_csv
    from .sweep._run import SweepWarning, describe, run

    if args.dask_local is not None and args.scheduler is not None:
        raise BadInput(
            f"{PROG} sweep: give --scheduler (an existing cluster) or --dask-local N (a new one), not both"
        )
    if (args.dask_local is not None or args.scheduler is not None) and args.executor not in (None, "dask"):
        raise BadInput(
            f"{PROG} sweep: --scheduler and --dask-local need --executor dask; got --executor {args.executor}"
        )
    if args.no_cache and args.cache_dir:
        raise BadInput(f"{PROG} sweep: give --cache-dir or --no-cache, not both")
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
        frame = run(
            args.grid,
            task=task,
            seeds=args.seeds,
            executor=executor,
            scheduler=args.scheduler,
            cache=cache,
            workers=workers,
            batch_size=args.batch_size,
            progress=not args.quiet,
            allow_large=args.yes,
        )
    failed = frame[frame.error != ""]
    stats = frame.attrs.get("sweep", {})
    for _, row in failed.iterrows():
        point = {
            k: row[k] for k in frame.columns[: list(frame.columns).index("seed") + 1] if not _missing(row[k])
        }
        print(f"failed: {describe(point)}: {row.error}", file=sys.stderr)
    summary = (
        f"{stats.get('points', len(frame))} points: {stats.get('cached', 0)} from the cache, "
        f"{stats.get('computed', 0)} computed, {len(failed)} failed"
    )
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


_NEW_CELL_FLAGS = ("hidden", "input_size", "layers", "gain", "init", "forget_bias", "update_bias")
_TASK = re.compile(r"^task:(adding|copy_memory):([1-9][0-9]{0,6})$|^task:(digits)$")


def _analyzed_model(args):
    """The model ``gradflow analyze`` reports on: read from ``args.weights`` or built from the flags."""
    from .models._io import from_torch
    from .models._npz import load, read_npz

    given = [f"--{f.replace('_', '-')}" for f in _NEW_CELL_FLAGS if getattr(args, f) is not None]
    if args.weights is None:
        if args.cell is None or args.hidden is None:
            raise BadInput(f"{PROG} analyze: give a weights file, or --cell and --hidden for a new cell")
        if args.prefix or args.head:
            raise BadInput(
                f"{PROG} analyze: --prefix and --head choose parts of a weights file; none was given"
            )
        kwargs = {k: getattr(args, k) for k in ("layers", "gain", "init") if getattr(args, k) is not None}
        record = cell_kind(args.cell)
        if "activation" in record.options and args.activation:
            kwargs["activation"] = args.activation
        for flag in ("forget_bias", "update_bias"):  # each a constructor option of one kind
            if getattr(args, flag) is not None:
                if flag not in record.options:
                    owner = next(k for k in cell_kinds() if flag in cell_kind(k).options)
                    raise BadInput(
                        f"{PROG} analyze: --{flag.replace('_', '-')} applies to --cell {owner} "
                        f"only; got --cell {args.cell}"
                    )
                kwargs[flag] = getattr(args, flag)
        return record.make(args.hidden, args.input_size or 8, seed=args.seed, **kwargs), None
    if given:
        raise BadInput(
            f"{PROG} analyze: {given[0]} builds a new cell; it cannot change the weights in {args.weights!r}"
        )
    path = args.weights
    if not path.lower().endswith((".pt", ".pth")):
        arrays = read_npz(path)  # one clear error for a missing, truncated or non-npz file
        if "__gradflow__" in arrays:
            if args.prefix or args.head:
                raise BadInput(
                    f"{PROG} analyze: {path!r} is a gradflow cell file: it has no prefixes or head to choose"
                )
            return load(path), path
    name = os.path.splitext(os.path.basename(path))[0]
    model = from_torch(
        path,
        prefix=args.prefix,
        head=args.head,
        kind=args.cell,
        activation=args.activation or "tanh",
        name=name,
    )
    return model, path


def _analyzed_inputs(args, input_size: int):
    """``(xs, label)`` from ``--inputs`` (time-major), or ``(None, None)`` for synthetic inputs."""
    import numpy as np

    from . import tasks

    spec = args.inputs
    if spec is None:
        if args.batch_first:
            raise BadInput(f"{PROG} analyze: --batch-first describes an --inputs array; none was given")
        return None, None
    if spec.startswith("task:"):
        match = _TASK.match(spec)
        if match is None:
            raise BadInput(
                f"{PROG} analyze: --inputs {spec!r} is not a task; expected task:adding:T, "
                f"task:copy_memory:T or task:digits"
            )
        if match.group(3):
            task = tasks.sequential_digits(seed=args.seed)
        else:
            task = getattr(tasks, match.group(1))(int(match.group(2)), seed=args.seed)
        xs, _ = task.batch(args.batch, 0)
        label = f"{task.name} inputs (batch 0 of seed {args.seed})"
    else:
        if not spec.lower().endswith(".npy"):
            raise BadInput(f"{PROG} analyze: --inputs {spec!r} must be a .npy array or task:NAME:T")
        try:
            xs = np.load(spec, allow_pickle=False)
        except FileNotFoundError:
            raise BadInput(f"{PROG} analyze: --inputs {spec!r} does not exist") from None
        except (OSError, ValueError, EOFError) as exc:
            raise BadInput(
                f"{PROG} analyze: --inputs {spec!r} is not a readable .npy array: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        if (
            not isinstance(xs, np.ndarray)
            or xs.ndim != 3
            or not np.issubdtype(xs.dtype, np.number)
            or np.issubdtype(xs.dtype, np.complexfloating)
        ):
            layout = "(batch, T, inputs)" if args.batch_first else "(T, batch, inputs)"
            raise BadInput(
                f"{PROG} analyze: --inputs {spec!r} must be a real 3-D array {layout}; "
                f"got {getattr(xs, 'dtype', '?')} shape {getattr(xs, 'shape', '?')}"
            )
        if not np.all(np.isfinite(xs)):
            raise BadInput(f"{PROG} analyze: --inputs {spec!r} contains non-finite values")
        xs = np.asarray(xs, dtype=float)
        if args.batch_first:
            xs = np.swapaxes(xs, 0, 1)
        label = f"{os.path.basename(spec)}"
    if xs.shape[2] != input_size or xs.shape[0] < 2:
        raise BadInput(
            f"{PROG} analyze: --inputs {spec!r} gives shape {xs.shape} (T, batch, inputs); "
            f"the model reads {input_size} inputs per step and needs T >= 2"
        )
    return np.ascontiguousarray(xs), label


def _analyze(args, argv) -> int:
    import hashlib
    import shlex

    from .report import model_report

    if args.steps < 2:
        raise BadInput(
            f"{PROG} analyze: --steps must be at least 2 (the predictors use pairs of steps); "
            f"got {args.steps}"
        )
    model, source = _analyzed_model(args)
    cells = [model] if hasattr(model, "input_size") else list(model.cells.values())
    first = cells[0]
    predictors = args.predictors == "on" or (
        args.predictors == "auto" and max(c.state_size for c in cells) <= AUTO_PREDICTORS_STATE
    )
    xs, label = _analyzed_inputs(args, first.input_size)
    if source is not None:
        with open(source, "rb") as fh:
            source = f"{source} (sha256 {hashlib.sha256(fh.read()).hexdigest()[:16]}...)"
    if hasattr(model, "ignored") and model.ignored:
        print(
            f"{PROG} analyze: ignored keys (not the recurrent block or its head): {', '.join(model.ignored)}",
            file=sys.stderr,
        )
    result = model_report(
        model,
        xs,
        args.out,
        name=args.name,
        seed=args.seed,
        exponents=args.exponents,
        source=source or "weights drawn from the flags below",
        command=shlex.join([PROG, *argv]),
        batch_first=False,
        predictors=predictors,
        steps=args.steps,
        batch=args.batch,
        input_scale=args.input_scale,
        inputs_label=label,
        readout=args.readout,
        progress=not args.quiet,
    )
    print(f"{model.name}: {result['verdict']} -> {result['pdf']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gradflow`` command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:  # the study runner owns these arguments (and its Ctrl-C: exit 130)
        from gradflow.studies.__main__ import main as run_studies

        return run_studies(argv[1:], prog=f"{PROG} report")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "analyze":
            return _analyze(args, argv)
        return _sweep(args) if args.command == "sweep" else _cache(args)
    except BadInput as exc:
        print(exc, file=sys.stderr)
    except (ValueError, ImportError, OSError) as exc:  # bad grid, parameter, path or scheduler
        print(f"{PROG}: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        if "gradflow.sweep._executors" in sys.modules:
            sys.modules["gradflow.sweep._executors"].stop_pools()
        print(
            f"{PROG}: interrupted; finished points are cached: run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    return 2
