"""A cell linear in its state run forward by the engine's associative scan, differentiable by autograd.

The forward pass is `gradflow.engine.scan` (``ceil(log2 T)`` rounds). Its reverse pass is one
autograd VJP rule: the adjoint of ``h_t = a_t * h_{t-1} + b_t`` obeys
``lambda_t = g_t + a_{t+1}^T lambda_{t+1}``, itself a diagonal linear recurrence, so it runs by
the same `associative_scan` backwards in time (log depth both ways); then one batched VJP of the
cell's own step over all ``T * batch`` (step, sample) rows at once turns the adjoints into the
gradients of the weights and inputs. The transposed coefficients ``a_t^T`` are read off that same
VJP (a cotangent of ones on the scanned part), so no per-kind formula is needed: for a complex state
held as ``[Re h, Im h]`` they come out as ``conj(a_t)``, as the adjoint needs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
from autograd.core import make_vjp
from autograd.extend import defvjp_argnums, primitive

from ..cells._cells import Cell
from ..engine._scan import as_complex, associative_scan, scan, scanned_columns


def scanned_states(cell: Cell) -> Callable:
    """``states(xs, *weights) -> (T, batch, state)``: the states ``h_1 .. h_T`` from ``h_0 = 0`` by
    `gradflow.engine.scan`, an autograd primitive whose gradient (reverse mode) is a reverse scan.

    ``weights`` are ``cell.params``' values in the order of its keys. The cell must be linear in its
    state (``cell.config["linear"]``); any part of the state outside `scanned_columns` must not read
    the scanned part and must forget itself within as many steps as it has columns (Mamba's conv
    buffer, a shift register).

    Examples
    --------
    >>> import numpy as np
    >>> from autograd import grad
    >>> import gradflow as gf
    >>> from gradflow.models._scanned import scanned_states
    >>> cell = gf.mingru(3, 2, seed=0)
    >>> states, xs = scanned_states(cell), gf.inputs.gaussian(50, 2, 2, seed=1)
    >>> bool(np.allclose(states(xs, *cell.params.values()), gf.unroll(cell, xs)[1:], rtol=1e-12, atol=0))
    True
    >>> grad(lambda xs: states(xs, *cell.params.values())[-1].sum())(xs).shape
    (50, 2, 2)
    """
    keys = list(cell.params)
    part = scanned_columns(cell)
    rest = np.setdiff1d(np.arange(cell.state_size), part)
    paired = bool(cell.config.get("complex"))

    def twin(values) -> Cell:
        out = copy.copy(cell)  # same step, kind and components; these weights
        out.params = dict(zip(keys, values, strict=True))
        return out

    @primitive
    def states(xs, *values):
        return scan(twin(values), xs)[1:]

    def gradients(ans, xs, values, g):
        T, B, S = ans.shape
        before = np.concatenate([np.zeros((1, B, S)), ans[:-1]]).reshape(T * B, S)
        row_vjp, _ = make_vjp(
            lambda a: cell.step(a[0], a[1], a[2]),
            (dict(zip(keys, values, strict=True)), before, np.reshape(xs, (T * B, -1))),
        )

        def state_cotangent(rows):  # (T, B, S) cotangent on h_t -> (T, B, S) cotangent on h_{t-1}
            return np.reshape(row_vjp(np.reshape(rows, (T * B, S)))[1], (T, B, S))

        def one_step_back(rows):  # the cotangent on h_{t-1} lands at t - 1; h_0 is not a variable
            return np.concatenate([rows[1:], np.zeros_like(rows[:1])])

        g = np.asarray(g, dtype=float)
        ones = np.zeros((T, B, S))
        ones[..., part[: len(part) // 2] if paired else part] = 1.0  # Re h only: conj(a) in [Re, Im]
        coef = state_cotangent(ones)[..., part]
        drive = g[..., part]
        if paired:
            coef, drive = as_complex(coef), as_complex(drive)
        # lambda_t = g_t + a_{t+1}^T lambda_{t+1}: the same scan, reversed in time.
        reversed_coef = np.concatenate([np.zeros_like(coef[:1]), coef[:0:-1]])
        lam = associative_scan(reversed_coef, drive[::-1])[::-1]
        adjoint = np.zeros((T, B, S))
        adjoint[..., part] = np.concatenate([lam.real, lam.imag], axis=-1) if paired else lam
        if rest.size:  # a shift register beside the scanned part: its adjoint dies out in len(rest) steps
            carried = np.zeros((T, B, S))
            carried[..., part] = adjoint[..., part]
            term = g[..., rest] + one_step_back(state_cotangent(carried)[..., rest])
            for _ in range(rest.size + 1):
                adjoint[..., rest] += term
                if not term.any():
                    break
                carried = np.zeros((T, B, S))
                carried[..., rest] = term
                term = one_step_back(state_cotangent(carried)[..., rest])
            else:
                raise ValueError(
                    f"cell {cell.name!r}: the state outside its scanned part does not forget itself "
                    f"within {rest.size} steps; it cannot be differentiated as a scan"
                )
        d_params, _, d_xs = row_vjp(adjoint.reshape(T * B, S))
        return [np.reshape(d_xs, np.shape(xs)), *(d_params[k] for k in keys)]

    def vjp_maker(argnums, ans, args, kwargs):
        xs, *values = args

        def vjp(g):
            every = gradients(ans, xs, values, g)
            return tuple(every[i] for i in argnums)

        return vjp

    defvjp_argnums(states, vjp_maker)
    return states
