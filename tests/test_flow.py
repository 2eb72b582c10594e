import html

import autograd.numpy as anp
import matplotlib
import numpy as np
import pytest
from autograd import grad

import gradflow as gf
from gradflow.core._activations import log_sech2
from gradflow.engine import _engine, _reverse

matplotlib.use("Agg")


def run_from(cell, xs, start, h):
    """state_T from state ``h`` at time ``start``: a plain loop, not the engine."""
    for t in range(start, xs.shape[0]):
        h = cell.step(cell.params, h, xs[t])
    return h


@pytest.mark.parametrize(
    "make",
    [
        lambda: gf.rnn(8, 3, gain=2.0, seed=1),
        lambda: gf.lstm(5, 3, seed=2, bias_scale=0.5),
        lambda: gf.gru(5, 3, layers=2, seed=3),
    ],
)
def test_log_norms_equal_autograd_grad_taken_directly(make):
    cell = make()
    T, B = 30, 3
    xs = gf.inputs.gaussian(T, B, cell.input_size, seed=4)
    rng = np.random.default_rng(5)
    target = rng.normal(size=cell.state_size)

    def loss(h):  # a nonlinear loss, one value per batch element
        return anp.sum(anp.sin(h * target) ** 2, axis=1)

    flow = gf.gradient_flow(cell, xs, loss=loss)
    hs = gf.unroll(cell, xs)
    for k in rng.choice(T + 1, size=6, replace=False):
        t = T - k
        g = grad(lambda h, t=t: anp.sum(loss(run_from(cell, xs, t, h))))(hs[t])
        np.testing.assert_allclose(flow.log_norms[k], np.log(np.linalg.norm(g, axis=1)), rtol=0, atol=1e-9)
        for name, idx in cell.components.items():
            np.testing.assert_allclose(
                flow.components[name][k], np.log(np.linalg.norm(g[:, idx], axis=1)), atol=1e-9
            )


def test_input_sensitivity_equals_autograd_grad_wrt_each_input():
    cell = gf.gru(5, 3, seed=0)
    T = 12
    xs = gf.inputs.gaussian(T, 2, 3, seed=1)
    flow = gf.gradient_flow(cell, xs, seed=7)
    u = np.random.default_rng(7).standard_normal(5)
    u /= np.linalg.norm(u)
    for k in range(T):
        t = T - 1 - k  # lag k is input x_{T-k}, i.e. xs[T-1-k]

        def f(x, t=t):
            x_all = anp.concatenate([xs[:t], x[None], xs[t + 1 :]], axis=0)
            return anp.sum(run_from(cell, x_all, 0, np.zeros((2, 5))) @ u)

        g = grad(f)(xs[t])
        np.testing.assert_allclose(flow.input_log_norms[k], np.log(np.linalg.norm(g, axis=1)), atol=1e-9)


def test_lstm_gate_gradients_match_a_plain_numpy_lstm():
    n, T, B = 4, 10, 2
    cell = gf.lstm(n, 3, seed=8, bias_scale=0.5)
    xs = gf.inputs.gaussian(T, B, 3, seed=9)
    h0 = np.random.default_rng(2).normal(size=(B, 2 * n))  # c_0 = 0 would zero f's gradient
    flow = gf.gradient_flow(cell, xs, seed=1, h0=h0)
    u = np.random.default_rng(1).standard_normal(2 * n)
    u /= np.linalg.norm(u)
    p = cell.params

    def reference(delta, t_pert):  # PyTorch's LSTM equations with a perturbation of step t's gates
        h, c = h0[:, :n], h0[:, n:]
        for t in range(T):
            pre = xs[t] @ p["weight_ih_l0"].T + p["bias_ih_l0"] + h @ p["weight_hh_l0"].T + p["bias_hh_l0"]
            if t == t_pert:
                pre = pre + delta
            i, f, g, o = (pre[:, j * n : (j + 1) * n] for j in range(4))
            c = 1 / (1 + anp.exp(-f)) * c + 1 / (1 + anp.exp(-i)) * anp.tanh(g)
            h = 1 / (1 + anp.exp(-o)) * anp.tanh(c)
        return anp.sum(anp.concatenate([h, c], axis=1) @ u)

    for k in (0, 3, 9):
        t = T - 1 - k
        g = grad(reference)(np.zeros((B, 4 * n)), t)
        for j, name in enumerate("ifgo"):
            np.testing.assert_allclose(
                flow.gates[name][k], np.log(np.linalg.norm(g[:, j * n : (j + 1) * n], axis=1)), atol=1e-9
            )


def test_frobenius_norms_equal_explicit_jacobian_products():
    cell = gf.rnn(6, 2, gain=1.3, seed=2)
    T, B = 15, 2
    xs = gf.inputs.gaussian(T, B, 2, seed=3)
    flow = gf.gradient_flow(cell, xs, loss="frobenius")
    J = gf.jacobians(cell, xs)
    hs = gf.unroll(cell, xs)
    P = np.tile(np.eye(6), (B, 1, 1))
    for k in range(T + 1):
        np.testing.assert_allclose(flow.log_norms[k], np.log(np.linalg.norm(P, axis=(1, 2))), atol=1e-10)
        if k < T:
            # d h_T / d x_{T-k} = P_k d h_{T-k} / d x_{T-k} (P_k = product of the later J's)
            t = T - 1 - k
            a = hs[t] @ cell.params["weight_hh_l0"].T + xs[t] @ cell.params["weight_ih_l0"].T
            dx = (1 / np.cosh(a) ** 2)[:, :, None] * cell.params["weight_ih_l0"]
            np.testing.assert_allclose(
                flow.input_log_norms[k], np.log(np.linalg.norm(P @ dx, axis=(1, 2))), atol=1e-10
            )
            P = P @ J[T - 1 - k]


def test_linear_orthogonal_network_decays_exactly_by_alpha_per_step():
    alpha = 0.7
    cell = gf.rnn(16, 3, activation="linear", init="orthogonal", gain=alpha, seed=0)
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(300, 4, 3))
    np.testing.assert_allclose(
        flow.log_norms, flow.lags[:, None] * np.log(alpha) * np.ones(4), rtol=0, atol=1e-10
    )
    assert flow.rate == pytest.approx(np.log(alpha), abs=1e-12)
    assert flow.fit.r2 == pytest.approx(1.0)
    assert flow.memory_horizon == int(np.ceil(np.log(1e-3) / np.log(alpha)))


@pytest.mark.parametrize(
    ("make", "regime"),
    [
        # Mean-field chi_1 = 0.09 and 1.86 (docs/theory.md): far from the neutral band either way.
        (lambda: gf.rnn(64, 4, gain=0.3, seed=0), "vanishing"),
        (lambda: gf.rnn(64, 4, gain=3.0, seed=0), "exploding"),
        (lambda: gf.lstm(32, 4, forget_bias=3.0, seed=0), None),
        (lambda: gf.gru(32, 4, gain=3.0, seed=0), None),
    ],
)
def test_ten_thousand_steps_stay_finite(make, regime):
    cell = make()
    h0 = np.random.default_rng(0).normal(size=cell.state_size)  # no exact zeros from h0 = 0
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(10_000, 1, 4, seed=1), h0=h0)
    assert np.all(np.isfinite(flow.log_norms))
    assert np.all(np.isfinite(flow.input_log_norms))
    assert all(np.all(np.isfinite(v)) for v in flow.gates.values())
    assert np.isfinite(flow.rate) and flow.fit.r2 > 0.99
    if regime is not None:
        assert flow.regime == regime
        # Far beyond float64's range (e^±709): the products only exist in log space.
        assert abs(flow.profile[-1]) > 1000


def test_exactly_zero_gradient_gives_minus_infinity_not_nan():
    cell = gf.rnn(8, 1, activation="relu", init="identity", gain=1.0)
    # Negative drive kills every unit: the gradient is exactly zero beyond lag 0.
    xs = gf.inputs.constant(20, 1, 1, -5.0)
    cell.params["weight_ih_l0"][:] = 1.0
    flow = gf.gradient_flow(cell, xs)
    assert flow.log_norms[0, 0] == pytest.approx(0.0, abs=1e-15)  # unit loss direction
    assert np.all(flow.log_norms[1:] == -np.inf)
    assert not np.any(np.isnan(flow.log_norms))
    # A zero has no log-rate: the fit is cut at lag 1, leaving too few lags (issue 15).
    assert np.isnan(flow.rate) and flow.regime is None and flow.fit.zero_from == 1
    assert flow.memory_horizon == 1


def test_same_seed_same_numbers_other_seed_other_direction():
    cell = gf.rnn(16, 2, gain=1.5, seed=0)
    xs = gf.inputs.gaussian(50, 2, 2, seed=0)
    a, b = gf.gradient_flow(cell, xs, seed=3), gf.gradient_flow(cell, xs, seed=3)
    np.testing.assert_array_equal(a.log_norms, b.log_norms)
    assert not np.array_equal(a.log_norms, gf.gradient_flow(cell, xs, seed=4).log_norms)


def test_regime_tolerance_and_fit_window():
    cell = gf.rnn(8, 2, activation="linear", init="orthogonal", gain=0.995)
    xs = gf.inputs.gaussian(100, 1, 2)
    assert gf.gradient_flow(cell, xs).regime == "neutral"  # rate -0.005 within 0.01
    assert gf.gradient_flow(cell, xs, tol=0.001).regime == "vanishing"
    flow = gf.gradient_flow(cell, xs, fit_from=40)
    assert flow.fit.lag_range == (40, 100)
    assert gf.regime_of(0.02) == "exploding" and gf.regime_of(-0.01) == "neutral"


def test_to_frame_is_tidy_and_plot_draws_the_data():
    cell = gf.lstm(4, 2, seed=0)
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(20, 3, 2))
    df = flow.to_frame()
    assert list(df.columns) == ["kind", "quantity", "lag", "sample", "log_norm"]
    assert set(df.quantity) == {"state", "h", "c", "i", "f", "g", "o", "input"}
    state = df[df.quantity == "state"].pivot(index="lag", columns="sample", values="log_norm")
    np.testing.assert_array_equal(state.to_numpy(), flow.log_norms)
    ax = flow.plot()
    mean_line = ax.lines[0]
    np.testing.assert_array_equal(mean_line.get_xdata(), flow.lags)
    np.testing.assert_allclose(mean_line.get_ydata(), flow.log_norms.mean(axis=1))
    fit_line = ax.lines[1]
    assert fit_line.get_linestyle() == "--"
    assert "nats/step" in ax.get_legend().get_texts()[-1].get_text()
    ax = flow.plot(quantity="f")
    f_mean = flow.gates["f"].mean(axis=1)  # lag T-1: c_0 = 0, so exactly zero (a gap)
    assert f_mean[-1] == -np.inf
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.where(np.isfinite(f_mean), f_mean, np.nan))
    with pytest.raises(ValueError, match="unknown quantity 'z'"):
        flow.plot(quantity="z")
    matplotlib.pyplot.close("all")


def test_reprs_are_short_and_html_escapes_names():
    cell = gf.rnn(4, 1, name="<b>evil</b>")
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(500, 1, 1))
    text = repr(flow)
    assert text.startswith("GradientFlow(cell='<b>evil</b>', steps=500") and len(text) < 200
    page = flow._repr_html_()
    assert "<b>evil</b>" not in page and html.escape("<b>evil</b>") in page
    assert "nats/step" in page and len(page) < 100_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "l2"}, "unknown loss 'l2'"),
        ({"loss": 3}, "loss must be a callable, 'frobenius' or None; got 3"),
        ({"loss": lambda h: anp.sum(h)}, r"loss must return one value per batch element, shape \(2,\)"),
        ({"tol": -1}, "tol must be a finite number >= 0.0"),
        ({"fit_from": 10}, r"fit_from must be an integer lag in \[0, 8\] \(the fit needs 3 lags\); got 10"),
        ({"seed": "x"}, "seed must be a non-negative integer"),
    ],
)
def test_gradient_flow_names_the_bad_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gf.gradient_flow(gf.rnn(4, 1), gf.inputs.gaussian(10, 2, 1), **kwargs)


@pytest.mark.parametrize(("T", "steps_per_chunk"), [(10, 3), (9, 3), (7, 1), (5, 8)])
def test_chunk_boundaries_against_autograd_grad(monkeypatch, T, steps_per_chunk):
    cell = gf.lstm(3, 2, layers=2, seed=4, bias_scale=0.3)
    B = 2
    width = B * (cell.state_size + cell.input_size) * 8 * _reverse._TRACE_FACTOR
    monkeypatch.setattr(_engine, "CHUNK_BYTES", width * steps_per_chunk)
    xs = gf.inputs.gaussian(T, B, 2, seed=1)
    flow = gf.gradient_flow(cell, xs, seed=2)
    u = np.random.default_rng(2).standard_normal(cell.state_size)
    u /= np.linalg.norm(u)
    hs = gf.unroll(cell, xs)
    for k in range(T + 1):
        g = grad(lambda h, t=T - k: anp.sum(run_from(cell, xs, t, h) @ u))(hs[T - k])
        np.testing.assert_allclose(flow.log_norms[k], np.log(np.linalg.norm(g, axis=1)), atol=1e-9)


def test_a_step_that_ignores_the_state_has_zero_gradient_beyond_lag_zero():
    U = np.random.default_rng(0).normal(size=(3, 2))
    cell = gf.Cell(lambda p, h, x: anp.tanh(x @ p["U"].T), {"U": U}, 3, 2)
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(6, 2, 2))
    np.testing.assert_allclose(flow.log_norms[0], 0.0, atol=1e-15)
    assert np.all(flow.log_norms[1:] == -np.inf)
    assert np.all(np.isfinite(flow.input_log_norms[0])) and np.all(flow.input_log_norms[1:] == -np.inf)
    assert np.isnan(flow.rate) and flow.fit.zero_from == 1 and flow.memory_horizon == 1


def test_a_loss_that_ignores_the_state_is_an_error():
    with pytest.raises(ValueError, match="loss does not depend on the final state"):
        gf.gradient_flow(gf.rnn(3, 1), gf.inputs.gaussian(5, 2, 1), loss=lambda h: np.zeros(2))


def test_cotangents_far_below_float64_stay_exact():
    # Drive 360 puts every unit deep in saturation: sech^2(a) ~ e^-718 per step, so the
    # gradient falls by ~e^-718 per step (not representable even for one step).
    cell = gf.rnn(3, 1, gain=0.5, seed=0)
    cell.params["weight_ih_l0"][:] = 1.0
    xs = gf.inputs.constant(6, 1, 1, 360.0)
    flow = gf.gradient_flow(cell, xs, seed=0)
    hs = gf.unroll(cell, xs)
    W = cell.params["weight_hh_l0"]
    a = hs[:-1, 0] @ W.T + 360.0
    g = np.random.default_rng(0).standard_normal(3)
    g /= np.linalg.norm(g)
    log_scale, expected = 0.0, [0.0]
    for t in range(5, -1, -1):  # independent log-space recursion: g <- W^T (sech^2(a_t) * g)
        ls = log_sech2(a[t])
        g = W.T @ (np.exp(ls - ls.max()) * g)
        n = np.linalg.norm(g)
        log_scale += ls.max() + np.log(n)
        g /= n
        expected.append(log_scale)
    np.testing.assert_allclose(flow.log_norms[:, 0], expected, rtol=1e-12, atol=1e-12)
    assert flow.rate < -700 and np.all(np.isfinite(flow.log_norms))


def test_a_name_probed_twice_reports_the_norm_of_both_parts():
    rng = np.random.default_rng(1)
    W1, W2 = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))

    def step(p, h, x):
        a = gf.probe(h @ p["W1"].T, "pre")
        b = gf.probe(h @ p["W2"].T + x, "pre")
        return anp.tanh(a) * 0.5 + anp.tanh(b) * 0.5

    cell = gf.Cell(step, {"W1": W1, "W2": W2}, 3, 3)
    xs = gf.inputs.gaussian(4, 1, 3, seed=2)
    flow = gf.gradient_flow(cell, xs, seed=3)
    u = np.random.default_rng(3).standard_normal(3)
    u /= np.linalg.norm(u)
    hs = gf.unroll(cell, xs)

    def after(da, db, t):  # the loss as a function of both probed intermediates at step t
        h = hs[t]
        a, b = h @ W1.T + da, h @ W2.T + xs[t] + db
        h = anp.tanh(a) * 0.5 + anp.tanh(b) * 0.5
        for s in range(t + 1, 4):
            h = step(cell.params, h, xs[s])
        return anp.sum(h @ u)

    for k in range(4):
        t = 3 - k
        ga = grad(after, 0)(np.zeros((1, 3)), np.zeros((1, 3)), t)
        gb = grad(after, 1)(np.zeros((1, 3)), np.zeros((1, 3)), t)
        both = np.sqrt(np.sum(ga**2) + np.sum(gb**2))
        assert flow.gates["pre"][k, 0] == pytest.approx(np.log(both), abs=1e-10)


def test_one_dead_sample_does_not_sink_the_batch_rate():
    cell = gf.rnn(6, 1, activation="relu", init="orthogonal", gain=0.9, seed=0)
    cell.params["weight_ih_l0"][:] = 1.0
    xs = np.concatenate([gf.inputs.constant(40, 1, 1, -50.0), gf.inputs.constant(40, 1, 1, 1.0)], axis=1)
    h0 = np.abs(np.random.default_rng(0).normal(size=6))
    flow = gf.gradient_flow(cell, xs, h0=h0)
    assert np.all(flow.log_norms[1:, 0] == -np.inf)  # sample 0: every unit dead
    alive = gf.gradient_flow(cell, xs[:, 1:], h0=h0)
    assert flow.rate == pytest.approx(alive.rate, abs=1e-12)
    assert np.isfinite(flow.rate)


def test_regime_of_checks_its_argument():
    with pytest.raises(ValueError, match="rate must be a number; got 'a'"):
        gf.regime_of("a")


def test_leading_exact_zeros_are_skipped_not_taken_for_a_dead_gradient():
    # A readout of the top layer leaves a lower layer's gradient exactly 0 at lag 0 only.
    from gradflow.measure._rates import fit_rate

    lags = np.arange(30)
    profile = -0.1 * lags
    profile[0] = -np.inf
    fit = fit_rate(lags, profile, 0)
    assert fit.zero_from is None and fit.lag_range == (1, 29) and fit.rate == pytest.approx(-0.1)
    profile[20:] = -np.inf  # then it dies at lag 20: cut there
    fit = fit_rate(lags, profile, 0)
    assert fit.zero_from == 20 and fit.lag_range == (1, 19) and fit.rate == pytest.approx(-0.1)
    assert np.isnan(fit_rate(lags, np.full(30, -np.inf), 0).rate)  # nothing ever lived
