"""Training on long-range tasks, with instruments and the usual remedies.

One training step is one ``autograd.value_and_grad`` of the task loss over the unrolled
model (the engine's cell steps through `SequenceModel.apply`, plus a linear readout),
then optional clipping (by value, then by global norm) and an Adam or SGD update on
the flattened parameters. Every ``record_every`` steps the current weights are
measured with gradflow itself: spectral radius and top singular value of the
recurrent matrix, the top Lyapunov exponent (`lyapunov_spectrum`, k = 1) and the
gradient-flow rate (`gradient_flow`), per layer for stacked cells.

Remedies: clipping, an L1/L2 penalty on the recurrent weights, and a Lyapunov
regulariser ("gradient flossing", Engelken 2023): the sum of squared top-k
finite-time Lyapunov exponents, from Gram-Schmidt QR of ``J_t Q`` along the batch's
trajectory, added to the loss and differentiated by autograd: reverse mode over
forward-mode ``J_t Q`` products through the cell's own step (the fused operations'
derivative rules are themselves differentiable, see ``_ops``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import autograd.numpy as anp
import numpy as np
import pandas as pd
from autograd import value_and_grad
from autograd.core import make_jvp
from autograd.misc import flatten
from autograd.tracer import Box
from threadpoolctl import threadpool_limits

from ..cells._cells import Cell
from ..core import _html, deprecated_spellings
from ..core._options import progress_bar
from ..core._registry import find_cell_kind
from ..core._validation import (
    as_float_array,
    check_choice,
    check_finite_float,
    check_positive_int,
    check_seed,
)
from ..engine._engine import check_cell, check_sequence, unboxed
from ..measure._flow import gradient_flow
from ..measure._lyapunov import initial_block, lyapunov_spectrum
from ..measure._rates import NEUTRAL_TOL, fit_rate, mean_log_profile, regime_of
from ..models import SequenceModel, recurrent
from ..models._recurrent import output_columns
from ..prediction._spectral import largest_singular_value, spectral_radius
from ._tasks import Task

OPTIMIZERS = ("adam", "sgd")
# TrainingRun.plot's panels beyond loss and gradients: quantities on one scale share an axis.
PLOT_GROUPS = (("spectral_radius", "top_singular_value"), ("lyapunov_top", "flow_rate"))
PENALTIES = ("l1", "l2")
ADAM = (0.9, 0.999, 1e-8)  # Kingma & Ba's defaults: beta1, beta2, epsilon
PROBE, EVAL = 10**9, 10**9 + 1  # batch indices of the probe and evaluation batches (never trained on)
PROBE_BATCH, EVAL_BATCH = 4, 256
FLOSS_BATCH = 8  # samples whose trajectories the Lyapunov regulariser follows
# A loss this many times the larger of the first step's and the memoryless baseline is divergence:
# finite, but the weights have left any useful region (lr=1e10 gives 1e20 after one step).
DIVERGED_FACTOR = 1e4


# ---------------------------------------------------------------- argument checks


def as_model(model) -> SequenceModel:
    """A `SequenceModel`; a bare cell becomes ``recurrent(cell)``."""
    if isinstance(model, Cell):
        return recurrent(model)
    if not isinstance(model, SequenceModel):
        raise ValueError(f"model must be a gradflow Cell or SequenceModel; got {type(model).__name__}")
    return model


def _model_for(model, task) -> SequenceModel:
    """``model`` as a `SequenceModel`, checked to take ``task``'s inputs."""
    model = as_model(model)
    if not isinstance(task, Task):
        raise ValueError(f"task must be a gradflow Task (gf.tasks.copy_memory, ...); got "
                         f"{type(task).__name__}")
    if model.input_size != task.input_size:
        raise ValueError(f"model {model.name!r} takes inputs of width {model.input_size}; task "
                         f"{task.name!r} gives {task.input_size}")
    return model


def _check_penalty(penalty):
    if penalty is None:
        return None
    ok = isinstance(penalty, (tuple, list)) and len(penalty) == 2 and isinstance(penalty[0], str)
    if not ok or penalty[0].lower() not in PENALTIES:
        raise ValueError(f"penalty must be None or ('l1' | 'l2', weight); got {penalty!r}")
    return penalty[0].lower(), check_finite_float("penalty weight", penalty[1], minimum=0.0)


def _check_lyapunov(lyapunov, model):
    if lyapunov is None:
        return None
    if isinstance(lyapunov, (int, float, np.floating)) and not isinstance(lyapunov, bool):
        lyapunov = (lyapunov, 1)
    if not (isinstance(lyapunov, (tuple, list)) and len(lyapunov) == 2):
        raise ValueError(f"lyapunov must be None, a weight or (weight, k); got {lyapunov!r}")
    if model.cell is None:
        raise ValueError(f"lyapunov regularises a recurrent cell's exponents; model {model.name!r} "
                         f"({model.kind}) has none")
    weight = check_finite_float("lyapunov weight", lyapunov[0], minimum=0.0)
    k = check_positive_int("lyapunov k", lyapunov[1])
    if k > model.cell.state_size:
        raise ValueError(f"lyapunov k must be at most the state size {model.cell.state_size}; got {k}")
    return weight, k


def _positive(name, value):
    out = check_finite_float(name, value)
    if out <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return out


def penalised_names(model: SequenceModel) -> list[str]:
    """What the penalty acts on: recurrent weights ``weight_hh_l*`` of a recurrent model, else
    every weight matrix (arrays of two or more dimensions)."""
    if model.cell is not None:
        return sorted(k for k in model.params if k.startswith("weight_hh_l"))
    return sorted(k for k, v in model.params.items() if np.ndim(v) >= 2)


# ---------------------------------------------------------------- the objective


def with_params(cell: Cell, params: Mapping[str, np.ndarray]) -> Cell:
    """The same cell with other weights (checked as any cell's are)."""
    return Cell(cell.step, params, cell.state_size, cell.input_size, kind=cell.kind,
                components=cell.components, config=cell.config, name=cell.name,
                stacked_tangents=cell.stacked_tangents)


def _gram_schmidt(V):
    """Modified Gram-Schmidt on the k vectors ``V[i]`` (k, B, S): orthonormal ``Q`` and
    ``ln |R_ii|`` (k, B). Written with autograd.numpy so it can be differentiated (autograd
    has no derivative for ``numpy.linalg.qr``)."""
    qs, logs = [], []
    for v in V:
        for q in qs:
            v = v - anp.sum(v * q, axis=-1, keepdims=True) * q
        # + 1e-300: a direction the map kills exactly (a dead ReLU) gives ln|R_ii| = -345, finite,
        # with a zero gradient, instead of ln 0 and 0/0; any other norm is unchanged in float64.
        norm = anp.sqrt(anp.sum(v * v, axis=-1) + 1e-300)
        logs.append(anp.log(norm))
        qs.append(v / norm[:, None])
    return anp.stack(qs), anp.stack(logs)


def finite_time_exponents(cell: Cell, params, xs: np.ndarray, k: int, seed: int = 0):
    """Top-``k`` finite-time Lyapunov exponents ``(k, batch)`` along ``xs`` from ``h = 0``, as a
    function of ``params`` that autograd can differentiate.

    ``Q_t R_t = J_t Q_{t-1}`` with ``Q_0`` drawn as `lyapunov_spectrum` draws it (same ``seed``),
    ``lambda_i = (1/T) sum_t ln R_t[i, i]``. ``J_t Q`` is one forward-mode product per step
    carrying the k columns (through the cell's step); the next state comes out of the same trace.

    Examples
    --------
    >>> import autograd
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(6, 2, gain=1.5, seed=0)
    >>> xs = gf.inputs.gaussian(30, 2, 2)
    >>> lam = gf.finite_time_exponents(cell, cell.params, xs, k=2, seed=3)
    >>> ref = gf.lyapunov_spectrum(cell, xs, k=2, warmup=0, seed=3).per_sample
    >>> bool(np.allclose(np.sort(lam.T, axis=1), np.sort(ref, axis=1)))
    True
    >>> grad = autograd.grad(lambda p: gf.finite_time_exponents(cell, p, xs, k=1)[0].mean())(cell.params)
    >>> grad["weight_hh_l0"].shape
    (6, 6)
    """
    cell = check_cell(cell)
    xs, _ = check_sequence(cell, xs, None)
    k = check_positive_int("k", k)
    if k > cell.state_size:
        raise ValueError(f"k must be at most the state size {cell.state_size}; got {k}")
    T, B, _ = xs.shape
    S = cell.state_size
    Q = np.moveaxis(initial_block(np.random.default_rng(seed), B, S, k), 2, 0)  # (k, B, S)
    h = np.zeros((B, S))
    step = cell.step
    total = 0.0
    for x in xs:
        # Rows are independent: repeat each once per vector and push all k in one product.
        hk, V = make_jvp(lambda z, x=x: step(params, z, np.tile(x, (k, 1))),
                         anp.concatenate([h] * k))(anp.reshape(Q, (k * B, S)))
        h, V = hk[:B], anp.reshape(V, (k, B, S))
        Q, logs = _gram_schmidt(V)
        total = total + logs
    return total / T


def _penalty_value(params, names, penalty):
    kind, weight = penalty
    if kind == "l2":
        return weight * sum(anp.sum(params[n] ** 2) for n in names)
    return weight * sum(anp.sum(anp.abs(params[n])) for n in names)


def model_forward(model: SequenceModel) -> Callable:
    """``forward(params, xs) -> outputs``: ``model.apply``, or for a one-layer recurrent cell whose
    kind unrolls as one primitive (`CellKind.sequence`), that primitive and the output columns:
    the same numbers, one traced operation instead of several per step."""
    cell = model.cell
    record = find_cell_kind(cell.kind) if cell is not None else None
    if (model.kind != "recurrent" or record is None or record.sequence is None
            or not record.is_one_layer_step(cell.step)):
        return model.apply
    cols = output_columns(cell)
    pick = slice(int(cols[0]), int(cols[-1]) + 1)  # one layer: h is one block of columns
    sequence = record.sequence

    def forward(params, xs):
        if not isinstance(xs, Box):
            xs = model.check_inputs(xs)
        return sequence(params, xs, np.zeros((xs.shape[1], cell.state_size)))[..., pick]

    return forward


def make_objective(model: SequenceModel, task: Task, *, penalty=None, lyapunov=None, seed: int = 0):
    """``objective(params, xs, targets) -> total`` (autograd-differentiable) and ``parts``, a dict
    that each call fills with the unboxed task loss, penalty and Lyapunov terms.

    ``params`` is ``{"model": model params, "readout": {"weight", "bias"}}``.
    """
    names = penalised_names(model)
    parts: dict[str, float] = {}
    forward = model_forward(model)

    def objective(params, xs, targets):
        ys = forward(params["model"], xs)
        if task.readout == "last":
            ys = ys[-1]
        out = ys @ params["readout"]["weight"].T + params["readout"]["bias"]
        loss = task.loss(out, targets)
        parts["loss"] = float(unboxed(loss))
        total = loss
        if penalty is not None:
            term = _penalty_value(params["model"], names, penalty)
            parts["penalty"] = float(unboxed(term))
            total = total + term
        if lyapunov is not None:
            weight, k = lyapunov
            lam = finite_time_exponents(model.cell, params["model"], xs[:, :FLOSS_BATCH], k, seed)
            term = weight * anp.mean(anp.sum(lam**2, axis=0))
            parts["lyapunov"] = float(unboxed(term))
            total = total + term
        return total

    return objective, parts


def initial_params(model: SequenceModel, task: Task, seed: int) -> dict:
    """Model weights plus a linear readout ``N(0, 1/width)`` drawn from ``seed``, zero bias."""
    rng = np.random.default_rng([seed, 1])
    W = rng.normal(0.0, 1.0 / np.sqrt(model.width), size=(task.readout_size, model.width))
    return {"model": {k: np.array(v) for k, v in model.params.items()},
            "readout": {"weight": W, "bias": np.zeros(task.readout_size)}}


def training_objective(model: Cell | SequenceModel, task: Task, *, penalty=None, lyapunov=None,
                       seed: int = 0):
    """The objective `train` minimises, and its starting point, for your own optimiser or checks.

    Parameters
    ----------
    model : Cell or SequenceModel
    task : Task
        From `gradflow.tasks`.
    penalty, lyapunov
        As in `train`.
    seed : int
        Seed of the readout's initial weights and of the Lyapunov term's initial block.

    Returns
    -------
    objective : callable
        ``objective(params, xs, targets) -> float``, written with ``autograd.numpy`` so
        ``autograd.grad`` differentiates it.
    params : dict
        ``{"model": the model's weights, "readout": {"weight", "bias"}}``, as `train` starts.

    Examples
    --------
    >>> import autograd
    >>> import gradflow as gf
    >>> task = gf.tasks.adding(8, seed=0)
    >>> objective, params = gf.training_objective(gf.lstm(4, task.input_size), task, penalty=("l2", 0.1))
    >>> xs, ys = task.batch(2, 0)
    >>> grad = autograd.grad(objective)(params, xs, ys)
    >>> sorted(grad)
    ['model', 'readout']
    """
    model = _model_for(model, task)
    penalty = _check_penalty(penalty)
    lyapunov = _check_lyapunov(lyapunov, model)
    objective, _ = make_objective(model, task, penalty=penalty, lyapunov=lyapunov, seed=seed)
    return objective, initial_params(model, task, seed)


# ---------------------------------------------------------------- instruments


def recurrent_block(cell: Cell, params) -> np.ndarray:
    """Layer 0's square recurrent matrix: ``W_hh`` of a vanilla cell, the candidate block
    (LSTM g, GRU n: the `CellKind`'s ``candidate_block``) of a gated one."""
    W = params["weight_hh_l0"]
    record, n = find_cell_kind(cell.kind), W.shape[1]
    if record is None or record.blocks == 1:
        return W
    return W[record.candidate_block * n : (record.candidate_block + 1) * n]


def _layer_components(cell: Cell) -> dict[str, str]:
    layers = cell.config.get("layers", 1)
    if layers == 1:
        return {"l0": "h" if "h" in cell.components else "state"}
    return {f"l{l}": f"l{l}.h" for l in range(layers)}


def measure(model: SequenceModel, params, xs: np.ndarray, seed: int) -> dict[str, float]:
    """Spectral radius and top singular value of the recurrent matrix, top Lyapunov exponent,
    gradient-flow rate (and per layer) of a recurrent model's current weights; {} otherwise."""
    if model.cell is None or "weight_hh_l0" not in params:
        return {}
    cell = with_params(model.cell, params)
    W = recurrent_block(cell, params)
    row = {}
    if W.ndim == 2 and W.shape[0] == W.shape[1]:
        row.update(spectral_radius=spectral_radius(W), top_singular_value=largest_singular_value(W))
    T = xs.shape[0]
    try:
        # progress=False: the training bar is the one to watch
        row["lyapunov_top"] = lyapunov_spectrum(cell, xs, k=1, warmup=T // 4, seed=seed, progress=False).top
        flow = gradient_flow(cell, xs, seed=seed)
    except FloatingPointError:  # the state overflowed: the weights have diverged
        return row
    row["flow_rate"] = flow.rate
    for layer, comp in _layer_components(cell).items():
        values = flow.log_norms if comp == "state" else flow.components[comp]
        prof = mean_log_profile(values)
        row[f"flow_rate_{layer}"] = fit_rate(flow.lags, prof, T // 10).rate
        row[f"flow_log_norm_T_{layer}"] = float(prof[-1])  # ln ||dL/d h_0|| of this layer
    return row


# ---------------------------------------------------------------- the run


@dataclass(frozen=True, repr=False)
class TrainingRun:
    """One training run: losses and gradient norms per step, measurements every few steps.

    Attributes
    ----------
    model, task : str
        Names.
    baseline : float
        The task's memoryless baseline loss.
    loss : ndarray, shape (steps,)
        Task loss of each step's batch (before that step's update; NaN after divergence).
    objective : ndarray, shape (steps,)
        Loss plus penalty and Lyapunov terms: what was differentiated.
    grad_norm, clipped_grad_norm, update_norm : ndarray, shape (steps,)
        Global gradient norm before and after clipping, and norm of the applied update.
    records : DataFrame
        One row per measurement step: ``step``, ``split`` (``"train"``; the last row,
        after training, ``"held out"``), ``loss`` (of that step's training batch; of the
        held-out data in the last row) and, for recurrent models,
        ``spectral_radius``, ``top_singular_value`` (layer 0's recurrent matrix),
        ``lyapunov_top``, ``flow_rate`` and per layer ``flow_rate_l{i}``,
        ``flow_log_norm_T_l{i}``.
    eval_loss : float
        Task loss of the final weights on a held-out batch of 256.
    diverged_at : int or None
        Step at which training stopped because the loss or gradient became non-finite or the
        loss exceeded 10^4 times the larger of the first step's loss and the baseline.
    params : dict
        Final weights ``{"model": ..., "readout": ...}``.
    config : dict
        The options of the run.
    seconds : float
        Wall time of the training loop, measurements included.
    interrupted_at : int or None
        Step at which Ctrl-C (KeyboardInterrupt) stopped the run; the arrays then hold the
        steps completed before it, and the weights, held-out loss and last record are those
        of that point.

    Examples
    --------
    Six Adam steps of a small tanh RNN on the adding task (memoryless baseline: the variance
    of the sum of two U(0, 1) draws, 1/6), with the gradient clipped to norm 0.5:

    >>> import numpy as np
    >>> import gradflow as gf
    >>> run = gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(5), steps=6, batch=8, lr=0.01,
    ...                clip=0.5, record_every=3, progress=False)
    >>> run.steps, run.diverged_at, bool(np.isclose(run.baseline, 1 / 6))
    (6, None, True)
    >>> bool(np.all(run.clipped_grad_norm <= 0.5 + 1e-12)), run.records.split.tolist()
    (True, ['train', 'train', 'held out'])
    >>> rho = np.max(np.abs(gf.rnn(4, 2, seed=0).eigenvalues()[0]))  # measured before the first step
    >>> bool(np.isclose(run.records.spectral_radius.iloc[0], rho))
    True
    """

    model: str
    task: str
    baseline: float
    loss: np.ndarray
    objective: np.ndarray
    grad_norm: np.ndarray
    clipped_grad_norm: np.ndarray
    update_norm: np.ndarray
    records: pd.DataFrame
    eval_loss: float
    diverged_at: int | None
    params: dict = field(compare=False)
    config: dict = field(compare=False)
    seconds: float = field(compare=False)
    interrupted_at: int | None = None

    @property
    def steps(self) -> int:
        return len(self.loss)

    @property
    def final_loss(self) -> float:
        """Mean training loss over the last tenth of the steps (NaN if training diverged)."""
        tail = self.loss[-max(1, self.steps // 10):]
        return float(np.mean(tail)) if np.all(np.isfinite(tail)) else np.nan

    @property
    def ratio(self) -> float:
        """Held-out loss over the memoryless baseline (below 1: the model remembers)."""
        return self.eval_loss / self.baseline

    def to_frame(self) -> pd.DataFrame:
        """Tidy data: one row per (step, quantity) with columns ``step``, ``quantity``, ``value``.

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> run = gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(5), steps=6, batch=8, lr=0.01,
        ...                clip=0.5, record_every=3, progress=False)
        >>> frame = run.to_frame()
        >>> list(frame.columns)
        ['model', 'task', 'step', 'quantity', 'value']
        >>> bool(np.array_equal(frame.query("quantity == 'loss'").value, run.loss))
        True
        """
        steps = np.arange(self.steps)
        per_step = [pd.DataFrame({"step": steps, "quantity": name, "value": values})
                    for name, values in (("loss", self.loss), ("objective", self.objective),
                                         ("grad_norm", self.grad_norm),
                                         ("clipped_grad_norm", self.clipped_grad_norm),
                                         ("update_norm", self.update_norm))]
        recs = self.records.drop(columns=["loss", "split"], errors="ignore")
        recs = recs.melt(id_vars="step", var_name="quantity") if len(recs.columns) else recs
        out = pd.concat([*per_step, recs], ignore_index=True)
        out.insert(0, "task", self.task)
        out.insert(0, "model", self.model)
        return out

    @deprecated_spellings(renamed={"axes": "ax"})
    def plot(self, ax=None):
        """One axis per scale: task loss against the baseline, gradient norms (log scale) before
        and after clipping, and for recurrent models the recurrent matrix's spectral radius and top
        singular value (beside 1) and the rates lambda_1 and flow rate (nats/step, beside the
        neutral band); returns the axes. ``ax``: one axis per panel (four if recurrent, else two).

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import numpy as np
        >>> import gradflow as gf
        >>> run = gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(5), steps=6, batch=8, lr=0.01,
        ...                clip=0.5, record_every=3, progress=False)
        >>> axes = run.plot(ax=Figure().subplots(1, 4))
        >>> [ax.get_title() for ax in axes]
        ['recurrent rnn-tanh on adding (T=5)', 'gradients', 'recurrent matrix (measured)', 'rates (measured)']
        >>> bool(np.array_equal(axes[0].get_lines()[0].get_ydata(), run.loss))
        True
        """
        axes = ax  # a sequence, one axis per panel
        import matplotlib.pyplot as plt
        import seaborn as sns

        from ..core._plot import STYLE

        panels = [cols for cols in PLOT_GROUPS if any(c in self.records for c in cols)]
        count = 2 + len(panels)
        if axes is None:
            with sns.axes_style(STYLE):
                _, axes = plt.subplots(1, count, figsize=(3.6 * count, 3.2), layout="constrained")
        elif len(axes) != count:
            raise ValueError(f"ax must hold {count} axes (one per panel); got {len(axes)}")
        steps = np.arange(self.steps)
        a0, a1 = axes[0], axes[1]
        a0.plot(steps, self.loss, label="loss")
        a0.axhline(self.baseline, color="k", linestyle="--", label=f"baseline {self.baseline:.4g}")
        a0.set(xlabel="step", ylabel="task loss", title=f"{self.model} on {self.task}")
        a0.legend(fontsize="small")
        a1.semilogy(steps, self.grad_norm, label="before clipping")
        a1.semilogy(steps, self.clipped_grad_norm, label="applied")
        a1.set(xlabel="step", ylabel="gradient norm", title="gradients")
        a1.legend(fontsize="small")
        rows = self.records[self.records.split == "train"] if "split" in self.records else self.records
        for ax, cols in zip(axes[2:], panels, strict=True):
            if cols is PLOT_GROUPS[0]:
                ax.axhline(1.0, color="0.6", linewidth=0.8)
                ax.set(ylabel="magnitude", title="recurrent matrix (measured)")
            else:
                ax.axhspan(-NEUTRAL_TOL, NEUTRAL_TOL, color="0.88", label="neutral band")
                ax.set(ylabel="rate (nats/step)", title="rates (measured)")
            for col in cols:
                if col in rows:
                    values = rows[col].to_numpy(dtype=float)
                    ax.plot(rows.step, np.where(np.isfinite(values), values, np.nan), marker="o",
                            markersize=3, label=col.replace("_", " "))
            ax.set(xlabel="step")
            ax.legend(fontsize="small")
        return axes

    def _summary(self) -> list[tuple[str, str]]:
        rows = [("model", self.model), ("task", self.task), ("steps", str(self.steps)),
                ("final training loss", f"{self.final_loss:.4g}"),
                ("held-out loss", f"{self.eval_loss:.4g} ({self.ratio:.3g} x baseline {self.baseline:.4g})"),
                ("median gradient norm", f"{np.nanmedian(self.grad_norm):.4g} "
                                         f"(applied {np.nanmedian(self.clipped_grad_norm):.4g})"),
                ("options", ", ".join(f"{k}={v}" for k, v in self.config.items())),
                ("seconds", f"{self.seconds:.2f}")]
        if self.diverged_at is not None:
            rows.insert(3, ("diverged at step", str(self.diverged_at)))
        if self.interrupted_at is not None:
            rows.insert(3, ("interrupted at step", str(self.interrupted_at)))
        rate = self._final_flow_rate()
        if rate is not None:
            rows.insert(-2, ("final flow rate", _html.number(rate, unit="nats/step")))
        return rows

    def _final_flow_rate(self) -> float | None:
        if "flow_rate" not in self.records or not len(self.records):
            return None
        rate = float(self.records["flow_rate"].iloc[-1])
        return None if np.isnan(rate) else rate

    def __repr__(self) -> str:
        stopped = f", interrupted_at={self.interrupted_at}" if self.interrupted_at is not None else ""
        return (f"TrainingRun(model={self.model!r}, task={self.task!r}, steps={self.steps}, "
                f"final_loss={self.final_loss:.4g}, eval_loss={self.eval_loss:.4g}, "
                f"baseline={self.baseline:.4g}, diverged_at={self.diverged_at}{stopped})")

    def _repr_html_(self) -> str:
        # The badge: how the final weights carry gradients (their measured flow rate), unless the
        # run diverged or was stopped, which matters more.
        rate = self._final_flow_rate()
        if self.diverged_at is not None:
            regime, text = "exploding", f"diverged at step {self.diverged_at}"
        elif self.interrupted_at is not None:
            regime, text = None, f"interrupted at step {self.interrupted_at}"
        elif rate is not None:
            regime, text = regime_of(rate), None
        else:
            regime, text = None, "no recurrence measured"
        steps = np.arange(self.steps)
        figure = _html.chart([_html.Series(steps, self.loss, _html.REGIME_COLORS["vanishing"])],
                             xlabel="step", ylabel="task loss", hlines=[self.baseline])
        return _html.card("TrainingRun", self.model, self._summary(), regime=regime, badge_text=text,
                          figure=figure, note="line: task loss per step; grey line: memoryless baseline")


def _clip(g: np.ndarray, clip: float | None, clip_value: float | None) -> np.ndarray:
    if clip_value is not None:
        g = np.clip(g, -clip_value, clip_value)
    if clip is not None:
        norm = np.linalg.norm(g)
        if norm > clip:
            g = g * (clip / norm)
    return g


def train(model: Cell | SequenceModel, task: Task, steps: int, *, optimizer: str = "adam",
          lr: float = 1e-2, batch: int = 16, clip: float | None = None, clip_value: float | None = None,
          penalty: tuple[str, float] | None = None, lyapunov: float | tuple[float, int] | None = None,
          momentum: float = 0.0, record_every: int = 25, seed: int = 0,
          callback: Callable[[dict], None] | None = None, progress: bool | None = None) -> TrainingRun:
    """Train a model with a linear readout on a task; measure it as it learns.

    Parameters
    ----------
    model : Cell or SequenceModel
        A cell (`rnn`, `lstm`, `gru`, stacked with ``layers=``) or any `SequenceModel`
        (`recurrent`, `self_attention`, `tcn`, ...). Its weights are the starting point;
        a linear readout ``N(0, 1/width)`` drawn from ``seed`` is added on top.
    task : Task
        From `gradflow.tasks`.
    steps : int
        Optimiser steps, one batch each (training steps, not the sequence length: the task sets that).
    optimizer : {"adam", "sgd"}
    lr : float
        Learning rate (> 0).
    batch : int
        Sequences per step.
    clip : float, optional
        Rescale the gradient to this global norm when it is longer.
    clip_value : float, optional
        Clip every gradient component to ``[-clip_value, clip_value]`` (before ``clip``).
    penalty : ("l1" | "l2", weight), optional
        Adds ``weight * sum |W|`` or ``weight * sum W^2`` over the recurrent weights
        ``weight_hh_l*`` (every weight matrix of a non-recurrent model).
    lyapunov : weight or (weight, k), optional
        Gradient flossing: adds ``weight * mean_b sum_i lambda_i^2`` for the top ``k``
        finite-time Lyapunov exponents along the first 8 sequences of each batch.
    momentum : float
        SGD momentum (``v = momentum v + g``).
    record_every : int
        Measure the weights every this many steps (and after the last).
    seed : int
        Seed of the readout, the batch order and the measurements; same seed, same bits.
    callback : callable, optional
        Called with each measurement row (a dict, as in ``records``) as it is taken.
    progress : bool, optional
        Show a progress bar of the steps with the current loss (default: ``gf.options().progress``;
        it appears once a run has taken a second).

    Returns
    -------
    TrainingRun
        Ctrl-C (KeyboardInterrupt) stops training and returns the run so far, with
        ``interrupted_at`` set to the step it stopped at (a warning says so). Training stops
        at divergence (``diverged_at``): a non-finite loss or gradient, or a loss above 10^4
        times the larger of the first step's and the baseline.

    Examples
    --------
    >>> import gradflow as gf
    >>> run = gf.train(gf.lstm(8, 2, seed=0), gf.tasks.adding(5), steps=40, lr=0.02, record_every=20)
    >>> print(f"{run.eval_loss:.4f} < {run.baseline:.4f}", list(run.records.step))
    0.1613 < 0.1667 [0, 20, 40]
    """
    model = _model_for(model, task)
    steps = check_positive_int("steps", steps)
    optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
    lr = _positive("lr", lr)
    batch = check_positive_int("batch", batch)
    clip = None if clip is None else _positive("clip", clip)
    clip_value = None if clip_value is None else _positive("clip_value", clip_value)
    penalty = _check_penalty(penalty)
    if penalty is not None and not penalised_names(model):
        raise ValueError(f"penalty {penalty!r} has nothing to act on: model {model.name!r} has no "
                         f"recurrent weights named weight_hh_l*")
    lyapunov = _check_lyapunov(lyapunov, model)
    momentum = check_finite_float("momentum", momentum, minimum=0.0)
    if momentum >= 1.0:
        raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
    if momentum and optimizer != "sgd":
        raise ValueError(f"momentum applies to optimizer='sgd' only (Adam keeps its own moments); "
                         f"got momentum={momentum!r} with optimizer={optimizer!r}")
    record_every = check_positive_int("record_every", record_every)
    seed = check_seed(seed)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable or None; got {callback!r}")
    for name, value in model.params.items():
        as_float_array(f"model.params[{name!r}]", value)
    config = dict(optimizer=optimizer, lr=lr, batch=batch, clip=clip, clip_value=clip_value,
                  penalty=penalty, lyapunov=lyapunov, momentum=momentum, seed=seed)

    objective, parts = make_objective(model, task, penalty=penalty, lyapunov=lyapunov, seed=seed)
    flat, unflatten = flatten(initial_params(model, task, seed))
    step_fn = value_and_grad(lambda v, xs, ys: objective(unflatten(v), xs, ys))
    probe_xs, _ = task.batch(PROBE_BATCH, (seed, PROBE))
    series = {k: np.full(steps, np.nan) for k in ("loss", "objective", "grad", "clipped", "update")}
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    records, diverged, interrupted, done = [], None, None, 0
    start = time.perf_counter()

    def record(i, loss, split="train"):
        records.append({"step": i, "split": split, "loss": loss,
                        **measure(model, unflatten(flat)["model"], probe_xs, seed)})
        if callback is not None:
            callback(dict(records[-1]))

    bar = progress_bar(steps, "train", "step", progress)
    with threadpool_limits(1), bar:  # tiny matrices: BLAS threads only contend (4x slower on 2 busy cores)
        try:
            for i in range(steps):
                xs, ys = task.batch(batch, (seed, i))
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked just below
                    total, g = step_fn(flat, xs, ys)
                if np.isfinite(total):
                    series["loss"][i], series["objective"][i] = parts["loss"], total
                limit = DIVERGED_FACTOR * max(series["loss"][0], task.baseline)
                if not (np.isfinite(total) and np.all(np.isfinite(g))) or parts["loss"] > limit:
                    diverged = i
                    break
                if i % record_every == 0:
                    record(i, parts["loss"])
                series["grad"][i] = np.linalg.norm(g)
                g = _clip(g, clip, clip_value)
                series["clipped"][i] = np.linalg.norm(g)
                if optimizer == "sgd":
                    m = momentum * m + g
                    update = -lr * m
                else:
                    b1, b2, eps = ADAM
                    m = b1 * m + (1 - b1) * g
                    v = b2 * v + (1 - b2) * g**2
                    update = -lr * (m / (1 - b1 ** (i + 1))) / (np.sqrt(v / (1 - b2 ** (i + 1))) + eps)
                series["update"][i] = np.linalg.norm(update)
                flat = flat + update
                done = i + 1
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.4g}", refresh=False)
        except KeyboardInterrupt:
            # Keep what was learnt: steps before `done` are complete, `flat` their weights.
            interrupted = done
            for name in series:
                series[name] = series[name][:done]
            if len(records) and records[-1]["step"] >= done:
                records.pop()  # a measurement of a step that did not finish
            warnings.warn(f"training interrupted at step {done} of {steps}: returning the partial run "
                          f"(TrainingRun.interrupted_at={done})", RuntimeWarning, stacklevel=2)
        final = unflatten(flat)
        eval_objective, eval_parts = make_objective(model, task, seed=seed)
        eval_xs, eval_ys = task.held_out(EVAL_BATCH, (seed, EVAL))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            eval_objective(final, eval_xs, eval_ys)
        eval_loss = eval_parts["loss"] if diverged is None else np.nan
        if diverged is None:
            record(done, eval_loss, "held out")
    return TrainingRun(model=model.name, task=task.name, baseline=task.baseline, loss=series["loss"],
                       objective=series["objective"], grad_norm=series["grad"],
                       clipped_grad_norm=series["clipped"], update_norm=series["update"],
                       records=pd.DataFrame(records), eval_loss=float(eval_loss), diverged_at=diverged,
                       params=final, config=config, seconds=time.perf_counter() - start,
                       interrupted_at=interrupted)

