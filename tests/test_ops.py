"""The fused primitives' VJP and JVP rules against central finite differences, for every argument."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.core import make_jvp, make_vjp
from helpers import fd_jacobian, rel_err

import gradflow as gf
from gradflow.core import _activations as act
from gradflow.core._ops import affine, gru_update, join_columns, lstm_slopes, lstm_update, take_columns
from gradflow.core._sequence_ops import _loop, gru_sequence, lstm_sequence, rnn_sequence

rng = np.random.default_rng(0)
B, N, D = 3, 4, 5
CASES = {
    "affine": (affine, [rng.normal(size=(B, D)), rng.normal(size=(N, D)), rng.normal(size=N)]),
    "affine_full_bias": (affine, [rng.normal(size=(B, D)), rng.normal(size=(N, D)), rng.normal(size=(B, N))]),
    "lstm": (lstm_update, [2 * rng.normal(size=(B, 4 * N)), rng.normal(size=(B, N))]),
    "gru": (
        gru_update,
        [2 * rng.normal(size=(B, 3 * N)), 2 * rng.normal(size=(B, 3 * N)), rng.normal(size=(B, N))],
    ),
    "take": (lambda x: take_columns(x, 2, 5), [rng.normal(size=(B, 7))]),
    "join": (join_columns, [rng.normal(size=(B, 2)), rng.normal(size=(B, 3)), rng.normal(size=(B, 1))]),
    # Grouped weights: 3 groups of 2 rows, each with its own W and bias.
    "affine_grouped": (
        affine,
        [rng.normal(size=(3 * 2, D)), rng.normal(size=(3, N, D)), rng.normal(size=(3, 1, N))],
    ),
}
# Arguments a stacked tangent or cotangent flows through in the engine (not weights).
STATE_ARGS = {
    "affine": [0],
    "affine_full_bias": [0, 2],
    "lstm": [0, 1],
    "gru": [0, 1, 2],
    "take": [0],
    "join": [0, 1, 2],
    "affine_grouped": [0],
}


@pytest.mark.parametrize("case", CASES)
def test_vjp_and_jvp_match_finite_differences(case):
    fun, args = CASES[case]
    for argnum, arg in enumerate(args):

        def f(flat, argnum=argnum, arg=arg):
            a = list(args)
            a[argnum] = flat.reshape(arg.shape)
            return fun(*a).reshape(-1)

        J = fd_jacobian(f, arg.reshape(-1))  # (out, in)
        vjp, ans = make_vjp(lambda v, argnum=argnum: fun(*args[:argnum], v, *args[argnum + 1 :]), arg)
        rows = np.stack([vjp(e.reshape(ans.shape)).reshape(-1) for e in np.eye(ans.size)])
        assert rel_err(rows, J) < 1e-7, (case, argnum, "vjp")
        jvp = make_jvp(lambda v, argnum=argnum: fun(*args[:argnum], v, *args[argnum + 1 :]), arg)
        cols = np.stack([jvp(e.reshape(arg.shape))[1].reshape(-1) for e in np.eye(arg.size)], axis=1)
        assert rel_err(cols, J) < 1e-7, (case, argnum, "jvp")


@pytest.mark.parametrize("case", CASES)
def test_rules_accept_a_stack_of_vectors_on_a_leading_axis(case):
    """What Cell.stacked_tangents promises: k vectors in one call equal k separate calls."""
    fun, args = CASES[case]
    k = 3
    for argnum in STATE_ARGS[case]:
        arg = args[argnum]

        def f(v, argnum=argnum):
            return fun(*args[:argnum], v, *args[argnum + 1 :])

        vjp, ans = make_vjp(f, arg)
        cot = rng.normal(size=(k, *ans.shape))
        np.testing.assert_allclose(vjp(cot), np.stack([vjp(c) for c in cot]), rtol=1e-14)
        tan = rng.normal(size=(k, *arg.shape))
        jvp = make_jvp(f, arg)
        np.testing.assert_allclose(jvp(tan)[1], np.stack([jvp(t)[1] for t in tan]), rtol=1e-14)


# ------------------------------------------------------------------ second derivatives


def _logistic(a):
    return 1.0 / (1.0 + anp.exp(-a))


def _plain_lstm(pre, c):
    n = c.shape[-1]
    c2 = _logistic(pre[..., n : 2 * n]) * c + _logistic(pre[..., :n]) * anp.tanh(pre[..., 2 * n : 3 * n])
    return anp.concatenate([_logistic(pre[..., 3 * n :]) * anp.tanh(c2), c2], axis=-1)


def _plain_gru(gi, gh, h):
    n = h.shape[-1]
    r, z = _logistic(gi[..., :n] + gh[..., :n]), _logistic(gi[..., n : 2 * n] + gh[..., n : 2 * n])
    return (1.0 - z) * anp.tanh(gi[..., 2 * n :] + r * gh[..., 2 * n :]) + z * h


def _plain_grouped(x, W, b):
    K = W.shape[0]
    return anp.concatenate([x[k * 2 : (k + 1) * 2] @ W[k].T + b[k] for k in range(K)])


# Each fused operation beside the plain autograd.numpy formula of the same equation.
PLAIN = {
    "affine": lambda x, W, b: x @ W.T + b,
    "affine_full_bias": lambda x, W, b: x @ W.T + b,
    "lstm": _plain_lstm,
    "gru": _plain_gru,
    "take": lambda x: x[..., 2:5],
    "join": lambda *p: anp.concatenate(p, axis=-1),
    "affine_grouped": _plain_grouped,
    "tanh": anp.tanh,
    "sigmoid": _logistic,
    "relu": lambda a: anp.maximum(a, 0.0),
}
SECOND = {
    **CASES,
    "tanh": (act.tanh, [3 * rng.normal(size=(B, N))]),
    "sigmoid": (act.sigmoid, [3 * rng.normal(size=(B, N))]),
    "relu": (act.relu, [rng.normal(size=(B, N))]),
}


def _scalar(fun, args, weights):
    """A smooth scalar of the operation's output, non-linear so second derivatives are not zero."""
    return lambda flat: anp.sum(anp.sin(fun(*_split(flat, args))) * weights)


def _split(flat, args):
    out, i = [], 0
    for a in args:
        out.append(anp.reshape(flat[i : i + a.size], a.shape))
        i += a.size
    return out


@pytest.mark.filterwarnings("ignore:Output seems independent of input")  # a linear op's JVP
@pytest.mark.parametrize("case", SECOND)
def test_second_derivatives_match_the_plain_formula_and_finite_differences(case):
    """Hessian-vector products through the rules (reverse over reverse), and the gradient of a
    JVP (reverse over forward, as the Lyapunov regulariser takes it), equal those of the plain
    formula to 1e-10, and the HVP equals central differences of the gradient."""
    fun, args = SECOND[case]
    flat = np.concatenate([a.reshape(-1) for a in args])
    out = fun(*args)
    weights, v = rng.normal(size=out.shape), rng.normal(size=flat.shape)

    def hvp(f):
        return grad(lambda z: anp.sum(grad(f)(z) * v))(flat)

    ours, plain = _scalar(fun, args, weights), _scalar(PLAIN[case], args, weights)
    H, H_plain = hvp(ours), hvp(plain)
    assert rel_err(H, H_plain) < 1e-10, case
    eps = 1e-5
    fd = (grad(ours)(flat + eps * v) - grad(ours)(flat - eps * v)) / (2 * eps)
    assert rel_err(H, fd) < 1e-6, case

    def jvp_norm(f):  # d/dflat of sum(sin(J(flat) v)): the JVP's rules differentiated again
        return grad(lambda z: anp.sum(anp.sin(make_jvp(lambda u: f(*_split(u, args)), z)(v)[1]) * weights))(
            flat
        )

    assert rel_err(jvp_norm(fun), jvp_norm(PLAIN[case])) < 1e-10, case


# ------------------------------------------------------------------ the whole-sequence LSTM


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_sequence_is_the_unrolled_step_and_its_vjp_is_the_steps(kind):
    """States equal the cell's step unrolled; the hand-written reverse loop gives autograd's
    gradient through the traced steps (every argument) and central differences; differentiated
    twice it is the traced step (a Hessian-vector product through both agree)."""
    T, Bt, n, d = 5, 3, 4, 2
    G, S = (4, 2 * n) if kind == "lstm" else (3, n)
    args = [
        rng.normal(size=(T, Bt, d)),
        rng.normal(size=(G * n, d)),
        rng.normal(size=(G * n, n)),
        rng.normal(size=G * n),
        *([] if kind == "lstm" else [rng.normal(size=G * n)]),
        rng.normal(size=(Bt, S)),
    ]
    fused = lstm_sequence if kind == "lstm" else gru_sequence

    def loop(xs, W_ih, W_hh, b_ih, *rest):
        return _loop(kind, xs, W_ih, W_hh, b_ih, *((0.0, *rest) if kind == "lstm" else rest))

    np.testing.assert_allclose(fused(*args), loop(*args), rtol=1e-15, atol=1e-15)
    weights = rng.normal(size=(T, Bt, S))
    for i in range(len(args)):
        _check_sequence_argument(args, i, weights, fused, loop)


def _check_sequence_argument(args, i, weights, fused, loop):
    arg = args[i]

    def f(v, fun=fused):
        return anp.sum(anp.sin(fun(*args[:i], v, *args[i + 1 :])) * weights)

    def f_loop(v):
        return f(v, loop)

    g = grad(f)(arg)
    assert rel_err(g, grad(f_loop)(arg)) < 1e-12, i
    fd = fd_jacobian(lambda v: f(v.reshape(arg.shape)), arg.reshape(-1))
    assert rel_err(g.reshape(-1), fd) < 1e-7, i
    v = rng.normal(size=arg.shape)
    hvp = grad(lambda z: anp.sum(grad(f)(z) * v))(arg)
    assert rel_err(hvp, grad(lambda z: anp.sum(grad(f_loop)(z) * v))(arg)) < 1e-12, i


@pytest.mark.parametrize("activation", sorted(act.ACTIVATIONS))
def test_rnn_sequence_is_the_unrolled_step_and_its_vjp_is_the_steps(activation):
    """A vanilla cell's whole sequence: states are `gf.unroll`'s bytes, and its reverse loop
    gives autograd's gradient through the traced steps (every argument, h0 and inputs included),
    central differences, and the traced step's Hessian-vector products."""
    T, Bt, n, d = 5, 3, 4, 2
    cell, xs = gf.rnn(n, d, gain=1.5, activation=activation, seed=3), gf.inputs.gaussian(T, Bt, d, seed=4)
    p = cell.params
    args = [
        xs,
        p["weight_ih_l0"],
        p["weight_hh_l0"],
        p["bias_ih_l0"] + p["bias_hh_l0"],
        rng.normal(size=(Bt, n)),
    ]
    states = rnn_sequence(*args[:4], np.zeros((Bt, n)), activation)
    assert np.array_equal(states, gf.unroll(cell, xs)[1:])

    def fused(*a):
        return rnn_sequence(*a, activation=activation)

    def loop(xs, W_ih, W_hh, b, h0):
        return _loop("rnn", xs, W_ih, W_hh, b, 0.0, h0, activation)

    weights = rng.normal(size=(T, Bt, n))
    for i in range(len(args)):
        _check_sequence_argument(args, i, weights, fused, loop)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_sequence_gradients_equal_pytorch(nonlinearity):
    """`rnn_sequence`'s states and gradients (every weight, both biases, h0, inputs) against
    torch.nn.RNN's autograd on the same weights."""
    torch = pytest.importorskip("torch")
    T, Bt, n, d = 7, 3, 5, 2
    cell = gf.rnn(n, d, gain=1.2, activation=nonlinearity, init="pytorch", seed=5)
    xs, h0, weights = rng.normal(size=(T, Bt, d)), rng.normal(size=(Bt, n)), rng.normal(size=(T, Bt, n))
    p = cell.params

    def loss(params, xs, h0):
        b = params["bias_ih_l0"] + params["bias_hh_l0"]
        states = rnn_sequence(xs, params["weight_ih_l0"], params["weight_hh_l0"], b, h0, nonlinearity)
        return anp.sum(anp.sin(states) * weights)

    g_params, g_xs, g_h0 = grad(loss, argnum=(0, 1, 2))(p, xs, h0)
    net = torch.nn.RNN(d, n, nonlinearity=nonlinearity, dtype=torch.float64)
    with torch.no_grad():
        for name, value in p.items():
            getattr(net, name).copy_(torch.from_numpy(value))
    txs = torch.tensor(xs, requires_grad=True)
    th0 = torch.tensor(h0[None], requires_grad=True)
    out, _ = net(txs, th0)
    theirs = torch.sum(torch.sin(out) * torch.from_numpy(weights))
    theirs.backward()
    assert float(theirs.detach()) == pytest.approx(float(loss(p, xs, h0)), rel=1e-12)
    for name, value in g_params.items():
        assert rel_err(value, getattr(net, name).grad.numpy()) < 1e-10, name
    assert rel_err(g_xs, txs.grad.numpy()) < 1e-10
    assert rel_err(g_h0, th0.grad.numpy()[0]) < 1e-10


def test_lstm_gates_slopes_and_sech2_are_exact_to_rounding():
    """The one-exp LSTM gates, their slopes and sech^2 against 40-digit mpmath, for |a| from 0 to
    300: relative error below 1e-15 wherever the exact value is a normal float64."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    n = 60
    a = rng.normal(size=4 * n) * 8
    extremes = [0.0, 1e-9, -1e-9, 37.5, -37.5, 300.0, -300.0]  # in a logistic block and in g's
    a[: len(extremes)] = a[2 * n : 2 * n + len(extremes)] = extremes
    (i, f, g, o), _, slopes = lstm_slopes(a.reshape(1, 4 * n), np.zeros((1, n)))
    ours = np.concatenate([i, f, g, o], axis=-1)[0]

    def logistic(v):
        return 1 / (1 + mpmath.exp(-v))

    exact, exact_slope = [], []
    for k, v in enumerate(mpmath.mpf(float(x)) for x in a):
        if n * 2 <= k < n * 3:  # g: tanh and sech^2
            exact.append(mpmath.tanh(v))
            exact_slope.append(mpmath.sech(v) ** 2)
        else:
            exact.append(logistic(v))
            exact_slope.append(logistic(v) * (1 - logistic(v)))
    for got, want in (
        (ours, exact),
        (slopes[0], exact_slope),
        (act.sech2(a), [mpmath.sech(v) ** 2 for v in a]),
    ):
        want = np.array([float(w) for w in want])
        normal = np.abs(want) > np.finfo(float).tiny
        assert np.all(np.abs(got - want)[normal] <= 1e-15 * np.abs(want)[normal])
