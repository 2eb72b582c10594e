"""Linear recurrences in parallel over time: an associative scan, and what it implies.

A recurrence ``h_t = a_t * h_{t-1} + b_t`` with diagonal (elementwise) ``a_t`` composes
affine maps: step ``t`` is the pair ``(a_t, b_t)`` and doing ``(a_1, b_1)`` then
``(a_2, b_2)`` is ``(a_2 a_1, a_2 b_1 + b_2)``, an associative operation. So every prefix
``h_1 .. h_T`` comes out of ``ceil(log2 T)`` rounds of elementwise work over the whole
sequence instead of ``T`` dependent steps (Blelloch 1990, "Prefix sums and their
applications"; Martin & Cundy 2018 for linear RNNs). Here the rounds are Hillis and
Steele's doubling scheme: in round ``r`` position ``t`` absorbs the prefix that ends
``2^r`` steps earlier. It does ``T log2 T`` work where the recursive odd/even scheme of
``jax.lax.associative_scan`` does ``O(T)`` in about ``2 log2 T`` rounds; its depth is the
smallest, and it is the schedule `recurrent(..., scan=True)` draws as a graph.
"""

from __future__ import annotations

import numpy as np
from autograd.core import make_jvp

from ..core import deprecated_spellings
from ..core._registry import CellKind, find_cell_kind
from ..core._threads import blas_limit
from ._engine import check_cell, check_sequence, check_trajectory, unroll

# A step declared linear must satisfy step(h) = a * h + b at a random h to this relative tolerance.
LINEAR_TOL = 1e-9
CHECK_ROWS = 4096  # rows (step x sample) on which that is checked


@deprecated_spellings(renamed={"steps": "seq_len"})
def scan_depth(seq_len: int) -> int:
    """Sequential combine rounds of the doubling scan over ``seq_len`` positions: ``ceil(log2 seq_len)``.

    Examples
    --------
    >>> from gradflow.engine import scan_depth
    >>> [scan_depth(n) for n in (1, 2, 3, 4, 5, 1000, 1024, 1025)]
    [0, 1, 2, 2, 3, 10, 10, 11]
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len must be an integer >= 1; got {seq_len!r}")
    return int(seq_len - 1).bit_length()


def _numeric(name: str, value) -> np.ndarray:
    arr = np.asarray(value)
    if not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.complexfloating)
        or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be a real or complex numeric array; got dtype {arr.dtype}")
    arr = arr.astype(np.complex128 if np.iscomplexobj(arr) else np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} contains non-finite values at index {where}; shape {arr.shape}")
    return arr


def associative_scan(a, b, h0=None) -> np.ndarray:
    """Every state of ``h_t = a_t * h_{t-1} + b_t`` (elementwise) by a log-depth parallel scan.

    Parameters
    ----------
    a : array, shape (T, batch, n), or broadcastable to ``b``'s shape
        Diagonal recurrence coefficients, real or complex.
    b : array, shape (T, batch, n)
        Inputs, real or complex.
    h0 : array, shape (batch, n) or (n,), optional
        Initial state; zeros by default.

    Returns
    -------
    states : ndarray, shape (T, batch, n)
        ``h_1 .. h_T`` (float64, or complex128 if anything is complex), equal to the
        sequential loop up to rounding, after `scan_depth` ``(T)`` rounds.

    Notes
    -----
    The rounds multiply the ``a`` of up to ``2^r`` consecutive steps. With ``|a| <= 1`` those
    products can only shrink, and one that underflows to 0 stands for a contribution below
    float64's range anyway. With ``|a| > 1`` they grow like the state's own sensitivity
    ``d h_t / d h_s``: where that overflows float64, ``inf * 0`` makes NaN even when the state
    itself would be finite (``b = 0``), and a ``FloatingPointError`` names the first such step;
    run the sequential loop (`unroll`) there.

    Examples
    --------
    >>> import numpy as np
    >>> from gradflow.engine import associative_scan
    >>> a = np.full((4, 1, 1), 0.5)
    >>> b = np.ones((4, 1, 1))
    >>> associative_scan(a, b, h0=np.array([8.0]))[:, 0, 0]
    array([5.   , 3.5  , 2.75 , 2.375])
    """
    b = _numeric("b", b)
    if b.ndim != 3 or 0 in b.shape:
        raise ValueError(f"b must have shape (T, batch, n) with no empty axis; got shape {b.shape}")
    a = _numeric("a", a)
    try:
        a = np.broadcast_to(a, b.shape)
    except ValueError:
        raise ValueError(f"a must have b's shape {b.shape} or broadcast to it; got shape {a.shape}") from None
    dtype = np.result_type(a, b)
    h = b.astype(dtype, copy=True)
    if h0 is not None:
        h0 = _numeric("h0", h0)
        if h0.shape not in (b.shape[2:], b.shape[1:]):
            raise ValueError(f"h0 must have shape {b.shape[2:]} or {b.shape[1:]}; got {h0.shape}")
        h = h.astype(np.result_type(dtype, h0))
        h[0] += a[0] * h0
    T = h.shape[0]
    prod = np.array(a, dtype=np.result_type(a), copy=True)  # prod[t]: a_t ... a_{t-2^r+1} in round r
    shift = 1
    with np.errstate(over="ignore", under="ignore", invalid="ignore"), blas_limit():
        while shift < T:
            # Position t absorbs the prefix ending at t - shift: h_t += (a_t ... a_{t-shift+1}) h_{t-shift}.
            h[shift:] += prod[shift:] * h[:-shift]
            if 2 * shift < T:  # the last round needs no longer products
                prod[shift:] = prod[shift:] * prod[:-shift]
            shift *= 2
    if not np.all(np.isfinite(h)):
        t = int(np.argmin(np.all(np.isfinite(h.reshape(T, -1)), axis=1)))
        raise FloatingPointError(
            f"associative_scan: state {t + 1} is not finite: a product of |a| > 1 coefficients "
            f"overflowed float64 (or the state itself did); use the sequential loop (gf.unroll)"
        )
    return h


def as_complex(state: np.ndarray) -> np.ndarray:
    """``Re h + i Im h`` of a real-stacked complex state ``[Re h (N), Im h (N)]`` on the last axis."""
    n = state.shape[-1] // 2
    return state[..., :n] + 1j * state[..., n:]


def diagonal_coefficients(cell, xs) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``, each (T, batch, n), with ``step(h, x_t) = a_t * h + b_t`` for a cell whose step
    is elementwise affine in its state (``cell.config["linear"]``).

    Real ``a``, ``b`` on the state itself (``n = state_size``); with ``cell.config["complex"]``
    the state is the real-stacked complex ``[Re h, Im h]`` (as the LRU and S4D hold it) and
    ``a``, ``b`` are complex on ``h`` (``n = state_size / 2``). One forward-mode pass over all
    ``T * batch`` rows at once: ``b = step(0, x)`` and ``a`` the derivative along ``Re h = 1``
    (``Re a`` and ``Im a`` land in the two halves), both exact, no difference of two steps. The
    claim is then checked at a random state on up to `CHECK_ROWS` steps, so a cell that is not
    elementwise affine raises ``ValueError`` rather than scanning wrongly.
    """
    cell = check_cell(cell)
    xs, _ = check_sequence(cell, xs)
    if not cell.config.get("linear"):
        raise ValueError(
            f"cell {cell.name!r} (kind {cell.kind!r}) is not declared linear in its state "
            f"(config['linear'] is not set): it has no associative scan; use gf.unroll"
        )
    T, B, D = xs.shape
    S = cell.state_size
    paired = bool(cell.config.get("complex"))
    if paired and S % 2:
        raise ValueError(f"cell {cell.name!r} declares a complex state but its state_size {S} is odd")
    x = xs.reshape(T * B, D)
    tangent = np.ones((T * B, S))
    if paired:
        tangent[:, S // 2 :] = 0.0  # d/d(Re h): Re a in the first half, Im a in the second
    # The check runs on up to CHECK_ROWS rows spread over the sequence: a step that is not
    # elementwise affine fails at almost any state, and the full check would cost a second pass.
    rows = np.unique(np.linspace(0, T * B - 1, min(T * B, CHECK_ROWS)).astype(np.intp))
    with blas_limit():
        b, a = make_jvp(lambda h: cell.step(cell.params, h, x), np.zeros((T * B, S)))(tangent)
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        probe = np.random.default_rng(0).standard_normal((len(rows), S))  # fixed: same call, same check
        direct = np.asarray(cell.step(cell.params, probe, x[rows]))
    if paired:
        a, b = as_complex(a), as_complex(b)
        probe, direct = as_complex(probe), as_complex(direct)
    affine = a[rows] * probe + b[rows]
    scale = np.abs(a[rows] * probe) + np.abs(b[rows]) + np.abs(direct)
    if not np.all(np.abs(direct - affine) <= LINEAR_TOL * np.maximum(scale, 1e-300)):
        worst = float(np.max(np.abs(direct - affine) / np.maximum(scale, 1e-300)))
        raise ValueError(
            f"cell {cell.name!r} is declared linear (config['linear']) but its step is not "
            f"elementwise affine in the {'complex ' if paired else ''}state, step(h) = a * h + b "
            f"(relative misfit {worst:.2g} at a random state): it has no diagonal associative scan; "
            f"use gf.unroll"
        )
    return a.reshape(T, B, -1), b.reshape(T, B, -1)


@deprecated_spellings(positional=("h0",))
def scan(cell, xs, *, h0=None) -> np.ndarray:
    """The forward pass of a cell that is linear in its state, by `associative_scan`.

    Same result as `unroll` (to rounding, ~1e-13 relative) in ``ceil(log2 T)`` rounds of
    whole-sequence array work instead of ``T`` Python-level steps.

    Parameters
    ----------
    cell : Cell
        A cell with ``cell.config["linear"]`` true: the built-in linear cells (``lru``, ``s4d``,
        ``mingru``, ``minlstm``, ``mamba``) through their exact `linear_coefficients` (Mamba:
        its SSM state by the scan, its conv buffer, a shift register of the inputs, directly),
        any other through `diagonal_coefficients` (elementwise affine steps, real or with a
        ``config["complex"]`` state ``[Re h, Im h]``). Any other cell raises ``ValueError``.
    xs : array, shape (T, batch, inputs)
    h0 : array, shape (batch, state) or (state,), optional

    Returns
    -------
    states : ndarray, shape (T + 1, batch, state)
        ``states[0] = h0``, as `unroll` returns.

    Examples
    --------
    >>> import autograd.numpy as anp
    >>> import numpy as np
    >>> import gradflow as gf
    >>> def step(p, h, x):
    ...     return p["lam"] * h + x @ p["B"].T
    >>> cell = gf.Cell(step, {"lam": [0.9, -0.5], "B": np.eye(2)}, 2, 2, config={"linear": True})
    >>> xs = gf.inputs.gaussian(100, 3, 2, seed=0)
    >>> bool(np.allclose(gf.scan(cell, xs), gf.unroll(cell, xs), rtol=1e-12, atol=0))
    True
    """
    cell = check_cell(cell)
    xs, h0 = check_sequence(cell, xs, h0)
    a, b, part, paired = _coefficients(cell, xs, h0)
    out = np.empty((xs.shape[0] + 1, *h0.shape))
    out[0] = h0
    start = h0[:, part]
    try:
        states = associative_scan(a, b, as_complex(start) if paired else start)
    except FloatingPointError:
        unroll(cell, xs, h0=h0)  # raises, naming the step, when the state itself overflows
        raise  # only the scan's products of |a| > 1 overflowed: the loop still works
    out[1:, :, part] = np.concatenate([states.real, states.imag], axis=-1) if paired else states
    record = linear_record(cell.kind)
    if record is not None and record.input_states is not None:  # the rest follows the inputs (Mamba's buffer)
        out[1:, :, np.setdiff1d(np.arange(cell.state_size), part)] = record.input_states(cell, xs, h0)
    check_trajectory(cell, out)
    return out


def linear_record(kind) -> CellKind | None:
    """The registered `CellKind` ``kind`` if it gives exact ``linear_coefficients``, else None."""
    record = find_cell_kind(kind)
    return record if record is not None and record.linear_coefficients is not None else None


def scanned_columns(cell) -> np.ndarray:
    """The state columns the scan carries: its `CellKind`'s ``linear_part`` (Mamba: ``"ssm"``, whose
    conv buffer beside it is a shift register of the inputs) when the kind gives exact
    ``linear_coefficients``, else the whole state.

    Examples
    --------
    >>> import gradflow as gf
    >>> from gradflow.engine import scanned_columns
    >>> len(scanned_columns(gf.lru(4, 2))), len(scanned_columns(gf.mamba(4, d_state=2)))
    (8, 16)
    """
    record = linear_record(cell.kind)
    return cell.components[record.linear_part] if record is not None else np.arange(cell.state_size)


def _coefficients(cell, xs, h0):
    """``(a, b, part, paired)``: the scanned part of the state (indices) and whether it is complex."""
    if not cell.config.get("linear"):
        raise ValueError(
            f"cell {cell.name!r} (kind {cell.kind!r}) is not declared linear in its state "
            f"(config['linear'] is not set): it has no associative scan; use gf.unroll"
        )
    paired = bool(cell.config.get("complex"))
    record = linear_record(cell.kind)
    if record is not None:  # exact formulas beside the cell, on its linear part
        a, b = record.linear_coefficients(cell, xs, h0)
        return a, b, scanned_columns(cell), paired
    a, b = diagonal_coefficients(cell, xs)
    return a, b, np.arange(cell.state_size), paired


@deprecated_spellings(positional=("h0",))
def diagonal_rate(cell, xs, *, h0=None) -> float:
    """The exact gradient rate (nats/step) of a diagonal linear recurrence along ``xs``.

    Back-propagating through ``h_t = a_t * h_{t-1} + b_t`` multiplies unit ``i``'s gradient by
    ``a_{t,i}`` at every step (complex for a ``config["complex"]`` cell: ``|a|`` is its modulus),
    so its log-norm falls by ``log |a_{t,i}|`` per step exactly and
    the gradient's rate is the largest unit's mean ``log |a_{t,i}|`` along the trajectory
    (over steps and samples): ``log max |a|`` for a constant ``a``. No linearisation, no
    mean-field approximation: `gradient_flow`'s fitted rate converges to it as the other
    units' shares die out. For Mamba, the SSM state's rate (its conv buffer's Jacobian is
    nilpotent: that part of the gradient is exactly 0 after ``d_conv - 1`` steps).

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> from gradflow.engine import diagonal_rate
    >>> def step(p, h, x):
    ...     return p["lam"] * h + x
    >>> cell = gf.Cell(step, {"lam": [0.9, -0.95, 0.5]}, 3, 3, config={"linear": True})
    >>> xs = gf.inputs.gaussian(400, 2, 3, seed=0)
    >>> print(f"{diagonal_rate(cell, xs):.6f} {np.log(0.95):.6f}")
    -0.051293 -0.051293
    >>> print(f"{gf.gradient_flow(cell, xs).rate:.4f}")  # unit 0's share still decays
    -0.0513
    """
    cell = check_cell(cell)
    xs, h0 = check_sequence(cell, xs, h0)
    a, _, _, _ = _coefficients(cell, xs, h0)
    with np.errstate(divide="ignore"):  # a == 0 exactly: that unit's gradient dies, rate -inf
        per_unit = np.mean(np.log(np.abs(a)), axis=(0, 1))
    return float(np.max(per_unit))
