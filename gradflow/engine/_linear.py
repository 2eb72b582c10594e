"""Cells that are linear in their state, seen whole: every step's affine map at once, and the
output sequence of the layers that read their state out.

Each kind's own formulas live beside its cell in ``gradflow.cells``; here the inputs are validated
once and the kind picks the formula from a registry.
"""

from __future__ import annotations

import numpy as np

from ..cells import Cell, _lru, _mamba, _mingru, _ssm
from ..core import deprecated_spellings
from ._engine import check_cell, check_sequence, unroll

# kind -> linear_coefficients(cell, xs, h0) -> (a, b), for validated inputs.
LINEAR_COEFFICIENTS = {
    "lru": _lru.linear_coefficients,
    "s4d": _ssm.linear_coefficients,
    "mingru": _mingru.linear_coefficients,
    "minlstm": _mingru.linear_coefficients,
    "mamba": _mamba.linear_coefficients,
}
# kind -> outputs(cell, states, xs) -> ys, with states from `unroll`.
LAYER_OUTPUTS = {"lru": _lru.outputs, "s4d": _ssm.outputs, "mamba": _mamba.outputs}


def _registered(cell, registry, what: str) -> Cell:
    cell = check_cell(cell)
    if cell.kind not in registry:
        raise ValueError(
            f"cell {cell.name!r} of kind {cell.kind!r} has no {what}; kinds that have: "
            f"{', '.join(sorted(registry))}"
        )
    return cell


@deprecated_spellings(positional=("h0",))
def linear_coefficients(cell: Cell, xs, *, h0=None) -> tuple[np.ndarray, np.ndarray]:
    """Every step's affine map ``h_t = a_t * h_{t-1} + b_t`` of a cell linear in its state.

    ``a_t`` is diagonal (elementwise) and ``a``, ``b`` depend on the inputs only, so they come
    for all t at once, and a parallel (associative) scan can then run the recurrence.

    Parameters
    ----------
    cell : Cell
        One with ``cell.config["linear"]``: ``lru``, ``s4d`` (complex ``a``, ``b`` of shape
        (T, batch, N) acting on ``h = Re h + i Im h``, the real state being ``[h.real, h.imag]``),
        ``mingru``, ``minlstm`` (real, (T, batch, hidden)), ``mamba`` (real, (T, batch,
        d_inner * d_state), the SSM part ``state[:, cell.components["ssm"]]``; its conv buffer is a
        shift register of the inputs, computed from them).
    xs : array, shape (T, batch, inputs)
    h0 : array, optional
        Initial state (only Mamba's conv buffer part enters ``a`` and ``b``).

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.lru(4, 2, seed=0)
    >>> xs = gf.inputs.gaussian(6, 1, 2)
    >>> a, b = gf.linear_coefficients(cell, xs)
    >>> h = np.zeros((1, 4), complex)
    >>> for t in range(6):
    ...     h = a[t] * h + b[t]
    >>> bool(np.allclose(np.concatenate([h.real, h.imag], -1), gf.unroll(cell, xs)[-1]))
    True
    """
    cell = _registered(cell, LINEAR_COEFFICIENTS, "per-step linear map (it is not linear in its state)")
    xs, h0 = check_sequence(cell, xs, h0)
    return LINEAR_COEFFICIENTS[cell.kind](cell, xs, h0)


@deprecated_spellings(positional=("h0",))
def layer_outputs(cell: Cell, xs, *, h0=None) -> np.ndarray:
    """The output sequence of a layer whose output reads its state: ``Re(C h_t) + D * x_t`` for
    ``lru`` and ``s4d``, the block output ``out_proj(y_t)`` for ``mamba``; (T, batch, inputs).

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.layer_outputs(gf.mamba(4, d_state=2), gf.inputs.gaussian(5, 2, 4)).shape
    (5, 2, 4)
    """
    cell = _registered(cell, LAYER_OUTPUTS, "output read from its state")
    xs, h0 = check_sequence(cell, xs, h0)
    return LAYER_OUTPUTS[cell.kind](cell, unroll(cell, xs, h0=h0), xs)
