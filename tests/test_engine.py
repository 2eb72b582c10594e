import autograd.numpy as anp
import numpy as np
import pytest
from helpers import fd_jacobian, rel_err, sigmoid

import gradflow as gf
from gradflow.core._activations import sech2
from gradflow.engine import _engine

CELLS = {
    "rnn-tanh": lambda: gf.rnn(6, 3, gain=1.5, seed=1, bias_scale=0.2),
    "rnn-relu": lambda: gf.rnn(6, 3, activation="relu", gain=1.2, seed=2, bias_scale=0.5),
    "rnn-sigmoid": lambda: gf.rnn(6, 3, activation="sigmoid", gain=3.0, seed=3),
    "rnn-linear": lambda: gf.rnn(6, 3, activation="linear", gain=0.8, seed=4),
    "lstm": lambda: gf.lstm(4, 3, gain=1.5, seed=5, bias_scale=0.3),
    "gru": lambda: gf.gru(4, 3, gain=1.5, seed=6, bias_scale=0.3),
    "lstm-2layer": lambda: gf.lstm(3, 2, layers=2, seed=7),
    "gru-2layer": lambda: gf.gru(3, 2, layers=2, seed=8),
    "rnn-pytorch-init": lambda: gf.rnn(5, 2, init="pytorch", seed=9),
}


@pytest.mark.parametrize("name", CELLS)
def test_every_step_jacobian_matches_central_differences(name):
    cell = CELLS[name]()
    xs = gf.inputs.gaussian(5, 2, cell.input_size, scale=1.5, seed=11)
    h0 = np.random.default_rng(12).normal(size=(2, cell.state_size)) * 0.5
    hs = gf.unroll(cell, xs, h0=h0)
    J = gf.jacobians(cell, xs, h0=h0)
    assert J.shape == (5, 2, cell.state_size, cell.state_size)
    for t in range(5):
        for b in range(2):

            def f(h, t=t, b=b):
                return cell.step(cell.params, h[None], xs[t, b][None])[0]

            assert rel_err(J[t, b], fd_jacobian(f, hs[t, b])) < 1e-6, (name, t, b)


def test_vanilla_jacobian_is_diag_sech2_times_W():
    cell = gf.rnn(32, 4, gain=2.5, seed=0, bias_scale=0.5)
    xs = gf.inputs.gaussian(50, 3, 4, scale=2.0)
    hs = gf.unroll(cell, xs)
    p = cell.params
    a = hs[:-1] @ p["weight_hh_l0"].T + xs @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]
    expected = sech2(a)[..., None] * p["weight_hh_l0"]
    np.testing.assert_allclose(gf.jacobians(cell, xs), expected, rtol=1e-12, atol=1e-15)


def test_lstm_direct_cell_path_is_diag_forget_gate():
    n = 5
    cell = gf.lstm(n, 3, forget_bias=1.0, seed=3)
    xs = gf.inputs.gaussian(6, 2, 3, seed=1)
    hs = gf.unroll(cell, xs)
    J = gf.jacobians(cell, xs)
    p = cell.params
    pre = xs @ p["weight_ih_l0"].T + p["bias_ih_l0"] + hs[:-1, :, :n] @ p["weight_hh_l0"].T + p["bias_hh_l0"]
    f = sigmoid(pre[..., n : 2 * n])
    # d c_t / d c_{t-1} is exactly diag(f_t): the cell state's direct path.
    np.testing.assert_allclose(J[:, :, n:, n:], f[..., None] * np.eye(n), rtol=1e-13, atol=1e-16)


def test_lstm_zero_input_forget_bias_one_gives_sigmoid_one():
    cell = gf.lstm(3, 2, forget_bias=1.0, init="identity", gain=0.0)
    J = gf.jacobians(cell, gf.inputs.constant(4, 1, 2, 0.0))
    np.testing.assert_allclose(np.diagonal(J[:, 0, 3:, 3:], axis1=1, axis2=2), 0.7310585786300049)


@pytest.mark.parametrize("name", ["rnn-tanh", "lstm", "gru-2layer"])
def test_block_products_agree_with_full_jacobians(name):
    cell = CELLS[name]()
    S = cell.state_size
    T, B, k = 7, 3, 2
    xs = gf.inputs.gaussian(T, B, cell.input_size, seed=2)
    J = gf.jacobians(cell, xs)
    rng = np.random.default_rng(0)
    for Q in (rng.normal(size=(S, k)), rng.normal(size=(B, S, k)), rng.normal(size=(T, B, S, k))):
        Qf = np.broadcast_to(Q, (T, B, S, k))
        np.testing.assert_allclose(
            gf.jacobian_products(cell, xs, Q, side="right"), J @ Qf, rtol=1e-12, atol=1e-14
        )
        np.testing.assert_allclose(
            gf.jacobian_products(cell, xs, Q, side="left"),
            np.swapaxes(Qf, -1, -2) @ J,
            rtol=1e-12,
            atol=1e-14,
        )


@pytest.mark.parametrize("name", CELLS)
def test_stacked_and_replicated_block_paths_agree(name):
    cell = CELLS[name]()
    assert cell.stacked_tangents  # built-in cells take the fast path
    generic = gf.Cell(cell.step, cell.params, cell.state_size, cell.input_size)
    xs = gf.inputs.gaussian(6, 2, cell.input_size, seed=1)
    Q = np.random.default_rng(3).normal(size=(6, 2, cell.state_size, 3))
    for side in ("left", "right"):
        np.testing.assert_allclose(
            gf.jacobian_products(cell, xs, Q, side=side),
            gf.jacobian_products(generic, xs, Q, side=side),
            rtol=1e-13,
            atol=1e-15,
        )


def test_chunking_does_not_change_results(monkeypatch):
    cell = gf.lstm(4, 2, seed=1)
    xs = gf.inputs.gaussian(40, 2, 2)
    J = gf.jacobians(cell, xs)
    flow = gf.gradient_flow(cell, xs)
    monkeypatch.setattr(_engine, "CHUNK_BYTES", 1)  # one step per chunk
    np.testing.assert_array_equal(gf.jacobians(cell, xs), J)
    small = gf.gradient_flow(cell, xs)
    np.testing.assert_allclose(small.log_norms, flow.log_norms, atol=1e-12)
    np.testing.assert_allclose(small.input_log_norms, flow.input_log_norms, atol=1e-12)
    for g in flow.gates:
        np.testing.assert_allclose(small.gates[g], flow.gates[g], atol=1e-12)


def test_unroll_matches_a_python_loop_and_accepts_shared_h0():
    cell = gf.gru(4, 2, seed=0)
    xs = gf.inputs.gaussian(9, 3, 2)
    h0 = np.linspace(-1, 1, 4)
    hs = gf.unroll(cell, xs, h0=h0)
    h = np.tile(h0, (3, 1))
    for t in range(9):
        h = cell.step(cell.params, h, xs[t])
        np.testing.assert_array_equal(hs[t + 1], h)


def test_custom_cell_works_unchanged():
    def step(p, h, x):
        return anp.tanh(h @ p["W"].T) * 0.5 + x @ p["U"].T

    rng = np.random.default_rng(0)
    cell = gf.Cell(
        step, {"W": rng.normal(size=(4, 4)), "U": rng.normal(size=(4, 2))}, state_size=4, input_size=2
    )
    xs = gf.inputs.gaussian(6, 1, 2)
    hs = gf.unroll(cell, xs)
    J = gf.jacobians(cell, xs)
    for t in range(6):
        ref = fd_jacobian(lambda h, t=t: step(cell.params, h[None], xs[t, :1])[0], hs[t, 0])
        assert rel_err(J[t, 0], ref) < 1e-6
    assert np.isfinite(gf.gradient_flow(cell, xs).rate)


# ------------------------------------------------------------------ bad input

cell_ = gf.rnn(4, 2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gf.unroll(cell_, np.zeros((5, 2))), r"xs must be 3-D; got shape \(5, 2\)"),
        (lambda: gf.unroll(cell_, np.zeros((5, 1, 3))), r"xs must have shape \(T, batch, 2\).*\(5, 1, 3\)"),
        (lambda: gf.unroll(cell_, np.zeros((0, 1, 2))), "xs must have at least one time step"),
        (lambda: gf.unroll(cell_, np.zeros((3, 0, 2))), "xs must have a batch of at least 1"),
        (lambda: gf.unroll(cell_, np.full((3, 1, 2), np.nan)), r"xs contains non-finite values \(nan\)"),
        (lambda: gf.unroll(cell_, np.zeros((3, 1, 2)), h0=np.zeros(5)), r"h0 must have shape \(4,\)"),
        (lambda: gf.unroll(cell_, [["a"]]), "xs must be a numeric array"),
        (lambda: gf.unroll("lstm", np.zeros((3, 1, 2))), "cell must be a gradflow Cell"),
        (
            lambda: gf.jacobian_products(cell_, np.zeros((3, 1, 2)), np.eye(3)),
            r"block must have shape \(\.\.\., 4, k\)",
        ),
        (lambda: gf.jacobian_products(cell_, np.zeros((3, 1, 2)), np.eye(4), side="up"), "unknown side 'up'"),
        (
            lambda: gf.jacobian_products(cell_, np.zeros((3, 1, 2)), np.ones((2, 2, 4, 1))),
            r"block must have shape \(4, k\), \(1, 4, k\) or \(3, 1, 4, k\)",
        ),
    ],
)
def test_engine_names_the_bad_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_overflowing_dynamics_raise_a_clear_error():
    cell = gf.rnn(4, 1, activation="linear", init="identity", gain=1e200)
    with pytest.raises(FloatingPointError, match="became non-finite at step"):
        gf.unroll(cell, gf.inputs.constant(5, 1, 1, 1.0), h0=np.ones(4))


def test_gradient_flow_reports_overflowing_dynamics_too():
    cell = gf.rnn(4, 1, activation="linear", init="identity", gain=1e200)
    with pytest.raises(FloatingPointError, match="became non-finite at step 2"):
        gf.gradient_flow(cell, gf.inputs.constant(5, 1, 1, 1.0), h0=np.ones(4))


def test_overflow_in_an_early_chunk_names_the_right_step(monkeypatch):
    monkeypatch.setattr(_engine, "CHUNK_BYTES", 8 * 24 * 5 * 3)  # 3 steps per chunk
    cell = gf.rnn(4, 1, activation="linear", init="identity", gain=1e100)
    with pytest.raises(FloatingPointError, match="became non-finite at step 4"):
        gf.gradient_flow(cell, gf.inputs.constant(12, 1, 1, 1.0), h0=np.ones(4))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gf.unroll(cell_, np.zeros((3, 1, 2)) + 1j), "xs must be real; got complex"),
        (
            lambda: gf.jacobian_products(cell_, np.zeros((3, 1, 2)), np.eye(4), states=[[1.0]]),
            r"states must be 3-D",
        ),
        (
            lambda: gf.jacobian_products(
                cell_, np.zeros((3, 1, 2)), np.eye(4), states=np.full((4, 1, 4), np.nan)
            ),
            "states contains non-finite",
        ),
        (
            lambda: gf.Cell(lambda p, h, x: h, {}, 3, 1, components={"a": [0, 0, 1]}),
            r"components\['a'\] must be distinct integer",
        ),
        (
            lambda: gf.Cell(lambda p, h, x: h, {}, 3, 1, components={"a": [0.7, 1.9]}),
            r"components\['a'\] must be distinct integer",
        ),
        (lambda: gf.Cell(lambda p, h, x: h, {}, 3, 1, components=[0, 1]), "components must map names"),
    ],
)
def test_more_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
