"""The linear-recurrence and state-space cells against independent transcriptions.

Each reference below is written from the papers' / reference code's equations in plain
(complex) numpy, not with the cells' code: the forward pass, and the gradient of a loss
``u . state_T`` carried back by the transcription's own explicit Jacobians, lag by lag.
"""

import pickle

import numpy as np
import pytest
import scipy.linalg

import gradflow as gf
from gradflow import _lru, _mingru, _ssm

TOL = 1e-10


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _flow_errors(cell, xs, u, reference_log_norms):
    """Max |log-norm error| of gf.gradient_flow for the loss ``state_T @ u``."""
    flow = gf.gradient_flow(cell, xs, loss=lambda h: h @ u)
    return np.max(np.abs(flow.log_norms - reference_log_norms))


def _unit(rng, n):
    u = rng.standard_normal(n)
    return u / np.linalg.norm(u)


# ---------------------------------------------------------------------------- LRU


def _lru_reference(p, xs):
    """Orvieto et al.'s LRU in complex numpy: every complex state, shape (T + 1, batch, N)."""
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    b_norm = (p["B_re"] + 1j * p["B_im"]) * np.exp(p["gamma_log"])[:, None]
    h = np.zeros((xs.shape[1], lam.size), complex)
    out = [h]
    for x in xs:
        h = lam * h + x @ b_norm.T
        out.append(h)
    return lam, np.array(out)


def test_lru_matches_the_reference_forward_outputs_and_gradient_by_lag():
    cell = gf.lru(6, 3, r_min=0.5, r_max=0.99, seed=3)
    xs = gf.inputs.gaussian(40, 2, 3, seed=1)
    lam, h = _lru_reference(cell.params, xs)
    states = gf.unroll(cell, xs)
    assert np.max(np.abs(states - np.concatenate([h.real, h.imag], axis=-1))) < TOL
    p = cell.params
    y = (h[1:] @ (p["C_re"] + 1j * p["C_im"]).T).real + p["D"] * xs
    assert np.max(np.abs(_lru.outputs(cell, xs) - y)) < TOL
    # Loss u . [Re h_T, Im h_T] = Re(conj(g) h_T) with g = u_re + i u_im; one step back
    # through h -> lambda h maps g to conj(lambda) g, and the real gradient's norm is |g|.
    u = _unit(np.random.default_rng(0), 12)
    g = u[:6] + 1j * u[6:]
    ref = np.log([np.linalg.norm(np.conj(lam) ** k * g) for k in range(41)])
    assert _flow_errors(cell, xs, u, ref[:, None]) < TOL


def test_lru_initialisation_is_the_reference_ring_and_normalisation():
    cell = gf.lru(200, 2, r_min=0.4, r_max=0.9, max_phase=np.pi / 10, seed=0)
    lam = _lru.eigenvalues(cell.params)
    assert np.all((np.abs(lam) >= 0.4) & (np.abs(lam) <= 0.9))
    assert np.all((np.angle(lam) >= 0) & (np.angle(lam) <= np.pi / 10))
    assert np.allclose(np.exp(cell.params["gamma_log"]), np.sqrt(1 - np.abs(lam) ** 2), atol=1e-14)
    # Uniform on the ring: |lambda|^2 is uniform on [r_min^2, r_max^2], so its mean is the midpoint.
    assert abs(np.mean(np.abs(lam) ** 2) - (0.4**2 + 0.9**2) / 2) < 0.05
    assert gf.lru(4, 2, seed=5).params.keys() == set(_lru.PARAM_SHAPES)
    again = gf.lru(4, 2, seed=5)
    assert all(np.array_equal(again.params[k], gf.lru(4, 2, seed=5).params[k]) for k in again.params)


def test_lru_from_arrays_round_trip_and_bad_input():
    cell = gf.lru(5, 2, seed=2)
    xs = gf.inputs.gaussian(7, 1, 2)
    loaded = gf.lru_from_arrays({k: v.tolist() for k, v in cell.params.items()}, name="mine")
    assert loaded.name == "mine" and np.array_equal(gf.unroll(loaded, xs), gf.unroll(cell, xs))
    with pytest.raises(ValueError, match=r"missing \['D'\]"):
        gf.lru_from_arrays({k: v for k, v in cell.params.items() if k != "D"})
    with pytest.raises(ValueError, match=r"'C_re'.*shape \(2, 5\)"):
        gf.lru_from_arrays({**cell.params, "C_re": np.zeros((5, 2))})
    with pytest.raises(ValueError, match="r_max"):
        gf.lru(4, 2, r_min=0.5, r_max=1.5)
    with pytest.raises(ValueError, match="max_phase"):
        gf.lru(4, 2, max_phase=0.0)


def test_lru_against_torch_autograd():
    torch = pytest.importorskip("torch")
    cell = gf.lru(4, 3, r_min=0.8, r_max=0.999, seed=7)
    xs = gf.inputs.gaussian(30, 2, 3, seed=2)
    u = _unit(np.random.default_rng(1), 8)
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in cell.params.items()}
    lam = torch.exp(-torch.exp(p["nu_log"]) + 1j * torch.exp(p["theta_log"]))
    b_norm = torch.complex(p["B_re"], p["B_im"]) * torch.exp(p["gamma_log"])[:, None]
    real = torch.zeros(2, 8, dtype=torch.float64, requires_grad=True)
    states = []
    for x in torch.tensor(xs):  # the recursion runs through the real state, so .grad is d L / d it
        z = lam * torch.complex(real[:, :4], real[:, 4:]) + x.to(torch.complex128) @ b_norm.T
        real = torch.cat([z.real, z.imag], dim=1)
        real.retain_grad()
        states.append(real)
    (states[-1] @ torch.tensor(u)).sum().backward()
    ours = gf.unroll(cell, xs)
    assert np.max(np.abs(ours[1:] - np.array([s.detach().numpy() for s in states]))) < TOL
    ref = np.log([np.linalg.norm(s.grad.numpy(), axis=1) for s in states[::-1]])
    flow = gf.gradient_flow(cell, xs, loss=lambda hh: hh @ u)
    assert np.max(np.abs(flow.log_norms[:-1] - ref)) < TOL


def test_lru_linear_coefficients_reproduce_unroll():
    cell = gf.lru(5, 2, seed=4)
    xs = gf.inputs.gaussian(25, 3, 2, seed=3)
    a, b = _lru.linear_coefficients(cell, xs)
    assert a.shape == b.shape == (25, 3, 5) and cell.config["linear"] is True
    h, states = np.zeros((3, 5), complex), gf.unroll(cell, xs)
    err = 0.0
    for t in range(25):
        h = a[t] * h + b[t]
        err = max(err, np.max(np.abs(np.concatenate([h.real, h.imag], -1) - states[t + 1])))
    assert err < 1e-12


# ---------------------------------------------------------------------------- S4D


def _s4d_reference(p):
    """Zero-order hold of h' = A h + B x in complex numpy: (Abar (N,), Bbar (N, D))."""
    A = -np.exp(p["log_A_real"]) + 1j * p["A_imag"]
    abar = np.exp(np.exp(p["log_dt"]) * A)
    return abar, ((abar - 1) / A)[:, None] * (p["B_re"] + 1j * p["B_im"])


def test_s4d_discretisation_is_the_exact_zero_order_hold():
    # expm([[A, B], [0, 0]] dt) = [[Abar, Bbar], [0, 1]]: ZOH with no formula of ours in it.
    p = gf.s4d(5, 2, dt_min=1e-4, dt_max=0.5, seed=2).params
    abar, bbar = _s4d_reference(p)
    b = p["B_re"] + 1j * p["B_im"]
    A = -np.exp(p["log_A_real"]) + 1j * p["A_imag"]
    for n in range(5):
        M = np.zeros((3, 3), complex)
        M[0, 0], M[0, 1:] = A[n], b[n]
        E = scipy.linalg.expm(np.exp(p["log_dt"][n]) * M)
        assert abs(E[0, 0] - abar[n]) < 1e-14 and np.max(np.abs(E[0, 1:] - bbar[n])) < 1e-13
    a_re, a_im, b_re, b_im = _ssm.discretise(p)
    assert np.max(np.abs(a_re + 1j * a_im - abar)) < 1e-15
    assert np.max(np.abs(b_re + 1j * b_im - bbar)) < 1e-15


def test_s4d_matches_the_reference_forward_outputs_and_gradient_by_lag():
    cell = gf.s4d(6, 3, seed=1)
    p = cell.params
    assert np.allclose(-np.exp(p["log_A_real"]) + 1j * p["A_imag"], -0.5 + 1j * np.pi * np.arange(6))
    dt = np.exp(p["log_dt"])
    assert np.all((dt >= 1e-3) & (dt <= 1e-1))
    xs = gf.inputs.gaussian(40, 2, 3, seed=3)
    abar, bbar = _s4d_reference(p)
    h = np.zeros((2, 6), complex)
    hs = [h]
    for x in xs:
        h = abar * h + x @ bbar.T
        hs.append(h)
    hs = np.array(hs)
    assert np.max(np.abs(gf.unroll(cell, xs) - np.concatenate([hs.real, hs.imag], -1))) < TOL
    y = (hs[1:] @ (p["C_re"] + 1j * p["C_im"]).T).real + p["D"] * xs
    assert np.max(np.abs(_ssm.outputs(cell, xs) - y)) < TOL
    u = _unit(np.random.default_rng(4), 12)
    g = u[:6] + 1j * u[6:]
    ref = np.log([np.linalg.norm(np.conj(abar) ** k * g) for k in range(41)])
    assert _flow_errors(cell, xs, u, ref[:, None]) < TOL
    a, b = _ssm.linear_coefficients(cell, xs)
    h = np.zeros((2, 6), complex)
    for t in range(40):
        h = a[t] * h + b[t]
        assert np.max(np.abs(h - hs[t + 1])) < 1e-12
    with pytest.raises(ValueError, match="dt_min"):
        gf.s4d(4, 2, dt_min=0.2, dt_max=0.1)


# ---------------------------------------------------------------------------- minGRU / minLSTM


def _min_reference(kind, p, xs):
    """Feng et al.'s sequential-mode equations: every state and every d h_t / d h_{t-1} (diagonal)."""
    h = np.zeros((xs.shape[1], p["bias_h"].size))
    states, slopes = [h], []
    for x in xs:
        cand = x @ p["weight_h"].T + p["bias_h"]
        if kind == "mingru":
            z = _sigmoid(x @ p["weight_z"].T + p["bias_z"])
            a, b = 1 - z, z * cand
        else:
            f = _sigmoid(x @ p["weight_f"].T + p["bias_f"])
            i = _sigmoid(x @ p["weight_i"].T + p["bias_i"])
            a, b = f / (f + i), i / (f + i) * cand
        h = a * h + b
        states.append(h)
        slopes.append(a)
    return np.array(states), np.array(slopes)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_min_cells_match_the_paper_forward_and_gradient_by_lag(kind):
    cell = getattr(gf, kind)(5, 3, seed=1)
    xs = 2.0 * gf.inputs.gaussian(30, 2, 3, seed=4)
    states, slopes = _min_reference(kind, cell.params, xs)
    assert np.max(np.abs(gf.unroll(cell, xs) - states)) < TOL
    u = _unit(np.random.default_rng(2), 5)
    g, ref = np.broadcast_to(u, (2, 5)), []
    for t in range(30, -1, -1):  # d L / d h_t, t = T .. 0
        ref.append(np.log(np.linalg.norm(g, axis=1)))
        if t:
            g = g * slopes[t - 1]
    assert _flow_errors(cell, xs, u, np.array(ref)) < TOL
    a, b = _mingru.linear_coefficients(cell, xs)
    h = np.zeros((2, 5))
    for t in range(30):
        h = a[t] * h + b[t]
        assert np.max(np.abs(h - states[t + 1])) < 1e-12


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_min_cells_against_torch_autograd(kind):
    torch = pytest.importorskip("torch")
    cell = getattr(gf, kind)(4, 3, seed=2)
    xs = gf.inputs.gaussian(20, 2, 3, seed=5)
    u = _unit(np.random.default_rng(3), 4)
    lin = {g: torch.nn.Linear(3, 4).double() for g in _mingru.GATES[kind]}
    with torch.no_grad():
        for g, layer in lin.items():
            layer.weight.copy_(torch.tensor(cell.params[f"weight_{g}"]))
            layer.bias.copy_(torch.tensor(cell.params[f"bias_{g}"]))
    h = torch.zeros(2, 4, dtype=torch.float64)
    states = []
    for x in torch.tensor(xs):
        if kind == "mingru":
            z = torch.sigmoid(lin["z"](x))
            h = (1 - z) * h + z * lin["h"](x)
        else:
            f, i = torch.sigmoid(lin["f"](x)), torch.sigmoid(lin["i"](x))
            h = f / (f + i) * h + i / (f + i) * lin["h"](x)
        h.retain_grad()
        states.append(h)
    (h @ torch.tensor(u)).sum().backward()
    assert np.max(np.abs(gf.unroll(cell, xs)[1:] - np.array([s.detach().numpy() for s in states]))) < TOL
    ref = np.log([np.linalg.norm(s.grad.numpy(), axis=1) for s in states[::-1]])
    flow = gf.gradient_flow(cell, xs, loss=lambda hh: hh @ u)
    assert np.max(np.abs(flow.log_norms[:-1] - ref)) < TOL


def test_minlstm_gates_stay_finite_where_both_saturate():
    cell = gf.minlstm(3, 1, seed=0)
    xs = np.full((4, 1, 1), 1e4)  # every gate's pre-activation ~ +-1e4: f + i would be 0/0
    assert np.all(np.isfinite(gf.unroll(cell, xs)))


# ---------------------------------------------------------------------------- every analysis


CELLS = {
    "lru": lambda: gf.lru(3, 2, r_min=0.5, r_max=0.95, seed=0),
    "s4d": lambda: gf.s4d(3, 2, dt_max=0.5, seed=0),
    "mingru": lambda: gf.mingru(4, 2, seed=0),
    "minlstm": lambda: gf.minlstm(4, 2, seed=0),
}


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_every_analysis_runs_on_the_new_cells(kind):
    from gradflow._engine import closed_form_kind

    cell = CELLS[kind]()
    assert cell.kind == kind and closed_form_kind(cell) is None
    xs = gf.inputs.gaussian(30, 2, 2, seed=0)
    J = gf.jacobians(cell, xs)
    JQ = gf.jacobian_products(cell, xs, np.eye(cell.state_size)[:, :2])
    assert np.allclose(JQ, J[..., :2], atol=1e-13)
    assert np.isfinite(gf.gradient_flow(cell, xs).rate)
    assert np.all(np.isfinite(gf.lyapunov_spectrum(cell, xs, warmup=5).exponents))
    assert gf.predict(cell, xs).cell_name == cell.name
    assert kind in repr(cell) and kind in cell._repr_html_()
    clone = pickle.loads(pickle.dumps(cell))
    assert np.array_equal(gf.unroll(clone, xs), gf.unroll(cell, xs))


def test_lru_lyapunov_exponents_are_the_log_moduli_of_its_eigenvalues():
    cell = gf.lru(3, 2, r_min=0.3, r_max=0.95, seed=1)
    xs = gf.inputs.gaussian(60, 1, 2, seed=0)
    expected = np.sort(np.repeat(np.log(np.abs(_lru.eigenvalues(cell.params))), 2))[::-1]
    got = np.ravel(gf.lyapunov_spectrum(cell, xs, warmup=5).exponents)
    # Their sum is log|det J| per step exactly; each pair splits its rotation's sum only as T grows.
    assert abs(got.sum() - expected.sum()) < 1e-10
    assert np.allclose(got, expected, atol=0.03)
