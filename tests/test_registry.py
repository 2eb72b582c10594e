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
    with pytest.raises(ValueError, match=r"linear_part 'ssm' is not one of its parts \['h'\]"):
        gf.CellKind("x", leaky_step, leaky, linear_coefficients=leaky, linear_part="ssm")
    with pytest.raises(ValueError, match="input_states completes linear_coefficients; give both"):
        gf.CellKind("x", leaky_step, leaky, input_states=leaky)


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


# ------------------------------------------------------------------ kinds with their own layout

REVIVAL = {  # kind -> a small cell of it
    "lru": lambda: gf.lru(3, 2, r_min=0.5, seed=0),
    "s4d": lambda: gf.s4d(3, 2, seed=0),
    "mingru": lambda: gf.mingru(3, 2, seed=0),
    "minlstm": lambda: gf.minlstm(3, 2, seed=0),
    "mamba": lambda: gf.mamba(2, d_state=2, d_conv=3, expand=1, seed=0),
    "slstm": lambda: gf.slstm(3, 2, seed=0),
}


@pytest.mark.parametrize("kind", sorted(REVIVAL))
def test_the_revival_cells_are_registry_records(kind):
    import inspect

    record, cell = gf.cell_kind(kind), REVIVAL[kind]()
    assert kind in gf.cell_kinds(pytorch_layout=False) and not record.pytorch_layout
    assert record.make is getattr(gf, kind) and cell.kind == kind and cell.gates == ()
    assert getattr(cell.step, "func", cell.step) is record.step  # Mamba's step is a partial
    assert cell.stacked_tangents == record.stacked_tangents
    # The record's options are the constructor's keywords, with its defaults.
    signature = inspect.signature(record.make).parameters
    assert all(signature[k].default == v for k, v in record.options.items())
    # Its parts are the cell's components, in order, and as wide as the record says.
    assert [p for p, _ in record.parts] == list(cell.components)
    if all(units is not None for _, units in record.parts):
        widths = record.part_widths(cell.config["hidden"])
        assert widths == {p: len(cell.components[p]) for p in widths}
    # Linear in its state exactly when the record gives the per-step map, on a part of the state.
    assert bool(cell.config.get("linear")) == (record.linear_coefficients is not None)
    assert record.linear_part in cell.components
    assert (record.input_states is not None) == (kind == "mamba")


def test_the_old_side_tables_are_gone_and_their_names_read_the_registry(tmp_path):
    import gradflow.engine._linear as linear_module
    import gradflow.engine._scan as scan_module
    import gradflow.models._io as io_module

    for module, name in (
        (linear_module, "LINEAR_COEFFICIENTS"),
        (linear_module, "LAYER_OUTPUTS"),
        (scan_module, "LINEAR_COEFFICIENTS"),
        (io_module, "ARRAY_LOADERS"),
    ):
        assert not hasattr(module, name), f"{module.__name__}.{name}"
    with pytest.warns(DeprecationWarning, match=r"read gf.cell_kind\(kind\).linear_coefficients"):
        view = gf.engine.LINEAR_COEFFICIENTS
    assert dict(view) == {
        k: gf.cell_kind(k).linear_coefficients for k in ("lru", "mamba", "mingru", "minlstm", "s4d")
    }
    with pytest.warns(DeprecationWarning):
        assert set(gf.engine.LAYER_OUTPUTS) == {"lru", "mamba", "s4d"}
    with pytest.raises(TypeError):
        view["x"] = None  # read-only
    # The kinds in PyTorch's layout are the ones the CLI, gf.load and stacking build.
    assert gf.cell_kinds(pytorch_layout=True) == ("rnn", "lstm", "gru")
    with pytest.raises(ValueError, match="cannot save a cell of kind 'lru'"):
        REVIVAL["lru"]().save(tmp_path / "lru.npz")
    with pytest.raises(ValueError, match=r"layers=2 stacks a one-layer built-in cell .*\(s4d"):
        gf.recurrent(REVIVAL["s4d"](), layers=2)
    with pytest.raises(ValueError, match=r"unknown kind 's4d'; expected one of rnn, lstm, gru, lru, mamba"):
        gf.from_torch("s4d", REVIVAL["s4d"]().params)


# A kind of one's own, linear in part of its state: [last (the previous input), h] with
# h' = lam * h + B last and last' = x, so h reads the input one step late.
def delayed_step(params, state, x):
    inputs = x.shape[1]
    return np.concatenate([x, params["lam"] * state[:, inputs:] + state[:, :inputs] @ params["B"].T], axis=1)


def delayed_coefficients(cell, xs, h0):
    inputs = xs.shape[2]
    last = np.concatenate([h0[None, :, :inputs], xs[:-1]])  # the buffer before each step
    return np.broadcast_to(cell.params["lam"], (*xs.shape[:2], cell.params["lam"].size)), last @ cell.params[
        "B"
    ].T


def delayed(hidden, inputs, *, seed=0):
    rng = np.random.default_rng(seed)
    params = {"lam": rng.uniform(-1, 1, hidden), "B": rng.normal(size=(hidden, inputs))}
    return delayed_from_arrays(params)


def delayed_from_arrays(weights, *, prefix=None, name=None):
    hidden, inputs = np.shape(weights["B"])
    components = {"last": np.arange(inputs), "h": np.arange(inputs, inputs + hidden)}
    return gf.Cell(
        delayed_step, weights, inputs + hidden, inputs, kind="delayed", components=components,
        config={"hidden": hidden, "inputs": inputs, "linear": True}, name=name,
    )  # fmt: skip


DELAYED = gf.CellKind(
    "delayed",
    delayed_step,
    delayed,
    parts=(("last", None), ("h", 1)),
    stacked_tangents=False,
    pytorch_layout=False,
    linear_coefficients=delayed_coefficients,
    linear_part="h",
    input_states=lambda cell, xs, h0: xs,  # last after step t is x_t
    layer_outputs=lambda cell, states, xs: states[1:, :, cell.components["h"]].sum(-1, keepdims=True),
    loader=delayed_from_arrays,
)


def test_a_kind_with_its_own_layout_is_scanned_read_out_and_loaded_through_its_record():
    gf.register_cell_kind(DELAYED)
    try:
        cell = delayed(3, 2, seed=1)
        xs = gf.inputs.gaussian(9, 2, 2, seed=2)
        h0 = np.random.default_rng(3).normal(size=(2, 5))
        loop = gf.unroll(cell, xs, h0=h0)
        # The scan runs on the record's linear part and takes the rest from input_states.
        np.testing.assert_allclose(gf.scan(cell, xs, h0=h0), loop, rtol=1e-12, atol=1e-14)
        a, b = gf.linear_coefficients(cell, xs, h0=h0)
        h = h0[:, 2:]
        for t in range(9):  # the map by hand, against the loop
            h = a[t] * h + b[t]
            np.testing.assert_allclose(h, loop[t + 1, :, 2:], rtol=1e-12)
        ys = gf.layer_outputs(cell, xs, h0=h0)
        np.testing.assert_allclose(ys[..., 0], loop[1:, :, 2:].sum(-1), rtol=1e-12)
        again = gf.from_torch("delayed", cell.params, name="again")
        assert again.name == "again" and np.array_equal(gf.unroll(again, xs), gf.unroll(cell, xs))
    finally:
        gf.unregister_cell_kind("delayed")
    with pytest.raises(ValueError, match="kind 'delayed' has no per-step linear map"):
        gf.linear_coefficients(cell, xs)
