"""Parameter sensitivity by lag: the contributions sum to autograd's gradient, each one is right,
and the Zucchet-Orvieto closed forms it is compared with."""

import autograd.numpy as anp
import matplotlib
import numpy as np
import pandas as pd
import pytest
from autograd import grad

import gradflow as gf
from gradflow.measure import diagonal_cell, scaling_exponents, sensitivity_closed_form, sensitivity_scaling

matplotlib.use("Agg")


def diagonal_linear(n=3, d=2, seed=0):
    rng = np.random.default_rng(seed)

    def step(p, h, x):
        return p["lam"] * h + x @ p["B"].T

    params = {"lam": rng.uniform(-0.95, 0.95, n), "B": rng.normal(size=(n, d))}
    return gf.Cell(step, params, n, d, config={"linear": True}, name="diagonal")


def unrolled_loss(cell, xs, loss):
    """``sum loss(h_T)`` of the unrolled cell; ``t_own``: only step ``t_own`` reads ``params``."""

    def total(params, t_own=None):
        h = np.zeros((xs.shape[1], cell.state_size))
        for t, x in enumerate(xs, start=1):
            h = cell.step(params if t_own in (None, t) else cell.params, h, x)
        return anp.sum(loss(h))

    return total


@pytest.mark.parametrize(
    "make",
    [
        lambda: gf.rnn(5, 3, gain=1.3, seed=0),
        lambda: gf.lstm(4, 3, seed=1),
        lambda: gf.gru(4, 3, seed=2),
        lambda: diagonal_linear(d=3),
        lambda: gf.lru(3, 3, r_min=0.9, r_max=0.99, seed=3),
    ],
    ids=["rnn", "lstm", "gru", "diagonal", "lru"],
)
def test_contributions_sum_to_autograd_gradient(make):
    cell = make()
    xs = gf.inputs.gaussian(30, 3, 3, seed=4)
    u = np.random.default_rng(5).standard_normal(cell.state_size)

    def loss(h):
        return anp.tanh(h @ u)

    sens = gf.parameter_sensitivity(cell, xs, loss=loss)
    reference = grad(unrolled_loss(cell, xs, loss))(cell.params)
    for key, g in reference.items():
        assert np.max(np.abs(sens.gradient[key] - g)) <= 1e-10 * np.max(np.abs(g))
    # Each lag's share, for one step at a time: autograd with that step's own copy of the weights.
    total = unrolled_loss(cell, xs, loss)
    for t in (1, 17, 30):
        own = grad(lambda p, t=t: total(p, t_own=t))(cell.params)
        for key, g in own.items():
            want = np.log(np.linalg.norm(g)) if np.any(g) else -np.inf
            assert sens.log_norms[key][30 - t] == pytest.approx(want, abs=1e-10)


def test_no_underflow_at_long_lags():
    # h_t = 0.5 h_{t-1} + x_t, loss h_T: step t adds 0.5^(T-t) h_{t-1} to dL/dlam, far below
    # float64's range at lag 1200 and exact in log space.
    def step(p, h, x):
        return p["lam"] * h + x

    cell = gf.Cell(step, {"lam": [0.5]}, 1, 1, config={"linear": True})
    xs = gf.inputs.gaussian(1200, 1, 1, seed=0)
    sens = gf.parameter_sensitivity(cell, xs, loss=lambda h: h[:, 0])
    hs = gf.unroll(cell, xs)[:, 0, 0]
    lags = np.arange(1199)  # lag 1199 is step 1, which reads h_0 = 0: exactly zero, ln = -inf
    want = lags * np.log(0.5) + np.log(np.abs(hs[1200 - lags - 1]))
    assert np.allclose(sens.log_norms["lam"][:-1], want, rtol=1e-12, atol=1e-9)
    assert sens.log_norms["lam"][-1] == -np.inf
    assert sens.log_norms["lam"][-2] < -800  # ~1e-360: an underflow in linear space
    np.testing.assert_allclose(sens.state_log_norms[:, 0], np.arange(1201) * np.log(0.5), atol=1e-9)


def test_groups_display_and_bad_input():
    cell = gf.gru(4, 2, seed=0)
    xs = gf.inputs.gaussian(12, 2, 2, seed=1)
    groups = {"recurrent": ["weight_hh_l0", "bias_hh_l0"], "input": "weight_ih_l0"}
    sens = gf.parameter_sensitivity(cell, xs, groups=groups)
    assert list(sens.log_norms) == ["recurrent", "input"]
    joint = np.hypot(
        np.exp(gf.parameter_sensitivity(cell, xs).log_norms["weight_hh_l0"]),
        np.exp(gf.parameter_sensitivity(cell, xs).log_norms["bias_hh_l0"]),
    )
    assert np.allclose(np.exp(sens.log_norms["recurrent"]), joint, rtol=1e-12)
    frame = sens.to_frame()
    assert set(frame.group) == {"recurrent", "input"} and len(frame) == 24
    assert "ParameterSensitivity" in repr(sens) and "recurrent" in repr(sens)
    html = sens._repr_html_()
    assert "<svg" in html and "recurrent" in html
    assert sens.plot().get_ylabel().startswith("log10")
    for bad, message in [
        ({"g": ["nope"]}, "not parameters"),
        ({}, "non-empty mapping"),
        ({"g": []}, "non-empty list"),
    ]:
        with pytest.raises(ValueError, match=message):
            gf.parameter_sensitivity(cell, xs, groups=bad)
    with pytest.raises(ValueError, match="loss must be a callable"):
        gf.parameter_sensitivity(cell, xs, loss="frobenius")
    bare = gf.Cell(lambda p, h, x: 0.5 * h + x, {}, 2, 2)
    with pytest.raises(ValueError, match="has no parameters"):
        gf.parameter_sensitivity(bare, xs)


def test_closed_form_against_direct_sums():
    # E|dh_T/dlambda|^2 = sum_{k=1}^{T-1} k^2 r^(k-1), r = |lambda|^2, for unit white noise;
    # T -> infinity: (1 + r) / (1 - r)^3. Normalised inputs scale it by 1 - r.
    for mod in (0.3, 0.9, 0.99):
        r = mod**2
        k = np.arange(1, 200_000)
        direct = np.sum(k**2 * r ** (k - 1))
        assert sensitivity_closed_form(mod) == pytest.approx(direct, rel=1e-12)
        assert sensitivity_closed_form(mod, normalised=True) == pytest.approx((1 - r) * direct, rel=1e-12)
        assert sensitivity_closed_form(mod, steps=50) == pytest.approx(
            np.sum(k[:49] ** 2 * r ** (k[:49] - 1)), rel=1e-12
        )


def test_diagonal_cell_matches_its_equations():
    # Complex lambda as (re, im) pairs: the cell's state after T steps equals the complex recurrence.
    lam = np.array([0.9 * np.exp(0.7j), 0.5 + 0j])
    cell = diagonal_cell(lam, normalised=True)
    xs = gf.inputs.gaussian(40, 2, 2, seed=3)
    h = np.zeros((2, 2), dtype=complex)
    gamma = np.sqrt(1 - np.abs(lam) ** 2)
    for x in xs:
        h = lam * h + gamma * x
    states = gf.unroll(cell, xs)[-1]
    np.testing.assert_allclose(states[:, :2] + 1j * states[:, 2:], h, rtol=1e-13)


def test_sensitivity_scaling_small():
    frame = sensitivity_scaling(ks=(0.5, 1.0), seq_len=100, batch=4, seeds=2, phase=0.5)
    assert set(frame.normalised) == {False, True}
    assert {"k", "modulus", "seed", "squared_sensitivity", "closed_form", "state_gradient_log_norm"} <= set(
        frame
    )
    assert np.all(np.isfinite(frame.squared_sensitivity)) and np.all(frame.squared_sensitivity > 0)
    # Same seed, same numbers.
    again = sensitivity_scaling(ks=(0.5, 1.0), seq_len=100, batch=4, seeds=2, phase=0.5)
    assert frame.equals(again)


def test_scaling_exponents_recovers_a_power_law():
    # Squared sensitivities exactly 2 (1 - r)^-3 (unnormalised) and 5 (1 - r)^-2 (normalised), with
    # multiplicative noise: the fit returns the powers, the bootstrap interval contains them.
    rng = np.random.default_rng(0)
    rows = []
    for flag, power in ((False, -3.0), (True, -2.0)):
        for k in (0.5, 1.0, 2.0, 3.0):
            x = 1 - (1 - 10**-k) ** 2
            for seed in range(30):
                rows.append(
                    dict(
                        normalised=flag,
                        one_minus_r=x,
                        seed=seed,
                        closed_form=x**power,
                        squared_sensitivity=(2 if power == -3 else 5) * x**power * rng.lognormal(0, 0.1),
                    )
                )
    fit = scaling_exponents(pd.DataFrame(rows), boots=400).set_index("normalised")
    for flag, power in ((False, -3.0), (True, -2.0)):
        assert fit.loc[flag, "closed_form_exponent"] == pytest.approx(power, abs=1e-12)
        assert fit.loc[flag, "low"] < power < fit.loc[flag, "high"]
        assert fit.loc[flag, "high"] - fit.loc[flag, "low"] < 0.05
