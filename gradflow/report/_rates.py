"""The rates of a model's gradients, by cell, layer, direction and state part, with intervals.

The gradient of the output the model reads (its head's rows on the top layer's state, at the
last step or summed over every step) beside a random direction's; a fit window chosen from
the data; bootstrap intervals over the batch's sequences; memory horizons.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from ..cells._cells import Cell
from ..core._registry import cell_kind, find_cell_kind
from ..core._validation import check_choice, check_seed
from ..engine._engine import check_cell, check_sequence, unboxed
from ..measure._flow import GradientFlow, directional_sweep, gradient_flow
from ..measure._rates import MEMORY_DROP, fit_profile, fit_rate, mean_log_profile
from ..models._model import Model

BOOTSTRAP_DRAWS = 1000  # resamples of the batch's sequences behind each 95% interval
READOUTS = ("last", "sum")  # the head's output at the last step, or summed over every step


def readout_flow(
    cell: Cell, xs: np.ndarray, directions: np.ndarray, fit_from: int, label: str = "model readout"
) -> GradientFlow:
    """`GradientFlow` of the outputs ``y_T = directions @ state_T``: root sum of squares over
    the outputs of ``ln ||d y_T / d state_{T-k}||`` (a single output: its gradient's norm)."""
    xs, h0 = check_sequence(cell, xs, None)
    state, components, probes, inputs = directional_sweep(cell, xs, h0, directions)
    lags = np.arange(xs.shape[0] + 1)
    log_norms = state[::-1].copy()
    return GradientFlow(
        cell_name=cell.name,
        lags=lags,
        log_norms=log_norms,
        components={k: v[::-1].copy() for k, v in components.items()},
        gates={k: v[::-1].copy() for k, v in probes.items()},
        input_log_norms=inputs[::-1].copy(),
        loss=label,
        fit=fit_rate(lags, fit_profile(log_norms, fit_from), fit_from),
    )


def summed_readout_flow(cell: Cell, xs: np.ndarray, directions: np.ndarray, fit_from: int) -> GradientFlow:
    """`readout_flow` of the outputs summed over every step, ``sum_t directions @ state_t``
    (a sequence model's loss reads every output): ln ||d (sum_t y_t) / d state_{T-k}||.

    The cell is augmented with an accumulator ``a_t = a_{t-1} + m_t directions @ state_{t-1}``
    and the loss is ``a_T + directions @ state_T``, so one reverse pass carries the outputs of
    steps 1..T; ``m_t`` (0 at the first step, 1 after) is an extra input held constant, so the
    initial state's own output does not count. The whole-state norms are recombined from the
    state's parts (``h``, ``c``), so the accumulator is left out of them.
    """
    import autograd.numpy as anp
    from scipy.special import logsumexp

    S, K, D = cell.state_size, len(directions), cell.input_size

    def step(p, state, x):
        h = state[:, :S]
        counts = unboxed(x)[:, D:]  # the mask m_t, outside the derivative
        return anp.concatenate(
            [cell.step(p, h, x[:, :D]), state[:, S:] + counts * (h @ directions.T)], axis=1
        )

    augmented = Cell(step, cell.params, S + K, D + 1, components=cell.components, name=cell.name)
    xs, _ = check_sequence(cell, xs, None)
    mask = np.ones((*xs.shape[:2], 1))
    mask[0] = 0.0
    xs = np.concatenate([xs, mask], axis=2)
    loss_rows = np.hstack([directions, np.eye(K)])
    flow = readout_flow(augmented, xs, loss_rows, fit_from, label="model readout summed over steps")
    parts = np.stack([v for k, v in flow.components.items() if "." not in k])
    log_norms = 0.5 * logsumexp(2.0 * parts, axis=0)
    return dataclasses.replace(
        flow, log_norms=log_norms, fit=fit_rate(flow.lags, fit_profile(log_norms, fit_from), fit_from)
    )


def choose_fit_start(lags: np.ndarray, profile: np.ndarray, earliest: int = 0) -> int:
    """First lag of the rate fit, from the data: the earliest candidate start (0, 2, 5, 10, 20,
    30, 40 or 50% of T, not before ``earliest``) whose fitted rate agrees with the fit over the
    back half of the lags (within twice its standard error, 2% of it, or 0.001 nats/step):
    the transient before it is skipped, nothing after it is."""
    T = int(lags[-1])
    half = max(earliest, T // 2)
    if T - earliest < 4 or not np.all(np.isfinite(profile[earliest:])):
        return min(earliest, max(T - 1, 0))
    tail = fit_rate(lags, profile, half)
    if not np.isfinite(tail.rate):
        return earliest
    tol = max(2 * tail.stderr if np.isfinite(tail.stderr) else 0.0, 0.02 * abs(tail.rate), 1e-3)
    for frac in (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4):
        start = max(earliest, round(frac * T))
        if T - start < 4:
            break
        if abs(fit_rate(lags, profile, start).rate - tail.rate) <= tol:
            return start
    return half


def first_finite_lag(profile: np.ndarray) -> int:
    finite = np.flatnonzero(np.isfinite(profile))
    return int(finite[0]) if finite.size else len(profile) - 1


def bootstrap_interval(
    lags: np.ndarray, log_norms: np.ndarray, start: int, seed: int, draws: int = BOOTSTRAP_DRAWS
) -> tuple[float, float]:
    """95% percentile interval of the fitted rate, resampling the batch's sequences with
    replacement (``draws`` times). NaN for a batch of one."""
    y = log_norms[start:]
    alive = np.all(np.isfinite(y), axis=0)
    y = y[:, alive]
    B = y.shape[1]
    if B < 2 or len(y) < 2:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, B, size=(draws, B))
    counts = np.stack([np.bincount(row, minlength=B) for row in picks])
    profiles = counts @ y.T / B  # (draws, lags): each resample's batch-mean profile
    x = lags[start:] - lags[start:].mean()
    slopes = profiles @ x / np.sum(x**2)
    lo, hi = np.percentile(slopes, [2.5, 97.5])
    return float(lo), float(hi)


def horizon_of(profile: np.ndarray) -> int | None:
    """First lag at which the profile has fallen by `MEMORY_DROP` from its first finite value."""
    ref = first_finite_lag(profile)
    if not np.isfinite(profile[ref]):
        return 0
    hit = np.flatnonzero(profile[ref:] - profile[ref] <= np.log(MEMORY_DROP))
    return int(ref + hit[0]) if hit.size else None


def state_parts(cell: Cell) -> list[tuple[int, str, str]]:
    """``(layer, part, component key)`` for every part of every layer of a built-in cell."""
    layers = cell.config.get("layers", 1)
    parts = [p for p, _ in cell_kind(cell.kind).parts]
    return [(l, p, p if layers == 1 else f"l{l}.{p}") for l in range(layers) for p in parts]


def model_of(model) -> Model:
    if isinstance(model, Model):
        return model
    cell = check_cell(model)
    if find_cell_kind(cell.kind, pytorch_layout=True) is None:
        raise ValueError(
            f"cell must be a built-in rnn, lstm or gru cell to be analysed; got kind {cell.kind!r}"
        )
    cfg = cell.config
    return Model(
        cell.name,
        cell.kind,
        {"forward": cell},
        None,
        cfg.get("layers", 1),
        cfg["hidden"],
        int(cfg.get("proj_size", 0) or 0),
        False,
        False,
        (),
        "a gradflow cell",
    )


def measure_cell(model: Model, key: str, xs: np.ndarray, seed: int, readout: str = "last"):
    """Random-direction and readout flows of one cell, refitted over a window chosen from the
    data, and the rate rows of every layer and state part."""
    cell = model.cells[key]
    T = xs.shape[0]
    flow = gradient_flow(cell, xs, seed=seed)
    directions = model.readout_directions(key)
    flow_of = readout_flow if readout == "last" else summed_readout_flow
    along: GradientFlow | None = flow_of(cell, xs, directions, T // 10) if directions is not None else None
    primary = along or flow
    earliest = max(first_finite_lag(mean_log_profile(v)) for v in primary.components.values())
    start = choose_fit_start(primary.lags, fit_profile(primary.log_norms, earliest), earliest)
    start = max(start, max(first_finite_lag(mean_log_profile(v)) for v in flow.components.values()))
    flow = _refit(flow, start)
    along = _refit(along, start) if along is not None else None
    rows = []
    for measure, f in (("readout", along), ("random direction", flow)):
        if f is None:
            continue
        if f.loss.endswith("summed over steps"):
            measure = "readout summed over steps"
        for layer, part, comp in state_parts(cell):
            rows.append(_rate_row(model, key, layer, part, measure, f.lags, f.components[comp], start, seed))
    return flow, along, start, rows


def model_rates(
    model: Model | Cell, xs, *, seed: int = 0, batch_first: bool | None = None, readout: str = "last"
) -> pd.DataFrame:
    """The rate table of `model_report` alone (no predictors, no PDF): one row per cell, layer,
    state part and measure (``"readout"``, the model's head, and ``"random direction"``).
    ``readout="sum"`` measures the head's outputs summed over every step instead of the last
    (``"readout summed over steps"``).

    Columns: ``cell``, ``layer``, ``direction``, ``part``, ``measure``, ``rate`` (nats/step),
    ``ci_low``/``ci_high`` (95%, bootstrap over the batch's sequences), ``stderr``, ``r2``,
    ``fit_from``/``fit_to`` (the lags fitted, chosen from the data) and ``horizon`` (NaN: none).

    Examples
    --------
    >>> import gradflow as gf
    >>> from gradflow.report import model_rates
    >>> rates = model_rates(gf.lstm(6, 2, layers=2), gf.inputs.gaussian(50, 3, 2))
    >>> sorted(set(zip(rates.layer, rates.part)))
    [(0, 'c'), (0, 'h'), (1, 'c'), (1, 'h')]
    """
    model = model_of(model)
    seed = check_seed(seed)
    readout = check_choice("readout", readout, READOUTS)
    xs = model.time_major(xs, batch_first)
    xs, _ = check_sequence(next(iter(model.cells.values())), xs, None)
    rows = []
    for key, xc in model.cell_inputs(xs).items():
        rows += measure_cell(model, key, xc, seed, readout)[3]
    return pd.DataFrame(rows)


def _refit(flow: GradientFlow, start: int) -> GradientFlow:
    return dataclasses.replace(flow, fit=fit_rate(flow.lags, fit_profile(flow.log_norms, start), start))


def _rate_row(model, key, layer, part, measure, lags, values, start, seed) -> dict[str, Any]:
    profile = fit_profile(values, start)
    fit = fit_rate(lags, profile, start)
    lo, hi = bootstrap_interval(lags, values, start, seed)
    horizon = horizon_of(mean_log_profile(values))
    direction = key.split(" ")[-1] if model.bidirectional else "forward"
    real_layer = int(key.split(" ")[0][1:]) if model.bidirectional else layer
    return {
        "cell": key,
        "layer": real_layer,
        "direction": direction,
        "part": part,
        "measure": measure,
        "rate": fit.rate,
        "ci_low": lo,
        "ci_high": hi,
        "stderr": fit.stderr,
        "r2": fit.r2,
        "fit_from": fit.lag_range[0],
        "fit_to": fit.lag_range[1],
        "horizon": np.nan if horizon is None else horizon,
    }
