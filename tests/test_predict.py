import html
import re

import numpy as np
import pytest
from scipy import optimize

import gradflow as gf
from gradflow.prediction import _moments, _perron, _predict, _registry
from gradflow.prediction._spectral import fixed_points
from gradflow.studies import _accuracy_grid

EVERY = [p.name for p in gf.predictors()]  # those registered on request (the two-step map) too


@pytest.mark.parametrize("gain", [0.5, 1.0, 1.5, 2.0, 3.0])
def test_mean_field_rate_matches_input_driven_networks(gain):
    # docs/theory.md: input drive suppresses chaos; N = 200, input std 0.5, 1, 2.
    for scale in (0.5, 1.0, 2.0):
        cell = gf.rnn(200, 10, gain=gain, seed=1)
        xs = gf.inputs.gaussian(300, 1, 10, scale=scale, seed=2)
        measured = gf.gradient_flow(cell, xs).rate
        predicted = gf.predict(cell, input_std=scale, fixed_point_starts=0)["mean-field"].rate
        assert predicted == pytest.approx(measured, abs=0.04), (gain, scale)


def test_the_eigenvalue_rule_fails_where_theory_says_it_does():
    # docs/theory.md: N = 200, g = 2, sigma_x = 2: measured about -0.12, eigenvalue rule +0.69.
    cell = gf.rnn(200, 10, gain=2.0, seed=1)
    xs = gf.inputs.gaussian(400, 1, 10, scale=2.0, seed=2)
    flow, prediction = gf.gradient_flow(cell, xs), gf.predict(cell, xs)
    assert flow.rate == pytest.approx(-0.12, abs=0.02) and flow.regime == "vanishing"
    assert prediction["eigenvalue rule"].regime == "exploding"
    assert prediction["eigenvalue rule"].rate == pytest.approx(np.log(2.0), abs=0.05)
    assert prediction.regime == "vanishing"
    table = gf.compare(prediction, flow)
    assert not table.frame.set_index("method").loc["eigenvalue rule", "correct"]


@pytest.mark.parametrize(
    ("activation", "gain"), [("tanh", 0.3), ("sigmoid", 1.5), ("relu", 0.4), ("tanh", 0.45)]
)
def test_pascanu_certificate_bounds_the_measured_rate(activation, gain):
    cell = gf.rnn(64, 4, activation=activation, gain=gain, seed=0)
    xs = gf.inputs.gaussian(200, 2, 4, seed=1)
    result = gf.predict(cell, xs)["pascanu bound"]
    s1 = np.linalg.svd(cell.params["weight_hh_l0"], compute_uv=False)[0]
    gamma = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0}[activation]
    assert result.rate == pytest.approx(np.log(gamma * s1))
    assert result.regime == "vanishing"  # s1 < 1/gamma for these gains
    assert gf.gradient_flow(cell, xs).rate <= result.rate + 1e-12  # ||J_t|| <= gamma s1


def test_pascanu_is_inconclusive_above_the_bound():
    result = gf.predict(gf.rnn(64, 4, gain=1.5, seed=0), input_std=1.0)["pascanu bound"]
    assert result.regime is None and "inconclusive" in result.reason


def test_fixed_points_of_a_decoupled_network_match_the_scalar_equation():
    # W = 2 I, no input or bias: each unit solves h = tanh(2h): h in {0, +-h*}.
    h_star = optimize.brentq(lambda h: np.tanh(2 * h) - h, 0.5, 1.0)
    cell = gf.rnn(2, 1, activation="tanh", init="identity", gain=2.0)
    cell.params["weight_ih_l0"][:] = 0.0
    grid = np.array([[a, b] for a in (-1.2, -0.01, 1.2) for b in (-1.2, 0.01, 1.2)])
    points = fixed_points(cell, np.zeros(1), grid)
    found = sorted(tuple(np.round(p.state, 8)) for p in points)
    expected = sorted((a, b) for a in (-h_star, 0.0, h_star) for b in (-h_star, 0.0, h_star))
    np.testing.assert_allclose(found, np.round(expected, 8), atol=1e-7)
    stable = [p for p in points if p.stable]
    assert len(stable) == 4 and all(np.all(np.abs(p.state) > 0.5) for p in stable)
    slope = 2 * (1 - h_star**2)  # d tanh(2h)/dh at h*
    for p in stable:
        np.testing.assert_allclose(np.abs(p.eigenvalues), slope, rtol=1e-8)


def test_fixed_point_predictor_near_the_origin_is_log_spectral_radius():
    cell = gf.rnn(40, 2, gain=0.5, seed=3)
    prediction = gf.predict(cell, gf.inputs.constant(100, 1, 2, 0.0), h0=np.full(40, 0.1))
    rho = np.max(np.abs(np.linalg.eigvals(cell.params["weight_hh_l0"])))
    assert prediction["fixed point"].rate == pytest.approx(np.log(rho), abs=1e-9)


def test_moment_map_limits():
    # Constant Jacobian (linear cell): rho(M) = rho(W)^2, so the rate is ln rho(W).
    cell = gf.rnn(30, 2, activation="linear", seed=2)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(30, 30)))
    cell.params["weight_hh_l0"][:] = q @ np.diag(np.linspace(0.9, 0.1, 30)) @ q.T
    p = gf.predict(cell, gf.inputs.gaussian(200, 1, 2), predictors=EVERY)
    assert p["moment map"].rate == pytest.approx(np.log(0.9), abs=1e-6)
    assert p["two-step moment map"].rate == pytest.approx(np.log(0.9), abs=1e-6)
    assert p["averaged jacobian"].rate == pytest.approx(np.log(0.9), abs=1e-9)
    # A gaussian W has a complex dominant pair: the estimate averages the oscillation out.
    cell = gf.rnn(30, 2, activation="linear", gain=0.8, seed=2)
    p = gf.predict(cell, gf.inputs.gaussian(200, 1, 2))
    rho = np.max(np.abs(np.linalg.eigvals(cell.params["weight_hh_l0"])))
    assert p["moment map"].rate == pytest.approx(np.log(rho), abs=5e-3)
    # Orthogonal linear: every direction keeps its norm; all three agree on zero.
    cell = gf.rnn(30, 2, activation="linear", init="orthogonal", seed=2)
    p = gf.predict(cell, gf.inputs.gaussian(200, 1, 2), predictors=EVERY)
    for method in ("moment map", "two-step moment map", "local gain", "averaged jacobian"):
        assert p[method].rate == pytest.approx(0.0, abs=1e-9)
        assert p[method].regime == "neutral"


def test_the_two_step_map_runs_on_request_and_the_one_step_map_is_trusted():
    # predict runs the registry's default predictors; the two-step map only when named, and the
    # one-step map stays trusted beside it (study predictor_accuracy: right as often, cheaper).
    cell, xs = gf.gru(12, 3, seed=4), gf.inputs.gaussian(120, 2, 3, seed=2)
    default = gf.predict(cell, xs)
    assert "two-step moment map" not in [r.method for r in default.results]
    assert [p.name for p in gf.predictors() if not p.default] == ["two-step moment map"]
    every = gf.predict(cell, xs, predictors=EVERY)
    assert [r.method for r in every.results] == EVERY
    assert default.method == every.method == "moment map" and every.rate == default.rate
    # Predictors share one random stream in table order: the last one on request moves none.
    assert [r.rate for r in every.results[:-1]] == [r.rate for r in default.results]
    with pytest.raises(KeyError, match="no predictor 'two-step moment map'"):
        default["two-step moment map"]


@pytest.mark.skipif(not _moments._EIGS_TAKES_RNG, reason="this SciPy's eigs takes no rng (Fortran ARPACK)")
def test_arpack_answers_do_not_depend_on_earlier_calls_or_entropy():
    # A ReLU cell with W = I at rest (no input, no bias): J_t = D, the same 0/1 diagonal at every
    # step, so the Krylov space from ARPACK's start (the identity) is spanned by I and D and it
    # restarts from random vectors. Unseeded, SciPy drew them from the OS: the eigenvectors (and
    # at times the rate's last bit) changed from call to call (predictor-accuracy grid, quick).
    cell = gf.rnn(16, 2, activation="relu", seed=0)
    cell.params["weight_hh_l0"][:] = np.eye(16)
    cell.params["bias_ih_l0"][:] = cell.params["bias_hh_l0"][:] = 0.0
    xs = np.zeros((100, 2, 2))
    states = gf.unroll(cell, xs, h0=np.random.default_rng(1).standard_normal((2, 16)))
    second_moment = _moments.moment_terms(cell, xs, states, slice(10, 100), None)
    operator = _moments.LinearOperator(
        (256, 256), matvec=lambda v: second_moment(v.reshape(16, 16)).reshape(-1)
    )
    answers = [_moments._arpack(operator, 16, tol=1e-8) for _ in range(6)]
    for vals, vecs in answers[1:]:
        assert vals.tobytes() == answers[0][0].tobytes() and vecs.tobytes() == answers[0][1].tobytes()


def test_two_step_blocks_are_consecutive_jacobian_products():

    cell = gf.lstm(6, 3, seed=1)
    xs = gf.inputs.gaussian(40, 2, 3, seed=1)
    states = gf.unroll(cell, xs)
    J = gf.jacobians(cell, xs)  # (T, batch, S, S)
    blocks = _moments._sampled_jacobians(cell, xs, states, slice(4, 40), rows=5, span=2)
    t = np.linspace(4, 38, 5).astype(int)
    expected = np.matmul(J[t + 1], J[t]).reshape(-1, 12, 12)
    np.testing.assert_allclose(blocks, expected, rtol=1e-12, atol=1e-14)


def test_gated_cells_get_gated_predictors():
    xs = gf.inputs.gaussian(200, 2, 4, seed=0)
    for cell in (gf.lstm(16, 4, seed=0), gf.gru(16, 4, seed=0)):
        p = gf.predict(cell, xs)
        assert p["gated mean-field"].regime is not None
        assert p["mean-field"].regime is None and "vanilla" in p["mean-field"].reason
        assert p.method == "moment map"
    weights_only = gf.predict(gf.lstm(16, 4), input_std=1.0, fixed_point_starts=2)
    assert weights_only.method == "eigenvalue rule"
    assert "origin" in weights_only["eigenvalue rule"].reason


def test_prediction_object_and_compare_table():
    cell = gf.rnn(32, 4, gain=0.5, seed=0, name="<b>net</b>")
    xs = gf.inputs.gaussian(200, 2, 4)
    p = gf.predict(cell, xs)
    assert repr(p).startswith("Prediction(cell='<b>net</b>', regime='vanishing'")
    page = p._repr_html_()
    assert "<b>net</b>" not in page and html.escape("<b>net</b>") in page and len(page) < 100_000
    frame = p.to_frame()
    assert list(frame.method) == [m for m in _predict.METHODS if m != "two-step moment map"]
    assert frame.trusted.sum() == 1
    assert p.horizon == pytest.approx(np.log(1e-3) / p.rate)
    table = gf.compare(p, gf.gradient_flow(cell, xs))
    assert {"rate_error", "correct", "measured_rate"} <= set(table.columns)
    np.testing.assert_allclose(table.rate_error, table.rate - table.measured_rate)
    with pytest.raises(KeyError, match="no predictor 'oracle'"):
        p["oracle"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give exactly one of xs"),
        ({"xs": np.zeros((5, 1, 4)), "input_std": 1.0}, "give exactly one of xs"),
        ({"input_std": -1.0}, "input_std must be a finite number >= 0.0"),
        ({"input_std": 1.0, "tol": "x"}, "tol must be a number"),
    ],
)
def test_predict_names_the_bad_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gf.predict(gf.rnn(8, 4), **kwargs)


def test_compare_checks_its_arguments():
    with pytest.raises(ValueError, match="compare takes a Prediction"):
        gf.compare("p", "f")


def test_accuracy_grid_is_large_and_hard():
    # The study itself runs at tiny sizes in tests/test_analyses.py (its held-out scoring is checked there).
    points = _accuracy_grid.grid()
    assert len(points) >= 163 and sum(p["part"] == "untuned" for p in points) >= 50
    assert {p["cell"] for p in points} == {"rnn", "lstm", "gru"}
    assert {p["matrix"] for p in points} == {
        "gaussian",
        "orthogonal",
        "identity",
        "low-rank",
        "non-normal",
        "chain",
    }
    gains, scales = [p["gain"] for p in points], [p["input_scale"] for p in points]
    assert min(gains) <= 0.3 and max(gains) >= 4.0 and min(scales) == 0.0 and max(scales) >= 3.0


def test_a_network_at_rest_with_dead_units_predicts_exact_vanishing():
    # ReLU at the origin with no input: every step Jacobian is exactly zero.
    cell = gf.rnn(8, 2, activation="relu", gain=0.5, seed=0)
    p = gf.predict(cell, np.zeros((50, 2, 2)), predictors=EVERY)
    for method in ("moment map", "two-step moment map"):
        assert p[method].rate == -np.inf and p[method].regime == "vanishing"


@pytest.mark.parametrize("hidden", [1, 2, 4])
def test_moment_map_of_tiny_states_is_solved_densely_and_exactly(hidden):
    # ARPACK cannot take a 1 x 1 (or 4 x 4) operator; a linear cell's constant Jacobian W gives ln rho(W).
    cell = gf.rnn(hidden, 2, activation="linear", gain=0.8, seed=3)
    p = gf.predict(cell, gf.inputs.gaussian(60, 2, 2), predictors=EVERY)
    rho = np.max(np.abs(np.linalg.eigvals(cell.params["weight_hh_l0"])))
    for method in ("moment map", "two-step moment map"):
        assert p[method].rate == pytest.approx(np.log(rho), abs=1e-10)


def test_predict_needs_two_steps():
    with pytest.raises(
        ValueError, match="xs must have at least 2 steps for the forward-run predictors; got 1"
    ):
        gf.predict(gf.lstm(3, 2), gf.inputs.gaussian(1, 1, 2))


def test_the_registry_lists_every_predictor_in_table_order():
    names = [p.name for p in gf.predictors()]
    assert names == list(_predict.METHODS) and len(names) == len(set(names)) == 10
    cheap = {p.name for p in gf.predictors(cheap=True)}
    assert cheap == {
        "eigenvalue rule",
        "pascanu bound",
        "mean-field",
        "local gain",
        "averaged jacobian",
        "gated mean-field",
        "diagonal recurrence",
    }  # the explorer's: no fixed-point search or moment map
    for p in gf.predictors():
        assert set(p.needs) <= set(_registry.NEEDS)
    xs = gf.inputs.gaussian(40, 1, 3, seed=0)
    weights_only = gf.predict(gf.rnn(6, 3, seed=0), input_std=1.0, fixed_point_starts=1)
    assert [r.method for r in weights_only.results] == [
        p.name for p in gf.predictors() if "forward run" not in p.needs
    ]
    gated = gf.predict(gf.gru(4, 3, seed=0), xs, fixed_point_starts=1)
    for name in ("pascanu bound", "mean-field"):  # unmet cell needs abstain with the reason
        assert gated[name].regime is None and gated[name].reason == "needs a one-layer vanilla cell"


def test_a_subset_of_predictors_gives_the_same_numbers_as_the_full_run():
    cell, xs = gf.rnn(10, 3, gain=1.5, seed=1), gf.inputs.gaussian(60, 2, 3, seed=1)
    full = gf.predict(cell, xs, fixed_point_starts=1)
    some = gf.predict(cell, xs, predictors=["moment map", "mean-field"], fixed_point_starts=1)
    assert [r.method for r in some.results] == ["mean-field", "moment map"]  # table order
    assert some.method == "moment map" and some.rate == full["moment map"].rate
    assert some["mean-field"] == full["mean-field"]
    only = gf.predict(cell, xs, predictors="eigenvalue rule")
    assert only.method == "eigenvalue rule" and len(only.results) == 1


@pytest.mark.parametrize(
    ("names", "error", "message"),
    [
        (["oracle"], ValueError, r"unknown predictor 'oracle'; registered: eigenvalue rule, pascanu bound, "),
        ([], ValueError, "predictors must name at least one predictor"),
        ([3], ValueError, "unknown predictor 3"),
        (7, TypeError, "predictors must be a list of predictor names; got int"),
    ],
)
def test_predict_names_unknown_predictors(names, error, message):
    with pytest.raises(error, match=message):
        gf.predict(gf.rnn(4, 2), input_std=1.0, predictors=names)


def test_a_registered_predictor_runs_over_the_context(monkeypatch):

    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))  # registered for this test only

    @gf.predictor("steps seen", needs=("forward run",))
    def steps_seen(context):
        return _predict.PredictorResult(
            "steps seen",
            "neutral",
            0.0,
            f"{context.window.stop - context.window.start} of {len(context.states) - 1}",
        )

    p = gf.predict(gf.rnn(4, 2, seed=0), gf.inputs.gaussian(50, 1, 2), fixed_point_starts=0)
    assert p.results[-1] == _predict.PredictorResult("steps seen", "neutral", 0.0, "45 of 50")
    with pytest.raises(ValueError, match="already registered"):
        gf.predictor("steps seen")(steps_seen)
    with pytest.raises(ValueError, match="unknown need 'gpu'"):
        gf.predictor("other", needs=("gpu",))


def test_h0_is_keyword_only():
    cell, xs = gf.rnn(4, 2, seed=0), gf.inputs.gaussian(20, 1, 2)
    with pytest.raises(TypeError):
        gf.predict(cell, xs, None)
    h0 = np.full(4, 0.3)
    assert gf.predict(cell, xs, h0=h0)["local gain"] != gf.predict(cell, xs)["local gain"]


# ------------------------------------------------------------------ the fast paths against the slow ones


def test_local_gain_in_closed_form_equals_the_traced_products(monkeypatch):

    for cell in (gf.rnn(9, 3, gain=1.5, seed=0), gf.lstm(5, 3, seed=1), gf.gru(6, 3, gain=2.0, seed=2)):
        xs = gf.inputs.gaussian(50, 2, 3, seed=3)
        fast = gf.predict(cell, xs, predictors=["local gain"])["local gain"].rate
        monkeypatch.setattr(_moments, "closed_form_kind", lambda cell: None)  # J_t q by autograd JVPs
        assert gf.predict(cell, xs, predictors=["local gain"])["local gain"].rate == pytest.approx(
            fast, abs=1e-13
        )
        monkeypatch.undo()


@pytest.mark.parametrize(
    "make",
    [
        lambda: gf.gru(6, 3, gain=0.8, seed=4),
        lambda: gf.lstm(5, 3, seed=5),
        lambda: gf.rnn(8, 3, activation="sigmoid", gain=2.0, seed=6),
    ],
)
def test_newton_fixed_points_are_roots_that_least_squares_confirms(make):
    cell = make()
    x = np.full(3, 0.3)
    starts = np.random.default_rng(0).uniform(-1, 1, (4, cell.state_size))
    points = fixed_points(cell, x, starts)
    assert points
    for p in points:
        step = np.asarray(cell.step(cell.params, p.state[None], x[None]))[0]
        assert np.linalg.norm(step - p.state) < 1e-12
        # scipy's trust region from the root stays there, and a finite-difference Jacobian
        # gives the same slowest mode.
        sol = optimize.least_squares(
            lambda h: np.asarray(cell.step(cell.params, h[None], x[None]))[0] - h,
            p.state,
            xtol=1e-15,
            ftol=1e-15,
            gtol=1e-15,
        )
        np.testing.assert_allclose(sol.x, p.state, atol=1e-10)
        eps = 1e-6
        fd = np.stack(
            [
                (
                    np.asarray(cell.step(cell.params, (p.state + eps * e)[None], x[None]))[0]
                    - np.asarray(cell.step(cell.params, (p.state - eps * e)[None], x[None]))[0]
                )
                / (2 * eps)
                for e in np.eye(cell.state_size)
            ],
            axis=1,
        )
        assert p.spectral_radius == pytest.approx(np.max(np.abs(np.linalg.eigvals(fd))), abs=1e-7)


@pytest.mark.parametrize(
    "make",
    [lambda: gf.rnn(100, 3, gain=1.5, seed=7), lambda: gf.lstm(49, 3, forget_bias=-1.0, gain=2.0, seed=7)],
)
def test_wide_moment_maps_match_their_float64_dense_form(monkeypatch, make):
    # State width 98-100 > 96: the one-step map by ARPACK on the structured form (exact, where
    # the generic form would take a rank-96 factor), the two-step map's power iteration on
    # float32 products. Against ARPACK on the float64 mean of formed J_t X J_t^T, and the same
    # power iteration in float64.
    cell = make()
    xs = gf.inputs.gaussian(120, 1, 3, scale=0.5, seed=8)
    states = gf.unroll(cell, xs)
    window = slice(12, 120)

    def rate(span, **kwargs):
        return _moments.moment_map(
            cell, xs, states, window, np.random.default_rng(0), 0.01, rows=6, span=span, **kwargs
        ).rate

    fast = rate(1), rate(2)
    monkeypatch.setattr(_moments, "moment_terms", lambda *args: None)
    monkeypatch.setattr(_moments, "SINGLE_PRECISION_FROM", 10**6)
    assert fast[0] == pytest.approx(rate(1, rank=cell.state_size), abs=1e-7)
    assert fast[1] == pytest.approx(rate(2), abs=1e-5)


def test_the_diagonal_recurrence_predictor_is_exact_and_trusted_for_linear_cells():
    # An LRU's gradient is multiplied by lambda = exp(-exp(nu_log) + i exp(theta_log)) per step:
    # its rate is log max |lambda| = -min exp(nu_log), exactly, whatever the inputs.
    cell = gf.lru(12, 3, r_min=0.5, r_max=0.99, seed=3)
    xs = gf.inputs.gaussian(50, 2, 3, seed=1)
    prediction = gf.predict(cell, xs)
    exact = -np.min(np.exp(cell.params["nu_log"]))
    assert prediction["diagonal recurrence"].rate == pytest.approx(exact, rel=1e-12)
    assert (
        prediction.method == "diagonal recurrence"
        and prediction.rate == prediction["diagonal recurrence"].rate
    )
    # Cells not linear in their state: it abstains, saying why, and the trusted predictor is unchanged.
    rnn = gf.predict(gf.rnn(6, 3, seed=0), xs)
    assert (
        rnn["diagonal recurrence"].regime is None
        and "linear in its state" in rnn["diagonal recurrence"].reason
    )
    assert rnn.method == "moment map"


def test_collatz_wielandt_brackets_the_perron_root_of_the_dense_moment_map():
    # M = mean J (x) J as an explicit (S^2, S^2) matrix: its spectral radius by dense eigvals.
    cell = gf.lstm(4, 2, forget_bias=1.0, gain=1.5, seed=3)
    xs = gf.inputs.gaussian(60, 2, 2, seed=4)
    J = _moments._sampled_jacobians(cell, xs, gf.unroll(cell, xs), slice(6, 60), rows=20)
    M = np.mean([np.kron(P, P) for P in J], axis=0)
    vals, vecs = np.linalg.eig(M)
    top = np.argmax(np.abs(vals))
    rho = abs(vals[top])

    def second_moment(X, precision=np.float64):
        return (M @ X.reshape(-1)).reshape(X.shape)

    S = cell.state_size
    for X in (np.eye(S), np.eye(S) + 0.3 * np.ones((S, S)), second_moment(second_moment(np.eye(S)))):
        lo, hi, quotient = _moments.collatz_wielandt(second_moment, X)
        assert lo <= rho <= hi and lo <= quotient <= hi
    # At the Perron vector (real, positive definite up to its phase) the bracket closes on rho.
    lo, hi, quotient = _moments.collatz_wielandt(second_moment, vecs[:, top].reshape(S, S))
    assert (lo, hi, quotient) == pytest.approx((rho, rho, rho), rel=1e-9)
    assert _moments.collatz_wielandt(second_moment, -np.eye(S) + 2 * np.eye(S)[::-1]) is None  # not definite


@pytest.mark.parametrize(
    "make",
    [
        lambda: gf.rnn(24, 3, gain=1.5, seed=1),
        lambda: gf.lstm(20, 3, forget_bias=1.0, seed=1),
        lambda: gf.gru(20, 3, gain=2.0, seed=1),
    ],
)
def test_certified_fast_moment_map_is_within_its_width_of_the_float64_one(monkeypatch, make):
    cell = make()
    xs = gf.inputs.gaussian(150, 1, 3, seed=2)
    states = gf.unroll(cell, xs)

    def rate():
        return _moments.moment_map(cell, xs, states, slice(15, 150), np.random.default_rng(0), 0.01).rate

    passes = []
    original = _moments.collatz_wielandt
    monkeypatch.setattr(_moments, "collatz_wielandt", lambda *a: passes.append(original(*a)) or passes[-1])
    fast, width = rate(), _moments.CERTIFIED_WIDTH
    assert np.log(passes[0][1] / passes[0][0]) / 2 <= width  # the float32 pass was certified
    monkeypatch.setattr(_moments, "CERTIFIED_WIDTH", -1.0)  # no certificate passes: float64 ARPACK
    assert fast == pytest.approx(rate(), abs=width)


def test_a_defective_moment_map_fails_the_certificate_and_is_solved_in_float64(monkeypatch):
    # diag * I + link * shift: one Jordan block, so the Perron vector is nearly singular and the
    # float32 pass is not certified; the float64 solution does not depend on that pass.
    cell = gf.rnn(16, 3, seed=0)
    cell.params["weight_hh_l0"][:] = 0.9 * np.eye(16) + 4.0 * np.eye(16, k=-1)
    xs = gf.inputs.gaussian(120, 1, 3, scale=0.5, seed=1)
    states = gf.unroll(cell, xs)
    passes = []
    original = _moments.collatz_wielandt
    monkeypatch.setattr(_moments, "collatz_wielandt", lambda *a: passes.append(original(*a)) or passes[-1])

    def rate():
        return _moments.moment_map(cell, xs, states, slice(12, 120), np.random.default_rng(0), 0.01).rate

    fast = rate()
    bracket = passes[0]
    assert bracket is None or np.log(bracket[1] / bracket[0]) / 2 > _moments.CERTIFIED_WIDTH
    monkeypatch.setattr(_moments, "CERTIFIED_WIDTH", -1.0)
    assert fast == rate()


def dense_rate(cell, xs, states, window, rows, span):
    """ln rho(mean P (x) P) / (2 span) over the sampled blocks, by dense eigenvalues."""
    blocks = _moments._sampled_jacobians(cell, xs, states, window, rows, span)
    M = np.mean([np.kron(P, P) for P in blocks], axis=0)
    return np.log(np.max(np.abs(np.linalg.eigvals(M)))) / (2 * span)


def chain(n, diagonal, link, scale):
    """The predictor-accuracy grid's chains, diagonal * I + link * shift, and a forward run."""
    cell = gf.rnn(n, 3, seed=0)
    cell.params["weight_hh_l0"][:] = diagonal * np.eye(n) + link * np.eye(n, k=-1)
    xs = gf.inputs.gaussian(100, 1, 3, scale=scale, seed=1)
    return cell, xs, gf.unroll(cell, xs)


@pytest.mark.parametrize(("diagonal", "link"), [(0.5, 2.0), (0.9, 4.0)])
@pytest.mark.parametrize(("span", "rows"), [(1, 48), (2, 64)])
def test_chain_moment_maps_equal_the_dense_spectral_radius(monkeypatch, diagonal, link, span, rows):
    # Where ARPACK returned pseudo-eigenvalues (0.5, 2: -0.843 and -0.889 nats/step against
    # -1.010 and -1.001 before the certificate had a fallback), the rate is inside its float64
    # Collatz-Wielandt bracket, so within BRACKET_WIDTH of the dense mean J (x) J's.
    cell, xs, states = chain(16, diagonal, link, 2.0)
    calls = []
    original = _moments.perron_bracket
    monkeypatch.setattr(_moments, "perron_bracket", lambda *a, **k: calls.append(1) or original(*a, **k))
    result = _moments.moment_map(cell, xs, states, slice(10, 100), np.random.default_rng(0), 0.01, rows, span)
    exact = dense_rate(cell, xs, states, slice(10, 100), rows, span)
    assert result.rate == pytest.approx(exact, abs=_moments.BRACKET_WIDTH)
    assert "uncertain" not in result.reason
    if diagonal == 0.5:
        assert calls  # the hard case: no ARPACK answer was certified


def test_moment_maps_do_not_depend_on_the_global_random_state():
    cell, xs, states = chain(16, 0.5, 2.0, 2.0)
    results = []
    for seed in (1, 2):
        np.random.seed(seed)  # noqa: NPY002  (the legacy global state is what must not matter)
        results.append(
            [
                _moments.moment_map(cell, xs, states, slice(10, 100), np.random.default_rng(0), 0.01, span=s)
                for s in (1, 2)
            ]
        )
    assert results[0] == results[1]  # rates and reasons, bit for bit


def test_a_spent_power_iteration_budget_stays_inside_its_bracket_and_says_so(monkeypatch):
    cell, xs, states = chain(16, 0.5, 2.0, 2.0)
    brackets = []
    original = _moments.perron_bracket

    def spy(*args, **kwargs):
        brackets.append(original(*args, **{**kwargs, "budget": 2}))
        return brackets[-1]

    monkeypatch.setattr(_moments, "perron_bracket", spy)
    monkeypatch.setattr(_perron, "LOWER_EVERY", 10**6)  # the bracket of the two iterates alone
    result = _moments.moment_map(cell, xs, states, slice(10, 100), np.random.default_rng(0), 0.01)
    lo, hi = brackets[0]
    assert np.log(hi / lo) / 2 > _moments.BRACKET_WIDTH  # not certified in 2 steps
    exact = dense_rate(cell, xs, states, slice(10, 100), 48, 1)
    assert np.log(lo) / 2 <= exact <= np.log(hi) / 2 and np.log(lo) / 2 <= result.rate <= np.log(hi) / 2
    assert f"uncertain by {np.log(hi / lo) / 4:.2g} nats/step" in result.reason
    # Without an ARPACK answer (no convergence), the bracket's midpoint.
    monkeypatch.setattr(_moments, "eigs", lambda *a, **k: (_ for _ in ()).throw(_moments.ArpackError(-9999)))
    result = _moments.moment_map(cell, xs, states, slice(10, 100), np.random.default_rng(0), 0.01)
    assert result.rate == pytest.approx(np.log(brackets[-1][0] * brackets[-1][1]) / 4, rel=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gf.rnn(16, 3, gain=1.5, seed=1),
        lambda: gf.lstm(8, 3, forget_bias=1.0, seed=1),
        lambda: gf.gru(12, 3, gain=2.0, seed=1),
    ],
)
def test_well_conditioned_moment_maps_equal_the_dense_spectral_radius(make):
    cell = make()
    xs = gf.inputs.gaussian(100, 1, 3, seed=2)
    states = gf.unroll(cell, xs)
    for span, rows in ((1, 48), (2, 64)):
        rate = _moments.moment_map(
            cell, xs, states, slice(10, 100), np.random.default_rng(0), 0.01, rows, span
        )
        exact = dense_rate(cell, xs, states, slice(10, 100), rows, span)
        assert rate.rate == pytest.approx(exact, abs=_moments.BRACKET_WIDTH)


def test_the_singular_lower_bound_never_exceeds_the_spectral_radius():
    # Random positive maps mean A X A^T and random positive semi-definite X of every rank.
    rng = np.random.default_rng(5)
    for rank in (1, 2, 4, 6):
        As = rng.normal(size=(3, 6, 6))
        rho = np.max(np.abs(np.linalg.eigvals(np.mean([np.kron(A, A) for A in As], axis=0))))
        V = rng.normal(size=(6, rank))
        bound = _perron.lower_bound(lambda X, As=As: np.mean([A @ X @ A.T for A in As], axis=0), V @ V.T)
        assert 0 <= bound <= rho * (1 + 1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gf.rnn(100, 3, gain=1.5, seed=7),
        lambda: gf.gru(98, 3, gain=2.0, seed=7),
        lambda: gf.lstm(49, 3, forget_bias=3.0, gain=0.5, seed=7),  # a singular Perron vector
    ],
)
def test_wide_two_step_map_is_near_the_exact_perron_root_and_says_how_near(make):
    # S = 98-100 > rank 96: ARPACK on float32 products to WIDE_ARPACK_TOL, bracketed once in
    # float64. Against float64 ARPACK to 1e-12 on the same sampled blocks (the rank-96 power
    # iteration it replaced was 7e-3-1e-2 nats/step off at N = 128).
    from scipy.sparse.linalg import LinearOperator, eigs
    from threadpoolctl import threadpool_limits

    cell = make()
    xs = gf.inputs.gaussian(120, 1, 3, scale=0.5, seed=8)
    states = gf.unroll(cell, xs)
    window, S = slice(12, 120), cell.state_size
    result = _moments.moment_map(cell, xs, states, window, np.random.default_rng(0), 0.01, rows=8, span=2)
    P = _moments._sampled_jacobians(cell, xs, states, window, 8, 2)

    def exact(v):
        X = v.reshape(S, S)
        return np.mean(P @ X @ np.swapaxes(P, 1, 2), axis=0).reshape(-1)

    with threadpool_limits(1):  # two BLAS threads on a busy machine cost 50x here
        operator = LinearOperator((S * S, S * S), matvec=exact, dtype=float)
        vals = eigs(operator, k=1, which="LR", v0=np.eye(S).reshape(-1), tol=1e-8, ncv=12)[0]
    reference = np.log(abs(vals[0])) / 4
    match = re.search(r"uncertain by ([0-9.e-]+) nats/step \(an eigen-solver", result.reason)
    assert ("singular Perron vector" in result.reason) == (cell.kind == "lstm")
    stated = float(match.group(1)) if match else _moments.BRACKET_WIDTH
    assert abs(result.rate - reference) <= min(stated, 1e-4)
