"""The remedies study's networks: its configurations, the cell and training-time remedy of each,
and the stacked trainer that trains many of them at once exactly as `gradflow.train` would.

The seeds of one configuration train together: their weights are stacked along a leading axis
and one autograd pass through the stacked recurrence gives each network its own gradient (the
loss is a sum over networks, so nothing couples them), followed by per-network clipping and
Adam exactly as `gradflow.train` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import autograd.numpy as anp
import numpy as np
import pandas as pd
from autograd import value_and_grad
from autograd.misc import flatten

import gradflow as gf
from gradflow.studies._cli import check_fields

ADAM = (0.9, 0.999, 1e-8)  # gradflow.train's Adam: beta1, beta2, epsilon
EVAL_BATCH = 256  # held-out sequences per network
EVAL_INDEX = 2**31 - 1  # batch index of the held-out data: never a training batch
REFERENCE = "RNN"  # the unremedied network every remedy is shown beside
# Each configuration: its architecture and the remedy applied (None: none).
CONFIGURATIONS = {
    "RNN": ("RNN", None),
    "RNN + clip norm 1": ("RNN", "clipping"),
    "RNN + L2 1e-3": ("RNN", "penalties"),
    "RNN + orthogonal init": ("RNN", "initialisation"),
    "RNN + identity init": ("RNN", "initialisation"),
    "LSTM": ("LSTM", "gates"),
    "LSTM + forget bias 3": ("LSTM", "gates"),
}


QUICK_CONFIGURATIONS = (
    "RNN",
    "RNN + clip norm 1",
    "RNN + L2 1e-3",
    "RNN + orthogonal init",
    "LSTM + forget bias 3",
)  # one remedy per family


@dataclass(frozen=True)
class Config:
    hidden: int = 8
    steps: int = 200  # Adam steps per network
    batch: int = 8
    seeds: int = 40  # independent networks per configuration and T
    lr: float = 0.02
    adding_T: tuple[int, ...] = (5, 20, 100)
    configurations: tuple[str, ...] = QUICK_CONFIGURATIONS
    success: float = 0.5  # success: held-out loss below this fraction of the baseline
    seed: int = 0

    def __post_init__(self):
        check_fields(
            self,
            choices={"configurations": tuple(CONFIGURATIONS)},
            positive=("lr", "hidden", "steps", "batch", "seeds", "adding_T"),
            fractions=("success",),
        )
        if REFERENCE not in self.configurations:
            raise ValueError(f"configurations must include the reference {REFERENCE!r}")


# ---------------------------------------------------------------- one network, gradflow's way


def cell_of(configuration: str, hidden: int, inputs: int, seed: int) -> gf.Cell:
    """The cell a configuration starts from (its remedy's initialisation or gate bias applied)."""
    arch, _ = CONFIGURATIONS[configuration]
    if arch == "LSTM":
        bias = 3.0 if "forget bias 3" in configuration else 1.0
        return gf.lstm(hidden, inputs, forget_bias=bias, seed=seed)
    init = {"RNN + orthogonal init": "orthogonal", "RNN + identity init": "identity"}.get(
        configuration, "gaussian"
    )
    return gf.rnn(hidden, inputs, init=init, seed=seed)


def options(configuration: str) -> dict:
    """The `gradflow.train` keywords of a configuration's training-time remedy."""
    remedies: dict[str, dict[str, Any]] = {
        "RNN + clip norm 1": {"clip": 1.0},
        "RNN + L2 1e-3": {"penalty": ("l2", 1e-3)},
    }
    return remedies.get(configuration, {})


# ---------------------------------------------------------------- many networks at once


def _forward(params, xs, lstm: bool):
    """Stacked networks: ``params`` arrays carry a leading network axis K, ``xs`` is (K, T, B, D).
    Returns the readout at the last step, (K, B)."""
    p = params["model"]
    W_in, W_t = anp.swapaxes(p["weight_ih_l0"], 1, 2), anp.swapaxes(p["weight_hh_l0"], 1, 2)
    bias = (p["bias_ih_l0"] + p["bias_hh_l0"])[:, None, :]
    K, _, B, _ = xs.shape
    n = p["weight_hh_l0"].shape[2]
    h = c = anp.zeros((K, B, n))
    for t in range(xs.shape[1]):  # slicing the constant xs, never a traced array: no T^2 backward
        pre = anp.matmul(xs[:, t], W_in) + bias + anp.matmul(h, W_t)
        if lstm:  # PyTorch's gate order i, f, g, o
            gates = 1 / (1 + anp.exp(-pre))
            c = gates[..., n : 2 * n] * c + gates[..., :n] * anp.tanh(pre[..., 2 * n : 3 * n])
            h = gates[..., 3 * n :] * anp.tanh(c)
        else:
            h = anp.tanh(pre)
    r = params["readout"]
    return anp.einsum("kbn,kon->kbo", h, r["weight"])[..., 0] + r["bias"][:, None, 0]


def _losses(params, xs, ys, lstm: bool):
    return anp.mean((_forward(params, xs, lstm) - ys) ** 2, axis=1)  # (K,): each network's MSE


def _objective(params, xs, ys, lstm: bool, l2: np.ndarray, parts: dict):
    """Sum over networks of each one's loss plus its own L2 penalty (``l2``: one weight per network);
    ``parts["losses"]`` gets the per-network losses, unboxed."""
    losses = _losses(params, xs, ys, lstm)
    parts["losses"] = np.array(getattr(losses, "_value", losses))
    total = anp.sum(losses)
    if np.any(l2):
        total = total + anp.sum(l2[:, None, None] * params["model"]["weight_hh_l0"] ** 2)
    return total


def _stack(trees: list[dict]) -> dict:
    return {
        k: (
            _stack([t[k] for t in trees])
            if isinstance(trees[0][k], dict)
            else np.stack([np.asarray(t[k], dtype=float) for t in trees])
        )
        for k in trees[0]
    }


def train_stack(networks: list[tuple[str, int]], T: int, cfg: Config, progress=None) -> pd.DataFrame:
    """Train ``(configuration, seed)`` networks of one architecture on adding(T) together; one row each.

    Every network starts where `gradflow.train` would (`gradflow.training_objective`'s weights
    and readout for its seed), sees the same batches (``task.batch(batch, (seed, step))``) and
    gets its own remedy (clipping of its own gradient's norm, its own L2 weight) and the same
    Adam update; only the arithmetic is stacked. ``progress`` (a tqdm bar) advances once a step.
    """
    configurations = [c for c, _ in networks]
    seeds = [s for _, s in networks]
    archs = {CONFIGURATIONS[c][0] for c in configurations}
    if len(archs) != 1:
        raise ValueError(f"networks must share one architecture; got {sorted(archs)}")
    arch = archs.pop()
    lstm = arch == "LSTM"
    clip = np.array([options(c).get("clip", np.inf) for c in configurations])
    l2 = np.array([options(c).get("penalty", ("l2", 0.0))[1] for c in configurations])
    tasks = [gf.tasks.adding(T, seed=s) for s in seeds]
    starts = [
        gf.training_objective(cell_of(c, cfg.hidden, t.input_size, s), t, seed=s)[1]
        for c, s, t in zip(configurations, seeds, tasks, strict=True)
    ]
    params = _stack(starts)
    flat, unflatten = flatten(params)
    net = flatten(_network_ids(params, len(seeds)))[0].astype(int)  # each coordinate's network
    parts: dict = {}
    step_fn = value_and_grad(lambda v, xs, ys: _objective(unflatten(v), xs, ys, lstm, l2, parts))
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    alive = np.ones(len(seeds), bool)
    losses = np.full((cfg.steps, len(seeds)), np.nan)
    grad_norms = np.full((cfg.steps, len(seeds)), np.nan)
    b1, b2, eps = ADAM
    start = time.perf_counter()
    for i in range(cfg.steps):
        batches = [t.batch(cfg.batch, (s, i)) for s, t in zip(seeds, tasks, strict=True)]
        xs = np.stack([b[0] for b in batches])
        ys = np.stack([b[1] for b in batches])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            _, g = step_fn(flat, xs, ys)
        per = parts["losses"]
        norms = np.sqrt(
            np.bincount(net, weights=np.nan_to_num(g, nan=np.inf, posinf=np.inf) ** 2, minlength=len(seeds))
        )
        alive &= np.isfinite(per) & np.isfinite(norms)  # a diverged network stops where it broke
        losses[i, alive], grad_norms[i, alive] = per[alive], norms[alive]
        g = np.where(alive[net], g, 0.0)
        g = g * np.minimum(1.0, clip / np.maximum(norms, 1e-300))[net]  # clip = inf: unchanged
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        update = -cfg.lr * (m / (1 - b1 ** (i + 1))) / (np.sqrt(v / (1 - b2 ** (i + 1))) + eps)
        flat = flat + np.where(alive[net], update, 0.0)
        if progress is not None:
            progress.update(1)
    held = [t.held_out(EVAL_BATCH, (s, EVAL_INDEX)) for s, t in zip(seeds, tasks, strict=True)]
    with np.errstate(over="ignore", invalid="ignore"):
        eval_loss = _losses(
            unflatten(flat), np.stack([h[0] for h in held]), np.stack([h[1] for h in held]), lstm
        )
    final = unflatten(flat)["model"]["weight_hh_l0"]
    square = final[:, : cfg.hidden, :] if lstm else final
    seconds = time.perf_counter() - start
    baseline = tasks[0].baseline
    eval_loss = np.where(alive, eval_loss, np.nan)
    return pd.DataFrame(
        {
            "configuration": configurations,
            "architecture": arch,
            "remedy": [CONFIGURATIONS[c][1] or "none" for c in configurations],
            "T": T,
            "seed": seeds,
            "eval_loss": eval_loss,
            "baseline": baseline,
            "ratio": eval_loss / baseline,
            "success": np.nan_to_num(eval_loss / baseline, nan=np.inf) < cfg.success,
            "diverged": ~alive,
            "first_loss": losses[0],
            "final_train_loss": losses[-1],
            "median_grad_norm": np.nanmedian(grad_norms, axis=0),
            "spectral_radius_final": [float(np.max(np.abs(np.linalg.eigvals(w)))) for w in square],
            "stack_wall_s": seconds,
        }
    )


def _network_ids(tree: dict, k: int) -> dict:
    """``tree`` with every array replaced by its network index (the leading axis), as floats."""

    def ids(v):
        return np.broadcast_to(np.arange(k, dtype=float).reshape(-1, *[1] * (np.ndim(v) - 1)), np.shape(v))

    return {name: _network_ids(v, k) if isinstance(v, dict) else ids(v).copy() for name, v in tree.items()}
