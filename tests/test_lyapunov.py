import html
import warnings

import autograd.numpy as anp
import matplotlib
import numpy as np
import pytest

import gradflow as gf
from gradflow import meanfield as mf
from gradflow.measure import _qr
from gradflow.measure._singular_values import ConvergenceWarning

matplotlib.use("Agg")


def henon(s):
    x, y = s[..., 0], s[..., 1]
    return anp.stack([1 - 1.4 * x**2 + y, 0.3 * x], axis=-1)


def test_henon_map_published_exponents():
    spec = gf.lyapunov_spectrum(henon, x0=[0.1, 0.1], seq_len=30_000)
    np.testing.assert_allclose(spec.exponents, [0.419, -1.623], atol=0.005)
    assert spec.exponents.sum() == pytest.approx(np.log(0.3), rel=1e-10)  # |det J| = 0.3 always
    assert spec.kaplan_yorke_dimension == pytest.approx(1 + spec.exponents[0] / -spec.exponents[1])
    assert spec.entropy_rate == pytest.approx(spec.exponents[0])
    np.testing.assert_allclose(spec.bits, spec.exponents / np.log(2))


@pytest.mark.parametrize(
    "make",
    [
        lambda: gf.rnn(12, 3, gain=2.0, seed=1),
        lambda: gf.gru(5, 3, gain=1.5, seed=2),
        lambda: gf.lstm(4, 3, seed=3, bias_scale=0.5),
    ],
)
def test_sum_of_all_exponents_is_mean_log_det(make):
    cell = make()
    xs = gf.inputs.gaussian(400, 2, 3, seed=4)
    spec = gf.lyapunov_spectrum(cell, xs, warmup=50)
    J = gf.jacobians(cell, xs)
    _, logdet = np.linalg.slogdet(J[50:])
    assert spec.exponents.sum() == pytest.approx(logdet.mean(), rel=1e-8)
    np.testing.assert_allclose(spec.per_sample.sum(axis=1), logdet.mean(axis=0), rtol=1e-8)


def test_linear_normal_map_gives_log_moduli_of_eigenvalues():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    eig = np.array([1.3, -1.1, 0.9, 0.7, -0.5, 0.35, 0.2, 0.1])
    W = q @ np.diag(eig) @ q.T  # symmetric, hence normal
    cell = gf.rnn(8, 1, activation="linear", seed=0)
    cell.params["weight_hh_l0"][:] = W
    # h0 = 0 and no input keep the state at 0 (1.3^T would overflow); J_t = W regardless.
    spec = gf.lyapunov_spectrum(cell, gf.inputs.constant(3000, 1, 1, 0.0), warmup=300)
    np.testing.assert_allclose(spec.exponents, np.log(np.abs(eig)), atol=1e-3)


def test_orthogonal_linear_map_has_zero_exponents():
    cell = gf.rnn(10, 1, activation="linear", init="orthogonal", seed=3)
    spec = gf.lyapunov_spectrum(cell, gf.inputs.gaussian(300, 2, 1), warmup=10)
    np.testing.assert_allclose(spec.exponents, 0.0, atol=1e-13)


def test_few_exponents_path_agrees_with_all_exponents_path():
    cell = gf.rnn(40, 2, gain=2.5, seed=5)
    xs = gf.inputs.gaussian(1500, 1, 2, scale=0.5, seed=6)
    few = gf.lyapunov_spectrum(cell, xs, k=3, warmup=300)  # stacked JVP per step
    full = gf.lyapunov_spectrum(cell, xs, warmup=300)  # formed J_t, factored Q
    np.testing.assert_allclose(few.exponents, full.exponents[:3], atol=2e-3)


def test_rare_reorthonormalisation_agrees_and_warns_when_conditioning_is_lost():
    cell = gf.rnn(6, 1, activation="linear", seed=0)
    cell.params["weight_hh_l0"][:] = np.diag([1.2, 1.0, 0.8, 0.6, 0.4, 0.2])
    xs = gf.inputs.constant(800, 1, 1, 0.0)
    every, sparse = (gf.lyapunov_spectrum(cell, xs, warmup=100, reortho_every=r) for r in (1, 4))
    np.testing.assert_allclose(sparse.exponents, every.exponents, atol=1e-10)
    with pytest.warns(RuntimeWarning, match="Q lost conditioning"):
        gf.lyapunov_spectrum(cell, xs, warmup=100, reortho_every=40)


@pytest.fixture
def block_lengths(monkeypatch):
    """The length of every block `Blocks` closes in the test (appended as they close)."""
    lengths = []
    close = _qr.Blocks.close

    def spy(self, t, log_r):
        lengths.append(t - self.start)
        return close(self, t, log_r)

    monkeypatch.setattr(_qr.Blocks, "close", spy)
    return lengths


@pytest.mark.parametrize(
    ("make", "k", "longest"),
    [
        (lambda: gf.rnn(32, 3, gain=1.0, seed=0), None, 2),  # formed J_t: GEMMs inside a block
        (lambda: gf.gru(10, 3, gain=1.5, seed=2), None, 4),  # formed J_t of a gated cell
        (lambda: gf.rnn(24, 3, gain=2.0, seed=0), 3, 8),  # stacked JVPs (4k < S)
    ],
)
def test_auto_blocks_agree_with_every_step_qr(block_lengths, make, k, longest):
    cell, xs = make(), gf.inputs.gaussian(600, 2, 3, scale=0.3, seed=3)
    auto = gf.lyapunov_spectrum(cell, xs, k=k, warmup=50)  # reortho_every="auto"
    assert max(block_lengths) >= longest  # blocks of many steps were used
    every = gf.lyapunov_spectrum(cell, xs, k=k, warmup=50, reortho_every=1)
    np.testing.assert_allclose(auto.per_sample, every.per_sample, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [None, 3])  # formed J_t; stacked JVPs
def test_auto_redoes_step_by_step_a_block_whose_growth_outran_the_plan(monkeypatch, k):
    # 300 quiet steps (J_t = W orthogonal: no spread, so blocks of 64 steps), then inputs that
    # saturate units: the block across the switch is far worse conditioned than planned.
    cell = gf.rnn(16, 1, init="orthogonal", gain=1.0, seed=0)
    cell.params["weight_ih_l0"][:] = np.random.default_rng(0).normal(size=(16, 1))
    xs = np.concatenate([np.zeros((300, 1, 1)), 4.0 * np.random.default_rng(1).normal(size=(500, 1, 1))])
    every = gf.lyapunov_spectrum(cell, xs, k=k, warmup=50, reortho_every=1).exponents
    auto = gf.lyapunov_spectrum(cell, xs, k=k, warmup=50).exponents
    np.testing.assert_allclose(auto[:3], every[:3], rtol=0, atol=1e-12)
    # The smallest of all 16 move by ~1e-6 with rounding alone (numpy.linalg.qr against LAPACK).
    np.testing.assert_allclose(auto, every, rtol=0, atol=1e-5)
    monkeypatch.setattr(_qr, "REDO_SPREAD", np.inf)
    monkeypatch.setattr(_qr, "REDO_SCALE", np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = gf.lyapunov_spectrum(cell, xs, k=k, warmup=50).exponents
    assert np.max(np.abs(kept - every)) > 1e-7  # what keeping that block would have cost


@pytest.mark.parametrize("k", [None, 8])  # formed J_t (GEMMs inside a block); stacked JVPs
def test_auto_blocks_have_the_same_bytes_at_any_thread_count(block_lengths, k):
    # Near-orthogonal and barely driven: exponents close together, blocks of 32 steps and more.
    cell = gf.rnn(96, 4, init="orthogonal", gain=1.0, seed=0)
    xs = gf.inputs.gaussian(100, 1, 4, scale=0.1, seed=1)
    spectra = []
    for threads in (1, 2):
        previous = gf.set_blas_threads(threads)
        try:
            spectra.append(gf.lyapunov_spectrum(cell, xs, k=k, warmup=30).per_sample)
        finally:
            gf.set_blas_threads(previous)
    assert max(block_lengths) >= 32
    np.testing.assert_array_equal(spectra[0], spectra[1])


def test_auto_blocks_of_formed_jacobians_keep_at_most_their_memory_budget(monkeypatch, block_lengths):
    monkeypatch.setattr(_qr, "KEPT_BYTES", 3 * 8 * 32 * 32)  # three J_t of 32 x 32 kept for a redo
    cell = gf.rnn(32, 4, init="orthogonal", gain=1.0, seed=0)
    xs = gf.inputs.gaussian(100, 1, 4, scale=0.1, seed=1)
    auto = gf.lyapunov_spectrum(cell, xs, warmup=30)
    assert max(block_lengths) == 4
    every = gf.lyapunov_spectrum(cell, xs, warmup=30, reortho_every=1)
    np.testing.assert_allclose(auto.per_sample, every.per_sample, rtol=0, atol=1e-12)


@pytest.mark.parametrize("every", [8, "auto"])
def test_blocks_end_at_the_warmup_and_at_the_last_step(every):
    # 101 and 803 are not multiples of 8: a block straddling the warm-up, or steps after the last
    # full block, would move the exponents by ~1e-3 from ln|eig|.
    cell = gf.rnn(6, 1, activation="linear", seed=0)
    cell.params["weight_hh_l0"][:] = np.diag([1.2, 1.0, 0.8, 0.6, 0.4, 0.2])
    spec = gf.lyapunov_spectrum(cell, gf.inputs.constant(803, 1, 1, 0.0), warmup=101, reortho_every=every)
    np.testing.assert_allclose(spec.exponents, np.log([1.2, 1.0, 0.8, 0.6, 0.4, 0.2]), rtol=0, atol=1e-10)
    assert spec.steps == 702


@pytest.mark.parametrize(("gain", "k"), [(1e6, None), (1e-6, None), (1e6, 2), (1e-6, 2)])
def test_auto_blocks_neither_overflow_nor_underflow(gain, k):
    # Every direction grows (or shrinks) by exactly the gain: no spread, so only the product's
    # scale (1e+-100 at most) stops a block; 64 steps of 1e6 would overflow float64.
    cell = gf.rnn(8, 1, activation="linear", init="orthogonal", gain=gain, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = gf.lyapunov_spectrum(cell, gf.inputs.constant(400, 1, 1, 0.0), k=k, warmup=0)
    np.testing.assert_allclose(spec.exponents, np.log(gain), rtol=1e-12)


@pytest.mark.parametrize("g", [0.3, 3.0])
def test_auto_blocks_over_ten_thousand_steps_agree_with_every_step(g):
    cell, xs = gf.rnn(16, 2, gain=g, seed=0), gf.inputs.gaussian(10_000, 1, 2)
    auto = gf.lyapunov_spectrum(cell, xs, k=4)
    every = gf.lyapunov_spectrum(cell, xs, k=4, reortho_every=1)
    assert np.all(np.isfinite(auto.exponents))
    np.testing.assert_allclose(auto.exponents, every.exponents, rtol=0, atol=1e-12)


@pytest.mark.parametrize("g", [1.5, 2.0, 3.0, 5.0])
def test_autonomous_tanh_network_top_exponent_matches_mean_field(g):
    # docs/theory.md: N = 1000 simulations sit within ~0.01 of mean field away from g = 1.
    cell = gf.rnn(1000, 1, gain=g, seed=0)
    h0 = np.random.default_rng(1).normal(size=(2, 1000))
    spec = gf.lyapunov_spectrum(cell, gf.inputs.constant(900, 2, 1, 0.0), h0=h0, k=1, warmup=300)
    assert spec.top == pytest.approx(mf.rate(g), abs=0.02)


def test_contracting_network_top_exponent_is_log_spectral_radius():
    cell = gf.rnn(1000, 1, gain=0.5, seed=0)
    h0 = np.random.default_rng(1).normal(size=(2, 1000))
    spec = gf.lyapunov_spectrum(cell, gf.inputs.constant(900, 2, 1, 0.0), h0=h0, k=1, warmup=300)
    rho = np.max(np.abs(np.linalg.eigvals(cell.params["weight_hh_l0"])))
    assert spec.top == pytest.approx(np.log(rho), abs=0.01)


def test_long_runs_stay_finite_in_either_regime():
    for g in (0.3, 3.0):
        spec = gf.lyapunov_spectrum(gf.rnn(16, 2, gain=g, seed=0), gf.inputs.gaussian(10_000, 1, 2), k=4)
        assert np.all(np.isfinite(spec.exponents))


def test_result_object_reports_and_plots():
    spec = gf.lyapunov_spectrum(henon, x0=[0.1, 0.1], seq_len=2000)
    assert repr(spec).startswith("LyapunovSpectrum(system='henon', k=2, exponents=[+0.4")
    page = spec._repr_html_()
    assert "Kaplan-Yorke" in page and len(page) < 100_000
    df = spec.to_frame()
    assert list(df.columns) == ["index", "sample", "exponent", "exponent_bits"]
    ax = spec.plot()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), spec.exponents)
    ax = spec.plot(kind="trace")
    np.testing.assert_allclose(ax.lines[0].get_ydata()[-1], spec.exponents[0])
    matplotlib.pyplot.close("all")
    evil = gf.Cell(lambda p, h, x: 0.5 * h, {}, 2, 1, name="<i>x</i>")
    assert (
        "<i>x</i>"
        not in gf.lyapunov_spectrum(evil, gf.inputs.constant(20, 1, 1, 0.0), warmup=2)._repr_html_()
    )
    assert (
        html.escape("<i>x</i>")
        in gf.lyapunov_spectrum(evil, gf.inputs.constant(20, 1, 1, 0.0), warmup=2)._repr_html_()
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: gf.lyapunov_spectrum(gf.rnn(4, 1), gf.inputs.gaussian(10, 1, 1), warmup=10),
            "warmup must be shorter",
        ),
        (
            lambda: gf.lyapunov_spectrum(gf.rnn(4, 1), gf.inputs.gaussian(10, 1, 1), k=5, warmup=1),
            "k must be at most the state size 4",
        ),
        (lambda: gf.lyapunov_spectrum(gf.rnn(4, 1)), "xs is required"),
        (lambda: gf.lyapunov_spectrum(henon, seq_len=10), "a map needs x0"),
        (lambda: gf.lyapunov_spectrum(henon, x0=[1.0, np.nan], seq_len=10), "x0 contains non-finite"),
        (lambda: gf.lyapunov_spectrum(42), "cell must be a Cell or a callable map"),
        (
            lambda: gf.lyapunov_spectrum(gf.rnn(4, 1), gf.inputs.gaussian(10, 1, 1), reortho_every="fast"),
            "reortho_every must be a positive integer or 'auto'; got 'fast'",
        ),
        (
            lambda: gf.lyapunov_spectrum(lambda s: s[0], x0=[0.1, 0.2], seq_len=10),
            r"step\('<lambda>'\) failed|must return the next state",
        ),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    "make",
    [
        lambda: gf.rnn(6, 2, gain=2.0, seed=1),
        lambda: gf.lstm(3, 2, seed=2),
        lambda: gf.gru(4, 2, layers=2, seed=3),
    ],
)
def test_finite_time_singular_values_match_numpy_svd_of_the_product(make):
    cell = make()
    xs = gf.inputs.gaussian(25, 2, 2, seed=5)
    J = gf.jacobians(cell, xs)
    k = min(4, cell.state_size)
    sv = gf.finite_time_singular_values(cell, xs, k=k)
    for b in range(2):
        P = np.eye(cell.state_size)
        for t in range(25):
            P = J[t, b] @ P
        expected = np.log(np.linalg.svd(P, compute_uv=False)[:k])
        # numpy's SVD of the formed product resolves sigma_i only down to ~1e-16 sigma_1.
        resolved = expected > expected[0] - 20
        np.testing.assert_allclose(sv.log_values[b][resolved], expected[resolved], atol=1e-8)
    assert sv.change <= 1e-10 and sv.sweeps < 40


def test_one_forward_sweep_is_not_enough_but_refinement_converges():
    cell = gf.rnn(8, 2, gain=1.5, seed=4)
    xs = gf.inputs.gaussian(40, 1, 2, seed=1)
    J = gf.jacobians(cell, xs)
    P = np.linalg.multi_dot([J[t, 0] for t in range(39, -1, -1)])
    exact = np.log(np.linalg.svd(P, compute_uv=False)[:3])
    with pytest.warns(ConvergenceWarning):  # one sweep cannot judge its own convergence
        once = gf.finite_time_singular_values(cell, xs, k=3, max_sweeps=1).log_values[0]
    refined = gf.finite_time_singular_values(cell, xs, k=3).log_values[0]
    assert np.max(np.abs(once - exact)) > 1e-3
    np.testing.assert_allclose(refined, exact, atol=1e-8)


@pytest.mark.parametrize("gain", [0.3, 3.0])
def test_singular_values_at_ten_thousand_steps_are_finite(gain):
    cell = gf.rnn(12, 2, gain=gain, seed=0)
    xs = gf.inputs.gaussian(10_000, 1, 2, scale=0.1, seed=2)
    with warnings.catch_warnings():  # three sweeps are enough for what is checked here
        warnings.simplefilter("ignore", ConvergenceWarning)
        sv = gf.finite_time_singular_values(cell, xs, k=2, max_sweeps=3)
    assert np.all(np.isfinite(sv.log_values)) and abs(sv.log_values[0, 0]) > 745  # beyond float64
    top = gf.lyapunov_spectrum(cell, xs, k=1, warmup=0).exponents[0]
    assert sv.log_values[0, 0] / 10_000 == pytest.approx(top, abs=0.01)
