"""The cell registry: the built-in records, and a new kind added by one file (the `leaky` kind
below) working through constructors, saving and loading, PyTorch weights, the engine, stacking
and training."""

import numpy as np
import pytest
from helpers import fd_jacobian, rel_err

import gradflow as gf
from gradflow.cells._builtin import gru_reset_before_step, random_cell
from gradflow.core import _activations as act
from gradflow.core._ops import affine, join_columns, take_columns

# ------------------------------------------------------------------ a new kind, in one place


def leaky_step(params, state, x, *, hidden, layers, leak):
    """A leaky vanilla cell, ``h' = (1 - a) h + a tanh(W_hh h + W_ih x + b)``, per layer."""
    outs, inp = [], x
    for l in range(layers):
        h = state if layers == 1 else take_columns(state, l * hidden, (l + 1) * hidden)
        gi = affine(inp, params[f"weight_ih_l{l}"], params[f"bias_ih_l{l}"] + params[f"bias_hh_l{l}"])
        inp = (1.0 - leak) * h + leak * act.tanh(affine(h, params[f"weight_hh_l{l}"], gi))
        outs.append(inp)
    return outs[0] if layers == 1 else join_columns(*outs)


def leaky(hidden, inputs, leak=0.5, **kw):
    return random_cell("leaky", hidden, inputs, leak=leak, **kw)


LEAKY = gf.CellKind(
    "leaky",
    leaky_step,
    leaky,
    options={"leak": 0.5},
    step_options=("leak",),
    stacked_tangents=False,
    description="leaky vanilla cell",
)  # anp multiply: no stacks


@pytest.fixture
def registered():
    gf.register_cell_kind(LEAKY)
    yield LEAKY
    gf.unregister_cell_kind("leaky")


# ------------------------------------------------------------------ the built-in records


def test_built_in_records_describe_the_cells():
    assert gf.cell_kinds()[:3] == ("rnn", "lstm", "gru")
    for kind, make, gates, state in (
        ("rnn", gf.rnn, (), 5),
        ("lstm", gf.lstm, ("i", "f", "g", "o"), 10),
        ("gru", gf.gru, ("r", "z", "n"), 5),
    ):
        record = gf.cell_kind(kind)
        cell = make(5, 3, seed=0)
        assert record.make is make and cell.kind == kind and cell.gates == gates
        assert record.blocks == max(1, len(gates)) and cell.state_size == state
        assert record.state_width(5) == state and cell.stacked_tangents == record.stacked_tangents
        # The PyTorch layout is the cell's own weights' names and shapes.
        assert record.torch_layout(5, 3) == {k: v.shape for k, v in cell.params.items()}
    assert gf.cell_kind("lstm").state_width(6, proj_size=2) == 8  # h projected to 2, c stays 6
    # Variants: Keras's reset-before GRU takes no stacked tangents, a projected LSTM keeps them.
    assert gf.cell_kind("gru").step_for({"reset_after": False}) == (gru_reset_before_step, False)
    assert gf.cell_kind("lstm").step_for({"proj_size": 2})[1] is True


def test_registry_refuses_bad_records():
    with pytest.raises(ValueError, match=r"cell kind must be one of rnn, lstm, gru.*; got 'nope'"):
        gf.cell_kind("nope")
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        gf.register_cell_kind(gf.CellKind("lstm", leaky_step, leaky))
    with pytest.raises(TypeError, match="kind must be a gradflow CellKind; got dict"):
        gf.register_cell_kind({"name": "x"})
    with pytest.raises(ValueError, match=r"2 gates .* for 3 weight blocks"):
        gf.CellKind("x", leaky_step, leaky, gates=("a", "b"), blocks=3)
    with pytest.raises(ValueError, match="must be an identifier; got 'a b'"):
        gf.CellKind("a b", leaky_step, leaky)


# ------------------------------------------------------------------ the new kind everywhere


def test_a_registered_kind_is_built_saved_loaded_and_read_from_torch_weights(registered, tmp_path):
    cell = leaky(6, 3, leak=0.25, gain=1.2, seed=1)
    assert (cell.kind, cell.state_size, cell.gates, cell.name) == ("leaky", 6, (), "leaky-0.25")
    assert cell.config["leak"] == 0.25 and cell.step.keywords["leak"] == 0.25
    # leak = 1 is the vanilla tanh cell on the same weights: the equations, checked independently.
    h, x = np.random.default_rng(2).normal(size=(2, 4, 6)), np.random.default_rng(3).normal(size=(4, 3))
    p = cell.params
    full = leaky_step(p, h[0], x, hidden=6, layers=1, leak=1.0)
    np.testing.assert_allclose(
        full,
        np.tanh(h[0] @ p["weight_hh_l0"].T + x @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]),
        rtol=1e-14,
    )
    path = tmp_path / "leaky.npz"
    cell.save(path)
    back = gf.load(path)
    assert back.kind == "leaky" and back.config == cell.config
    np.testing.assert_array_equal(back.step(back.params, h[1], x), cell.step(cell.params, h[1], x))
    same = gf.from_torch("leaky", cell.params)  # PyTorch's names; the kind's default leak
    np.testing.assert_array_equal(
        same.step(same.params, h[1], x), leaky_step(cell.params, h[1], x, hidden=6, layers=1, leak=0.5)
    )


def test_a_registered_kind_runs_through_the_engine_stacking_and_training(registered):
    cell = leaky(5, 2, leak=0.6, seed=0)
    xs = gf.inputs.gaussian(6, 2, 2, seed=1)
    hs = gf.unroll(cell, xs)
    J = gf.jacobians(cell, xs)  # no closed form: traced through the fused operations
    fd = fd_jacobian(lambda h: cell.step(cell.params, h[None], xs[2, :1])[0], hs[2, 0])
    assert rel_err(J[2, 0], fd) < 1e-8
    assert np.isfinite(gf.gradient_flow(cell, xs).rate)
    stack = gf.recurrent(cell, layers=2)  # drawn anew from the kind's constructor
    assert stack.cell.kind == "leaky" and stack.cell.config["layers"] == 2
    run = gf.train(cell, gf.tasks.adding(6), steps=2, record_every=1, progress=False)
    assert run.diverged_at is None and np.all(np.isfinite(run.loss))
