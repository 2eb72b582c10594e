"""The argument parser of the ``gradflow`` command (`build_parser`): its four subcommands
``sweep``, ``report``, ``analyze`` and ``cache`` with every flag and its help, the argument types
that check a flag's value (positive integer, finite number, comma-separated seeds), and
`BadInput`, the one-line error (exit code 2, never a traceback) that ``gradflow.cli`` raises
for bad input and prints; ``gradflow.cli`` runs the parsed command.
"""

from __future__ import annotations

import argparse

from .cells._builtin import INITS
from .core._registry import cell_kinds
from .sweep._cache import default_cache_dir

PROG = "gradflow"
# gf.predict's moment maps cost ~2 CPU minutes for a 2-layer 128-unit LSTM (state 512) at T = 1000,
# the flow, Lyapunov spectrum and fixed points together ~20 s: auto runs predict on smaller states.
AUTO_PREDICTORS_STATE = 256


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message):
        raise BadInput(f"{self.prog}: {message} (see {self.prog} --help)")


class BadInput(Exception):
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
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 0,1,2; got {text!r}"
        ) from None


def build_parser() -> _Parser:
    parser = _Parser(prog=PROG, description="Measure and predict gradient flow in recurrent networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sweep = sub.add_parser(
        "sweep",
        help="run a parameter grid (TOML); CSV to --out or stdout",
        description="Run the task at every point of GRID.toml x seeds; finished "
        "points are cached, so a re-run computes only what is missing.",
    )
    sweep.add_argument(
        "grid",
        help="TOML file: [grid] parameter lists, optional seeds and task (the name "
        "of a gradflow task: a grid file never runs other code)",
    )
    sweep.add_argument(
        "--task-module",
        metavar="MODULE:FUNCTION",
        help="your own task: imports MODULE (also from the working directory) and runs "
        "FUNCTION at every point; only for code you trust",
    )
    sweep.add_argument(
        "--executor",
        choices=("serial", "process", "dask"),
        help="serial (this process), process (local pool; default with --workers) or "
        "dask (default with --scheduler or --dask-local); default serial",
    )
    sweep.add_argument(
        "--scheduler", metavar="ADDRESS", help="an existing Dask cluster, e.g. tcp://host:8786"
    )
    sweep.add_argument(
        "--dask-local",
        type=_positive,
        metavar="N",
        help="start a Dask LocalCluster of N worker processes for the sweep",
    )
    sweep.add_argument(
        "--workers", type=_positive, metavar="N", help="processes of the local pool (default: every core)"
    )
    sweep.add_argument(
        "--seeds", type=_seeds, metavar="S,S,...", help="seeds (default: the file's seeds, else 0)"
    )
    sweep.add_argument("--batch-size", type=_positive, metavar="N", help="most points per job")
    sweep.add_argument("--out", metavar="FILE.csv", help="write the table here (atomically)")
    sweep.add_argument("--cache-dir", metavar="DIR", help=f"cache folder (default {default_cache_dir()})")
    sweep.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument(
        "--yes",
        action="store_true",
        help="run a grid of more than 100,000 points (refused otherwise, with an estimate)",
    )
    report = sub.add_parser(
        "report", help="run the studies in gradflow/studies/ and write their PDF reports", add_help=False
    )
    report.add_argument("rest", nargs=argparse.REMAINDER)  # parsed by the study runner itself
    analyze = sub.add_parser(
        "analyze",
        help="a PDF report on one model: your weights (.pt/.pth/.npz) or a cell built from flags",
        description="The gradient of the output your model reads, by layer, direction and state part, "
        "on your inputs; spectra, every predictor, the Lyapunov spectrum and fixed points.",
    )
    analyze.add_argument(
        "weights",
        nargs="?",
        metavar="MODEL",
        help="a state_dict saved with torch.save (.pt/.pth, needs torch) or numpy.savez "
        "(.npz; keys may carry module prefixes: lstm.weight_ih_l0, fc.weight), "
        "or a gf.Cell.save file",
    )
    analyze.add_argument(
        "--inputs",
        metavar="XS.npy|task:NAME:T",
        help="the model's own inputs: a .npy array (T, batch, inputs), or a task "
        "generator task:adding:T, task:copy_memory:T, task:digits (default: "
        "synthetic Gaussian inputs, and the report says so)",
    )
    analyze.add_argument(
        "--batch-first", action="store_true", help="the --inputs array is (batch, T, inputs)"
    )
    analyze.add_argument("--prefix", help="which recurrent block, when the weights hold several")
    analyze.add_argument(
        "--head",
        help="module name of the linear layer reading the output (e.g. fc); "
        "default: the one linear layer that fits",
    )
    analyze.add_argument(
        "--readout",
        choices=("last", "sum"),
        default="last",
        help="measure the head's output at the last step, or summed over every step "
        "(a loss on the whole output sequence); default last",
    )
    analyze.add_argument(
        "--predictors",
        choices=("auto", "on", "off"),
        default="auto",
        help=f"run gf.predict (its moment maps dominate the cost on large cells); auto: "
        f"on up to state size {AUTO_PREDICTORS_STATE} (default auto)",
    )
    analyze.add_argument(
        "--cell", choices=cell_kinds(pytorch_layout=True), help="kind of cell (inferred from a weights file)"
    )
    analyze.add_argument("--hidden", type=_positive, help="hidden size of a new cell")
    analyze.add_argument("--input-size", type=_positive, help="input size of a new cell (default 8)")
    analyze.add_argument("--layers", type=_positive, help="stacked layers of a new cell (default 1)")
    analyze.add_argument("--gain", type=_finite, help="recurrent gain of a new cell (default 1)")
    analyze.add_argument("--init", choices=INITS, help="initialiser of a new cell (default gaussian)")
    analyze.add_argument(
        "--activation",
        choices=("tanh", "relu", "sigmoid", "linear"),
        help="vanilla cells' activation (weights files: tanh or relu, as nn.RNN)",
    )
    analyze.add_argument("--forget-bias", type=_finite, help="LSTM forget-gate bias of a new cell")
    analyze.add_argument("--update-bias", type=_finite, help="GRU update-gate bias of a new cell")
    analyze.add_argument(
        "--steps", type=_positive, default=500, help="sequence length T of synthetic inputs (default 500)"
    )
    analyze.add_argument("--batch", type=_positive, default=4, help="input sequences (default 4)")
    analyze.add_argument(
        "--input-scale",
        type=_finite,
        default=1.0,
        help="standard deviation of synthetic gaussian inputs (default 1)",
    )
    analyze.add_argument(
        "--exponents", type=_positive, default=16, help="largest Lyapunov exponents to compute (default 16)"
    )
    analyze.add_argument("--seed", type=int, default=0, help="seed of new weights, inputs and probes")
    analyze.add_argument("--out", default="reports", help="output folder (default reports)")
    analyze.add_argument("--name", help="file stem of the report (default: the model's name)")
    analyze.add_argument("--quiet", action="store_true", help="no progress bar")
    cache = sub.add_parser("cache", help="inspect or empty the sweep cache")
    cache.add_argument("action", choices=("info", "clear"))
    cache.add_argument("--cache-dir", metavar="DIR", help=f"cache folder (default {default_cache_dir()})")
    return parser
