"""Loaders: PyTorch modules, state_dicts and files, Keras arrays, gradflow cell files.

Every loader is checked against a numpy transcription of its framework's equations, and
against PyTorch's own forward pass when torch is importable (float64, 1e-10).
"""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import gradflow as gf
from gradflow.models._npz import read_npz


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def torch_equations(kind, p, xs, layers, proj=0, nonlinearity="tanh", suffix=""):
    """PyTorch's documented RNN / LSTM / GRU equations in numpy; returns the top layer's outputs."""
    inp = xs
    for l in range(layers):
        k = f"_l{l}{suffix}"
        w_ih, w_hh = p[f"weight_ih{k}"], p[f"weight_hh{k}"]
        b_ih, b_hh = p.get(f"bias_ih{k}", 0.0), p.get(f"bias_hh{k}", 0.0)
        n = w_hh.shape[0] // {"rnn": 1, "lstm": 4, "gru": 3}[kind]
        h = np.zeros((xs.shape[1], w_hh.shape[1]))
        c = np.zeros((xs.shape[1], n))
        outs = []
        for x in inp:
            gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
            if kind == "rnn":
                h = np.tanh(gi + gh) if nonlinearity == "tanh" else np.maximum(gi + gh, 0)
            elif kind == "lstm":
                i, f, g, o = np.split(gi + gh, 4, axis=1)
                c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                h = sigmoid(o) * np.tanh(c)
                if proj:
                    h = h @ p[f"weight_hr{k}"].T
            else:
                r = sigmoid(gi[:, :n] + gh[:, :n])
                z = sigmoid(gi[:, n : 2 * n] + gh[:, n : 2 * n])
                cand = np.tanh(gi[:, 2 * n :] + r * gh[:, 2 * n :])
                h = (1 - z) * cand + z * h
            outs.append(h)
        inp = np.stack(outs)
    return inp


def random_state_dict(kind, D, N, layers, rng, proj=0, prefix="", reverse=False):
    g = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    width = proj or N
    out = {}
    for suffix in ("", "_reverse") if reverse else ("",):
        for l in range(layers):
            d = D if l == 0 else width * (2 if reverse else 1)
            out[f"{prefix}weight_ih_l{l}{suffix}"] = rng.normal(0, 0.5, (g * N, d))
            out[f"{prefix}weight_hh_l{l}{suffix}"] = rng.normal(0, 0.5, (g * N, width))
            out[f"{prefix}bias_ih_l{l}{suffix}"] = rng.normal(0, 0.3, g * N)
            out[f"{prefix}bias_hh_l{l}{suffix}"] = rng.normal(0, 0.3, g * N)
            if proj:
                out[f"{prefix}weight_hr_l{l}{suffix}"] = rng.normal(0, 0.5, (proj, N))
    return out


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_prefixed_state_dict_with_head_matches_equations(kind):
    rng = np.random.default_rng(1)
    sd = random_state_dict(kind, 3, 5, 2, rng, prefix="enc.")
    sd.update(
        {
            "fc.weight": rng.normal(size=(2, 5)),
            "fc.bias": rng.normal(size=2),
            "embed.weight": rng.normal(size=(7, 3)),
        }
    )
    model = gf.from_torch(sd)
    assert (model.kind, model.layers, model.head.name, model.ignored) == (kind, 2, "fc", ("embed.weight",))
    xs = rng.normal(size=(9, 4, 3))
    bare = {k[4:]: v for k, v in sd.items() if k.startswith("enc.")}
    expected = torch_equations(kind, bare, xs, 2)
    np.testing.assert_allclose(model.outputs(xs), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        model.readout(xs), expected[-1] @ sd["fc.weight"].T + sd["fc.bias"], rtol=0, atol=1e-12
    )


def test_projection_and_bidirectional_match_equations():
    rng = np.random.default_rng(2)
    xs = rng.normal(size=(7, 3, 4))
    proj = gf.from_torch(random_state_dict("lstm", 4, 6, 2, rng, proj=3))
    assert proj.cell.state_size == 2 * (3 + 6) and proj.cell.components["l1.h"].size == 3
    p = {k: v for k, v in proj.cell.params.items()}
    np.testing.assert_allclose(proj.outputs(xs), torch_equations("lstm", p, xs, 2, proj=3), atol=1e-12)
    sd = random_state_dict("gru", 4, 5, 2, rng, reverse=True)
    bi = gf.from_torch(sd)
    assert list(bi.cells) == ["l0 forward", "l0 reverse", "l1 forward", "l1 reverse"]
    # numpy reference: each layer's output is [forward(x), reverse(x reversed) reversed]
    inp = xs
    for l in range(2):
        f = torch_equations(
            "gru", {k.replace(f"_l{l}", "_l0"): v for k, v in sd.items() if k.endswith(f"_l{l}")}, inp, 1
        )
        r = torch_equations(
            "gru",
            {k.replace(f"_l{l}_reverse", "_l0"): v for k, v in sd.items() if k.endswith(f"_l{l}_reverse")},
            inp[::-1],
            1,
        )[::-1]
        inp = np.concatenate([f, r], axis=2)
    np.testing.assert_allclose(bi.outputs(xs), inp, atol=1e-12)


def test_cell_module_keys_load_as_one_layer():
    rng = np.random.default_rng(3)
    sd = {k.replace("_l0", ""): v for k, v in random_state_dict("lstm", 2, 4, 1, rng).items()}
    model = gf.from_torch({f"cell.{k}": v for k, v in sd.items()})
    xs = rng.normal(size=(5, 2, 2))
    np.testing.assert_allclose(
        model.outputs(xs), torch_equations("lstm", {k + "_l0": v for k, v in sd.items()}, xs, 1), atol=1e-12
    )


def test_several_blocks_need_a_prefix():
    rng = np.random.default_rng(4)
    sd = {
        **random_state_dict("gru", 2, 3, 1, rng, prefix="a."),
        **random_state_dict("rnn", 2, 3, 1, rng, prefix="b."),
    }
    with pytest.raises(ValueError, match=r"2 recurrent blocks \['a', 'b'\]; choose one with prefix="):
        gf.from_torch(sd)
    model = gf.from_torch(sd, prefix="b")
    assert model.kind == "rnn" and all(k.startswith("a.") for k in model.ignored)
    with pytest.raises(ValueError, match="prefix 'c' is not a recurrent block"):
        gf.from_torch(sd, prefix="c")
    with pytest.raises(ValueError, match="head 'fc' not found"):
        gf.from_torch(sd, prefix="a", head="fc")


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru_matches_keras_equations(reset_after):
    # Keras GRUCell.call (keras/src/layers/rnn/gru.py): gates z, r, h;
    # reset_after: hh = tanh(x_h + r * (h @ R_h + rb_h)); else hh = tanh(x_h + (r * h) @ R_h);
    # h = z * h_prev + (1 - z) * hh.
    rng = np.random.default_rng(5)
    D, N = 3, 4
    kernel, rec = rng.normal(size=(D, 3 * N)), rng.normal(0, 0.5, (N, 3 * N))
    bias = rng.normal(size=(2, 3 * N)) if reset_after else rng.normal(size=3 * N)
    cell = gf.from_keras("gru", [kernel, rec, bias], reset_after=reset_after)
    xs = rng.normal(size=(6, 2, D))
    h = np.zeros((2, N))
    b_in = bias[0] if reset_after else bias
    for x in xs:
        mx = x @ kernel + b_in
        if reset_after:
            inner = h @ rec + bias[1]
            z, r = sigmoid(mx[:, :N] + inner[:, :N]), sigmoid(mx[:, N : 2 * N] + inner[:, N : 2 * N])
            hh = np.tanh(mx[:, 2 * N :] + r * inner[:, 2 * N :])
        else:
            z = sigmoid(mx[:, :N] + h @ rec[:, :N])
            r = sigmoid(mx[:, N : 2 * N] + h @ rec[:, N : 2 * N])
            hh = np.tanh(mx[:, 2 * N :] + (r * h) @ rec[:, 2 * N :])
        h = z * h + (1 - z) * hh
    np.testing.assert_allclose(gf.unroll(cell, xs)[-1], h, atol=1e-12)
    flow = gf.gradient_flow(cell, xs)  # the engine differentiates either variant
    assert np.all(np.isfinite(flow.log_norms))


def test_keras_lstm_matches_keras_equations():
    # Keras LSTMCell: z = x @ kernel + h @ recurrent_kernel + bias, split i, f, c, o;
    # c = f * c + i * tanh(z_c); h = o * tanh(c).
    rng = np.random.default_rng(6)
    D, N = 2, 3
    kernel, rec, bias = rng.normal(size=(D, 4 * N)), rng.normal(size=(N, 4 * N)), rng.normal(size=4 * N)
    cell = gf.from_keras("lstm", {"kernel": kernel, "recurrent_kernel": rec, "bias": bias})
    xs = rng.normal(size=(5, 2, D))
    h, c = np.zeros((2, N)), np.zeros((2, N))
    for x in xs:
        i, f, g, o = np.split(x @ kernel + h @ rec + bias, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
    np.testing.assert_allclose(gf.unroll(cell, xs)[-1], np.concatenate([h, c], axis=1), atol=1e-12)
    with pytest.raises(ValueError, match=r"bias must have shape \(12,\)"):
        gf.from_keras("lstm", [kernel, rec, bias[:5]])


def test_projected_cell_round_trips_and_its_jacobian_matches_finite_differences(tmp_path):
    rng = np.random.default_rng(7)
    cell = gf.from_torch(random_state_dict("lstm", 2, 4, 1, rng, proj=2)).cell
    path = tmp_path / "p.npz"
    cell.save(path)
    back = gf.load(path)
    xs = rng.normal(size=(4, 1, 2))
    np.testing.assert_array_equal(gf.unroll(back, xs), gf.unroll(cell, xs))
    h, x = rng.normal(size=(1, 6)), xs[0]
    J = gf.jacobians(cell, x[None], h0=h)[0, 0]
    eps = 1e-6
    fd = np.stack(
        [
            (cell.step(cell.params, h + eps * e, x) - cell.step(cell.params, h - eps * e, x))[0] / (2 * eps)
            for e in np.eye(6)
        ],
        axis=1,
    )
    np.testing.assert_allclose(J, fd, atol=1e-8)
    # The predictors run on it (the gated mean-field, written for square blocks, abstains).
    prediction = gf.predict(cell, rng.normal(size=(20, 2, 2)))
    assert prediction["gated mean-field"].regime is None and np.isfinite(prediction.best.rate)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_bad_files_give_one_clear_error(tmp_path):
    good = tmp_path / "good.npz"
    gf.gru(3, 2).save(good)
    truncated = _write(tmp_path / "cut.npz", good.read_bytes()[:200])
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    text = _write(tmp_path / "notes.npz", b"hello")
    for path, message in [
        (truncated, r"not a readable \.npz"),
        (npy, r"single \.npy array"),
        (text, r"not a readable \.npz"),
        (tmp_path / "missing.npz", "does not exist"),
    ]:
        with pytest.raises(ValueError, match=message) as info:
            gf.load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="path must be a file name; got None"):
        gf.load(None)
    for header in [
        "[1, 2]",
        '{"kind": "gru", "hidden": "3", "inputs": 2, "layers": 1}',
        '{"kind": "gru", "hidden": 3, "inputs": 2, "layers": 1, "evil": "os.system"}',
        '{"kind": "gru", "hidden": 3, "inputs": 2, "layers": 1, "seed": true}',
    ]:
        crafted = tmp_path / "crafted.npz"
        np.savez(crafted, __gradflow__=np.array(header), **gf.gru(3, 2).params)
        with pytest.raises(ValueError, match="corrupt __gradflow__ header"):
            gf.load(crafted)
    assert set(read_npz(good)) >= {"__gradflow__", "weight_hh_l0"}
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("weight_hh_l0.npy", b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        gf.from_torch(tmp_path / "z.npz")


def test_pt_file_without_torch_says_how_to_export(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    path = _write(tmp_path / "m.pt", b"x")
    with pytest.raises(ValueError, match=r"needs torch.*numpy.savez"):
        gf.from_torch(path)


def test_importing_gradflow_does_not_import_torch():
    code = "import sys, gradflow; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(gf.__file__))},
    )
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ against PyTorch itself


def _torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        ("LSTM", {"num_layers": 2, "batch_first": True}),
        ("LSTM", {"num_layers": 2, "proj_size": 3}),
        ("GRU", {"num_layers": 2, "bidirectional": True, "dropout": 0.3}),
        ("LSTM", {"num_layers": 1, "bidirectional": True, "proj_size": 2}),
        ("RNN", {"num_layers": 3, "nonlinearity": "relu"}),
    ],
)
def test_modules_reproduce_torch_forward(cls, kwargs):
    torch = _torch()
    module = getattr(torch.nn, cls)(4, 5, **kwargs).double().eval()
    xs = np.random.default_rng(8).normal(size=(3, 7, 4))  # (batch, T, D) if batch_first
    with torch.no_grad():
        expected = module(torch.from_numpy(xs))[0].numpy()
    model = gf.from_torch(module)
    assert model.batch_first == kwargs.get("batch_first", False)
    got = model.outputs(model.time_major(xs))
    if model.batch_first:
        got = np.swapaxes(got, 0, 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_modules_reproduce_torch_forward(cls):
    torch = _torch()
    module = getattr(torch.nn, cls)(3, 4).double()
    xs = np.random.default_rng(9).normal(size=(6, 2, 3))
    with torch.no_grad():
        state = None
        for x in torch.from_numpy(xs):
            state = module(x, state)
        h = (state[0] if isinstance(state, tuple) else state).numpy()
    np.testing.assert_allclose(gf.from_torch(module).outputs(xs)[-1], h, rtol=0, atol=1e-10)


def test_model_with_head_saved_as_pt_reproduces_torch(tmp_path):
    torch = _torch()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(2, 6, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(6, 1)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    net = Net().double()
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    xs = np.random.default_rng(10).normal(size=(3, 11, 2))
    with torch.no_grad():
        expected = net(torch.from_numpy(xs)).numpy()
    model = gf.from_torch(path, batch_first=True)
    assert model.head.name == "fc" and model.ignored == ()
    np.testing.assert_allclose(model.readout(model.time_major(xs)), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(gf.from_torch(net).readout(model.time_major(xs)), expected, atol=1e-10)
    json.dumps(repr(model))


def test_model_shows_itself_escaped_in_one_line():
    rng = np.random.default_rng(11)
    sd = random_state_dict("gru", 2, 3, 1, rng, prefix="rnn.")
    sd["<b>x</b>"] = np.zeros(2)
    model = gf.from_torch(sd, name="<script>alert(1)</script>")
    page = model._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "\n" not in repr(model) and "ignored=['<b>x</b>']" in repr(model)


def test_a_pickled_module_file_is_refused_without_running_it(tmp_path):
    torch = _torch()
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.GRU(2, 3), path)  # the module object itself: unpickling would run code
    with pytest.raises(
        ValueError, match=r"not a readable PyTorch state_dict \(torch.load with weights_only=True\)"
    ):
        gf.from_torch(path)
