"""Hardening (issue 15): no silent wrong number, no stale result, no code run unasked, faults."""

import warnings

import numpy as np
import pytest

import gradflow as gf
from gradflow._flow import MIN_FIT_LAGS, fit_rate
from gradflow._lyapunov import ConvergenceWarning

# ------------------------------------------------------------------ exactly-zero gradients


def test_a_loss_with_zero_gradient_gives_no_rate_not_minus_infinity():
    cell = gf.rnn(8, 4, seed=0)
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(50, 2, 4), loss=lambda h: h.sum(1) * 0.0)
    assert np.isnan(flow.rate) and flow.regime is None
    assert flow.fit.zero_from == 0
    assert "inconclusive" in repr(flow) or "regime=None" in repr(flow)


def test_the_profile_is_cut_where_the_gradient_becomes_exactly_zero():
    # ln-norm falls by exactly 0.1 per lag, then the gradient is exactly zero from lag 30.
    lags = np.arange(41.0)
    profile = np.where(lags < 30, -0.1 * lags, -np.inf)
    fit = fit_rate(lags, profile, 4)
    assert fit.rate == pytest.approx(-0.1, abs=1e-12)
    assert fit.zero_from == 30 and fit.lag_range == (4, 29)
    # Fewer than MIN_FIT_LAGS non-zero lags in the window: no rate, and no -inf.
    short = fit_rate(lags, profile, 30 - MIN_FIT_LAGS + 1)
    assert np.isnan(short.rate) and short.zero_from == 30


def test_a_relu_identity_network_whose_gradient_dies_is_not_called_vanishing():
    cell = gf.rnn(16, 4, activation="relu", init="identity", gain=1.0, seed=0)
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(3000, 1, 4))
    assert flow.fit.zero_from is not None and flow.profile[-1] == -np.inf
    assert np.isfinite(flow.rate) and flow.regime == "neutral"
    assert flow.fit.lag_range[1] == flow.fit.zero_from - 1
    assert any(k == "exactly zero" for k, _ in flow._summary())


def test_one_step_is_too_short_to_fit_a_rate():
    cell = gf.rnn(8, 4, seed=0)
    with pytest.raises(ValueError, match="xs has 1 step"):
        gf.gradient_flow(cell, gf.inputs.gaussian(5, 2, 4)[:1])
    with pytest.raises(ValueError, match="fit_from"):
        gf.gradient_flow(cell, gf.inputs.gaussian(5, 2, 4), fit_from=4)


def test_lyapunov_spectrum_of_a_dying_network_is_minus_infinity_without_a_warning():
    cell = gf.rnn(8, 1, activation="relu", init="identity", gain=1.0)
    cell.params["weight_ih_l0"][:] = 1.0
    xs = gf.inputs.constant(40, 1, 1, -5.0)  # every unit dead: each J_t is exactly 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in (2, 8):  # the stacked-JVP and the formed-Jacobian QR loops
            spectrum = gf.lyapunov_spectrum(cell, xs, k=k, warmup=5)
            assert np.all(spectrum.exponents == -np.inf)
            assert not np.any(np.isnan(spectrum.trace))


# ------------------------------------------------------------------ finite-time singular values


def _linear_cell(W):
    cell = gf.rnn(len(W), 1, activation="linear", seed=0)
    cell.params["weight_hh_l0"][:] = W
    return cell


def _slow_pair(symmetric: bool):
    """W with eigenvalues 1.0 and 0.99: over 20 steps sigma_2 / sigma_1 ~ 0.82, so 40 sweeps
    leave an error ~1e-4 (the default budget of the old code)."""
    rng = np.random.default_rng(3)
    S = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    if not symmetric:
        S = S + 0.05 * rng.standard_normal((4, 4))
    return S @ np.diag([1.0, 0.99, 0.5, 0.2]) @ np.linalg.inv(S)


def test_nearly_equal_singular_values_converge_against_the_closed_form():
    W, T = _slow_pair(symmetric=True), 20
    sv = gf.finite_time_singular_values(_linear_cell(W), np.zeros((T, 1, 1)), k=2)
    np.testing.assert_allclose(sv.log_values[0], T * np.log([1.0, 0.99]), atol=1e-8)
    assert sv.sweeps > 40 and sv.change <= 1e-10


def test_singular_values_against_an_mpmath_reference():
    mp = pytest.importorskip("mpmath")
    W, T = _slow_pair(symmetric=False), 20
    sv = gf.finite_time_singular_values(_linear_cell(W), np.zeros((T, 1, 1)), k=3)
    with mp.workdps(60):
        reference = [float(mp.log(v)) for v in mp.svd_r(mp.matrix(W.tolist()) ** T, compute_uv=False)]
    np.testing.assert_allclose(sv.log_values[0], sorted(reference, reverse=True)[:3], atol=1e-8)


def test_singular_values_that_do_not_converge_warn():
    W, T = _slow_pair(symmetric=True), 20
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        sv = gf.finite_time_singular_values(_linear_cell(W), np.zeros((T, 1, 1)), k=2, max_sweeps=2)
    assert sv.change > 1e-10


# ------------------------------------------------------------------ mismatches and overflow


def test_compare_of_two_different_cells_names_both():
    xs = gf.inputs.gaussian(30, 1, 4)
    rnn, lstm = gf.rnn(8, 4, seed=0), gf.lstm(8, 4, seed=0)
    with pytest.raises(ValueError, match=r"'rnn-tanh'.*'lstm'"):
        gf.compare(gf.predict(rnn, xs, probes=2, fixed_point_starts=1), gf.gradient_flow(lstm, xs))


def test_a_step_returning_complex_values_is_a_type_error_naming_the_cell():
    with pytest.raises(TypeError, match=r"step\('twisted'\) must return real values"):
        gf.Cell(lambda p, h, x: h * (1 + 1j), {}, 3, 2, name="twisted")


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear"])
def test_meanfield_at_huge_gain_is_finite_or_a_clear_error(activation):
    with pytest.raises(ValueError, match="sigma_w must be at most"):
        gf.meanfield.chi1(1e300, activation=activation)
    chi = gf.meanfield.chi1(1e150, activation=activation)
    assert np.isfinite(chi) and chi > 1e100


def test_meanfield_tanh_at_huge_gain_matches_its_asymptote():
    # q* -> sigma_w^2, E[sech^4(sqrt(q) z)] -> (4/3) / sqrt(2 pi q): chi_1 -> sigma_w (4/3) / sqrt(2 pi).
    for sigma_w in (1e20, 1e150):
        assert gf.meanfield.chi1(sigma_w) / sigma_w == pytest.approx(4 / 3 / np.sqrt(2 * np.pi), rel=1e-6)


def test_predict_on_huge_inputs_blames_xs_not_input_var():
    cell = gf.rnn(8, 4, seed=0)
    with pytest.raises(ValueError, match=r"^xs is too large"):
        gf.predict(cell, gf.inputs.gaussian(20, 2, 4) * 1e300)
