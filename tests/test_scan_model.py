"""`gf.recurrent(cell, scan=True)` runs its forward pass by the associative scan: the same outputs
and final state as the loop (1e-12), the same gradients under autograd (1e-10), in training too,
and against PyTorch's autograd on its own transcription of the recurrence."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.core import make_jvp

import gradflow as gf
from gradflow.engine import scanned_columns
from gradflow.models import output_columns


def _diagonal(p, h, x):  # an input-gated real diagonal recurrence, not a built-in kind
    return anp.exp(-anp.exp(x @ p["W_a"].T)) * h + x @ p["W_b"].T


def _rotating(p, h, x):  # a complex diagonal recurrence on [Re h, Im h], not a built-in kind
    n = h.shape[1] // 2
    re, im = h[:, :n], h[:, n:]
    c, s = p["r"] * anp.cos(p["phi"]), p["r"] * anp.sin(p["phi"])
    return anp.concatenate([c * re - s * im, s * re + c * im], axis=1) + x @ p["B"].T


def _custom(kind, rng):
    if kind == "diagonal":
        params = {"W_a": 0.3 * rng.standard_normal((4, 3)), "W_b": rng.standard_normal((4, 3))}
        return gf.Cell(_diagonal, params, 4, 3, config={"linear": True}, name="gated")
    params = {
        "r": 1 - rng.uniform(0, 0.05, 3),
        "phi": rng.uniform(0, np.pi, 3),
        "B": rng.standard_normal((6, 3)),
    }
    return gf.Cell(_rotating, params, 6, 3, config={"linear": True, "complex": True}, name="rotating")


CELLS = {
    "lru": lambda rng: gf.lru(5, 3, r_min=0.99, r_max=0.999, seed=0),
    "s4d": lambda rng: gf.s4d(4, 3, seed=0),
    "mingru": lambda rng: gf.mingru(4, 3, seed=0),
    "minlstm": lambda rng: gf.minlstm(4, 3, seed=0),
    "mamba": lambda rng: gf.mamba(3, d_state=2, seed=0),
    "diagonal": lambda rng: _custom("diagonal", rng),
    "rotating": lambda rng: _custom("rotating", rng),
}


def _rel(a, b) -> float:
    """Largest difference relative to the reference's largest entry; 0 only where both are exactly 0."""
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("kind", list(CELLS))
def test_scan_model_equals_the_loop_in_outputs_state_and_gradients(kind):
    cell = CELLS[kind](np.random.default_rng(0))
    xs = gf.inputs.gaussian(200, 2, cell.input_size, seed=1)
    loop, scanned = gf.recurrent(cell), gf.recurrent(cell, scan=True)
    ys = scanned(xs)
    assert _rel(ys, loop(xs)) < 1e-12
    final = gf.unroll(cell, xs)[-1]  # the whole final state, including what the model does not output
    assert _rel(scanned.apply(scanned.params, xs)[-1], final[:, output_columns(cell)]) < 1e-12
    u = np.random.default_rng(2).standard_normal(ys.shape)

    def loss(model):
        return lambda p, xs: anp.sum(model.apply(p, xs) * u)

    ref = grad(loss(loop), (0, 1))(cell.params, xs)
    got = grad(loss(scanned), (0, 1))(cell.params, xs)
    for name in cell.params:
        assert _rel(got[0][name], ref[0][name]) < 1e-10, name
    assert _rel(got[1], ref[1]) < 1e-10


def test_scanned_part_and_the_shift_register_beside_it():
    cell = gf.mamba(3, d_state=2, seed=0)
    part = scanned_columns(cell)
    assert np.array_equal(part, cell.components["ssm"]) and len(part) < cell.state_size
    assert np.array_equal(scanned_columns(gf.lru(3, 2)), np.arange(6))


def test_training_a_scan_model_takes_the_loops_gradient():
    task = gf.tasks.adding(40, seed=0)
    cell = gf.mingru(6, task.input_size, seed=3)
    xs, targets = task.batch(4, 0)
    grads = []
    for model in (gf.recurrent(cell), gf.recurrent(cell, scan=True)):
        objective, params = gf.training_objective(model, task, seed=1)
        grads.append(grad(objective)(params, xs, targets))
    loop, scanned = grads
    for name in cell.params:
        assert _rel(scanned["model"][name], loop["model"][name]) < 1e-10, name
    assert _rel(scanned["readout"]["weight"], loop["readout"]["weight"]) < 1e-10


def test_scan_model_has_no_forward_mode_and_keeps_input_checks():
    cell = gf.mingru(3, 2, seed=0)
    model = gf.recurrent(cell, scan=True)
    xs = gf.inputs.gaussian(5, 1, 2)
    with pytest.raises(NotImplementedError):
        make_jvp(lambda x: model.apply(model.params, x), xs)(xs)
    with pytest.raises(ValueError, match="xs must have shape"):
        model(np.zeros((5, 1, 3)))


def test_scan_model_gradient_against_torch_autograd():
    torch = pytest.importorskip("torch")
    cell = gf.lru(4, 3, r_min=0.95, r_max=0.999, seed=2)
    xs = gf.inputs.gaussian(200, 2, 3, seed=4)
    u = np.random.default_rng(5).standard_normal((2, 8))
    model = gf.recurrent(cell, scan=True)
    got = grad(lambda p: anp.sum(model.apply(p, xs)[-1] * u))(cell.params)
    # Orvieto et al.'s recurrence written out in torch, differentiated by torch's autograd.
    p = {k: torch.tensor(v, requires_grad=True) for k, v in cell.params.items()}
    lam = torch.exp(-torch.exp(p["nu_log"]) + 1j * torch.exp(p["theta_log"]))
    b_norm = torch.complex(p["B_re"], p["B_im"]) * torch.exp(p["gamma_log"])[:, None]
    h = torch.zeros(2, 4, dtype=torch.complex128)
    for x in torch.tensor(xs):
        h = lam * h + x.to(torch.complex128) @ b_norm.T
    (torch.cat([h.real, h.imag], dim=1) * torch.tensor(u)).sum().backward()
    for name in ("nu_log", "theta_log", "gamma_log", "B_re", "B_im"):
        assert _rel(got[name], p[name].grad.numpy()) < 1e-10, name
