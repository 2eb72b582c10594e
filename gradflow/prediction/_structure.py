"""Second moments of a one-layer built-in cell's step Jacobians from their structure
``J_t = sum_k diag(e_tk) B_k`` (`closed_form_terms`): per-unit moments of the scales ``e`` for the
local gain, and the one-step moment map ``X -> mean_t J_t X J_t^T`` as K^2 products per
application, whatever the number of steps averaged over.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ..engine._engine import CHUNK_BYTES, closed_form_kind, closed_form_terms


def unit_moments(cell, xs, states, steps) -> tuple[np.ndarray, np.ndarray]:
    """`closed_form_terms`' bases (K, S, S), and ``mean_m e_mki e_mli`` over the rows of ``steps``
    (every batch row) as a (K, K, S) array."""
    return _mean_of_terms(cell, xs, states, steps, lambda e: np.einsum("mki,mli->kli", e, e))


def _mean_of_terms(cell, xs, states, steps, reduce) -> tuple[np.ndarray, np.ndarray]:
    """`closed_form_terms`' bases (K, S, S), and the mean over the rows of ``steps`` (every batch
    row) of ``reduce(scales)`` (a sum over its first axis), accumulated in chunks of steps."""
    S = cell.state_size
    steps = np.asarray(steps)
    B = xs.shape[1]
    chunk = max(1, CHUNK_BYTES // (8 * B * S * 8))  # the terms of ~8 bases per row
    total, bases = None, None
    for i in range(0, len(steps), chunk):
        t = steps[i : i + chunk]
        bases, scales = closed_form_terms(cell, states[t].reshape(-1, S), xs[t].reshape(len(t) * B, -1))
        part = reduce(scales)
        total = part if total is None else total + part
    if bases is None or total is None:
        raise ValueError("no steps to average the Jacobian terms over")
    return bases, total / (len(steps) * B)


def _gram(scales: np.ndarray) -> np.ndarray:
    """``sum_m f_m f_m^T`` of the rows ``f_m`` of (M, K, S) ``scales`` flattened to K S: one
    symmetric rank-M update (half a GEMM's products), mirrored."""
    flat = scales.reshape(len(scales), -1)
    upper = scipy.linalg.blas.dsyrk(1.0, np.asfortranarray(flat.T), trans=0)
    return np.triu(upper) + np.triu(upper, 1).T


def sampled_steps(window, rows: int, span: int = 1) -> np.ndarray:
    """Up to ``rows`` evenly spaced first steps of blocks of ``span`` steps inside the window."""
    return np.unique(
        np.linspace(
            window.start, window.stop - span, min(rows, window.stop - window.start - span + 1)
        ).astype(int)
    )


def moment_terms(cell, xs, states, window, rows: int | None):
    """The one-step moment map ``X -> mean_m J_m X J_m^T`` of a one-layer built-in cell from its
    Jacobians' structure, as a function of ``X``, or None for other cells. The mean is over
    every step of the window (``rows`` None) or over ``rows`` evenly spaced steps.

    With ``J_m = sum_k diag(e_mk) B_k`` (`jacobian_terms`) the map is
    ``sum_{k,l} (B_k X B_l^T) * E_kl`` with ``E_kl = mean_m e_mk e_ml^T``: K^2 products per
    application instead of one per step, so averaging over every step costs one pass over the
    run for ``E``. The rows of each ``B_k`` repeat with the
    state's parts (an LSTM's h and c rows read the same ``W_hh`` rows, or are zero), so the
    products are taken over one part's ``n`` rows; ``B_k``'s zero columns and identity blocks
    are skipped, and ``B_l X B_k^T`` is the transpose of ``B_k X B_l^T`` for symmetric ``X`` (an
    LSTM: 18 n^3 multiplications instead of 200 n^3).
    """
    if closed_form_kind(cell) is None:
        return None
    S = cell.state_size
    steps = range(window.start, window.stop) if rows is None else sampled_steps(window, rows)
    bases, gram = _mean_of_terms(cell, xs, states, steps, _gram)  # (K, S, S), (K S, K S)
    K = len(bases)
    power = np.diagonal(gram).reshape(K, S)  # mean e_mk^2 per unit: zero where a term never acts
    n = (
        S // 2
        if S % 2 == 0
        and all(
            np.array_equal(bases[k, S // 2 :], bases[k, : S // 2]) or not np.any(power[k, S // 2 :])
            for k in range(K)
        )
        else S
    )
    parts = S // n
    # E_kl[(p, u), (q, v)] as (p, q, k l, u v): the sum over k, l is then one contiguous reduction.
    moments = np.ascontiguousarray(
        gram.reshape(K, parts, n, K, parts, n).transpose(1, 4, 0, 3, 2, 5)
    ).reshape(parts, parts, K * K, n * n)
    blocks = [_column_block(bases[k, :n]) for k in range(K)]
    single = [(c, None if G is None else G.astype(np.float32)) for c, G in blocks], moments.astype(np.float32)

    def second_moment(X, precision=np.float64):  # X symmetric (ARPACK's vectors from the identity, V V^T)
        blocks_, moments_ = (blocks, moments) if precision == np.float64 else single
        X = X.astype(precision, copy=False)
        rows_ = [X[c] if G is None else G @ X[c] for c, G in blocks_]  # B_k X on one part's rows
        Z = np.empty((K, K, n, n), dtype=precision)
        for k in range(K):
            for l in range(k, K):  # B_l X B_k^T = (B_k X B_l^T)^T: 18 n^3 for an LSTM instead of 28
                c, G = blocks_[l]
                Z[k, l] = rows_[k][:, c] if G is None else rows_[k][:, c] @ G.T
                if l > k:
                    Z[l, k] = Z[k, l].T
        out = np.einsum("pqai,ai->pqi", moments_, Z.reshape(K * K, n * n)).reshape(parts, parts, n, n)
        return out.transpose(0, 2, 1, 3).reshape(S, S).astype(float, copy=False)

    return second_moment


def _column_block(G: np.ndarray) -> tuple[slice, np.ndarray | None]:
    """The columns of ``G`` outside which it is zero, and ``G`` on them (None: the identity)."""
    cols = np.flatnonzero(np.any(G != 0, axis=0))
    block = slice(int(cols[0]), int(cols[-1]) + 1) if len(cols) else slice(0, G.shape[1])
    part = G[:, block]
    identity = part.shape[0] == part.shape[1] and np.array_equal(part, np.eye(part.shape[0]))
    return block, None if identity else np.ascontiguousarray(part)
