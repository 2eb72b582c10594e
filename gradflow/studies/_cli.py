"""The command line every study shares: ``--quick|--full``, ``--out``, ``--seed``, ``--config`` and
size overrides.

A config file is TOML: a table per study (``[gated_cells]``) or, for one study, plain
top-level keys; every key must be a field of that study's ``Config``. Each run writes
``<study>_config.toml`` beside its PDF, and that file given back to ``--config``
reproduces the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gradflow.core._files import staged_folder
from gradflow.report import atomic_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A config file that cannot be read, or a key or value a study does not take."""


class StudyParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict; a `ConfigError` naming the file when it is unreadable."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config file {os.fspath(path)!r} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {os.fspath(path)!r} is not valid TOML: {exc}") from None


def _coerce(study: str, key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the field's ``default``, or a ConfigError naming key and value."""
    where = f"[{study}] {key} = {value!r}"
    if isinstance(default, tuple):
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}: expected a non-empty list like {list(default)!r}")
        return tuple(_coerce(study, key, v, default[0]) for v in value)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and key != "seed" and value < 1:
            raise ConfigError(f"{where}: expected a positive integer")
        if ok and value < 0:
            raise ConfigError(f"{where}: expected a non-negative integer")
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number")
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{where}: expected {type(default).__name__} like {default!r}")
    return value


def config_from_mapping(study: str, base: Any, values: Mapping[str, Any]) -> Any:
    """``base`` (a Config dataclass) with ``values`` applied, each checked against the field's type."""
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"[{study}] has unknown key {unknown[0]!r}; expected any of {', '.join(fields)}")
    try:  # each Config's __post_init__ checks what types cannot: ranges and choices
        return dataclasses.replace(base, **{k: _coerce(study, k, v, fields[k]) for k, v in values.items()})
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"[{study}] {exc}") from None


def check_fields(
    config: Any,
    *,
    choices: Mapping[str, Sequence[str]] | None = None,
    positive: Sequence[str] = (),
    non_negative: Sequence[str] = (),
    fractions: Sequence[str] = (),
) -> None:
    """Raise ValueError naming the first field of ``config`` (or element of a tuple field) that
    is not one of its ``choices``, not > 0 (``positive``), < 0 (``non_negative``) or outside
    (0, 1] (``fractions``). Configs call it from ``__post_init__``."""

    def values(name):
        value = getattr(config, name)
        return value if isinstance(value, tuple) else (value,)

    for name, allowed in (choices or {}).items():
        for v in values(name):
            if v not in allowed:
                raise ValueError(f"{name} = {v!r} is not one of {', '.join(map(repr, allowed))}")
    tests = [
        (positive, lambda v: v > 0, "> 0"),
        (non_negative, lambda v: v >= 0, ">= 0"),
        (fractions, lambda v: 0 < v <= 1, "in (0, 1]"),
    ]
    for names, good, what in tests:
        for name in names:
            for v in values(name):
                if not good(v):
                    raise ValueError(f"{name} = {v!r} must be {what}")


def study_section(study: str, document: Mapping[str, Any], studies: Sequence[str]) -> dict[str, Any]:
    """The keys of ``document`` meant for ``study``: its table, or flat keys when there are no tables."""
    tables = {k for k, v in document.items() if isinstance(v, dict)}
    if not tables:
        return dict(document)
    stray = sorted(set(document) - tables)
    if stray:
        raise ConfigError(f"config key {stray[0]!r} is outside any [study] table")
    unknown = sorted(tables - set(studies))
    if unknown:
        raise ConfigError(f"config table [{unknown[0]}] is not a study; expected any of {', '.join(studies)}")
    return dict(document.get(study, {}))


def _toml_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def write_config(path: str | os.PathLike, study: str, config: Any) -> None:
    """``config`` as a ``[study]`` TOML table, atomically: ``--config`` of this file repeats the run."""
    lines = [f"# gradflow report {study} --config {os.path.basename(os.fspath(path))}", f"[{study}]"]
    lines += [f"{f.name} = {_toml_value(getattr(config, f.name))}" for f in dataclasses.fields(config)]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def study_main(
    argv, *, name: str, doc: str, quick, full, run: Callable, overrides: Sequence[str] = ("hidden", "steps")
) -> dict:
    """Parse ``argv`` and call ``run(config, out)`` with the chosen config.

    Precedence, lowest first: ``--quick`` (the default) or ``--full`` sizes, then the
    ``--config`` file's values, then ``--seed`` and the size flags.
    """
    from gradflow.studies import STUDIES

    parser = StudyParser(prog=f"python -m gradflow.studies.{name}", description=doc.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, minutes (the default)")
    mode.add_argument("--full", action="store_true", help="paper-grade sizes")
    parser.add_argument("--out", default="reports", help="output folder (default: reports)")
    parser.add_argument("--seed", type=int, help="base seed (default: 0, or the config file's)")
    parser.add_argument("--config", metavar="FILE.toml", help="values of this study's Config fields")
    for field in overrides:
        parser.add_argument(f"--{field}", type=int, help=f"override {field} (a positive integer)")
    args = parser.parse_args(argv)
    chosen = {k: getattr(args, k) for k in overrides if getattr(args, k) is not None}
    for key, value in chosen.items():
        if value < 1:
            parser.error(f"--{key} must be a positive integer; got {value}")
    if args.seed is not None:
        if args.seed < 0:
            parser.error(f"--seed must be a non-negative integer; got {args.seed}")
        chosen["seed"] = args.seed
    config = full if args.full else quick
    if args.config:
        try:
            values = study_section(name, read_config_file(args.config), STUDIES)
            config = config_from_mapping(name, config, values)
        except ConfigError as exc:
            parser.error(str(exc))
    config = dataclasses.replace(config, **chosen)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out!r} is a file; give a folder")
    # PDF, CSVs and config are built in a staging folder and moved in together at the end:
    # an interrupted or failed study leaves the previous outputs as they were.
    with staged_folder(args.out) as stage:
        result = run(config, stage)
        write_config(os.path.join(stage, f"{name}_config.toml"), name, config)
    if isinstance(result.get("pdf"), str):
        result["pdf"] = os.path.join(args.out, os.path.basename(result["pdf"]))
    result["config"] = config
    return result
