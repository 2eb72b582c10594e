"""The linear-recurrence and state-space cells against independent transcriptions.

Each reference below is written from the papers' / reference code's equations in plain
(complex) numpy, not with the cells' code: the forward pass, and the gradient of a loss
``u . state_T`` carried back by the transcription's own explicit Jacobians, lag by lag.
"""

import pickle

import numpy as np
import pytest
import scipy.linalg
from autograd.core import make_jvp, make_vjp
from helpers import fd_jacobian, rel_err

import gradflow as gf
from gradflow.cells import _lru, _mamba, _mingru, _ssm
from gradflow.core._diagonal import complex_diagonal_update, diagonal_update

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


# ---------------------------------------------------------------------------- the fused primitives

_rng = np.random.default_rng(0)
PRIMITIVES = {  # (function, arguments, the arguments a stacked tangent flows through)
    "diagonal": (
        diagonal_update,
        [_rng.normal(size=4), _rng.normal(size=(3, 4)), _rng.normal(size=(3, 4))],
        [1],
    ),
    "diagonal_rows": (
        diagonal_update,
        [_rng.normal(size=(3, 4)), _rng.normal(size=(3, 4)), _rng.normal(size=(3, 4))],
        [0, 1, 2],
    ),
    "complex": (
        complex_diagonal_update,
        [_rng.normal(size=4), _rng.normal(size=4), _rng.normal(size=(3, 8)), _rng.normal(size=(3, 8))],
        [2, 3],
    ),
    "complex_rows": (
        complex_diagonal_update,
        [
            _rng.normal(size=(3, 4)),
            _rng.normal(size=(3, 4)),
            _rng.normal(size=(3, 8)),
            _rng.normal(size=(3, 8)),
        ],
        [0, 1, 2, 3],
    ),
}


@pytest.mark.parametrize("case", sorted(PRIMITIVES))
def test_fused_primitives_rules_match_finite_differences_and_take_stacked_vectors(case):
    fun, args, stacked = PRIMITIVES[case]
    for argnum, arg in enumerate(args):

        def f(v, argnum=argnum):
            return fun(*args[:argnum], v, *args[argnum + 1 :])

        J = fd_jacobian(lambda flat, arg=arg, f=f: f(flat.reshape(arg.shape)).reshape(-1), arg.reshape(-1))
        vjp, ans = make_vjp(f, arg)
        rows = np.stack([vjp(e.reshape(ans.shape)).reshape(-1) for e in np.eye(ans.size)])
        cols = np.stack([make_jvp(f, arg)(e.reshape(arg.shape))[1].reshape(-1) for e in np.eye(arg.size)], 1)
        assert rel_err(rows, J) < 1e-8 and rel_err(cols, J) < 1e-8, (case, argnum)
        if argnum in stacked:  # what Cell.stacked_tangents promises: k vectors at once = k calls
            cot, tan = _rng.normal(size=(2, *ans.shape)), _rng.normal(size=(2, *arg.shape))
            assert np.allclose(vjp(cot), np.stack([vjp(c) for c in cot]), rtol=1e-14, atol=0)
            jvp = make_jvp(f, arg)
            assert np.allclose(jvp(tan)[1], np.stack([jvp(t)[1] for t in tan]), rtol=1e-14, atol=0)


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
    assert np.max(np.abs(gf.layer_outputs(cell, xs) - y)) < TOL
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
    # What the eigenvalue rule reads (the step Jacobian at the origin) is lambda and its conjugate.
    ev, _ = gf.lru(5, 2, seed=3).eigenvalues()
    lam5 = _lru.eigenvalues(gf.lru(5, 2, seed=3).params)
    assert np.allclose(np.sort_complex(ev), np.sort_complex(np.concatenate([lam5, lam5.conj()])), atol=1e-13)
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
    a, b = gf.linear_coefficients(cell, xs)
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
    assert np.max(np.abs(gf.layer_outputs(cell, xs) - y)) < TOL
    u = _unit(np.random.default_rng(4), 12)
    g = u[:6] + 1j * u[6:]
    ref = np.log([np.linalg.norm(np.conj(abar) ** k * g) for k in range(41)])
    assert _flow_errors(cell, xs, u, ref[:, None]) < TOL
    a, b = gf.linear_coefficients(cell, xs)
    h = np.zeros((2, 6), complex)
    for t in range(40):
        h = a[t] * h + b[t]
        assert np.max(np.abs(h - hs[t + 1])) < 1e-12
    with pytest.raises(ValueError, match="dt_min"):
        gf.s4d(4, 2, dt_min=0.2, dt_max=0.1)


def test_s4d_against_torch_autograd():
    torch = pytest.importorskip("torch")
    cell = gf.s4d(4, 3, dt_max=0.5, seed=5)
    xs = gf.inputs.gaussian(25, 2, 3, seed=12)
    p = {k: torch.tensor(v) for k, v in cell.params.items()}
    A = torch.complex(-torch.exp(p["log_A_real"]), p["A_imag"])
    abar = torch.exp(torch.exp(p["log_dt"]) * A)
    bbar = ((abar - 1) / A)[:, None] * torch.complex(p["B_re"], p["B_im"])
    real = torch.zeros(2, 8, dtype=torch.float64, requires_grad=True)
    states = []
    for x in torch.tensor(xs):
        z = abar * torch.complex(real[:, :4], real[:, 4:]) + x.to(torch.complex128) @ bbar.T
        real = torch.cat([z.real, z.imag], dim=1)
        real.retain_grad()
        states.append(real)
    u = _unit(np.random.default_rng(13), 8)
    (states[-1] @ torch.tensor(u)).sum().backward()
    assert np.max(np.abs(gf.unroll(cell, xs)[1:] - np.array([s.detach().numpy() for s in states]))) < TOL
    ref = np.log([np.linalg.norm(s.grad.numpy(), axis=1) for s in states[::-1]])
    flow = gf.gradient_flow(cell, xs, loss=lambda h: h @ u)
    assert np.max(np.abs(flow.log_norms[:-1] - ref)) < TOL


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
    a, b = gf.linear_coefficients(cell, xs)
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
    lin = {
        g: torch.nn.Linear(3, 4).double()
        for g in {"mingru": _mingru.MINGRU_MAPS, "minlstm": _mingru.MINLSTM_MAPS}[kind]
    }
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


def test_mingru_keeps_the_tail_of_a_saturated_gate():
    # z = sigmoid(50): the kept fraction 1 - z = sigmoid(-50) = 1.9e-22, not 1 - 1.0 = 0, so the
    # gradient through the step is small but exact, never a silent zero.
    cell = gf.mingru(1, 1, seed=0)
    cell.params.update(weight_z=np.array([[50.0]]), bias_z=np.zeros(1))
    a, _ = gf.linear_coefficients(cell, np.ones((3, 1, 1)))
    assert np.allclose(a, 1.0 / (1.0 + np.exp(50.0)), rtol=1e-14, atol=0)
    flow = gf.gradient_flow(cell, np.ones((3, 1, 1)), loss=lambda h: h[:, 0])
    assert np.allclose(flow.log_norms[:, 0], -np.arange(4) * np.log1p(np.exp(50.0)), rtol=1e-14)


# ---------------------------------------------------------------------------- Mamba


def _softplus(a):
    return np.log1p(np.exp(a))


def _silu(a):
    return a * _sigmoid(a)


def _mamba_forward_reference(p, us, d_state, dt_rank):
    """Mamba.forward's reference path on a whole sequence, from mamba_ssm: in_proj, causal
    depthwise Conv1d (padding d_conv - 1, first L outputs), SiLU, x_proj, dt_proj, then
    selective_scan_ref (delta_softplus, D skip, z gate), out_proj. us (T, batch, d_model).
    Returns the SSM state after every step (T, batch, d_inner, d_state), the block outputs and
    the convolution inputs x (T, batch, d_inner)."""
    d_inner = p["D"].size
    xz = us @ p["in_proj.weight"].T
    x, z = xz[..., :d_inner], xz[..., d_inner:]
    T, B, _ = x.shape
    w = p["conv1d.weight"][:, 0, :]
    xc = np.empty_like(x)
    for b in range(B):
        for d in range(d_inner):  # Conv1d is a cross-correlation: np.convolve with the kernel flipped
            xc[:, b, d] = np.convolve(x[:, b, d], w[d, ::-1])[:T] + p["conv1d.bias"][d]
    xc = _silu(xc)
    x_db = xc @ p["x_proj.weight"].T
    delta = _softplus(x_db[..., :dt_rank] @ p["dt_proj.weight"].T + p["dt_proj.bias"])
    Bs, Cs = x_db[..., dt_rank : dt_rank + d_state], x_db[..., dt_rank + d_state :]
    A = -np.exp(p["A_log"])
    s, states, ys = np.zeros((B, d_inner, d_state)), [], []
    for t in range(T):  # selective_scan_ref's loop
        s = np.exp(delta[t][..., None] * A) * s + (delta[t] * xc[t])[..., None] * Bs[t][:, None, :]
        states.append(s)
        ys.append(np.einsum("bdn,bn->bd", s, Cs[t]))
    y = (np.array(ys) + xc * p["D"]) * _silu(z)
    return np.array(states), y @ p["out_proj.weight"].T, x


def _mamba_jacobian(p, state, u, d_conv, d_state, dt_rank):
    """d state' / d state of one Mamba.step at one row, written out by hand (see _mamba's
    module docstring for the state layout [conv buffer (d_inner, K1), ssm (d_inner, N)])."""
    d_inner, K1, N = p["D"].size, d_conv - 1, d_state
    w_buf, ssm = state[: d_inner * K1].reshape(d_inner, K1), state[d_inner * K1 :].reshape(d_inner, N)
    x = (p["in_proj.weight"] @ u)[:d_inner]
    window = np.concatenate([w_buf, x[:, None]], axis=1)
    Wc = p["conv1d.weight"][:, 0, :]
    pre = np.sum(window * Wc, axis=1) + p["conv1d.bias"]
    sig = _sigmoid(pre)
    xc = pre * sig
    dxc_dpre = sig * (1 + pre * (1 - sig))  # SiLU'
    Wx = p["x_proj.weight"]
    dt_pre = p["dt_proj.weight"] @ (Wx[:dt_rank] @ xc) + p["dt_proj.bias"]
    dt = _softplus(dt_pre)
    Bv = Wx[dt_rank : dt_rank + N] @ xc
    A = -np.exp(p["A_log"])
    decay = np.exp(dt[:, None] * A)
    ddt_dxc = _sigmoid(dt_pre)[:, None] * (p["dt_proj.weight"] @ Wx[:dt_rank])  # (d_inner, d_inner)
    # d ssm'[d, n] / d xc[e]
    dS = (A * decay * ssm + xc[:, None] * Bv[None, :])[:, :, None] * ddt_dxc[:, None, :]
    dS += (dt * xc)[:, None, None] * Wx[dt_rank : dt_rank + N][None, :, :]
    dS[np.arange(d_inner), :, np.arange(d_inner)] += dt[:, None] * Bv[None, :]
    dxc_dbuf = np.zeros((d_inner, d_inner * K1))
    for d in range(d_inner):
        dxc_dbuf[d, d * K1 : (d + 1) * K1] = dxc_dpre[d] * Wc[d, :K1]
    S = d_inner * (K1 + N)
    J = np.zeros((S, S))
    for d in range(d_inner):  # the shift register: buffer'[d, k] = buffer[d, k + 1]
        for k in range(K1 - 1):
            J[d * K1 + k, d * K1 + k + 1] = 1.0
    J[d_inner * K1 :, : d_inner * K1] = dS.reshape(d_inner * N, d_inner) @ dxc_dbuf
    J[d_inner * K1 :, d_inner * K1 :] = np.diag(decay.ravel())
    return J


def test_mamba_step_repeated_matches_the_selective_scan_reference():
    cell = gf.mamba(3, d_state=4, d_conv=3, expand=2, seed=1)
    us = gf.inputs.gaussian(25, 2, 3, seed=6)
    states, out, x = _mamba_forward_reference(cell.params, us, 4, 1)
    ours = gf.unroll(cell, us)
    assert np.max(np.abs(ours[1:, :, cell.components["ssm"]] - states.reshape(25, 2, -1))) < TOL
    buffers = ours[1:, :, cell.components["conv"]].reshape(25, 2, 6, 2)
    assert np.max(np.abs(buffers[..., -1] - x)) < TOL and np.max(np.abs(buffers[1:, ..., 0] - x[:-1])) < TOL
    assert np.max(np.abs(gf.layer_outputs(cell, us) - out)) < TOL
    a, b = gf.linear_coefficients(cell, us)
    s = np.zeros((2, 24))
    for t in range(25):
        s = a[t] * s + b[t]
        assert np.max(np.abs(s - ours[t + 1][:, cell.components["ssm"]])) < 1e-12


def test_mamba_gradient_by_lag_matches_hand_written_jacobians():
    cell = gf.mamba(3, d_state=3, d_conv=3, expand=2, dt_min=0.05, dt_max=0.5, seed=2)
    us = 1.5 * gf.inputs.gaussian(30, 2, 3, seed=7)
    states = gf.unroll(cell, us)
    u = _unit(np.random.default_rng(5), cell.state_size)
    Js = [
        [_mamba_jacobian(cell.params, states[t, b], us[t, b], 3, 3, 1) for b in range(2)] for t in range(30)
    ]
    assert np.max(np.abs(np.array(Js) - gf.jacobians(cell, us))) < TOL
    g, ref = np.tile(u, (2, 1)), []
    for t in range(30, -1, -1):
        ref.append(np.log(np.linalg.norm(g, axis=1)))
        if t:
            g = np.array([Js[t - 1][b].T @ g[b] for b in range(2)])
    assert _flow_errors(cell, us, u, np.array(ref)) < TOL


def test_mamba_against_a_torch_transcription_of_step():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    cell = gf.mamba(4, d_state=3, d_conv=4, expand=2, seed=3)
    us = gf.inputs.gaussian(12, 2, 4, seed=8)
    p = {k: torch.tensor(v) for k, v in cell.params.items()}
    d_inner, N = 8, 3
    conv_state = torch.zeros(2, d_inner, 4, dtype=torch.float64)  # the reference's (B D W) buffer
    ssm_state = torch.zeros(2, d_inner, N, dtype=torch.float64, requires_grad=True)
    kept, outs = [], []
    for u in torch.tensor(us):  # Mamba.step without the fused kernels, verbatim in shape
        x, z = (u @ p["in_proj.weight"].T).chunk(2, dim=-1)
        conv_state = torch.roll(conv_state, shifts=-1, dims=-1)
        conv_state = torch.cat([conv_state[:, :, :-1], x[:, :, None]], dim=2)
        xc = F.silu(torch.sum(conv_state * p["conv1d.weight"][:, 0, :], dim=-1) + p["conv1d.bias"])
        dt, B, C = torch.split(xc @ p["x_proj.weight"].T, [1, N, N], dim=-1)
        dt = F.softplus(dt @ p["dt_proj.weight"].T + p["dt_proj.bias"])
        dA = torch.exp(torch.einsum("bd,dn->bdn", dt, -torch.exp(p["A_log"])))
        ssm_state = ssm_state * dA + xc[:, :, None] * torch.einsum("bd,bn->bdn", dt, B)
        ssm_state.retain_grad()
        kept.append(ssm_state)
        y = (torch.einsum("bdn,bn->bd", ssm_state, C) + p["D"] * xc) * F.silu(z)
        outs.append(y @ p["out_proj.weight"].T)
    assert np.max(np.abs(gf.layer_outputs(cell, us) - torch.stack(outs).detach().numpy())) < TOL
    # The SSM state's gradient by lag, for a loss on the final SSM state only (the conv buffer
    # does not depend on the SSM state, so this path is the reference's whole story for it).
    ssm_idx = cell.components["ssm"]
    u = _unit(np.random.default_rng(6), ssm_idx.size)
    (kept[-1].reshape(2, -1) @ torch.tensor(u)).sum().backward()
    ref = np.log([np.linalg.norm(s.grad.reshape(2, -1).numpy(), axis=1) for s in kept[::-1]])
    flow = gf.gradient_flow(cell, us, loss=lambda h: h[:, ssm_idx] @ u)
    assert np.max(np.abs(flow.components["ssm"][:-1] - ref)) < TOL


@pytest.mark.parametrize("d_conv", [1, 3])
def test_mamba_scan_matches_the_loop_with_and_without_a_conv_buffer(d_conv):
    # d_conv = 1 leaves no buffer (no "conv" component): the scan covers the whole state.
    cell = gf.mamba(3, d_state=2, d_conv=d_conv, expand=1, seed=3)
    xs = gf.inputs.gaussian(11, 2, 3, seed=4)
    h0 = np.random.default_rng(5).normal(size=(2, cell.state_size))
    assert ("conv" in cell.components) == (d_conv > 1)
    np.testing.assert_allclose(gf.scan(cell, xs, h0=h0), gf.unroll(cell, xs, h0=h0), rtol=1e-12, atol=1e-15)


def test_mamba_from_state_dict_names_and_bad_input():
    cell = gf.mamba(4, d_state=2, d_conv=2, expand=1, seed=4)
    us = gf.inputs.gaussian(6, 1, 4)
    again = gf.mamba_from_state_dict({k: v.copy() for k, v in cell.params.items()})
    assert np.array_equal(gf.unroll(again, us), gf.unroll(cell, us))
    assert set(cell.params) == set(_mamba.REQUIRED)
    with pytest.raises(ValueError, match=r"missing \['A_log'\]"):
        gf.mamba_from_state_dict({k: v for k, v in cell.params.items() if k != "A_log"})
    with pytest.raises(ValueError, match=r"unexpected.*prefix="):
        gf.mamba_from_state_dict({**cell.params, "norm.weight": np.ones(4)})
    with pytest.raises(ValueError, match=r"'x_proj.weight'.*shape \(5, 4\)"):
        gf.mamba_from_state_dict({**cell.params, "x_proj.weight": np.zeros((4, 4))})
    with pytest.raises(ValueError, match="dt_rank"):
        gf.mamba(4, dt_rank="full")
    # d_conv = 1: no buffer, the state is the SSM state alone.
    one = gf.mamba(2, d_state=2, d_conv=1, expand=1)
    a, b = gf.linear_coefficients(one, us[:, :, :2])
    s = np.zeros((1, 4))
    for t in range(6):
        s = a[t] * s + b[t]
    assert list(one.components) == ["ssm"] and np.max(np.abs(s - gf.unroll(one, us[:, :, :2])[-1])) < 1e-12


def test_mamba_loads_a_torch_module_state_dict():
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv1d(6, 6, kernel_size=3, groups=6, padding=2).double()
    sd = {
        "in_proj.weight": torch.randn(12, 3, dtype=torch.float64),
        "conv1d.weight": conv.weight,
        "conv1d.bias": conv.bias,
        "x_proj.weight": torch.randn(5, 6, dtype=torch.float64),
        "dt_proj.weight": torch.randn(6, 1, dtype=torch.float64),
        "dt_proj.bias": torch.randn(6, dtype=torch.float64),
        "A_log": torch.log(torch.arange(1, 3, dtype=torch.float64)).repeat(6, 1),
        "D": torch.ones(6, dtype=torch.float64),
        "out_proj.weight": torch.randn(3, 6, dtype=torch.float64),
    }
    cell = gf.mamba_from_state_dict(sd)
    assert cell.config["d_inner"] == 6 and cell.config["d_state"] == 2 and cell.config["d_conv"] == 3
    assert np.array_equal(cell.params["conv1d.weight"], conv.weight.detach().numpy())


# ---------------------------------------------------------------------------- sLSTM


def _slstm_reference_step(p, state, x):
    """xlstm's slstm_forward_pointwise after the projections, in numpy that also runs on complex
    numbers (comparisons on real parts), so a complex step gives its exact Jacobian."""
    N = p["bias"].size // 4
    y, c, n, m = (state[:, k * N : (k + 1) * N] for k in range(4))
    raw = x @ p["weight_ih"].T + y @ p["weight_hh"].T + p["bias"]
    i_raw, f_raw, z_raw, o_raw = (raw[:, k * N : (k + 1) * N] for k in range(4))
    logfplusm = m - np.log1p(np.exp(-f_raw))
    mnew = np.where(n.real == 0.0, i_raw, np.where(i_raw.real >= logfplusm.real, i_raw, logfplusm))
    igate, fgate = np.exp(i_raw - mnew), np.exp(logfplusm - mnew)
    igate, fgate = np.where(igate.real > 1, 1.0, igate), np.where(fgate.real > 1, 1.0, fgate)
    cnew = fgate * c + igate * np.tanh(z_raw)
    nnew = fgate * n + igate
    return np.concatenate([_sigmoid(o_raw) * cnew / nnew, cnew, nnew, mnew], axis=1)


def _complex_step_jacobian(step, state, x):
    """d step / d state at one row by complex steps: exact to rounding, no cancellation."""
    eps = 1e-30
    cols = [step(state[None] + 1j * eps * e[None], x[None])[0].imag / eps for e in np.eye(state.size)]
    return np.stack(cols, axis=1)


def test_slstm_matches_the_reference_pointwise_forward_and_gradient_by_lag():
    cell = gf.slstm(3, 2, recurrent_init="standard", seed=2)
    assert np.allclose(cell.params["bias"][3:6], [5.0, 5.0 - 12 * 0.5**0.3, -7.0])
    xs = 2.0 * gf.inputs.gaussian(25, 2, 2, seed=9)
    states = [np.zeros((2, 12))]
    for x in xs:
        states.append(_slstm_reference_step(cell.params, states[-1], x))
    states = np.array(states)
    assert np.max(np.abs(gf.unroll(cell, xs) - states)) < TOL
    Js = np.array(
        [
            [
                _complex_step_jacobian(
                    lambda s, x: _slstm_reference_step(cell.params, s, x), states[t, b], xs[t, b]
                )
                for b in range(2)
            ]
            for t in range(25)
        ]
    )
    assert np.max(np.abs(Js - gf.jacobians(cell, xs))) < TOL
    u = _unit(np.random.default_rng(7), 12)
    g, ref = np.tile(u, (2, 1)), []
    for t in range(25, -1, -1):
        ref.append(np.log(np.linalg.norm(g, axis=1)))
        if t:
            g = np.einsum("bij,bi->bj", Js[t - 1], g)
    assert _flow_errors(cell, xs, u, np.array(ref)) < TOL
    with pytest.raises(ValueError, match="recurrent_init"):
        gf.slstm(3, 2, recurrent_init="orthogonal")


def test_slstm_against_torch_transcription_of_the_reference():
    torch = pytest.importorskip("torch")
    logsigmoid = torch.nn.functional.logsigmoid
    cell = gf.slstm(4, 3, recurrent_init="standard", seed=3)
    xs = gf.inputs.gaussian(15, 2, 3, seed=10)
    p = {k: torch.tensor(v) for k, v in cell.params.items()}
    states = torch.zeros(4, 2, 4, dtype=torch.float64, requires_grad=True)
    kept = []
    for x in torch.tensor(xs):  # slstm_forward_pointwise, as in the reference
        y, c, n, m = torch.unbind(states, dim=0)
        raw = x @ p["weight_ih"].T + y @ p["weight_hh"].T + p["bias"]
        iraw, fraw, zraw, oraw = torch.unbind(raw.view(raw.shape[0], 4, -1), dim=1)
        logfplusm = m + logsigmoid(fraw)
        mnew = iraw if torch.all(n == 0.0) else torch.max(iraw, logfplusm)
        igate = torch.minimum(torch.exp(iraw - mnew), torch.ones_like(iraw))
        fgate = torch.minimum(torch.exp(logfplusm - mnew), torch.ones_like(iraw))
        cnew = fgate * c + igate * torch.tanh(zraw)
        nnew = fgate * n + igate
        states = torch.stack((torch.sigmoid(oraw) * cnew / nnew, cnew, nnew, mnew), dim=0)
        states.retain_grad()
        kept.append(states)
    u = _unit(np.random.default_rng(8), 16)
    (torch.cat(torch.unbind(states, 0), dim=1) @ torch.tensor(u)).sum().backward()
    theirs = np.array([torch.cat(torch.unbind(s, 0), dim=1).detach().numpy() for s in kept])
    assert np.max(np.abs(gf.unroll(cell, xs)[1:] - theirs)) < TOL
    ref = np.log(
        [np.linalg.norm(torch.cat(torch.unbind(s.grad, 0), dim=1).numpy(), axis=1) for s in kept[::-1]]
    )
    flow = gf.gradient_flow(cell, xs, loss=lambda h: h @ u)
    assert np.max(np.abs(flow.log_norms[:-1] - ref)) < TOL


# ---------------------------------------------------------------------------- every analysis


CELLS = {
    "lru": lambda: gf.lru(3, 2, r_min=0.5, r_max=0.95, seed=0),
    "s4d": lambda: gf.s4d(3, 2, dt_max=0.5, seed=0),
    "mingru": lambda: gf.mingru(4, 2, seed=0),
    "minlstm": lambda: gf.minlstm(4, 2, seed=0),
    "mamba": lambda: gf.mamba(2, d_state=2, d_conv=2, expand=1, seed=0),
    "slstm": lambda: gf.slstm(3, 2, recurrent_init="standard", seed=0),
}


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_every_analysis_runs_on_the_new_cells(kind):
    from gradflow.engine import closed_form_kind

    cell = CELLS[kind]()
    assert cell.kind == kind and closed_form_kind(cell) is None
    xs = gf.inputs.gaussian(30, 2, cell.input_size, seed=0)
    J = gf.jacobians(cell, xs)
    JQ = gf.jacobian_products(cell, xs, np.eye(cell.state_size)[:, :2])
    assert np.allclose(JQ, J[..., :2], atol=1e-13)
    assert np.isfinite(gf.gradient_flow(cell, xs).rate)
    exponents = np.ravel(gf.lyapunov_spectrum(cell, xs, warmup=5).exponents)
    if kind == "mamba":  # the conv buffer is a shift register: J is nilpotent on it, exponents -inf
        assert np.sum(exponents > -5) == cell.components["ssm"].size
    else:
        assert np.all(np.isfinite(exponents))
    assert gf.predict(cell, xs, probes=4, fixed_point_starts=1).cell_name == cell.name
    assert kind in repr(cell) and kind in cell._repr_html_()
    # A linear cell's card plots its spectrum (the step Jacobian at the origin) with the unit circle.
    assert ("unit circle" in cell._repr_html_()) == bool(cell.config.get("linear"))
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


def test_linear_coefficients_and_layer_outputs_refuse_other_cells_and_bad_inputs():
    exact = [k for k in gf.cell_kinds() if gf.cell_kind(k).linear_coefficients is not None]
    assert sorted(exact) == ["lru", "mamba", "mingru", "minlstm", "s4d"]
    assert all(CELLS[k]().config.get("linear") for k in exact)
    with pytest.raises(ValueError, match="kind 'lstm' has no per-step linear map"):
        gf.linear_coefficients(gf.lstm(3, 2), gf.inputs.gaussian(4, 1, 2))
    with pytest.raises(ValueError, match="kind 'mingru' has no output"):
        gf.layer_outputs(gf.mingru(3, 2), gf.inputs.gaussian(4, 1, 2))
    with pytest.raises(ValueError, match=r"xs must have shape \(T, batch, 2\)"):
        gf.linear_coefficients(gf.lru(3, 2), gf.inputs.gaussian(4, 1, 3))


def lru_sweep_task(point):
    """A sweep task (module level, as worker processes need): an LRU's measured rate."""
    cell = gf.lru(4, 2, r_min=point["r"], r_max=point["r"] + 1e-9, max_phase=1.0, seed=point["seed"])
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(60, 1, 2, seed=point["seed"]))
    return {"rate": flow.rate, "log_r": float(np.log(np.abs(_lru.eigenvalues(cell.params)).max()))}


def test_the_new_cells_run_in_a_sweep():
    # In-process (worker processes cost seconds here); the cells' pickling is tested above.
    table = gf.sweep.run(
        {"r": [0.5, 0.9]}, lru_sweep_task, seeds=[0], executor="serial", cache=False, progress=False
    )
    # Every |lambda| equal: the gradient shrinks by exactly |lambda| per step.
    assert np.allclose(table["rate"], table["log_r"], atol=1e-8) and len(table) == 2


def _final_state_reference(kind, p, xs):
    """The final state (batch, S) of each cell's transcription above, for parameters ``p``."""
    if kind == "lru":
        h = _lru_reference(p, xs)[1][-1]
        return np.concatenate([h.real, h.imag], -1)
    if kind == "s4d":
        abar, bbar = _s4d_reference(p)
        h = np.zeros((xs.shape[1], abar.size), complex)
        for x in xs:
            h = abar * h + x @ bbar.T
        return np.concatenate([h.real, h.imag], -1)
    if kind in ("mingru", "minlstm"):
        return _min_reference(kind, p, xs)[0][-1]
    if kind == "mamba":  # the SSM part (the conv buffer holds inputs only)
        final = _mamba_forward_reference(p, xs, p["A_log"].shape[1], p["dt_proj.weight"].shape[1])[0][-1]
        return final.reshape(xs.shape[1], -1)
    state = np.zeros((xs.shape[1], p["bias"].size))
    for x in xs:
        state = _slstm_reference_step(p, state, x)
    return state


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_parameter_gradients_through_the_cells_match_finite_differences_of_the_references(kind):
    # What training and parameter sensitivity differentiate: d (u . state_T) / d params, by autograd
    # through the cell's step against central differences of the independent transcription.
    from autograd import grad

    cell = CELLS[kind]()
    xs = gf.inputs.gaussian(8, 2, cell.input_size, seed=11)
    keep = cell.components["ssm"] if kind == "mamba" else np.arange(cell.state_size)
    u = _unit(np.random.default_rng(12), keep.size)

    def loss(params):
        h = np.zeros((2, cell.state_size))
        for x in xs:
            h = cell.step(params, h, x)
        return (h[:, keep] @ u).sum()

    got = grad(loss)(dict(cell.params))
    for key, value in cell.params.items():

        def f(flat, key=key, value=value):
            p = {**cell.params, key: flat.reshape(value.shape)}
            return np.atleast_1d((_final_state_reference(kind, p, xs) @ u).sum())

        fd = fd_jacobian(f, value.reshape(-1))[0]
        assert rel_err(np.ravel(got[key]), fd) < 1e-6, key


def test_from_torch_takes_the_reference_names_of_mamba_and_lru():
    mamba = gf.mamba(4, d_state=2, d_conv=2, expand=1, seed=4)
    us = gf.inputs.gaussian(6, 1, 4)
    prefixed = {f"layers.0.mixer.{k}": v.copy() for k, v in mamba.params.items()}
    loaded = gf.from_torch("mamba", prefixed, prefix="layers.0.mixer")
    assert loaded.kind == "mamba" and np.array_equal(gf.unroll(loaded, us), gf.unroll(mamba, us))
    lru = gf.lru(5, 2, seed=2)
    xs = gf.inputs.gaussian(7, 1, 2)
    for arrays, prefix in (
        ({k: v.tolist() for k, v in lru.params.items()}, None),
        ({f"encoder.lru.{k}": v for k, v in lru.params.items()}, "encoder.lru"),
    ):
        again = gf.from_torch("lru", arrays, prefix=prefix)
        assert again.kind == "lru" and np.array_equal(gf.unroll(again, xs), gf.unroll(lru, xs))
    with pytest.raises(ValueError, match=r"missing \['A_log'\]"):
        gf.from_torch("mamba", {k: v for k, v in mamba.params.items() if k != "A_log"})
