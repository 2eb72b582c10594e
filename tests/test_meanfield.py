import numpy as np
import pytest

from gradflow import meanfield as mf


@pytest.mark.parametrize(
    ("sigma_w", "q", "chi"), [(1.5, 0.7934, 1.1393), (2.0, 2.1215, 1.3627), (3.0, 6.3054, 1.8599)]
)
def test_tanh_reference_values(sigma_w, q, chi):
    # docs/theory.md section 3 (Poole et al. 2016)
    assert mf.q_star(sigma_w) == pytest.approx(q, abs=1e-3)
    assert mf.chi1(sigma_w) == pytest.approx(chi, abs=1e-3)


@pytest.mark.parametrize(
    ("bias_var", "critical_w2"), [(0.01, 1.424), (0.05, 1.761), (0.1, 1.986), (0.3, 2.505), (1.0, 3.443)]
)
def test_tanh_critical_line(bias_var, critical_w2):
    assert mf.critical_gain(bias_var=bias_var) ** 2 == pytest.approx(critical_w2, abs=1e-3)
    assert mf.chi1(mf.critical_gain(bias_var=bias_var), bias_var=bias_var) == pytest.approx(1, abs=1e-9)


def test_closed_forms():
    assert mf.critical_gain(activation="relu") ** 2 == pytest.approx(2.0, abs=1e-12)
    assert mf.chi1(1.2, activation="relu") == pytest.approx(0.72)
    assert mf.q_star(1.0, input_var=0.5, activation="relu") == pytest.approx(1.0)  # 0.5 / (1 - 1/2)
    assert mf.q_star(1.5, input_var=0.5, activation="relu") == np.inf
    assert mf.q_star(0.8, input_var=0.36, activation="linear") == pytest.approx(1.0)
    for w in (0.3, 0.7, 1.0):  # below the edge: q* = 0 and chi_1 = sigma_w^2 phi'(0)^2
        assert mf.q_star(w) == 0.0
        assert mf.chi1(w) == pytest.approx(w**2)
    assert mf.rate(0.5) == pytest.approx(np.log(0.5))
    assert mf.depth_scale(0.5) == pytest.approx(-1 / np.log(0.25))


def test_logistic_units_need_gain_four():
    # Hochreiter (1991): logistic error flow decays whenever |w| < 4; phi'(0) = 1/4.
    assert mf.critical_gain(activation="sigmoid") > 4.0
    assert mf.chi1(4.0, activation="sigmoid") < 1.0


@pytest.mark.parametrize("q", [0.05, 0.8, 3.0])
def test_quadrature_agrees_with_gauss_hermite_where_that_is_accurate(q):
    z, w = np.polynomial.hermite_e.hermegauss(300)
    w = w / w.sum()
    for f in (lambda u: np.tanh(u) ** 2, lambda u: 1 / np.cosh(u) ** 4):
        assert mf.gaussian_expectation(f, q) == pytest.approx(np.sum(w * f(np.sqrt(q) * z)), rel=1e-9)


def test_large_q_is_accurate_where_fixed_nodes_fail():
    # sigma_w = 5: the sech^4 spike is narrow against sqrt(q*); compare a fine trapezoid rule.
    q = mf.q_star(5.0)
    u = np.linspace(-12 * np.sqrt(q), 12 * np.sqrt(q), 2_000_001)
    dens = np.exp(-0.5 * u**2 / q) / np.sqrt(2 * np.pi * q)
    reference = np.trapezoid(dens / np.cosh(u) ** 4, u)
    assert mf.gaussian_expectation(lambda v: 1 / np.cosh(v) ** 4, q) == pytest.approx(reference, rel=1e-8)


def test_input_drive_suppresses_chaos():
    # docs/theory.md: with input drive the effective gain falls (Molgedey 1992; Rajan et al. 2010)
    assert mf.chi1(2.0) > 1 > mf.chi1(2.0, input_var=4.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mf.q_star(-1.0), "sigma_w must be a finite number >= 0.0; got -1.0"),
        (lambda: mf.chi1(1.0, bias_var=np.nan), "bias_var must be a finite number"),
        (lambda: mf.chi1(1.0, activation="gelu"), "unknown activation 'gelu'"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
