"""The sweep's default task: build a cell from a point, measure its gradient flow, predict it.

Many small models with the same shapes are measured together: their weights are
stacked along a leading *group* axis and their sequences laid side by side on the
batch axis, so one traced step (and one reverse pass) serves every model of the batch
and autograd's per-step Python cost is paid once per batch, not once per point. The step
is the cells' own: every operation of it is row-wise or, on stacked weights, a per-group
matrix product (``numpy.matmul`` on stacked matrices calls the same BLAS routine per
group as a single product does), so a
point's numbers do not depend on which other points share its batch: batched,
unbatched, resumed or distributed, the same point gives the same bits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import autograd.numpy as anp
import numpy as np

from ..cells._builtin import INITS
from ..cells._cells import Cell
from ..core import _activations as act
from ..core._probe import StateRecorder, log_row_norms, unit_rows
from ..core._registry import cell_kind
from ..core._validation import check_choice, check_finite_float, check_positive_int, check_seed
from ..core.inputs import gaussian
from ..engine._reverse import sequential_pass
from ..measure._rates import NEUTRAL_TOL, fit_profile, fit_rate, regime_or_none
from ..prediction._predict import METHODS, predict

PREDICTORS = ("all", "mean-field", "none")
REGIMES = ("vanishing", "neutral", "exploding", "inconclusive")  # what measured/predicted_regime hold

# Every parameter the default task reads, with its default.
DEFAULTS: dict[str, Any] = {
    "cell": "rnn",
    "hidden": 64,
    "inputs": 8,
    "layers": 1,
    "activation": "tanh",
    "gain": 1.0,
    "init": "gaussian",
    "bias_scale": 0.0,
    "forget_bias": 1.0,
    "update_bias": 0.0,
    "input_scale": 1.0,
    "seq_len": 500,
    "batch": 1,
    "predictors": "all",
}
# The cells this task builds (their steps batch through affine's grouped case), and the
# parameters that only mean something for one of them.
BUILT_IN = ("rnn", "lstm", "gru")
ONLY_FOR = {option: kind for kind in BUILT_IN for option in cell_kind(kind).options}


def rate_column(method: str) -> str:
    """A predictor's rate column: ``"two-step moment map"`` -> ``"rate_two_step_moment_map"``."""
    return "rate_" + method.replace(" ", "_").replace("-", "_")


def resolve(point: Mapping[str, Any]) -> dict[str, Any]:
    """The point's parameters with defaults filled in, checked; raises ``ValueError`` naming the
    parameter and its value."""
    unknown = [k for k in point if k not in DEFAULTS and k != "seed"]
    if unknown:
        raise ValueError(
            f"unknown parameter {unknown[0]!r} for the default task; it takes "
            f"{', '.join(DEFAULTS)} (and seed)"
        )
    p = {**DEFAULTS, **point}
    p["cell"] = check_choice("cell", p["cell"], BUILT_IN)
    for name, kind in ONLY_FOR.items():
        if p["cell"] != kind and name in point and point[name] != DEFAULTS[name]:
            raise ValueError(
                f"{name} applies to cell={kind!r} only; got {name}={point[name]!r} for cell={p['cell']!r}"
            )
    for name in ("hidden", "inputs", "layers", "batch"):
        p[name] = check_positive_int(name, p[name])
    p["seq_len"] = check_positive_int("seq_len", p["seq_len"], minimum=2)
    p["activation"] = check_choice("activation", p["activation"], act.ACTIVATIONS)
    p["init"] = check_choice("init", p["init"], INITS)
    for name in ("gain", "forget_bias", "update_bias"):
        p[name] = check_finite_float(name, p[name])
    for name in ("bias_scale", "input_scale"):
        p[name] = check_finite_float(name, p[name], minimum=0.0)
    p["predictors"] = check_choice("predictors", p["predictors"], PREDICTORS)
    p["seed"] = check_seed(point.get("seed", 0))
    return p


def _streams(seed: int) -> dict[str, int]:
    """Independent seeds for the weights, inputs, loss direction and predictor probes, all from
    the point's one seed (a single stream reused would correlate weights with inputs)."""
    state = np.random.SeedSequence(seed).generate_state(4)
    return dict(zip(("cell", "inputs", "direction", "predict"), (int(s) for s in state), strict=True))


def build(p: Mapping[str, Any]) -> tuple[Cell, np.ndarray, np.ndarray]:
    """The cell, its inputs ``(T, batch, inputs)`` and the unit loss direction of a resolved point."""
    seeds = _streams(p["seed"])
    common = dict(
        gain=p["gain"], init=p["init"], bias_scale=p["bias_scale"], seed=seeds["cell"], layers=p["layers"]
    )
    record = cell_kind(p["cell"])
    cell = record.make(p["hidden"], p["inputs"], **{k: p[k] for k in record.options}, **common)
    xs = gaussian(p["seq_len"], p["batch"], p["inputs"], scale=p["input_scale"], seed=seeds["inputs"])
    # The direction gf.gradient_flow draws for its default loss from the same seed.
    u = np.random.default_rng(seeds["direction"]).standard_normal(cell.state_size)
    return cell, xs, u / np.linalg.norm(u)


# ------------------------------------------------------------------ grouped cells


class GroupedCell(Cell):
    """K cells of one kind and shape as one cell whose batch holds each cell's rows in turn.

    The cells' own step on weights stacked along a leading group axis (``affine``'s grouped
    case). Only the reverse sweep's sequential pass runs it; its rows must come in K equal groups.
    """

    def __init__(self, cells: Sequence[Cell], rows_per_cell: int):
        first = cells[0]
        # Weights (K, G*n, d) and biases (K, 1, G*n): group k's weights act on its rows only.
        params = {name: np.stack([c.params[name] for c in cells]) for name in first.params}
        params = {name: v[:, None, :] if v.ndim == 2 else v for name, v in params.items()}
        self.groups, self.rows_per_cell = len(cells), rows_per_cell
        super().__init__(
            first.step,
            {},
            first.state_size,
            first.input_size,
            kind=f"grouped-{first.kind}",
            components=first.components,
            name=f"{len(cells)} x {first.name}",
        )
        self.params = params  # already float64 and finite: skip the per-array checks

    def _check_step(self) -> None:
        # Cell's own check runs the step on 2 rows, which do not split into K groups.
        pass


class RowwiseRecorder(StateRecorder):
    """`StateRecorder` deciding per row (not per batch) whether the plain norm is safe, so a
    row's numbers never depend on the other rows of its batch. It keeps only the norms: the
    unit cotangents are for the input and gate norms, which the rate does not need."""

    def __init__(self, steps: int, batch: int):
        super().__init__(0, 0, 0, {})
        self.raw = np.full((steps + 1, batch), -np.inf)
        self.recorded = np.zeros(steps + 1, dtype=bool)

    def record(self, t: int, g: np.ndarray) -> np.ndarray:
        sq = np.einsum("ij,ij->i", g, g)
        plain = (sq > 1e-280) & (sq < 1e280)  # NaN and inf fail this test
        if plain.all():
            total, unit = 0.5 * np.log(sq), g / np.sqrt(sq)[:, None]
        else:
            if not np.all(np.isfinite(g)):
                raise FloatingPointError(
                    f"the gradient at state {t} is not finite: the step's "
                    f"derivative overflowed float64 (weights too large?)"
                )
            total, unit = np.empty(len(g)), np.empty_like(g)
            total[plain], unit[plain] = 0.5 * np.log(sq[plain]), g[plain] / np.sqrt(sq[plain])[:, None]
            total[~plain], unit[~plain] = log_row_norms(g[~plain]), unit_rows(g[~plain])
        self.raw[t] = total
        self.recorded[t] = True
        return unit


def measured_rates(models: Sequence[tuple[Cell, np.ndarray, np.ndarray]]) -> list[tuple[float, str]]:
    """``(rate, regime)`` of `gradient_flow` for each ``(cell, xs, direction)``, all in one pass.

    The cells must share kind and shape, the sequences their shape. Only the sequential
    reverse pass runs (the state norms the rate is fitted to); input and gate norms are
    not needed here.
    """
    cells = [m[0] for m in models]
    T, b, _ = models[0][1].shape
    grouped = GroupedCell(cells, b)
    K, S = len(models), grouped.state_size
    xs = np.concatenate([m[1] for m in models], axis=1)
    directions = np.repeat(np.stack([m[2] for m in models]), b, axis=0)

    def loss(h):  # row r: h_r . u_r, the loss gf.gradient_flow uses for each model
        return anp.sum(h * directions, axis=1)

    recorder = RowwiseRecorder(T, K * b)
    trajectory = np.empty((T + 1, K * b, S))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported with its step
        sequential_pass(grouped, xs, np.zeros((K * b, S)), loss, recorder, trajectory)
    log_norms = recorder.log_norms()[0][::-1]
    lags, fit_from = np.arange(T + 1), T // 10
    out = []
    for k in range(K):
        own = np.ascontiguousarray(log_norms[:, k * b : (k + 1) * b])
        rate = fit_rate(lags, fit_profile(own, fit_from), fit_from).rate
        out.append((rate, regime_or_none(rate, NEUTRAL_TOL) or "inconclusive"))
    return out


# ------------------------------------------------------------------ the task


def _predictions(p: Mapping[str, Any], cell: Cell, xs: np.ndarray) -> dict[str, Any]:
    if p["predictors"] == "none":
        return {}
    if p["predictors"] == "mean-field":
        return {rate_column("mean-field"): predict(cell, xs, predictors=["mean-field"])["mean-field"].rate}
    # Every registered predictor, those on request included: a sweep's columns are the registry's.
    prediction = predict(cell, xs, seed=_streams(p["seed"])["predict"], predictors=METHODS)
    row: dict[str, Any] = {
        "predicted_rate": prediction.rate,
        "predicted_regime": prediction.regime or "inconclusive",
        "trusted_predictor": prediction.method,
    }
    row.update({rate_column(m): prediction[m].rate for m in METHODS})
    return row


class GradientFlowTask:
    """The default sweep task: one point's measured gradient-flow rate and predicted rates.

    A point's parameters (defaults in brackets): ``cell`` ("rnn", "lstm", "gru"),
    ``hidden`` (64), ``inputs`` (8), ``layers`` (1), ``activation`` ("tanh"; rnn),
    ``gain`` (1.0), ``init`` ("gaussian"), ``bias_scale`` (0.0), ``forget_bias`` (1.0;
    lstm), ``update_bias`` (0.0; gru), ``input_scale`` (1.0: inputs ``N(0, s^2)``),
    ``seq_len`` (500), ``batch`` (1: sequences per point), ``predictors`` ("all":
    every predictor of `gradflow.predict` on the forward run; "mean-field": only the
    mean-field rate; "none") and ``seed``, from which the weights, inputs, loss
    direction and predictor probes are drawn (independent streams).

    Returns ``measured_rate`` (nats/step) and ``measured_regime`` as
    `gradflow.gradient_flow` gives them, and with predictors ``rate_<predictor>``
    for each predictor plus ``predicted_rate``, ``predicted_regime`` and
    ``trusted_predictor`` (`gradflow.predict`'s best estimate).

    `run_batch` measures points of one `batch_key` in one reverse pass; the
    predictors still run point by point, so with ``predictors="all"`` they, not the
    measurement, set the cost.

    Examples
    --------
    >>> from gradflow.sweep import gradient_flow_task
    >>> row = gradient_flow_task({"hidden": 16, "gain": 0.5, "seq_len": 60, "predictors": "mean-field"})
    >>> row["measured_regime"], round(row["measured_rate"], 2), round(row["rate_mean_field"], 2)
    ('vanishing', -1.03, -1.03)
    """

    def __call__(self, point: Mapping[str, Any]) -> dict[str, Any]:
        return self.run_batch([point])[0]

    def check(self, point: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` for a point the task cannot run (unknown or invalid parameter).

        Examples
        --------
        >>> from gradflow.sweep import gradient_flow_task
        >>> gradient_flow_task.check({"cell": "gru", "hidden": 32})  # fine: returns None
        >>> gradient_flow_task.check({"cell": "transformer"})
        Traceback (most recent call last):
        ...
        ValueError: unknown cell 'transformer'; expected one of rnn, lstm, gru
        """
        resolve(point)

    def columns(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The result columns of a point and what each holds (``float`` or the allowed strings).

        Examples
        --------
        >>> from gradflow.sweep import gradient_flow_task
        >>> gradient_flow_task.columns({"predictors": "mean-field"})  # doctest: +NORMALIZE_WHITESPACE
        {'measured_rate': <class 'float'>,
         'measured_regime': ('vanishing', 'neutral', 'exploding', 'inconclusive'),
         'rate_mean_field': <class 'float'>}
        """
        p = resolve(point)
        out: dict[str, Any] = {"measured_rate": float, "measured_regime": REGIMES}
        if p["predictors"] == "mean-field":
            out[rate_column("mean-field")] = float
        elif p["predictors"] == "all":
            out.update(predicted_rate=float, predicted_regime=REGIMES, trusted_predictor=METHODS)
            out.update({rate_column(m): float for m in METHODS})
        return out

    def batch_key(self, point: Mapping[str, Any]) -> tuple:
        """Points with equal keys have the same shapes and can be measured in one batch.

        Examples
        --------
        The gain changes the weights, not their shapes; the sequence length changes the shapes:

        >>> from gradflow.sweep import gradient_flow_task as task
        >>> task.batch_key({"gain": 0.5})  # cell, hidden, inputs, layers, activation, seq_len, batch
        ('rnn', 64, 8, 1, 'tanh', 500, 1)
        >>> default = task.batch_key({})
        >>> task.batch_key({"gain": 2.0}) == default, task.batch_key({"seq_len": 100}) == default
        (True, False)
        """
        p = resolve(point)
        return (p["cell"], p["hidden"], p["inputs"], p["layers"], p["activation"], p["seq_len"], p["batch"])

    def run_batch(self, points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The results of several points of one `batch_key`, measured in one reverse pass.

        Examples
        --------
        One batched pass gives the same bits as measuring each point alone:

        >>> from gradflow.sweep import gradient_flow_task as task
        >>> points = [{"hidden": 16, "gain": g, "seq_len": 60, "predictors": "none"} for g in (0.5, 2.0)]
        >>> rows = task.run_batch(points)
        >>> [row["measured_regime"] for row in rows], rows == [task(p) for p in points]
        (['vanishing', 'exploding'], True)
        """
        resolved = [resolve(point) for point in points]
        if len({self.batch_key(p) for p in resolved}) > 1:
            raise ValueError("run_batch takes points of one batch_key (same cell kind and shapes)")
        models = [build(p) for p in resolved]
        rows = []
        for p, (cell, xs, _), (rate, regime) in zip(resolved, models, measured_rates(models), strict=True):
            rows.append({"measured_rate": rate, "measured_regime": regime, **_predictions(p, cell, xs)})
        return rows

    def __repr__(self) -> str:
        return "gradient_flow_task"


gradient_flow_task = GradientFlowTask()
