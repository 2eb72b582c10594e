"""Cells that are linear in their state, seen whole: every step's affine map at once, and the
output sequence of the layers that read their state out.

Each kind's own formulas live beside its cell in ``gradflow.cells`` and are fields of its
`CellKind` (``linear_coefficients``, ``layer_outputs``); here the inputs are validated once and
the kind's record is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..cells import Cell
from ..core import deprecated_spellings
from ..core._registry import cell_kinds, find_cell_kind
from ._engine import check_cell, check_sequence, unroll


def _kinds_with(field: str) -> tuple[str, ...]:
    return tuple(k for k in cell_kinds() if getattr(find_cell_kind(k), field) is not None)


def _kind_field(cell, field: str, what: str) -> tuple[Cell, Callable[..., Any]]:
    """The checked cell and its `CellKind`'s ``field``; ValueError naming the kinds that have one."""
    cell = check_cell(cell)
    formula = getattr(find_cell_kind(cell.kind), field, None)
    if formula is None:
        raise ValueError(
            f"cell {cell.name!r} of kind {cell.kind!r} has no {what}; kinds that have: "
            f"{', '.join(sorted(_kinds_with(field)))}"
        )
    return cell, formula


@deprecated_spellings(positional=("h0",))
def linear_coefficients(cell: Cell, xs, *, h0=None) -> tuple[np.ndarray, np.ndarray]:
    """Every step's affine map ``h_t = a_t * h_{t-1} + b_t`` of a cell linear in its state.

    ``a_t`` is diagonal (elementwise) and ``a``, ``b`` depend on the inputs only, so they come
    for all t at once, and a parallel (associative) scan can then run the recurrence.

    Parameters
    ----------
    cell : Cell
        One whose `CellKind` has ``linear_coefficients``: ``lru``, ``s4d`` (complex ``a``, ``b``
        of shape (T, batch, N) acting on ``h = Re h + i Im h``, the real state being ``[h.real,
        h.imag]``), ``mingru``, ``minlstm`` (real, (T, batch, hidden)), ``mamba`` (real, (T,
        batch, d_inner * d_state), the SSM part ``state[:, cell.components["ssm"]]``, its kind's
        ``linear_part``; its conv buffer is a shift register of the inputs, computed from them).
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
    cell, formula = _kind_field(
        cell, "linear_coefficients", "per-step linear map (it is not linear in its state)"
    )
    xs, h0 = check_sequence(cell, xs, h0)
    return formula(cell, xs, h0)


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
    cell, formula = _kind_field(cell, "layer_outputs", "output read from its state")
    xs, h0 = check_sequence(cell, xs, h0)
    return formula(cell, unroll(cell, xs, h0=h0), xs)
