"""The associative scan against the sequential loop, and the scanned forward pass of linear cells."""

import autograd.numpy as anp
import numpy as np
import pytest

import gradflow as gf
from gradflow.engine import diagonal_coefficients


def loop(a, b, h0):
    """The recurrence as written, one step at a time."""
    h, out = h0, []
    for a_t, b_t in zip(np.broadcast_to(a, b.shape), b, strict=True):
        h = a_t * h + b_t
        out.append(h)
    return np.stack(out)


def rel_err(x, ref):
    return np.max(np.abs(x - ref)) / np.max(np.abs(ref))


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 64, 1000, 10_000])
@pytest.mark.parametrize("dtype", ["real", "complex"])
def test_scan_equals_loop(steps, dtype):
    rng = np.random.default_rng(steps)
    shape = (steps, 2, 3)
    # |a| up to 1, many close to it: long memories are where rounding could pile up.
    mod = 1.0 - rng.uniform(0, 1, shape) ** 4
    a = mod * (
        np.exp(1j * rng.uniform(-np.pi, np.pi, shape)) if dtype == "complex" else rng.choice([-1, 1], shape)
    )
    b = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if dtype == "complex" else 0)
    h0 = rng.standard_normal((2, 3))
    got = gf.associative_scan(a, b, h0)
    assert got.shape == shape
    assert np.iscomplexobj(got) == (dtype == "complex")
    assert rel_err(got, loop(a, b, h0)) < 1e-12


def test_scan_unit_modulus_and_broadcast_coefficients():
    # |a| = 1 exactly for 10,000 steps: products never shrink, nothing overflows or underflows.
    rng = np.random.default_rng(1)
    a = np.exp(1j * np.array([0.1, -2.0, np.pi]))  # shape (n,), broadcast over time and batch
    b = rng.standard_normal((10_000, 4, 3))
    got = gf.associative_scan(a, b)
    assert np.all(np.isfinite(got))
    assert rel_err(got, loop(a, b, np.zeros((4, 3)))) < 1e-12


def test_scan_underflow_is_harmless():
    # Products of |a| = 0.5 underflow to exactly 0 within 1075 steps; the loop agrees.
    b = np.random.default_rng(2).standard_normal((5000, 1, 2))
    got = gf.associative_scan(np.full((5000, 1, 2), -0.5), b, h0=np.array([1e300, -1e300]))
    assert rel_err(got, loop(-0.5, b, np.array([1e300, -1e300]))) < 1e-12


def test_scan_growing_products_raise():
    # |a| = 2 with b = 0: the true states are 0, but 2^2048 overflows and inf * 0 is NaN.
    with pytest.raises(FloatingPointError, match=r"\|a\| > 1.*gf.unroll"):
        gf.associative_scan(np.full((2048, 1, 1), 2.0), np.zeros((2048, 1, 1)))
    # Moderate growth stays exact.
    b = np.random.default_rng(3).standard_normal((300, 1, 2))
    assert rel_err(gf.associative_scan(1.5, b), loop(1.5, b, np.zeros((1, 2)))) < 1e-12


def test_scan_depth():
    assert [gf.scan_depth(n) for n in (1, 2, 3, 4, 5, 8, 9, 10_000)] == [0, 1, 2, 2, 3, 3, 4, 14]
    for bad in (0, -3, 2.0, True, "8"):
        with pytest.raises(ValueError, match="seq_len must be an integer"):
            gf.scan_depth(bad)


@pytest.mark.parametrize(
    ("a", "b", "h0", "message"),
    [
        (np.ones((3, 1, 2)), np.ones((3, 2)), None, r"b must have shape \(T, batch, n\)"),
        (np.ones((3, 1, 2)), np.ones((0, 1, 2)), None, "no empty axis"),
        (np.ones((4, 1, 2)), np.ones((3, 1, 2)), None, "a must have b's shape"),
        (np.full((3, 1, 2), np.nan), np.ones((3, 1, 2)), None, "a contains non-finite"),
        (np.ones((3, 1, 2)), np.ones((3, 1, 2)), np.ones(3), "h0 must have shape"),
        (np.ones((3, 1, 2)), np.array([["x"]]), None, "b must be a real or complex numeric array"),
    ],
)
def test_scan_bad_input(a, b, h0, message):
    with pytest.raises(ValueError, match=message):
        gf.associative_scan(a, b, h0)


def gated_diagonal_cell(n=4, d=3, seed=0):
    """A diagonal linear cell with input-dependent decay (minGRU-like): a_t = sigmoid(W_a x_t)."""
    rng = np.random.default_rng(seed)

    def step(p, h, x):
        a = 1.0 / (1.0 + anp.exp(-(x @ p["W_a"].T + p["bias_a"])))
        return a * h + x @ p["W_b"].T

    params = {"W_a": rng.normal(size=(n, d)), "bias_a": np.full(n, 3.0), "W_b": rng.normal(size=(n, d))}
    return gf.Cell(step, params, n, d, config={"linear": True}, name="gated-diagonal")


def test_cell_scan_equals_unroll():
    cell = gated_diagonal_cell()
    xs = gf.inputs.gaussian(2000, 3, 3, seed=4)
    h0 = np.random.default_rng(5).standard_normal(4)
    ref = gf.unroll(cell, xs, h0=h0)
    got = gf.scan(cell, xs, h0=h0)
    assert got.shape == ref.shape
    assert rel_err(got, ref) < 1e-12
    a, b = diagonal_coefficients(cell, xs)  # exact coefficients: the step at h = 0 and its derivative
    assert a.shape == b.shape == (2000, 3, 4)
    assert np.all((a > 0) & (a < 1))


def test_cell_scan_refuses_nonlinear_cells():
    xs = gf.inputs.gaussian(10, 2, 3)
    with pytest.raises(ValueError, match="not declared linear"):
        gf.scan(gf.rnn(4, 3), xs)
    rng = np.random.default_rng(0)

    def dense(p, h, x):  # linear, but not diagonal: no elementwise scan
        return h @ p["W"].T + x

    cell = gf.Cell(dense, {"W": rng.normal(size=(3, 3))}, 3, 3, config={"linear": True}, name="dense")
    with pytest.raises(ValueError, match="not elementwise affine"):
        gf.scan(cell, xs[..., :3])


def test_diagonal_rate_constant_and_input_dependent():
    def step(p, h, x):
        return p["lam"] * h + x

    lam = np.array([0.5, -0.97, 0.9])
    cell = gf.Cell(step, {"lam": lam}, 3, 3, config={"linear": True})
    xs = gf.inputs.gaussian(600, 2, 3, seed=0)
    assert gf.diagonal_rate(cell, xs) == pytest.approx(np.log(0.97), rel=1e-14)
    assert gf.gradient_flow(cell, xs).rate == pytest.approx(np.log(0.97), abs=1e-4)
    # Input-dependent decay: the mean log|a_t| along the trajectory, one unit, many samples.
    gated = gated_diagonal_cell(n=1, d=3, seed=1)
    xs = gf.inputs.gaussian(400, 64, 3, seed=2)
    a, _ = diagonal_coefficients(gated, xs)
    assert gf.diagonal_rate(gated, xs) == pytest.approx(np.mean(np.log(a)), rel=1e-12)
    flow = gf.gradient_flow(gated, xs, fit_from=1)
    assert flow.rate == pytest.approx(gf.diagonal_rate(gated, xs), abs=4 * flow.fit.stderr + 1e-3)


def test_scanned_recurrence_depth_and_paths():
    def step(p, h, x):
        return p["lam"] * h + x

    cell = gf.Cell(step, {"lam": [0.9, 0.5]}, 2, 2, config={"linear": True})
    for n in (1, 2, 7, 64, 100, 1000):
        p = gf.path_lengths(gf.recurrent(cell, scan=True), n)
        assert p.sequential_depth == 1 + gf.scan_depth(n)  # the input map, then the rounds
        # x_t reaches y_{n-1} through one hop per set bit of the lag n - 1 - t (plus the input map).
        lags = n - 1 - np.arange(n)
        assert np.array_equal(p.hops, 1 + np.array([bin(k).count("1") for k in lags]))
        assert p.covered
        assert gf.path_lengths(gf.recurrent(cell), n).sequential_depth == n
    with pytest.raises(ValueError, match="scan=True needs one layer of a cell linear"):
        gf.recurrent(gf.rnn(4, 2), scan=True)
    with pytest.raises(ValueError, match="scan must be True or False"):
        gf.recurrent(cell, scan="yes")


def test_complex_state_cell_scan_and_rate():
    # A complex diagonal recurrence held as [Re h, Im h] (the LRU's layout, config["complex"]).
    from gradflow.measure import diagonal_cell

    lam = np.array([0.97 * np.exp(0.3j), 0.6 * np.exp(-2.0j), 0.9 + 0j])
    cell = diagonal_cell(lam)
    xs = gf.inputs.gaussian(2000, 2, 3, seed=6)
    h0 = np.random.default_rng(7).standard_normal(6)
    assert rel_err(gf.scan(cell, xs, h0=h0), gf.unroll(cell, xs, h0=h0)) < 1e-12
    a, _ = diagonal_coefficients(cell, xs)
    assert a.shape == (2000, 2, 3) and np.allclose(a, lam, rtol=0, atol=1e-15)
    assert gf.diagonal_rate(cell, xs) == pytest.approx(np.log(0.97), rel=1e-14)
    assert gf.gradient_flow(cell, xs[:400]).rate == pytest.approx(np.log(0.97), abs=1e-3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gf.lru(6, 3, r_min=0.9, r_max=0.999, seed=0),
        lambda: gf.s4d(4, 3, seed=1),
        lambda: gf.mingru(5, 3, seed=2),
        lambda: gf.minlstm(5, 3, seed=3),
        lambda: gf.mamba(3, d_state=2, d_conv=4, seed=4),
    ],
    ids=["lru", "s4d", "mingru", "minlstm", "mamba"],
)
def test_builtin_linear_cells_scan_equals_unroll(make):
    cell = make()
    xs = gf.inputs.gaussian(300, 2, cell.input_size, seed=5)
    h0 = 0.5 * np.random.default_rng(6).standard_normal(cell.state_size)  # Mamba: a non-zero conv buffer too
    assert rel_err(gf.scan(cell, xs, h0=h0), gf.unroll(cell, xs, h0=h0)) < 1e-12


def test_diagonal_rate_is_the_measured_rate_of_builtin_cells():
    lru = gf.lru(4, 2, r_min=0.8, r_max=0.99, seed=0)
    p = lru.params
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))  # Orvieto et al.'s parametrisation
    xs = gf.inputs.gaussian(800, 2, 2, seed=5)
    assert gf.diagonal_rate(lru, xs) == pytest.approx(np.log(np.abs(lam)).max(), rel=1e-12)
    assert gf.gradient_flow(lru, xs).rate == pytest.approx(gf.diagonal_rate(lru, xs), abs=1e-4)
    s4d = gf.s4d(4, 2, seed=1)
    assert gf.gradient_flow(s4d, xs).rate == pytest.approx(gf.diagonal_rate(s4d, xs), abs=1e-4)
    with pytest.raises(ValueError, match="not declared linear"):
        gf.diagonal_rate(gf.slstm(4, 2), xs)
