"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio, Hajimirsadeghi 2024, "Were RNNs All We Needed?").

Sequential mode, the paper's equations (its Algorithms 1 and 3), gates read the input only:

* minGRU: ``z_t = sigmoid(W_z x_t + b_z)``, ``h~_t = W_h x_t + b_h``,
  ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t``.
* minLSTM: ``f_t = sigmoid(W_f x_t + b_f)``, ``i_t = sigmoid(W_i x_t + b_i)``,
  ``f'_t = f_t / (f_t + i_t)``, ``i'_t = i_t / (f_t + i_t)``, ``h~_t = W_h x_t + b_h``,
  ``h_t = f'_t * h_{t-1} + i'_t * h~_t``.

Both are linear in the state with a diagonal, input-dependent ``a_t`` (``1 - z_t`` or ``f'_t``),
so ``config["linear"]`` is True and `linear_coefficients` gives ``(a_t, b_t)`` for all t at once.
Weights are named like ``nn.Linear`` layers (``weight_z``, ``bias_z``, ...) and drawn as
PyTorch draws them, ``U(-1/sqrt(D), 1/sqrt(D))``.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from .core import _activations as act
from .cells._cells import Cell
from .engine._engine import check_cell, check_sequence
from .core._validation import check_positive_int, check_seed

# Each kind's linear maps of the input, in draw order; "h" is the candidate state.
GATES = {"mingru": ("z", "h"), "minlstm": ("f", "i", "h")}


def _linear(params, x, gate):
    return x @ params[f"weight_{gate}"].T + params[f"bias_{gate}"]


def _log_sigmoid(a):
    return -anp.logaddexp(0.0, -a)


def _minlstm_gates(params, x):
    """``(f', i') = (f, i) / (f + i)``, as ``sigmoid(log f - log i)`` and its mirror: the same
    numbers, and no 0/0 where both gates underflow (pre-activations below about -37)."""
    gap = _log_sigmoid(_linear(params, x, "f")) - _log_sigmoid(_linear(params, x, "i"))
    return act.sigmoid(gap), act.sigmoid(-gap)


def mingru_step(params, state, x):
    z = act.sigmoid(_linear(params, x, "z"))
    return (1.0 - z) * state + z * _linear(params, x, "h")


def minlstm_step(params, state, x):
    f, i = _minlstm_gates(params, x)
    return f * state + i * _linear(params, x, "h")


_STEPS = {"mingru": mingru_step, "minlstm": minlstm_step}


def _random(kind: str, hidden: int, inputs: int, seed: int, name: str | None) -> Cell:
    hidden = check_positive_int("hidden", hidden)
    inputs = check_positive_int("inputs", inputs)
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(inputs)
    params = {}
    for gate in GATES[kind]:
        params[f"weight_{gate}"] = rng.uniform(-bound, bound, size=(hidden, inputs))
        params[f"bias_{gate}"] = rng.uniform(-bound, bound, size=hidden)
    config = {"hidden": hidden, "inputs": inputs, "linear": True, "seed": seed}
    return Cell(_STEPS[kind], params, hidden, inputs, kind=kind,
                components={"h": np.arange(hidden)}, config=config, name=name or kind)


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
    return _random("mingru", hidden, inputs, seed, name)


def minlstm(hidden: int, inputs: int, *, seed: int = 0, name: str | None = None) -> Cell:
    """A minLSTM cell (Feng et al. 2024): ``h_t = f'_t * h_{t-1} + i'_t * h~_t``,
    ``f'_t = f_t / (f_t + i_t)``, ``i'_t = i_t / (f_t + i_t)`` (time-independent scale).

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.minlstm(8, 3).params["weight_f"].shape
    (8, 3)
    """
    return _random("minlstm", hidden, inputs, seed, name)


def linear_coefficients(cell: Cell, xs) -> tuple[np.ndarray, np.ndarray]:
    """The per-step map ``h_t = a_t * h_{t-1} + b_t`` of a minGRU or minLSTM, all t at once.

    Returns real ``a`` and ``b`` of shape (T, batch, hidden): ``a_t = 1 - z_t``,
    ``b_t = z_t * h~_t`` (minGRU) or ``a_t = f'_t``, ``b_t = i'_t * h~_t`` (minLSTM).

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> from gradflow._mingru import linear_coefficients
    >>> cell = gf.minlstm(4, 2)
    >>> xs = gf.inputs.gaussian(5, 3, 2)
    >>> a, b = linear_coefficients(cell, xs)
    >>> h = np.zeros((3, 4))
    >>> for t in range(5):
    ...     h = a[t] * h + b[t]
    >>> bool(np.allclose(h, gf.unroll(cell, xs)[-1]))
    True
    """
    cell = check_cell(cell)
    if cell.kind not in GATES:
        raise ValueError(f"cell must be a minGRU or minLSTM (gf.mingru, gf.minlstm); got "
                         f"{cell.name!r} of kind {cell.kind!r}")
    xs, _ = check_sequence(cell, xs)
    p = cell.params
    if cell.kind == "mingru":
        z = act.logistic(_linear(p, xs, "z"))
        return 1.0 - z, z * _linear(p, xs, "h")
    f, i = _minlstm_gates(p, xs)
    return f, i * _linear(p, xs, "h")
