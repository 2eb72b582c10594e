"""``model_report`` / ``gradflow analyze`` on a model brought as it is: its own inputs, its own
readout, rates per layer checked against PyTorch autograd."""

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

import gradflow as gf
from gradflow import _cli_parser
from gradflow import cli as _cli
from gradflow.measure._rates import fit_rate
from gradflow.report import model_rates
from gradflow.report._rates import bootstrap_interval, choose_fit_start


def _torch_net(torch, kind, hidden, layers):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(2, hidden, num_layers=layers)
            self.fc = torch.nn.Linear(hidden, 1)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][-1])[:, 0]

    return Net().double()


def _torch_readout_profiles(torch, net, xs, kind, layers, summed=False):
    """ln ||d y_T / d h^(l)_{T-k}|| (``summed``: of sum_t y_t) by lag k and layer, batch-mean,
    from PyTorch autograd stepping the module itself one step at a time."""
    T, B, _ = xs.shape
    H = net.rnn.hidden_size
    h = torch.zeros(layers, B, H, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(layers, B, H, dtype=torch.float64)
    hs = [h]
    total = 0.0
    for t in range(T):
        x = torch.from_numpy(xs[t : t + 1])
        if kind == "LSTM":
            _, (h, c) = net.rnn(x, (h, c))
        else:
            _, h = net.rnn(x, h)
        h.retain_grad()
        hs.append(h)
        total = total + net.fc(h[-1])[:, 0].sum()
    y = net.fc(h[-1])[:, 0]
    (total if summed else y.sum()).backward()  # samples are independent: each row of the gradient is its own
    grads = np.stack([g.grad.numpy() if g.grad is not None else np.zeros((layers, B, H)) for g in hs])
    with np.errstate(divide="ignore"):
        log_norms = np.log(np.linalg.norm(grads, axis=3))  # (T+1, layers, B)
    return log_norms[::-1].mean(axis=2)  # by lag k = T - t


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_trained_model_reports_the_rate_pytorch_measures_per_layer(kind, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny matrices: threads only fight over the cores
    T, H, L = 40, 8, 2
    task = gf.tasks.adding(T, seed=1)
    net = _torch_net(torch, kind, H, L)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(15):  # a brief training run: enough to move the weights off their init
        xs, ys = task.batch(16, step)
        loss = ((net(torch.from_numpy(xs)) - torch.from_numpy(ys)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)  # keys rnn.weight_ih_l0 ..., fc.weight, fc.bias
    xs, _ = task.held_out(6, 999)
    model = gf.from_torch(path)
    assert model.head.name == "fc"
    rates = model_rates(model, xs)  # model_report's table, without the PDF
    profiles = _torch_readout_profiles(torch, net, xs, kind, L)
    lags = np.arange(T + 1)
    for l in range(L):
        row = rates[(rates.measure == "readout") & (rates.layer == l) & (rates.part == "h")].iloc[0]
        theirs = fit_rate(lags, profiles[:, l], int(row.fit_from)).rate
        assert abs(row.rate - theirs) < 0.005, (l, row.rate, theirs)
        assert row.rate == pytest.approx(theirs, abs=1e-8)  # both exact: they agree to rounding


def test_fit_start_skips_a_transient_and_keeps_a_straight_line():
    lags = np.arange(201)
    line = 1.0 - 0.05 * lags
    assert choose_fit_start(lags, line) == 0
    bent = line + 3.0 * np.exp(-lags / 5.0)  # a transient over the first ~25 lags
    start = choose_fit_start(lags, bent)
    assert 10 <= start <= 80
    assert fit_rate(lags, bent, start).rate == pytest.approx(-0.05, abs=5e-3)


def test_bootstrap_interval_covers_the_batch_spread():
    rng = np.random.default_rng(0)
    lags = np.arange(101)
    slopes = rng.normal(-0.1, 0.02, size=30)
    log_norms = slopes[None, :] * lags[:, None]
    lo, hi = bootstrap_interval(lags, log_norms, 0, seed=0)
    half = 1.96 * slopes.std(ddof=1) / np.sqrt(30)  # normal-theory interval of the mean slope
    assert lo < slopes.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.25)
    assert np.isnan(bootstrap_interval(lags, log_norms[:, :1], 0, seed=0)[0])


def test_analyze_reads_a_prefixed_npz_with_a_head_on_its_own_inputs(tmp_path, capsys):
    rng = np.random.default_rng(4)
    cell = gf.gru(5, 2, layers=2, seed=3)
    sd = {f"model.gru.{k}": v for k, v in cell.params.items()}
    sd.update(
        {
            "model.fc.weight": rng.normal(size=(1, 5)),
            "model.fc.bias": np.zeros(1),
            "model.embed.weight": rng.normal(size=(4, 2)),
        }
    )
    np.savez(tmp_path / "net.npz", **sd)
    xs = gf.tasks.adding(30).batch(3)[0]
    np.save(tmp_path / "xs.npy", np.swapaxes(xs, 0, 1))  # saved batch-first
    args = [
        "analyze",
        str(tmp_path / "net.npz"),
        "--inputs",
        str(tmp_path / "xs.npy"),
        "--batch-first",
        "--predictors",
        "off",
        "--exponents",
        "2",
        "--quiet",
        "--out",
        str(tmp_path / "a"),
    ]
    assert _cli.main(args) == 0
    out = capsys.readouterr()
    assert "ignored keys" in out.err and "model.embed.weight" in out.err
    rates = pd.read_csv(tmp_path / "a" / "net_rates.csv")
    assert set(rates.measure) == {"readout", "random direction"} and set(rates.layer) == {0, 1}
    model = gf.from_torch(sd)
    directions = model.readout_directions("forward")
    from gradflow.report._rates import readout_flow

    start = int(rates.fit_from.iloc[0])
    flow = readout_flow(model.cell, xs, directions, start)
    top = rates[(rates.measure == "readout") & (rates.layer == 1)].rate.iloc[0]
    expected = fit_rate(flow.lags, flow.components["l1.h"].mean(axis=1), start).rate
    assert top == pytest.approx(expected, rel=1e-9)
    text = PdfReader(tmp_path / "a" / "net.pdf").pages[1].extract_text()
    assert "xs.npy" in text and "synthetic" not in text and f"{top:+.4f}" in text


def test_task_inputs_and_a_bidirectional_model():
    rng = np.random.default_rng(5)
    sd = {}
    for suffix in ("", "_reverse"):
        for l in range(2):
            d = 2 if l == 0 else 8
            sd.update(
                {
                    f"weight_ih_l{l}{suffix}": rng.normal(0, 0.5, (12, d)),
                    f"weight_hh_l{l}{suffix}": rng.normal(0, 0.5, (12, 4)),
                    f"bias_ih_l{l}{suffix}": np.zeros(12),
                    f"bias_hh_l{l}{suffix}": np.zeros(12),
                }
            )
    sd["head.weight"], sd["head.bias"] = rng.normal(size=(2, 8)), np.zeros(2)
    model = gf.from_torch(sd)
    args = _cli_parser.build_parser().parse_args(["analyze", "--inputs", "task:adding:24", "--batch", "3"])
    xs, label = _cli._analyzed_inputs(args, 2)
    assert xs.shape == (24, 3, 2) and label.startswith("adding (T=24)")
    np.testing.assert_array_equal(xs, gf.tasks.adding(24).batch(3, 0)[0])
    rates = model_rates(model, xs)
    assert set(rates.cell) == {"l0 forward", "l0 reverse", "l1 forward", "l1 reverse"}
    assert set(rates[rates.measure == "readout"].cell) == {"l1 forward"}
    # The reverse cell is measured on the reversed sequence of the layer below's outputs.
    rev = model.cells["l0 reverse"]
    flow = gf.gradient_flow(rev, xs[::-1], fit_from=int(rates.fit_from[rates.cell == "l0 reverse"].iloc[0]))
    row = rates[(rates.cell == "l0 reverse") & (rates.measure == "random direction")].iloc[0]
    assert row.rate == pytest.approx(
        fit_rate(flow.lags, flow.components["h"].mean(axis=1), int(row.fit_from)).rate, rel=1e-9
    )


def test_summed_readout_matches_pytorch_autograd():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    torch.set_num_threads(1)
    net = _torch_net(torch, "LSTM", 5, 2)
    xs = gf.tasks.adding(25).batch(3)[0]
    rates = model_rates(gf.from_torch(net), xs, readout="sum")
    assert set(rates.measure) == {"readout summed over steps", "random direction"}
    profiles = _torch_readout_profiles(torch, net, xs, "LSTM", 2, summed=True)
    for l in range(2):
        row = rates[(rates.measure != "random direction") & (rates.layer == l) & (rates.part == "h")].iloc[0]
        theirs = fit_rate(np.arange(26), profiles[:, l], int(row.fit_from)).rate
        assert row.rate == pytest.approx(theirs, abs=1e-8)
