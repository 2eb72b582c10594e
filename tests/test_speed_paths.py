"""The fast paths of issue 16 against the generic computations they replace (same numbers)."""

import numpy as np
import pytest
from test_engine import CELLS

import gradflow as gf
from gradflow.engine import _engine, _reverse


@pytest.mark.parametrize("name", CELLS)
def test_closed_form_jacobians_equal_the_traced_ones(name):
    cell = CELLS[name]()
    xs = gf.inputs.gaussian(7, 3, cell.input_size, scale=2.0, seed=11)
    states = gf.unroll(cell, xs, h0=np.random.default_rng(0).normal(size=cell.state_size))
    traced = _engine.jacobian_products(
        cell, xs, np.eye(cell.state_size), h0=states[0], side="left", states=states
    )
    fast = gf.jacobians(cell, xs, h0=states[0], states=states)
    expected_kind = None if "2layer" in name else name.split("-")[0]
    assert _engine.closed_form_kind(cell) == expected_kind
    np.testing.assert_allclose(fast, traced, rtol=0, atol=1e-13 * np.max(np.abs(traced)))


def test_a_custom_cell_named_like_a_builtin_takes_the_traced_path():
    import autograd.numpy as anp

    cell = gf.Cell(lambda p, h, x: anp.sin(h @ p["W"].T), {"W": np.eye(3) * 0.7}, 3, 1, kind="rnn")
    assert _engine.closed_form_kind(cell) is None
    h = np.full((1, 3), 0.4)
    np.testing.assert_allclose(
        gf.jacobians(cell, np.zeros((1, 1, 1)), h0=h)[0, 0], 0.7 * np.diag(np.cos(0.7 * 0.4 * np.ones(3)))
    )


def _textbook_exponents(cell, xs, warmup, k, seed=0):
    """numpy.linalg.qr + matmul on per-step Jacobians: the reference QR loop, nothing shared."""
    J = gf.jacobians(cell, xs)[:, 0]
    Q = _lyapunov_initial_block(seed, cell.state_size, k)
    logs = []
    for Jt in J:
        Q, R = np.linalg.qr(Jt @ Q)
        d = np.diag(R)
        Q = Q * np.sign(d)
        logs.append(np.log(np.abs(d)))
    return np.sort(np.mean(logs[warmup:], axis=0))[::-1]


def _lyapunov_initial_block(seed, n, k):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((1, n, k)))
    return (q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :])[0]


@pytest.mark.parametrize(
    ("make", "k"),
    [
        (lambda: gf.rnn(24, 3, gain=2.0, seed=0), None),
        (lambda: gf.rnn(24, 3, gain=2.0, seed=0), 10),
        (lambda: gf.lstm(8, 3, seed=1), None),
        (lambda: gf.gru(10, 3, gain=1.5, seed=2), None),
        # 4k < S: the blocks path (J_t Q without forming J_t)
        (lambda: gf.rnn(24, 3, gain=2.0, seed=0), 3),
        (lambda: gf.lstm(8, 3, seed=1), 3),
        (lambda: gf.gru(10, 3, gain=1.5, seed=2), 2),
        (lambda: gf.lstm(4, 3, layers=2, seed=7), 1),
    ],
)
def test_lapack_qr_loop_equals_the_textbook_loop(make, k):
    cell = make()
    xs = gf.inputs.gaussian(150, 1, 3, seed=3)
    spec = gf.lyapunov_spectrum(cell, xs, warmup=20, k=k)
    reference = _textbook_exponents(cell, xs, 20, k or cell.state_size)
    np.testing.assert_allclose(spec.exponents, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in CELLS if "2layer" not in n])
def test_jacobian_terms_sum_to_the_jacobian(name):
    from gradflow.core._jacobians import jacobian_terms, step_jacobians

    cell = CELLS[name]()
    rng = np.random.default_rng(1)
    h, x = rng.normal(size=(5, cell.state_size)), rng.normal(size=(5, cell.input_size))
    kind, activation = _engine.closed_form_kind(cell), cell.config.get("activation")
    bases, scales = jacobian_terms(kind, cell.params, h, x, activation)
    summed = np.einsum("mks,kst->mst", scales, bases)
    traced = _engine.block_products(
        cell, h, x, np.broadcast_to(np.eye(cell.state_size), (5, cell.state_size, cell.state_size)), "right"
    )
    np.testing.assert_allclose(summed, traced, rtol=0, atol=1e-14)
    np.testing.assert_allclose(
        step_jacobians(kind, cell.params, h, x, activation), traced, rtol=0, atol=1e-14
    )


@pytest.mark.parametrize(
    ("make", "rank"),
    [
        (lambda: gf.rnn(12, 3, gain=1.5, seed=0), 96),
        (lambda: gf.rnn(12, 3, activation="relu", bias_scale=0.3), 96),
        (lambda: gf.lstm(6, 3, seed=1), 96),
        (lambda: gf.gru(8, 3, gain=2.0, seed=2), 96),
        (lambda: gf.lstm(10, 3, seed=1), 8),
        (lambda: gf.gru(16, 3, seed=2), 8),
    ],
)
def test_structured_moment_map_equals_the_generic_one(monkeypatch, make, rank):
    from gradflow.prediction import _moments, _predict

    cell = make()
    xs = gf.inputs.gaussian(80, 2, 3, seed=1)
    states, window, _, _ = _predict.forward_run(cell, xs, np.zeros((2, cell.state_size)))

    def rate():  # every window step on both paths (the formed one samples FORMED_ROWS by default)
        rows = window.stop - window.start
        return _predict.moment_map(
            cell, xs, states, window, np.random.default_rng(0), 0.01, rows=rows, rank=rank
        ).rate

    monkeypatch.setattr(_moments, "CERTIFIED_WIDTH", -1.0)  # float64 ARPACK only: products compared to 1e-12
    fast = rate()  # the structured map is solved exactly (ARPACK) whatever the rank
    monkeypatch.setattr(_moments, "moment_terms", lambda *args: None)  # the mean over formed J_t
    rank = max(rank, cell.state_size)  # the formed map exactly too, not on a rank-limited factor
    assert fast == pytest.approx(rate(), abs=1e-12)


@pytest.mark.parametrize(
    "make",
    [lambda: gf.rnn(7, 3, gain=1.4, seed=2), lambda: gf.lstm(5, 3, seed=4), lambda: gf.gru(6, 3, seed=5)],
)
def test_the_one_step_map_averages_every_window_step_in_chunks(monkeypatch, make):
    # By default the structured one-step map is the mean over every window step and batch row:
    # against the formed mean_t J_t X J_t^T of gf.jacobians, whatever the chunking of the steps.
    from gradflow.prediction import _structure

    cell = make()
    xs = gf.inputs.gaussian(50, 3, 3, seed=6)
    states = gf.unroll(cell, xs)
    window = slice(5, 50)
    S = cell.state_size
    J = gf.jacobians(cell, xs)[window].reshape(-1, S, S)
    X = np.random.default_rng(0).standard_normal((S, S))
    X = X @ X.T
    expected = np.mean(J @ X @ np.swapaxes(J, 1, 2), axis=0)
    whole = _structure.moment_terms(cell, xs, states, window, None)(X)
    np.testing.assert_allclose(whole, expected, rtol=1e-12, atol=1e-14)
    monkeypatch.setattr(_engine, "CHUNK_BYTES", 8 * 3 * S * 8 * 4)  # four steps per chunk
    monkeypatch.setattr(_structure, "CHUNK_BYTES", 8 * 3 * S * 8 * 4)
    np.testing.assert_allclose(_structure.moment_terms(cell, xs, states, window, None)(X), whole, rtol=1e-13)
    reason = gf.predict(cell, xs, predictors=["moment map"])["moment map"].reason
    assert "over 135 step Jacobians" in reason and "every step of the window x 3 batch rows" in reason


def test_closed_form_jacobians_are_the_same_in_time_chunks(monkeypatch):
    cell = gf.gru(5, 2, seed=3)
    xs = gf.inputs.gaussian(9, 2, 2, seed=4)
    whole = gf.jacobians(cell, xs)
    monkeypatch.setattr(_engine, "CHUNK_BYTES", 8 * 2 * 5 * 5 * 2)  # two steps per chunk
    np.testing.assert_array_equal(gf.jacobians(cell, xs), whole)


@pytest.mark.parametrize("name", CELLS)
def test_closed_form_reverse_sweep_equals_the_traced_one(monkeypatch, name):
    # gradient_flow's reverse sweep without tracing (one-layer built-in cells) against the traced
    # sweep it replaces: log-norms of the state, its components and the gates by lag, in time-chunks.
    cell = CELLS[name]()
    xs = gf.inputs.gaussian(60, 3, cell.input_size, scale=1.5, seed=5)
    fast = gf.gradient_flow(cell, xs)
    monkeypatch.setattr(_reverse, "steps_per_chunk", lambda *a, **k: 7)  # several chunks, odd size
    chunked = gf.gradient_flow(cell, xs)
    monkeypatch.setattr(_reverse, "closed_form_kind", lambda c: None)
    traced = gf.gradient_flow(cell, xs)
    for got in (fast, chunked):
        np.testing.assert_allclose(got.log_norms, traced.log_norms, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.input_log_norms, traced.input_log_norms, rtol=0, atol=1e-12)
        for k in traced.components:
            np.testing.assert_allclose(got.components[k], traced.components[k], rtol=0, atol=1e-12)
        for k in traced.gates:
            np.testing.assert_allclose(got.gates[k], traced.gates[k], rtol=0, atol=1e-12)
        assert got.rate == pytest.approx(traced.rate, abs=1e-12)


PLAIN = {
    **{n: make for n, make in CELLS.items() if n.startswith("rnn")},
    "lstm": CELLS["lstm"],
    "gru": CELLS["gru"],
    # Wide enough that one product over all steps' inputs would round differently from the step's.
    "lstm-wide": lambda: gf.lstm(64, 33, seed=3, bias_scale=0.3),
    "gru-wide": lambda: gf.gru(64, 33, seed=4, bias_scale=0.3),
}


@pytest.mark.parametrize("name", PLAIN)
def test_forward_on_plain_arrays_is_the_step_byte_for_byte(name):
    # unroll runs a one-layer vanilla cell (vanilla_forward), LSTM or GRU (sequence_forward: input
    # drive step by step) without autograd's wrappers: the step's operations in its order, so the
    # same bytes (reports' CSVs do not move).
    cell = PLAIN[name]()
    assert _engine.plain_forward(cell) is not None
    xs = gf.inputs.gaussian(30, 3, cell.input_size, scale=1.5, seed=2)
    h = np.random.default_rng(1).normal(size=(3, cell.state_size))
    expected = [h]
    for x in xs:
        expected.append(h := np.asarray(cell.step(cell.params, h, x)))
    np.testing.assert_array_equal(gf.unroll(cell, xs, h0=expected[0]), np.stack(expected))


def test_stacked_cells_have_no_plain_forward():
    assert _engine.vanilla_weights(CELLS["lstm"]()) is None
    for cell in (gf.rnn(3, 2, layers=2, seed=0), CELLS["lstm-2layer"](), CELLS["gru-2layer"]()):
        assert _engine.plain_forward(cell) is None


def test_sech2_against_cosh_and_its_tail():
    # One exp, (2e / (1 + e^2))^2 with e = exp(-|a|), against 1 / cosh^2 where cosh is exact to
    # an ulp (|a| < 300), and 4 exp(-2|a|) (exact to 1e-17 relative for |a| > 20) beyond.
    from gradflow.core._activations import sech2

    a = np.concatenate([np.linspace(-30, 30, 2001), [0.0, -0.0, 1e-300, -1e-8]])
    np.testing.assert_allclose(sech2(a), 1.0 / np.cosh(a) ** 2, rtol=2e-15, atol=0)
    far = np.linspace(20, 354, 1001) * np.where(np.arange(1001) % 2, 1, -1)
    np.testing.assert_allclose(sech2(far), 4.0 * np.exp(-2.0 * np.abs(far)), rtol=2e-15, atol=0)
    # float64's subnormal tail: 4e^-2|a| is >= 2.5e-324 (rounds up to the smallest subnormal)
    # below |a| = 373.26, so it is non-zero there and exactly 0 beyond; never NaN, no overflow.
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        tail = sech2(np.array([372.0, 373.2, 373.4, 1e4, np.inf, -np.inf]))
    assert np.all(tail[:2] > 0) and np.all(tail[2:] == 0)


def test_full_spectrum_of_a_vanilla_cell_has_the_same_bytes_at_any_thread_count():
    # Its J_t come from the forward's pre-activations (one row at a time), not from a batched
    # product whose rounding follows how BLAS splits it over threads.
    cell = gf.rnn(96, 4, gain=2.0, seed=0)
    xs = gf.inputs.gaussian(150, 2, 4, seed=1)
    spectra = []
    for threads in (1, 2):
        previous = gf.set_blas_threads(threads)
        try:
            spectra.append(gf.lyapunov_spectrum(cell, xs, warmup=30).per_sample)
        finally:
            gf.set_blas_threads(previous)
    np.testing.assert_array_equal(spectra[0], spectra[1])


@pytest.mark.parametrize("name", ["rnn-tanh", "rnn-relu", "lstm", "gru", "lstm-2layer"])
def test_fixed_points_on_plain_arrays_are_the_steps(name, monkeypatch):
    # The search's residuals run the step on plain arrays (array_step): the same points, residuals
    # and eigenvalues, byte for byte, as through the autograd-wrapped step.
    from gradflow.prediction import _spectral

    cell = CELLS[name]()
    starts = np.vstack(
        [np.zeros(cell.state_size), np.random.default_rng(3).uniform(-1, 1, (4, cell.state_size))]
    )
    x = np.full(cell.input_size, 0.3)
    h, xr = starts[1:3], np.tile(x, (2, 1))
    np.testing.assert_array_equal(_engine.array_step(cell)(h, xr), np.asarray(cell.step(cell.params, h, xr)))
    fast = _spectral.fixed_points(cell, x, starts)
    monkeypatch.setattr(_spectral, "array_step", lambda c: lambda h, x: np.asarray(c.step(c.params, h, x)))
    slow = _spectral.fixed_points(cell, x, starts)
    assert len(fast) == len(slow) > 0
    for a, b in zip(fast, slow, strict=True):
        assert a.residual == b.residual
        np.testing.assert_array_equal(a.state, b.state)
        np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)


@pytest.mark.parametrize("make", [lambda: gf.rnn(12, 2, gain=0.9, seed=0), lambda: gf.lstm(6, 2, seed=0)])
def test_a_fixed_point_at_the_origin_reuses_the_eigenvalue_rules_decomposition(make, monkeypatch):
    # Without input and biases the origin is a fixed point whose Jacobian is the eigenvalue rule's
    # matrix (W_hh, or the step Jacobian at the origin): one eigendecomposition, the same results.
    import scipy.linalg

    cell = make()
    alone = {
        n: gf.predict(cell, input_std=1.0, predictors=[n])[n] for n in ("eigenvalue rule", "fixed point")
    }
    calls = []
    eigvals = scipy.linalg.eigvals
    monkeypatch.setattr(scipy.linalg, "eigvals", lambda A: calls.append(A.shape) or eigvals(A))
    both = gf.predict(cell, input_std=1.0, predictors=list(alone))
    assert calls == [(cell.state_size, cell.state_size)]
    for name, result in alone.items():
        assert both[name] == result and "1 stable" in both["fixed point"].reason
