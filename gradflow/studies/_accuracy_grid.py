"""The predictor-accuracy grid: 113 tuned and 66 untuned configurations, and the networks they
build (one module so the study itself stays about scoring and pages)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

import gradflow as gf
from gradflow.studies._protocol import WARMUP, warm_start

INPUTS = 8  # input width of every cell

if TYPE_CHECKING:  # annotations only
    from gradflow.studies.predictor_accuracy import Config


def grid() -> list[dict]:
    """The configurations: 113 tuned and 66 untuned points, each a dict of what builds it."""
    rows = []

    def add(part, cell, activation, matrix, gain, scale, bias=np.nan, shear=0.0, rank=0, noise=0.0):
        rows.append(
            dict(
                part=part,
                cell=cell,
                activation=activation,
                matrix=matrix,
                gain=gain,
                input_scale=scale,
                gate_bias=bias,
                shear=shear,
                rank=rank,
                noise=noise,
            )
        )

    for act_, fams in (
        (
            "tanh",
            [
                ("gaussian", (0.3, 0.9, 1.5, 4.0), (0.0, 1.0, 3.0)),
                ("orthogonal", (0.3, 0.9, 1.5, 4.0), (0.0, 1.0, 3.0)),
                ("identity", (0.5, 1.0), (0.0, 1.0)),
                ("low-rank", (0.5, 1.5, 3.0), (0.0, 1.0)),
                ("non-normal", (0.6, 0.95), (0.0, 1.0)),
            ],
        ),
        (
            "relu",
            [
                ("gaussian", (0.3, 1.0, 1.3), (0.0, 1.0, 3.0)),
                ("orthogonal", (0.5, 0.9), (0.0, 1.0)),
                ("identity", (0.9, 1.0), (0.0, 1.0)),
                ("low-rank", (0.5, 1.5), (1.0,)),
                ("non-normal", (0.6,), (1.0,)),
            ],
        ),
    ):
        for family, gains, scales in fams:
            shears = (3.0, 8.0) if family == "non-normal" else (0.0,)
            for gain, scale, shear in itertools.product(gains, scales, shears):
                add(
                    "tuned",
                    "rnn",
                    act_,
                    family,
                    gain,
                    scale,
                    shear=shear,
                    rank=1 if family == "low-rank" else 0,
                    noise=0.4 if family == "low-rank" else 0.0,
                )
    for kind in ("lstm", "gru"):
        for bias, gain, scale in itertools.product((-2.0, 0.0, 1.0, 3.0), (0.5, 1.5, 4.0), (0.5, 2.0)):
            add("tuned", kind, "", "gaussian", gain, scale, bias)
    for bias in (1.0, 3.0):
        add("tuned", "lstm", "", "orthogonal", 1.0, 1.0, bias)
    # Untuned: added after the predictors were fixed, to score them on what they never saw.
    for diag, link, scale in itertools.product((0.5, 0.9, 1.05), (1.0, 2.0, 4.0), (0.5, 2.0)):
        add("untuned", "rnn", "tanh", "chain", diag, scale, shear=link)  # diag * I + link * shift
    for rank, gain, noise in itertools.product((2, 3), (0.8, 1.2, 2.5), (0.2, 0.8)):
        add("untuned", "rnn", "tanh", "low-rank", gain, 0.5, rank=rank, noise=noise)
    for gain, bias, scale in itertools.product((2.0, 3.0, 5.0), (-3.0, -1.0, 0.0), (0.5, 2.0)):
        add("untuned", "gru", "", "gaussian", gain, scale, bias)  # chaotic GRUs
    for gain, bias, scale in itertools.product((2.5, 4.0, 6.0), (2.0, 4.0, 6.0), (0.5, 2.0)):
        add("untuned", "lstm", "", "gaussian", gain, scale, bias)  # forget-bias LSTMs at high gain
    return rows


def architecture(point: dict) -> str:
    """The design cell a configuration belongs to: tanh RNN, ReLU RNN, LSTM or GRU."""
    if point["cell"] == "rnn":
        return {"tanh": "tanh RNN", "relu": "ReLU RNN"}[point["activation"]]
    return point["cell"].upper()


def recurrent_matrix(rng, n: int, point: dict) -> np.ndarray:
    """The structured recurrent matrices the cell constructors do not draw themselves."""
    family, gain = point["matrix"], point["gain"]
    if family == "low-rank":  # noise bulk plus a rank-r part whose eigenvalues are ``gain``
        u, _ = np.linalg.qr(rng.standard_normal((n, point["rank"])))
        return point["noise"] * rng.standard_normal((n, n)) / np.sqrt(n) + gain * u @ u.T
    if family == "chain":  # all eigenvalues = gain, a feed-forward chain of links on top
        return gain * np.eye(n) + point["shear"] * np.eye(n, k=-1)
    # non-normal: eigenvalue moduli <= gain, with a strong strictly-upper (Schur) part
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    d = gain * rng.uniform(0.5, 1.0, n) * rng.choice([-1.0, 1.0], n)
    upper = np.triu(rng.standard_normal((n, n)), 1) * point["shear"] / np.sqrt(n)
    return q @ (np.diag(d) + upper) @ q.T


def build(point: dict, cfg: Config, seed: int):
    """The cell of one network, its measured inputs and its warmed-up initial state."""
    n = cfg.hidden
    rng = np.random.default_rng(seed)
    if point["cell"] == "rnn":
        init = point["matrix"] if point["matrix"] in ("gaussian", "orthogonal", "identity") else "gaussian"
        cell = gf.rnn(n, INPUTS, activation=point["activation"], gain=point["gain"], init=init, seed=seed)
        if point["matrix"] in ("low-rank", "non-normal", "chain"):
            cell.params["weight_hh_l0"][:] = recurrent_matrix(rng, n, point)
    elif point["cell"] == "lstm":
        cell = gf.lstm(
            n, INPUTS, forget_bias=point["gate_bias"], gain=point["gain"], init=point["matrix"], seed=seed
        )
    else:
        cell = gf.gru(n, INPUTS, update_bias=point["gate_bias"], gain=point["gain"], seed=seed)
    xs = gf.inputs.gaussian(
        WARMUP + cfg.steps, cfg.batch, INPUTS, scale=max(point["input_scale"], 1e-12), seed=seed
    )
    if point["input_scale"] == 0.0:
        xs = np.zeros_like(xs)
    h0, xs = warm_start(cell, xs, seed=seed)
    return cell, xs, h0


def networks(cfg: Config) -> list[tuple[int, dict, int]]:
    """(configuration index, configuration, seed) of every network: ``seeds`` per configuration,
    each seed unique across the grid."""
    points = grid()
    return [
        (i, points[i], cfg.seed + cfg.seeds * i + s)
        for i in range(0, len(points), cfg.subsample)
        for s in range(cfg.seeds)
    ]
