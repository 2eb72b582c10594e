"""A cell's derivative at given states: one JVP or VJP of its step over a block of vectors.

`block_products` is the primitive the engine applies to every chunk of time steps; here it
also gives the linearisation the eigenvalue rule reads (`linearisation`), which a `Cell`
shows in its repr, so it lives with the cells, below the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from autograd.core import make_jvp, make_vjp

from ..core._registry import is_vanilla

if TYPE_CHECKING:  # annotations only: _cells imports this module when a spectrum is asked for
    from ._cells import Cell


def block_products(
    cell: Cell, states: np.ndarray, xs: np.ndarray, block: np.ndarray, side: str
) -> np.ndarray:
    """``Q^T J`` (side "left", one VJP) or ``J Q`` (side "right", one JVP) for M rows.

    ``states`` (M, S), ``xs`` (M, D), ``block`` (M, S, k). Returns (M, k, S) for
    "left" and (M, S, k) for "right".
    """
    M, S = states.shape
    k = block.shape[2]
    vecs = np.moveaxis(block, 2, 0)  # (k, M, S): vector j of every row
    if cell.stacked_tangents:
        # The step's rules broadcast over a leading axis: one trace of the M rows carries
        # all k vectors at once.
        h, x, vecs = states, xs, np.ascontiguousarray(vecs)
    else:
        # Generic path: row j*M + m is a copy of row m carrying vector j.
        h, x = np.tile(states, (k, 1)), np.tile(xs, (k, 1))
        vecs = vecs.reshape(k * M, S)

    def f(hh):
        return cell.step(cell.params, hh, x)

    if side == "left":
        vjp, _ = make_vjp(f, h)
        return np.moveaxis(np.asarray(vjp(vecs)).reshape(k, M, S), 0, 1)
    _, tangent = make_jvp(f, h)(vecs)
    return np.moveaxis(np.asarray(tangent).reshape(k, M, S), 0, 2)


def recurrent_matrix(cell: Cell) -> np.ndarray | None:
    """The matrix the folklore rules talk about: ``W_hh`` of a one-layer vanilla cell, else None."""
    if is_vanilla(cell.kind) and cell.config.get("layers", 1) == 1:
        return cell.params["weight_hh_l0"]
    return None


def step_jacobian(cell: Cell, h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``d step / d h`` at the single point ``(h, x)``: one stacked JVP, shape (S, S)."""
    S = cell.state_size
    return block_products(cell, h[None], x[None], np.eye(S)[None], "right")[0]


def linearisation(cell: Cell, x: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The matrix the eigenvalue rule reads, and what it is: ``W_hh`` of a one-layer vanilla
    cell, else the step Jacobian at the origin for the constant input ``x`` (zeros by default)."""
    W = recurrent_matrix(cell)
    if W is not None:
        return W, "recurrent matrix"
    x = np.zeros(cell.input_size) if x is None else x
    return step_jacobian(cell, np.zeros(cell.state_size), x), "step Jacobian at the origin"
