"""The Jacobian engine: every derivative gradflow takes goes through here.

Two primitives, both built on autograd's ``make_vjp`` / ``make_jvp``:

* `jacobian_products` evaluates ``Q^T J_t`` (one VJP) or ``J_t Q`` (one JVP) for a block ``Q`` of
  ``k`` vectors at *every* step at once. A step treats batch rows independently, so the states of a
  whole time-chunk, each repeated ``k`` times, go through the step as one batch: one autograd trace
  per chunk of steps, not one backward pass per hidden unit per step as ``autograd.jacobian`` would
  do. `jacobians` is the case ``Q = I``.
* `reverse_sweep` (in ``_reverse``) back-propagates a loss from the final state through the
  unrolled network in one reverse pass, with probes (see ``_probe``) recording ``log ||dL/dh_t||``
  and rescaling as they go, so nothing overflows or underflows at T = 10,000. Time is cut into
  chunks re-traced from checkpointed states, which keeps memory O(T * state) for any T.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from ..cells._cells import Cell
from ..cells._linearisation import block_products
from ..core import deprecated_spellings
from ..core._activations import ACTIVATIONS
from ..core._jacobians import jacobian_terms, step_jacobians
from ..core._registry import find_cell_kind, is_vanilla
from ..core._sequence_ops import SEQUENCE_KINDS, sequence_forward
from ..core._threads import blas_limit
from ..core._validation import as_float_array, check_choice

# Largest array (bytes) one autograd trace of a time-chunk may create. 32 MB keeps
# the batched step in cache-friendly BLAS calls without blowing up memory.
CHUNK_BYTES = 32 * 2**20


def check_cell(cell) -> Cell:
    if not isinstance(cell, Cell):
        raise ValueError(
            f"cell must be a gradflow Cell (gf.rnn, gf.lstm, gf.gru, gf.Cell); got {type(cell).__name__}"
        )
    return cell


def check_sequence(cell: Cell, xs, h0=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate time-major inputs ``(T, batch, inputs)`` and the initial state."""
    xs = as_float_array("xs", xs, ndim=3)
    T, B, D = xs.shape
    if T == 0:
        raise ValueError(f"xs must have at least one time step; got shape {xs.shape}")
    if B == 0:
        raise ValueError(f"xs must have a batch of at least 1; got shape {xs.shape}")
    if D != cell.input_size:
        raise ValueError(
            f"xs must have shape (T, batch, {cell.input_size}) for cell {cell.name!r}; got {xs.shape}"
        )
    if h0 is None:
        h0 = np.zeros((B, cell.state_size))
    else:
        h0 = as_float_array("h0", h0, ndim=(1, 2))
        if h0.shape not in ((cell.state_size,), (B, cell.state_size)):
            raise ValueError(
                f"h0 must have shape ({cell.state_size},) or ({B}, {cell.state_size}); got {h0.shape}"
            )
        h0 = np.broadcast_to(h0, (B, cell.state_size)).copy()
    return xs, h0


@deprecated_spellings(positional=("h0",))
def unroll(cell: Cell, xs, *, h0=None) -> np.ndarray:
    """Run the cell over a sequence and return every state.

    Parameters
    ----------
    cell : Cell
    xs : array, shape (T, batch, inputs)
        Time-major inputs, as in PyTorch's default.
    h0 : array, shape (batch, state) or (state,), optional, keyword-only: initial state, zeros by default.

    Returns
    -------
    states : ndarray, shape (T + 1, batch, state)
        ``states[0] = h0`` and ``states[t] = step(states[t-1], xs[t-1])``.

    Examples
    --------
    >>> import gradflow as gf
    >>> cell = gf.rnn(8, 2, seed=0)
    >>> gf.unroll(cell, gf.inputs.gaussian(5, 3, 2)).shape
    (6, 3, 8)
    """
    cell = check_cell(cell)
    xs, h0 = check_sequence(cell, xs, h0)
    out = np.empty((xs.shape[0] + 1, *h0.shape))
    out[0] = h = h0
    forward = plain_forward(cell)
    with np.errstate(over="ignore", invalid="ignore"), blas_limit():  # overflow: reported below
        if forward is not None:  # the step's bytes without autograd's wrappers (~40 us a step)
            forward(xs, out)
        else:
            for t, x in enumerate(xs):
                out[t + 1] = h = np.asarray(cell.step(cell.params, h, x))
    check_trajectory(cell, out)
    return out


def vanilla_weights(cell: Cell) -> tuple | None:
    """``(W_hh, W_ih, b, activation)`` of a one-layer vanilla cell, ``h' = phi(W_hh h + W_ih x + b)``
    (a registered kind with ``vanilla`` set, ``phi`` a registered activation); else None."""
    activation = getattr(cell.step, "keywords", {}).get("activation")
    if closed_form_kind(cell) is None or not is_vanilla(cell.kind) or activation not in ACTIVATIONS:
        return None
    p = cell.params
    return p["weight_hh_l0"], p["weight_ih_l0"], p["bias_ih_l0"] + p["bias_hh_l0"], activation


def plain_forward(cell: Cell) -> Callable[[np.ndarray, np.ndarray], None] | None:
    """``forward(xs, states)`` writing ``states[1:]`` from ``states[0]`` on plain arrays, the step's
    operations in its order (so its bytes): a one-layer vanilla cell (`vanilla_forward`), LSTM or
    GRU in PyTorch's layout (`sequence_forward`, its kind's own step, no variant); else None."""
    weights = vanilla_weights(cell)
    if weights is not None:
        return functools.partial(vanilla_forward, weights)
    kind = closed_form_kind(cell)
    if kind not in SEQUENCE_KINDS:
        return None
    p = cell.params
    W_ih, W_hh, b_ih = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"]
    b_hh: np.ndarray | float = p["bias_hh_l0"]
    if kind == "lstm":  # the LSTM step adds its two biases to the input drive
        b_ih, b_hh = b_ih + b_hh, 0.0
    return lambda xs, states: sequence_forward(kind, xs, W_ih, W_hh, b_ih, b_hh, states)


def array_step(cell: Cell) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``(h, x) -> cell.step(cell.params, h, x)`` for rows ``h`` (M, S), ``x`` (M, D): a one-layer
    vanilla cell, LSTM or GRU on plain arrays (one step of `vanilla_forward` or `sequence_forward`:
    the step's bytes without autograd's wrappers), any other cell by its step.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> from gradflow.engine._engine import array_step
    >>> cell, h, x = gf.lstm(4, 2, seed=0), np.full((1, 8), 0.1), np.ones((1, 2))
    >>> bool(np.array_equal(array_step(cell)(h, x), cell.step(cell.params, h, x)))
    True
    """
    forward = plain_forward(cell)
    if forward is None:
        return lambda h, x: np.asarray(cell.step(cell.params, h, x))

    def step(h: np.ndarray, x: np.ndarray) -> np.ndarray:
        states = np.empty((2, *h.shape))
        states[0] = h
        forward(x[None], states)
        return states[1]

    return step


def vanilla_unroll(
    cell: Cell, weights: tuple, xs: np.ndarray, h0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`unroll` of a vanilla cell (`vanilla_weights`) and its pre-activations ``a_t`` (T, B, S)."""
    states, pre = np.empty((xs.shape[0] + 1, *h0.shape)), np.empty((xs.shape[0], *h0.shape))
    states[0] = h0
    with np.errstate(over="ignore", invalid="ignore"), blas_limit():  # overflow: reported below
        vanilla_forward(weights, xs, states, pre)
    check_trajectory(cell, states)
    return states, pre


def vanilla_forward(
    weights: tuple, xs: np.ndarray, states: np.ndarray, pre: np.ndarray | None = None
) -> None:
    """``states[1:]`` of a vanilla cell (`vanilla_weights`) from ``states[0]``, and the
    pre-activations ``a_t`` into ``pre`` (T, B, S) if given: `sequence_forward`'s vanilla step
    (the operations of the cell's step in its order, so its bytes, on plain arrays: no autograd
    wrappers, ~40 us a step)."""
    W, U, b, activation = weights
    kept: list | None = None if pre is None else []
    sequence_forward("rnn", xs, U, W, b, 0.0, states, kept, activation)
    if pre is not None and kept:
        np.stack(kept, out=pre)


def check_trajectory(cell: Cell, states: np.ndarray) -> None:
    """Raise ``FloatingPointError`` naming the first step whose state is not finite."""
    finite = np.all(np.isfinite(states.reshape(len(states), -1)), axis=1)
    if not finite.all():
        t = int(np.argmin(finite))
        raise FloatingPointError(
            f"the state of cell {cell.name!r} became non-finite at step "
            f"{t}: its dynamics overflow float64 (weights too large?)"
        )


def steps_per_chunk(rows_per_step: int, width: int, factor: int = 1) -> int:
    return max(1, CHUNK_BYTES // (8 * rows_per_step * width * factor))


def _trajectory(cell: Cell, xs: np.ndarray, h0: np.ndarray, states) -> np.ndarray:
    """``states`` checked against validated ``xs``, or the trajectory from `unroll`."""
    if states is None:
        return unroll(cell, xs, h0=h0)
    T, B, _ = xs.shape
    states = as_float_array("states", states, ndim=3)
    if states.shape != (T + 1, B, cell.state_size):
        raise ValueError(f"states must have shape {(T + 1, B, cell.state_size)}; got {states.shape}")
    return states


@deprecated_spellings(positional=("h0", "side", "states"))
def jacobian_products(
    cell: Cell, xs, block, *, h0=None, side: str = "right", states: np.ndarray | None = None
) -> np.ndarray:
    """Per-step Jacobians applied to a block of vectors, ``J_t Q`` or ``Q^T J_t``.

    ``J_t = d state_t / d state_{t-1}``, ``t = 1..T``: one batched JVP ("right") or VJP ("left") a chunk.

    Parameters
    ----------
    cell : Cell
    xs : array, shape (T, batch, inputs)
    block : array, shape (state, k), (batch, state, k) or (T, batch, state, k)
        The vectors ``Q``, shared by all steps or given per step.
    h0, side : array (optional), {"right", "left"}
        ``J_t Q`` (shape (T, batch, state, k)) or ``Q^T J_t`` (shape (T, batch, k, state)).
    states : array, shape (T + 1, batch, state), optional
        A trajectory from `unroll`, to avoid running the cell again.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(6, 2, seed=0)
    >>> xs = gf.inputs.gaussian(4, 1, 2)
    >>> JQ = gf.jacobian_products(cell, xs, np.eye(6)[:, :2])
    >>> np.allclose(JQ, gf.jacobians(cell, xs)[..., :2])
    True
    """
    cell = check_cell(cell)
    side = check_choice("side", side, ("right", "left"))
    xs, h0 = check_sequence(cell, xs, h0)
    T, B, _ = xs.shape
    S = cell.state_size
    block = as_float_array("block", block, ndim=(2, 3, 4))
    if block.shape[-2] != S or block.shape[-1] == 0:
        raise ValueError(f"block must have shape (..., {S}, k) with k >= 1; got {block.shape}")
    if block.ndim > 2 and block.shape[:-2] not in ((B,), (T, B)):
        raise ValueError(
            f"block must have shape ({S}, k), ({B}, {S}, k) or ({T}, {B}, {S}, k); got {block.shape}"
        )
    k = block.shape[-1]
    block = np.broadcast_to(block, (T, B, S, k))
    states = _trajectory(cell, xs, h0, states)
    out = np.empty((T, B, S, k) if side == "right" else (T, B, k, S))
    chunk = steps_per_chunk(B * k, max(S, cell.input_size))
    with blas_limit():
        for t0 in range(0, T, chunk):
            t1 = min(T, t0 + chunk)
            m = (t1 - t0) * B
            res = block_products(
                cell,
                states[t0:t1].reshape(m, S),
                xs[t0:t1].reshape(m, -1),
                block[t0:t1].reshape(m, S, k),
                side,
            )
            out[t0:t1] = res.reshape(out[t0:t1].shape)
    return out


def closed_form_kind(cell: Cell) -> str | None:
    """The kind of a one-layer cell whose J_t has a closed form (its `CellKind`'s ``jacobians``),
    else None."""
    record = find_cell_kind(cell.kind)
    # The kind's own one-layer step: a variant (a projected LSTM) is not the closed form's cell.
    if record is not None and record.jacobians is not None and record.is_one_layer_step(cell.step):
        return cell.kind
    return None


def closed_form_terms(cell: Cell, h: np.ndarray, x: np.ndarray):
    """`jacobian_terms` of a one-layer built-in cell at M rows (``closed_form_kind`` not None)."""
    activation = getattr(cell.step, "keywords", {}).get("activation")  # a built-in step is a partial
    return jacobian_terms(closed_form_kind(cell), cell.params, h, x, activation)


def cell_step_jacobians(
    cell: Cell, h: np.ndarray, x: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """``J`` at M rows ``(h, x)``, shape (M, S, S): closed form for one-layer built-in cells,
    else one stacked VJP of the identity. ``out``: where a vanilla cell's J may be written."""
    kind = closed_form_kind(cell)
    if kind is not None:
        activation = getattr(cell.step, "keywords", {}).get("activation")
        return step_jacobians(kind, cell.params, h, x, activation, out=out)
    eye = np.broadcast_to(np.eye(cell.state_size), (h.shape[0], cell.state_size, cell.state_size))
    return block_products(cell, h, x, eye, "left")


@deprecated_spellings(positional=("h0", "states"))
def jacobians(cell: Cell, xs, *, h0=None, states: np.ndarray | None = None) -> np.ndarray:
    """All per-step Jacobians ``J_t = d state_t / d state_{t-1}``, shape (T, batch, state, state).

    Memory: ``T * batch * state**2`` floats; `jacobian_products` or `gradient_flow` need less.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> from gradflow.core._activations import sech2
    >>> cell = gf.rnn(5, 3, gain=2.0, seed=0)
    >>> xs = gf.inputs.gaussian(7, 2, 3, seed=1)
    >>> hs = gf.unroll(cell, xs)
    >>> W, U = cell.params["weight_hh_l0"], cell.params["weight_ih_l0"]
    >>> a = hs[:-1] @ W.T + xs @ U.T
    >>> np.allclose(gf.jacobians(cell, xs), sech2(a)[..., None] * W)
    True
    """
    cell = check_cell(cell)
    if closed_form_kind(cell) is None:
        return jacobian_products(cell, xs, np.eye(cell.state_size), h0=h0, side="left", states=states)
    # Built-in one-layer cells: the fused operations' derivatives in closed form, no tracing.
    xs, h0 = check_sequence(cell, xs, h0)
    states = _trajectory(cell, xs, h0, states)
    T, B, _ = xs.shape
    S = cell.state_size
    out = np.empty((T, B, S, S))
    chunk = steps_per_chunk(B * S, S)  # the temporaries of a chunk stay ~CHUNK_BYTES
    with blas_limit():
        for t0 in range(0, T, chunk):
            t1 = min(T, t0 + chunk)
            m = (t1 - t0) * B
            target = out[t0:t1].reshape(m, S, S)  # a view: written in place where the cell allows
            J = cell_step_jacobians(cell, states[t0:t1].reshape(m, S), xs[t0:t1].reshape(m, -1), out=target)
            if J is not target:
                target[...] = J
    return out


def unboxed(h):
    """The array inside an autograd box (or the array itself)."""
    while hasattr(h, "_value"):
        h = h._value
    return h
