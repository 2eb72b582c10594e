"""The training objective: argument checks, the task loss over the unrolled model plus penalties
and the Lyapunov regulariser (finite-time exponents, differentiable), and the initial parameters."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import autograd.numpy as anp
import numpy as np
from autograd.core import make_jvp
from autograd.tracer import Box

from ..cells._cells import Cell
from ..core._ops import take_columns
from ..core._registry import find_cell_kind
from ..core._validation import check_finite_float, check_positive_int
from ..engine._engine import check_cell, check_sequence, unboxed
from ..measure._lyapunov import initial_block
from ..models import SequenceModel, recurrent
from ..models._recurrent import output_columns
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


def model_for(model, task) -> SequenceModel:
    """``model`` as a `SequenceModel`, checked to take ``task``'s inputs."""
    model = as_model(model)
    if not isinstance(task, Task):
        raise ValueError(
            f"task must be a gradflow Task (gf.tasks.copy_memory, ...); got {type(task).__name__}"
        )
    if model.input_size != task.input_size:
        raise ValueError(
            f"model {model.name!r} takes inputs of width {model.input_size}; task "
            f"{task.name!r} gives {task.input_size}"
        )
    return model


def check_penalty(penalty):
    if penalty is None:
        return None
    ok = isinstance(penalty, (tuple, list)) and len(penalty) == 2 and isinstance(penalty[0], str)
    if not ok or penalty[0].lower() not in PENALTIES:
        raise ValueError(f"penalty must be None or ('l1' | 'l2', weight); got {penalty!r}")
    return penalty[0].lower(), check_finite_float("penalty weight", penalty[1], minimum=0.0)


def check_lyapunov(lyapunov, model):
    if lyapunov is None:
        return None
    if isinstance(lyapunov, (int, float, np.floating)) and not isinstance(lyapunov, bool):
        lyapunov = (lyapunov, 1)
    if not (isinstance(lyapunov, (tuple, list)) and len(lyapunov) == 2):
        raise ValueError(f"lyapunov must be None, a weight or (weight, k); got {lyapunov!r}")
    if model.cell is None:
        raise ValueError(
            f"lyapunov regularises a recurrent cell's exponents; model {model.name!r} ({model.kind}) has none"
        )
    weight = check_finite_float("lyapunov weight", lyapunov[0], minimum=0.0)
    k = check_positive_int("lyapunov k", lyapunov[1])
    if k > model.cell.state_size:
        raise ValueError(f"lyapunov k must be at most the state size {model.cell.state_size}; got {k}")
    return weight, k


def positive_number(name, value):
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
    return Cell(
        cell.step,
        params,
        cell.state_size,
        cell.input_size,
        kind=cell.kind,
        components=cell.components,
        config=cell.config,
        name=cell.name,
        stacked_tangents=cell.stacked_tangents,
    )


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
        hk, V = make_jvp(lambda z, x=x: step(params, z, np.tile(x, (k, 1))), anp.concatenate([h] * k))(
            anp.reshape(Q, (k * B, S))
        )
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
    if (
        model.kind != "recurrent"
        or model.config.get("scan")  # runs by the scan, not by the loop's primitive
        or cell is None
        or record is None
        or record.sequence is None
        or not record.is_one_layer_step(cell.step)
    ):
        return model.apply
    cols = output_columns(cell)
    start, stop = int(cols[0]), int(cols[-1]) + 1  # one layer: h is one block of columns
    sequence = record.sequence
    keywords = getattr(cell.step, "keywords", {})  # a one-layer step is a partial (checked above)
    options = {name: keywords[name] for name in record.step_options}  # a vanilla cell's activation

    def forward(params, xs):
        if not isinstance(xs, Box):
            xs = model.check_inputs(xs)
        # take_columns, not [..., a:b]: its VJP writes one dense block where autograd's indexing
        # adds into zeros with ufunc.at (4 ms a step at T = 100, batch 32, 64 units).
        h0 = np.zeros((xs.shape[1], cell.state_size))
        return take_columns(sequence(params, xs, h0, **options), start, stop)

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
    return {
        "model": {k: np.array(v) for k, v in model.params.items()},
        "readout": {"weight": W, "bias": np.zeros(task.readout_size)},
    }


def training_objective(
    model: Cell | SequenceModel, task: Task, *, penalty=None, lyapunov=None, seed: int = 0
):
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
    model = model_for(model, task)
    penalty = check_penalty(penalty)
    lyapunov = check_lyapunov(lyapunov, model)
    objective, _ = make_objective(model, task, penalty=penalty, lyapunov=lyapunov, seed=seed)
    return objective, initial_params(model, task, seed)
