"""Shared fixtures: every study run once (twice, for the byte-identity check) with tiny sizes."""

import importlib
import os
from types import SimpleNamespace

import pytest

# Tiny sizes per study: seconds each, yet every page and table of the report is built.
TINY = {
    "eigenvalue_rule": ["--hidden", "8", "--steps", "40", "--seeds", "1"],
    "gated_cells": ["--hidden", "8", "--steps", "60", "--seeds", "2"],
    "memory_horizon": ["--hidden", "8", "--steps", "60", "--seeds", "2"],
    "path_lengths": ["--hidden", "4", "--steps", "48", "--seeds", "1"],
    "lyapunov_atlas": ["--hidden", "12", "--steps", "120", "--seeds", "2"],
    "cost": ["--hidden", "8", "--steps", "32"],
    "predictor_accuracy": ["--hidden", "4", "--steps", "30", "--seeds", "1", "--subsample", "12"],
    "remedies": ["--hidden", "4", "--steps", "6", "--seeds", "2"],
    "recurrent_revival": ["--hidden", "4", "--steps", "40", "--seeds", "2"],
}
# Config fields no flag sets, given to the tiny run as a --config file.
TINY_CONFIG = {
    "cost": {"widths": [8, 32], "networks": 2, "step_length": 8, "repeats": 1},
    "remedies": {"adding_T": [3, 12]},
    "recurrent_revival": {
        "lengths": [16, 64],
        "repeats": 1,
        "executor": "serial",
        "sensitivity_ks": [0.5, 1.0],
        "sensitivity_steps": 60,
        "sensitivity_batch": 2,
        "learn_lengths": [4, 6],
        "learn_seeds": 2,
        "learn_steps": 3,
        "learn_width": 4,
        "copy_symbols": 2,
    },
}


def _toml(table: dict) -> str:
    return "".join(
        f"{key} = {list(value) if isinstance(value, (list, tuple)) else value!r}\n"
        for key, value in table.items()
    )


@pytest.fixture(scope="session")
def study_run(tmp_path_factory):
    """``study_run(name)``: the study's tiny run (``out``, ``result``) and a second, identical
    run into ``again``, both with ``SOURCE_DATE_EPOCH`` set and a private sweep cache."""
    runs = {}

    def run(name):
        if name not in runs:
            root = tmp_path_factory.mktemp(name)
            saved = {k: os.environ.get(k) for k in ("SOURCE_DATE_EPOCH", "GRADFLOW_CACHE_DIR")}
            os.environ.update(SOURCE_DATE_EPOCH="1700000000", GRADFLOW_CACHE_DIR=str(root / "cache"))
            try:
                study = importlib.import_module(f"gradflow.studies.{name}")
                argv = list(TINY[name])
                if name in TINY_CONFIG:
                    (root / "tiny.toml").write_text(f"[{name}]\n" + _toml(TINY_CONFIG[name]))
                    argv += ["--config", str(root / "tiny.toml")]
                result = study.main(["--out", str(root / "a"), *argv])
                study.main(["--out", str(root / "b"), *argv])
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
            runs[name] = SimpleNamespace(
                out=root / "a", again=root / "b", result=result, cache=root / "cache"
            )
        return runs[name]

    return run


def pytest_collection_modifyitems(config, items):
    # A test that runs a study (directly or through a fixture) is study-sized: it must carry
    # @pytest.mark.slow, so `-m "not slow"` is a quick loop that really is quick.
    unmarked = [
        item.nodeid
        for item in items
        if "study_run" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests that run a study must be marked @pytest.mark.slow: " + ", ".join(unmarked)
        )
