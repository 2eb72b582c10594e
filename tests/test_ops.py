"""The fused primitives' VJP and JVP rules against central finite differences, for every argument."""

import numpy as np
import pytest
from autograd.core import make_jvp, make_vjp
from helpers import fd_jacobian, rel_err

from gradflow.core._ops import affine, gru_update, join_columns, lstm_update, take_columns

rng = np.random.default_rng(0)
B, N, D = 3, 4, 5
CASES = {
    "affine": (affine, [rng.normal(size=(B, D)), rng.normal(size=(N, D)), rng.normal(size=N)]),
    "affine_full_bias": (affine, [rng.normal(size=(B, D)), rng.normal(size=(N, D)),
                                  rng.normal(size=(B, N))]),
    "lstm": (lstm_update, [2 * rng.normal(size=(B, 4 * N)), rng.normal(size=(B, N))]),
    "gru": (gru_update, [2 * rng.normal(size=(B, 3 * N)), 2 * rng.normal(size=(B, 3 * N)),
                         rng.normal(size=(B, N))]),
    "take": (lambda x: take_columns(x, 2, 5), [rng.normal(size=(B, 7))]),
    "join": (join_columns, [rng.normal(size=(B, 2)), rng.normal(size=(B, 3)), rng.normal(size=(B, 1))]),
}
# Arguments a stacked tangent or cotangent flows through in the engine (not weights).
STATE_ARGS = {"affine": [0], "affine_full_bias": [0, 2], "lstm": [0, 1], "gru": [0, 1, 2],
              "take": [0], "join": [0, 1, 2]}


@pytest.mark.parametrize("case", CASES)
def test_vjp_and_jvp_match_finite_differences(case):
    fun, args = CASES[case]
    for argnum, arg in enumerate(args):
        def f(flat, argnum=argnum, arg=arg):
            a = list(args)
            a[argnum] = flat.reshape(arg.shape)
            return fun(*a).reshape(-1)

        J = fd_jacobian(f, arg.reshape(-1))  # (out, in)
        vjp, ans = make_vjp(lambda v, argnum=argnum: fun(*args[:argnum], v, *args[argnum + 1:]),
                            arg)
        rows = np.stack([vjp(e.reshape(ans.shape)).reshape(-1) for e in np.eye(ans.size)])
        assert rel_err(rows, J) < 1e-7, (case, argnum, "vjp")
        jvp = make_jvp(lambda v, argnum=argnum: fun(*args[:argnum], v, *args[argnum + 1:]), arg)
        cols = np.stack([jvp(e.reshape(arg.shape))[1].reshape(-1) for e in np.eye(arg.size)],
                        axis=1)
        assert rel_err(cols, J) < 1e-7, (case, argnum, "jvp")


@pytest.mark.parametrize("case", CASES)
def test_rules_accept_a_stack_of_vectors_on_a_leading_axis(case):
    """What Cell.stacked_tangents promises: k vectors in one call equal k separate calls."""
    fun, args = CASES[case]
    k = 3
    for argnum in STATE_ARGS[case]:
        arg = args[argnum]

        def f(v, argnum=argnum):
            return fun(*args[:argnum], v, *args[argnum + 1:])

        vjp, ans = make_vjp(f, arg)
        cot = rng.normal(size=(k, *ans.shape))
        np.testing.assert_allclose(vjp(cot), np.stack([vjp(c) for c in cot]), rtol=1e-14)
        tan = rng.normal(size=(k, *arg.shape))
        jvp = make_jvp(f, arg)
        np.testing.assert_allclose(jvp(tan)[1], np.stack([jvp(t)[1] for t in tan]), rtol=1e-14)
