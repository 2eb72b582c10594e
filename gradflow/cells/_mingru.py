"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio, Hajimirsadeghi 2024, "Were RNNs All We Needed?").

Sequential mode, the paper's equations (its Algorithms 1 and 3), gates read the input only:

* minGRU: ``z_t = sigmoid(W_z x_t + b_z)``, ``h~_t = W_h x_t + b_h``,
  ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t``.
* minLSTM: ``f_t = sigmoid(W_f x_t + b_f)``, ``i_t = sigmoid(W_i x_t + b_i)``,
  ``f'_t = f_t / (f_t + i_t)``, ``i'_t = i_t / (f_t + i_t)``, ``h~_t = W_h x_t + b_h``,
  ``h_t = f'_t * h_{t-1} + i'_t * h~_t``.

Both are linear in the state with a diagonal, input-dependent ``a_t`` (``1 - z_t`` or ``f'_t``),
so ``config["linear"]`` is True and their `CellKind`'s ``linear_coefficients`` gives ``(a_t, b_t)``
for all t at once.
Weights are named like ``nn.Linear`` layers (``weight_z``, ``bias_z``, ...) and drawn as
PyTorch draws them, ``U(-1/sqrt(D), 1/sqrt(D))``.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from ..core._diagonal import diagonal_update
from ..core._registry import CellKind, cell_kind, register_cell_kind
from ..core._validation import check_positive_int, check_seed
from ._cells import Cell

# Each kind's linear maps of the input, in draw order; "h" is the candidate state.
MINGRU_MAPS, MINLSTM_MAPS = ("z", "h"), ("f", "i", "h")


def _linear(params, x, gate):
    return x @ params[f"weight_{gate}"].T + params[f"bias_{gate}"]


def _log_sigmoid(a):
    return -anp.logaddexp(0.0, -a)


def _gate_pair(a):
    """``(sigmoid(a), sigmoid(-a))``, each to full relative precision in its tail: the kept
    fraction ``1 - z`` of a saturated gate is ``e^-a``, not ``1 - 0.999...`` (or 0)."""
    return anp.exp(_log_sigmoid(a)), anp.exp(_log_sigmoid(-a))


def _minlstm_gates(params, x):
    """``(f', i') = (f, i) / (f + i)``, as ``sigmoid(log f - log i)`` and its mirror: the same
    numbers, and no 0/0 where both gates underflow (pre-activations below about -37)."""
    return _gate_pair(_log_sigmoid(_linear(params, x, "f")) - _log_sigmoid(_linear(params, x, "i")))


def _mingru_gates(params, x):
    """``(1 - z, z)``."""
    z, keep = _gate_pair(_linear(params, x, "z"))
    return keep, z


def mingru_step(params, state, x):
    keep, z = _mingru_gates(params, x)
    return diagonal_update(keep, state, z * _linear(params, x, "h"))


def minlstm_step(params, state, x):
    f, i = _minlstm_gates(params, x)
    return diagonal_update(f, state, i * _linear(params, x, "h"))


def _random(kind: str, maps: tuple[str, ...], hidden: int, inputs: int, seed: int, name: str | None) -> Cell:
    hidden = check_positive_int("hidden", hidden)
    inputs = check_positive_int("inputs", inputs)
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(inputs)
    params = {}
    for gate in maps:
        params[f"weight_{gate}"] = rng.uniform(-bound, bound, size=(hidden, inputs))
        params[f"bias_{gate}"] = rng.uniform(-bound, bound, size=hidden)
    config = {"hidden": hidden, "inputs": inputs, "linear": True, "seed": seed}
    record = cell_kind(kind)
    return Cell(
        record.step,
        params,
        hidden,
        inputs,
        kind=kind,
        components={"h": np.arange(hidden)},
        config=config,
        name=name or kind,
        stacked_tangents=record.stacked_tangents,
    )


def mingru(hidden: int, inputs: int, *, seed: int = 0, name: str | None = None) -> Cell:
    """A minGRU cell (Feng et al. 2024): ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t``.

    ``z_t`` and ``h~_t`` depend on ``x_t`` only, so ``d h_t / d h_{t-1} = diag(1 - z_t)``:
    the gradient can only shrink, at a rate set by the inputs.

    Examples
    --------
    >>> import gradflow as gf
    >>> cell = gf.mingru(8, 3, seed=0)
    >>> cell.kind, cell.state_size, sorted(cell.params)
    ('mingru', 8, ['bias_h', 'bias_z', 'weight_h', 'weight_z'])
    """
    return _random("mingru", MINGRU_MAPS, hidden, inputs, seed, name)


def minlstm(hidden: int, inputs: int, *, seed: int = 0, name: str | None = None) -> Cell:
    """A minLSTM cell (Feng et al. 2024): ``h_t = f'_t * h_{t-1} + i'_t * h~_t``,
    ``f'_t = f_t / (f_t + i_t)``, ``i'_t = i_t / (f_t + i_t)`` (time-independent scale).

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.minlstm(8, 3).params["weight_f"].shape
    (8, 3)
    """
    return _random("minlstm", MINLSTM_MAPS, hidden, inputs, seed, name)


def mingru_coefficients(cell: Cell, xs: np.ndarray, h0: np.ndarray | None = None):
    """The per-step map ``h_t = a_t * h_{t-1} + b_t`` of a minGRU for validated inputs: real
    ``a_t = 1 - z_t`` and ``b_t = z_t * h~_t`` of shape (T, batch, hidden)."""
    keep, z = _mingru_gates(cell.params, xs)
    return keep, z * _linear(cell.params, xs, "h")


def minlstm_coefficients(cell: Cell, xs: np.ndarray, h0: np.ndarray | None = None):
    """The per-step map ``h_t = a_t * h_{t-1} + b_t`` of a minLSTM for validated inputs: real
    ``a_t = f'_t`` and ``b_t = i'_t * h~_t`` of shape (T, batch, hidden)."""
    f, i = _minlstm_gates(cell.params, xs)
    return f, i * _linear(cell.params, xs, "h")


# The state passes through diagonal_update only: both steps take stacked tangents.
register_cell_kind(
    CellKind(
        "mingru",
        mingru_step,
        mingru,
        description="minGRU (Feng et al. 2024): h' = (1 - z) h + z h~, gates read the input only",
        pytorch_layout=False,
        linear_coefficients=mingru_coefficients,
    )
)
register_cell_kind(
    CellKind(
        "minlstm",
        minlstm_step,
        minlstm,
        description="minLSTM (Feng et al. 2024): h' = f' h + i' h~, gates read the input only",
        pytorch_layout=False,
        linear_coefficients=minlstm_coefficients,
    )
)
