import os

import autograd.numpy as anp
import numpy as np
import pytest
from helpers import torch_reference_step

import gradflow as gf


def torch_weights(kind, hidden, inputs, layers=1, seed=0, bias=True):
    g = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    rng = np.random.default_rng(seed)
    w = {}
    for l in range(layers):
        d = inputs if l == 0 else hidden
        w[f"weight_ih_l{l}"] = rng.normal(size=(g * hidden, d))
        w[f"weight_hh_l{l}"] = rng.normal(size=(g * hidden, hidden)) / np.sqrt(hidden)
        if bias:
            w[f"bias_ih_l{l}"] = rng.normal(size=g * hidden)
            w[f"bias_hh_l{l}"] = rng.normal(size=g * hidden)
    return w


# ------------------------------------------------------------------ constructors


@pytest.mark.parametrize("make", [gf.rnn, gf.lstm, gf.gru])
def test_same_seed_same_weights_other_seed_differs(make):
    a, b, c = make(8, 3, seed=5), make(8, 3, seed=5), make(8, 3, seed=6)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["weight_hh_l0"], c.params["weight_hh_l0"])


def test_initialisers_have_their_defining_properties():
    n, g = 400, 1.7
    W = gf.rnn(n, 2, init="gaussian", gain=g).params["weight_hh_l0"]
    assert W.var() == pytest.approx(g**2 / n, rel=0.02)
    W = gf.rnn(n, 2, init="orthogonal", gain=g).params["weight_hh_l0"]
    np.testing.assert_allclose(W.T @ W, g**2 * np.eye(n), atol=1e-10)
    W = gf.rnn(n, 2, init="identity", gain=g).params["weight_hh_l0"]
    np.testing.assert_array_equal(W, g * np.eye(n))
    cell = gf.rnn(n, 2, init="pytorch", gain=1.0)
    bound = 1 / np.sqrt(n)
    for k, v in cell.params.items():
        assert np.abs(v).max() <= bound, k
        assert np.abs(v).max() > 0.9 * bound, k


def test_gate_biases_land_in_the_right_block():
    n = 5
    lstm = gf.lstm(n, 2, forget_bias=2.5)
    b = lstm.params["bias_ih_l0"] + lstm.params["bias_hh_l0"]
    np.testing.assert_array_equal(b[n : 2 * n], 2.5)  # gate order i, f, g, o
    np.testing.assert_array_equal(np.delete(b, np.s_[n : 2 * n]), 0.0)
    gru = gf.gru(n, 2, update_bias=-1.0)
    b = gru.params["bias_ih_l0"] + gru.params["bias_hh_l0"]
    np.testing.assert_array_equal(b[n : 2 * n], -1.0)  # gate order r, z, n


def test_bias_scale_sets_bias_std():
    b = gf.rnn(4000, 1, bias_scale=0.3).params["bias_ih_l0"]
    assert b.std() == pytest.approx(0.3, rel=0.05)


def test_stacked_cell_state_is_concatenation_of_layers():
    cell = gf.lstm(6, 3, layers=3, seed=1)
    assert cell.state_size == 36
    assert set(cell.components) >= {"h", "c", "l0.h", "l2.c"}
    np.testing.assert_array_equal(cell.components["l1.h"], np.arange(12, 18))
    assert cell.gates[:4] == ("l0.i", "l0.f", "l0.g", "l0.o")


# ------------------------------------------------------------------ PyTorch layout


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_from_torch_step_matches_pytorch_equations(kind):
    n, d, b = 5, 3, 4
    w = torch_weights(kind, n, d)
    cell = gf.from_torch(kind, w)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(b, d))
    h = rng.normal(size=(b, n))
    if kind == "lstm":
        c = rng.normal(size=(b, n))
        ref_h, ref_c = torch_reference_step(kind, w, (h, c), x)
        out = cell.step(cell.params, np.concatenate([h, c], axis=1), x)
        np.testing.assert_allclose(out, np.concatenate([ref_h, ref_c], axis=1), rtol=1e-13)
    else:
        out = cell.step(cell.params, h, x)
        np.testing.assert_allclose(out, torch_reference_step(kind, w, h, x), rtol=1e-13)


def test_from_torch_relu_rnn_and_no_bias():
    w = torch_weights("rnn", 4, 2, bias=False)
    cell = gf.from_torch("rnn", w, activation="relu")
    h, x = np.full((1, 4), 0.3), np.ones((1, 2))
    ref = np.maximum(x @ w["weight_ih_l0"].T + h @ w["weight_hh_l0"].T, 0)
    np.testing.assert_allclose(cell.step(cell.params, h, x), ref)


def test_from_torch_stacked_layers_feed_each_other():
    n, d = 4, 3
    w = torch_weights("gru", n, d, layers=2)
    cell = gf.from_torch("gru", w)
    rng = np.random.default_rng(2)
    x, h = rng.normal(size=(2, d)), rng.normal(size=(2, 2 * n))
    h1 = torch_reference_step("gru", {k[:-1] + "0": v for k, v in w.items() if k.endswith("0")}, h[:, :n], x)
    w1 = {k[:-1] + "0": v for k, v in w.items() if k.endswith("1")}
    h2 = torch_reference_step("gru", w1, h[:, n:], h1)
    np.testing.assert_allclose(cell.step(cell.params, h, x), np.concatenate([h1, h2], axis=1), rtol=1e-13)


class FakeTensor:
    """Quacks like a torch tensor: .detach().cpu().numpy()."""

    def __init__(self, a):
        self.a = a

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.a


def test_from_torch_accepts_tensors_without_importing_torch():
    w = {k: FakeTensor(v) for k, v in torch_weights("lstm", 3, 2).items()}
    assert gf.from_torch("lstm", w).state_size == 6


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda w: w.pop("weight_hh_l0"), "missing 'weight_hh_l0'"),
        (lambda w: w.update(weight_ih_l0=np.ones((12, 5))), r"weight_ih_l0.*\(16, 5\).*\(12, 5\)"),
        (lambda w: w.update(bias_hh_l0=np.ones(15)), r"bias_hh_l0.*\(16,\).*\(15,\)"),
        (lambda w: w.update(weight_ih_l0_reverse=np.ones((16, 2))), "bidirectional"),
        (lambda w: w.update(weight_hh_l0=np.full((16, 4), np.nan)), "non-finite"),
        (lambda w: w.update(weight_hh_l0=np.ones((12, 4))), r"shape \(4\*N, N\)"),
        (
            lambda w: w.update(weight_ih_l0=np.ones(16)),
            r"weight_ih_l0'\] must be 2-D, \(4\*N, inputs\); got shape \(16,\)",
        ),
    ],
)
def test_from_torch_rejects_mismatched_arrays(mutate, message):
    w = torch_weights("lstm", 4, 2)
    mutate(w)
    with pytest.raises(ValueError, match=message):
        gf.from_torch("lstm", w)


def test_from_torch_rejects_unknown_kind_and_activation():
    with pytest.raises(ValueError, match="unknown kind 'transformer'"):
        gf.from_torch("transformer", {})
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        gf.from_torch("rnn", torch_weights("rnn", 2, 2), activation="gelu")


# ------------------------------------------------------------------ save / load


@pytest.mark.parametrize(
    "cell",
    [
        gf.rnn(5, 2, activation="sigmoid", gain=2.0, seed=3),
        gf.lstm(4, 3, layers=2, forget_bias=2.0),
        gf.gru(3, 1, init="orthogonal"),
    ],
)
def test_save_load_round_trip(tmp_path, cell):
    path = tmp_path / "c.npz"
    cell.save(path)
    back = gf.load(path)
    assert (back.kind, back.state_size, back.input_size, back.name) == (
        cell.kind,
        cell.state_size,
        cell.input_size,
        cell.name,
    )
    assert back.config == cell.config
    rng = np.random.default_rng(0)
    h, x = rng.normal(size=(2, cell.state_size)), rng.normal(size=(2, cell.input_size))
    np.testing.assert_array_equal(back.step(back.params, h, x), cell.step(cell.params, h, x))
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind


def test_load_rejects_non_gradflow_files(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.ones(3))
    with pytest.raises(ValueError, match="not a gradflow cell file"):
        gf.load(bad)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        gf.load(junk)


def test_custom_cell_cannot_be_saved(tmp_path):
    cell = gf.Cell(lambda p, h, x: anp.tanh(h), {}, state_size=2, input_size=1)
    with pytest.raises(ValueError, match="cannot save a cell of kind 'custom'"):
        cell.save(tmp_path / "c.npz")


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gf.rnn(8, 2, activation="swish"), "unknown activation 'swish'"),
        (lambda: gf.rnn(0, 2), "hidden must be an integer >= 1; got 0"),
        (lambda: gf.rnn(8, 2.5), "inputs must be an integer >= 1; got 2.5"),
        (lambda: gf.rnn(8, 2, init="xavier"), "unknown init 'xavier'"),
        (lambda: gf.rnn(8, 2, gain=float("nan")), "gain must be a finite number >= 0.0; got nan"),
        (lambda: gf.lstm(8, 2, gain=-1.0), "gain must be a finite number >= 0.0; got -1.0"),
        (lambda: gf.lstm(8, 2, forget_bias="big"), "forget_bias must be a number; got 'big'"),
        (lambda: gf.gru(8, 2, seed=-1), "seed must be a non-negative integer; got -1"),
        (lambda: gf.rnn(8, 2, bias_scale=-1), "bias_scale must be a finite number >= 0.0"),
    ],
)
def test_constructors_name_the_bad_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_custom_cell_is_checked_at_construction():
    with pytest.raises(ValueError, match=r"must return the next state of shape \(batch, 3\)"):
        gf.Cell(lambda p, h, x: h[:, :2], {}, state_size=3, input_size=1)
    with pytest.raises(ValueError, match=r"step\('broken'\) failed"):
        gf.Cell(lambda p, h, x: h @ p["missing"], {}, state_size=3, input_size=1, name="broken")
    with pytest.raises(ValueError, match=r"params\['W'\] contains non-finite"):
        gf.Cell(lambda p, h, x: h, {"W": np.array([1.0, np.inf])}, state_size=3, input_size=1)


def test_reprs_are_plain_and_html_is_escaped():
    cell = gf.Cell(lambda p, h, x: h, {}, state_size=2, input_size=1, name="<script>x</script>")
    assert "<script>" not in cell._repr_html_()
    assert "&lt;script&gt;" in cell._repr_html_()
    assert repr(gf.lstm(4, 2)).startswith("Cell(name='lstm', kind='lstm', state_size=8")
