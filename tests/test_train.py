"""Training: gradients against finite differences, the remedies do exactly what they say, runs are
reproducible, and the seeded learning outcomes the README reports."""

import html

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, value_and_grad
from autograd.misc import flatten
from helpers import rel_err

import gradflow as gf
from gradflow.core import _html
from gradflow.training import _objective, _train
from gradflow.training._objective import (
    finite_time_exponents,
    initial_params,
    make_objective,
    penalised_names,
)
from gradflow.training._train import _clip


def _fd_check(f, flat, coords, eps=1e-6):
    _, g = value_and_grad(f)(flat)
    for i in coords:
        e = np.zeros_like(flat)
        e[i] = eps
        fd = (f(flat + e) - f(flat - e)) / (2 * eps)
        assert g[i] == pytest.approx(fd, rel=1e-6, abs=1e-9), i


MODELS = [
    lambda d: gf.lstm(4, d, seed=0),
    lambda d: gf.rnn(4, d, gain=1.2, seed=0, layers=2),
    lambda d: gf.recurrent(gf.gru(3, d, seed=0), layers=2),
    lambda d: gf.self_attention(4, heads=2, inputs=d, seed=0),
    lambda d: gf.tcn(4, kernel=2, layers=2, inputs=d, seed=0),
]


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("task", [gf.tasks.copy_memory(3, symbols=2, categories=3), gf.tasks.adding(6)])
def test_training_gradient_matches_central_differences(make, task):
    model = _objective.as_model(make(task.input_size))
    objective, _ = make_objective(model, task)
    flat, unflatten = flatten(initial_params(model, task, seed=1))
    xs, ys = task.batch(3, 2)

    def f(v):
        return objective(unflatten(v), xs, ys)

    coords = np.random.default_rng(0).choice(flat.size, size=12, replace=False)
    _fd_check(f, flat, coords)


# Reverse mode over forward-mode J_t Q through the cells' own fused steps (their rules are
# differentiated again): stacked and saturating cells too.
@pytest.mark.parametrize(
    "make",
    [
        lambda: gf.rnn(5, 2, gain=1.3, seed=0),
        lambda: gf.lstm(3, 2, seed=1),
        lambda: gf.gru(3, 2, seed=2, layers=2),
        lambda: gf.rnn(4, 2, seed=0, activation="sigmoid", bias_scale=0.5, layers=2),
        lambda: gf.lstm(3, 2, seed=1, layers=2, bias_scale=0.3),
    ],
)
def test_lyapunov_regulariser_is_the_spectrum_and_its_gradient_is_right(make):
    cell = make()
    xs = gf.inputs.gaussian(12, 2, 2, seed=3)
    lam = finite_time_exponents(cell, cell.params, xs, 2, seed=4)
    # The same QR iteration as gf.lyapunov_spectrum from the same Q_0 (Gram-Schmidt instead of
    # Householder: equal up to rounding).
    spec = gf.lyapunov_spectrum(cell, xs, k=2, warmup=0, seed=4)
    np.testing.assert_allclose(
        np.sort(np.asarray(lam).T, axis=1)[:, ::-1], np.sort(spec.per_sample, axis=1)[:, ::-1], rtol=1e-10
    )
    flat, unflatten = flatten(cell.params)

    def f(v):
        return anp.sum(finite_time_exponents(cell, unflatten(v), xs, 2, seed=4) ** 2)

    coords = np.random.default_rng(1).choice(flat.size, size=10, replace=False)
    _fd_check(f, flat, coords)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_penalty_adds_exactly_its_term_to_loss_and_gradient(kind):
    task = gf.tasks.adding(5)
    model = _objective.as_model(gf.rnn(4, 2, seed=0, layers=2))
    params = initial_params(model, task, 0)
    xs, ys = task.batch(3)
    w = 0.37
    plain, _ = make_objective(model, task)
    pen, parts = make_objective(model, task, penalty=(kind, w))
    (v0, g0), (v1, g1) = value_and_grad(plain)(params, xs, ys), value_and_grad(pen)(params, xs, ys)
    names = penalised_names(model)
    assert names == ["weight_hh_l0", "weight_hh_l1"]
    W = [params["model"][n] for n in names]
    term = w * sum(np.sum(a**2) if kind == "l2" else np.sum(np.abs(a)) for a in W)
    assert v1 - v0 == pytest.approx(term, rel=1e-13) and parts["penalty"] == pytest.approx(term, rel=1e-15)
    for name in params["model"]:
        diff = g1["model"][name] - g0["model"][name]
        W = params["model"][name]
        want = (2 * w * W if kind == "l2" else w * np.sign(W)) if name in names else np.zeros_like(W)
        np.testing.assert_allclose(diff, want, rtol=1e-9, atol=1e-14)


def test_clipping_bounds_every_applied_gradient_and_update():
    task = gf.tasks.adding(8)
    cell = gf.rnn(6, 2, gain=3.0, seed=0)  # chaotic: large gradients
    c, lr = 0.05, 0.5
    run = gf.train(cell, task, 30, optimizer="sgd", lr=lr, clip=c, record_every=100)
    assert np.any(run.grad_norm > c)  # clipping had work to do
    assert np.all(run.clipped_grad_norm <= c * (1 + 1e-12))
    assert np.all(run.update_norm <= lr * c * (1 + 1e-12))
    assert np.allclose(run.clipped_grad_norm, np.minimum(run.grad_norm, c))
    # By value: every component inside [-v, v], then the norm rule on top.
    g = np.array([3.0, -0.2, -5.0])
    assert np.array_equal(_clip(g, None, 1.0), [1.0, -0.2, -1.0])
    assert np.linalg.norm(_clip(g, 0.5, 1.0)) == pytest.approx(0.5)
    run = gf.train(cell, task, 10, optimizer="sgd", lr=1.0, clip_value=0.01, record_every=100)
    n = sum(np.size(v) for v in run.params["model"].values()) + 6 + 2
    assert np.all(run.update_norm <= 0.01 * np.sqrt(n))


def test_training_is_bit_for_bit_reproducible():
    task = gf.tasks.copy_memory(4, symbols=2, categories=3, seed=2)
    kw = dict(steps=15, lr=0.02, clip=1.0, penalty=("l2", 1e-3), lyapunov=(0.01, 1), record_every=5, seed=7)
    a = gf.train(gf.lstm(4, 5, seed=3), task, **kw)
    b = gf.train(gf.lstm(4, 5, seed=3), task, **kw)
    for name in ("loss", "objective", "grad_norm", "clipped_grad_norm", "update_norm"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.records.equals(b.records) and a.eval_loss == b.eval_loss
    for k, v in a.params["model"].items():
        assert np.array_equal(v, b.params["model"][k])
    c = gf.train(gf.lstm(4, 5, seed=3), task, **{**kw, "seed": 8})
    assert not np.array_equal(a.loss, c.loss)


def test_lyapunov_regulariser_pulls_the_top_exponent_toward_zero():
    task = gf.tasks.adding(20)
    cell = gf.rnn(8, 2, gain=0.5, seed=0)  # strongly contracting: lambda_1 well below 0
    plain = gf.train(cell, task, 40, lr=0.01, record_every=40)
    floss = gf.train(cell, task, 40, lr=0.01, lyapunov=(1.0, 1), record_every=40)
    before = plain.records.lyapunov_top.iloc[0]
    assert before < -0.3
    assert abs(floss.records.lyapunov_top.iloc[-1]) < abs(plain.records.lyapunov_top.iloc[-1])
    assert np.all(floss.objective > floss.loss)


def test_run_records_instruments_per_layer():
    task = gf.tasks.adding(12)
    seen = []
    run = gf.train(gf.gru(4, 2, seed=0, layers=2), task, 6, record_every=3, callback=seen.append)
    rec = run.records
    assert [r["step"] for r in seen] == [0, 3, 6] and seen[1]["loss"] == rec.loss[1]
    assert list(rec.step) == [0, 3, 6]
    for col in (
        "spectral_radius",
        "top_singular_value",
        "lyapunov_top",
        "flow_rate",
        "flow_rate_l0",
        "flow_rate_l1",
        "flow_log_norm_T_l0",
        "flow_log_norm_T_l1",
    ):
        assert np.all(np.isfinite(rec[col])), col
    W = run.params["model"]["weight_hh_l0"][8:12]  # GRU's candidate block n of layer 0
    assert rec.spectral_radius.iloc[-1] == pytest.approx(np.max(np.abs(np.linalg.eigvals(W))))
    frame = run.to_frame()
    assert {"model", "task", "step", "quantity", "value"} == set(frame.columns)
    assert set(frame.quantity) >= {"loss", "grad_norm", "clipped_grad_norm", "update_norm", "flow_rate_l1"}
    att = gf.train(gf.self_attention(4, inputs=2), task, 3, record_every=1)
    assert list(att.records.columns) == ["step", "split", "loss"] and att.diverged_at is None


def test_repr_html_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = gf.tasks.adding(6)
    run = gf.train(gf.lstm(3, 2, seed=0, name="<lstm & co>"), task, 4, record_every=2)
    assert repr(run).startswith("TrainingRun(model='recurrent <lstm & co>', task='adding (T=6)', steps=4,")
    page = run._repr_html_()
    assert html.escape("<lstm & co>") in page and "<lstm & co>" not in page
    assert "<svg" in page and _html.REGIME_COLORS[gf.regime_of(run.records.flow_rate.iloc[-1])] in page
    axes = run.plot()
    # one axis per scale: loss, gradient norms, matrix magnitudes, rates in nats/step
    assert len(axes) == 4 and axes[0].get_lines()
    labels = [
        {ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")} for ax in axes[2:]
    ]
    assert labels == [{"spectral radius", "top singular value"}, {"lyapunov top", "flow rate"}]
    np.testing.assert_allclose(
        axes[3].get_lines()[-1].get_ydata(), run.records.flow_rate[run.records.split == "train"]
    )
    plt.close("all")


def test_seeded_learning_outcomes():
    """What the seeded runs do (the README reports them). Copy memory with one symbol to recall
    (baseline ln 8 / (T + 2)), 300 Adam steps of batch 16 at lr 0.02, 64 units: an LSTM with
    forget bias 3 learns it at T = 20 to 3% of the memoryless baseline; a tanh RNN on the same
    budget at T = 200 stays at the baseline (102%)."""
    budget = dict(steps=300, lr=0.02, batch=16, record_every=10**6)
    task = gf.tasks.copy_memory(20, symbols=1)
    lstm = gf.train(gf.lstm(64, task.input_size, forget_bias=3.0, seed=0), task, **budget)
    assert lstm.eval_loss < 0.1 * task.baseline
    long = gf.tasks.copy_memory(200, symbols=1)
    rnn = gf.train(gf.rnn(64, long.input_size, seed=0), long, **budget)
    assert rnn.eval_loss == pytest.approx(long.baseline, rel=0.05)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(optimizer="adagrad"), "unknown optimizer 'adagrad'; expected one of adam, sgd"),
        (dict(lr=-0.1), "lr must be a positive finite number; got -0.1"),
        (dict(lr=float("nan")), "lr must be a finite number; got nan"),
        (dict(penalty=("l3", 0.1)), "penalty must be None or ('l1' | 'l2', weight); got ('l3', 0.1)"),
        (dict(penalty="l2"), "penalty must be None or ('l1' | 'l2', weight); got 'l2'"),
        (dict(penalty=("l2", -1.0)), "penalty weight must be a finite number >= 0.0; got -1.0"),
        (dict(clip=0.0), "clip must be a positive finite number; got 0.0"),
        (dict(steps=0), "steps must be an integer >= 1; got 0"),
        (dict(lyapunov=(0.1, 9)), "lyapunov k must be at most the state size 6; got 9"),
        (dict(seed=-1), "seed must be a non-negative integer; got -1"),
        (dict(callback=3), "callback must be callable or None; got 3"),
        (dict(lr=True), "lr must be a number; got True"),
        (dict(lr="0.1"), "lr must be a number; got '0.1'"),
        (dict(clip=True), "clip must be a number; got True"),
        (dict(penalty=("l2", True)), "penalty weight must be a number; got True"),
        (
            dict(momentum=0.5),
            "momentum applies to optimizer='sgd' only (Adam keeps its own moments); got "
            "momentum=0.5 with optimizer='adam'",
        ),
        (dict(optimizer="sgd", momentum=2.0), "momentum must be in [0, 1); got 2.0"),
    ],
)
def test_bad_input_names_the_argument_and_value(kwargs, message):
    kw = dict(steps=2, **kwargs) if "steps" not in kwargs else kwargs
    with pytest.raises(ValueError) as info:
        gf.train(gf.lstm(3, 2, seed=0), gf.tasks.adding(4), **kw)
    assert str(info.value) == message


def test_bad_models_and_weights_are_named():
    cell = gf.rnn(3, 2, seed=0)
    cell.params["weight_hh_l0"][1, 2] = np.nan
    with pytest.raises(
        ValueError, match=r"model.params\['weight_hh_l0'\] contains non-finite values \(nan\)"
    ):
        gf.train(cell, gf.tasks.adding(4), 2)
    with pytest.raises(ValueError, match="takes inputs of width 3; task 'adding"):
        gf.train(gf.rnn(3, 3), gf.tasks.adding(4), 2)
    with pytest.raises(ValueError, match=r"model 'tcn .*has none"):
        gf.train(gf.tcn(3, 2, 1, inputs=2), gf.tasks.adding(4), 2, lyapunov=0.1)
    mine = gf.Cell(lambda p, h, x: anp.tanh(h @ p["W"] + x), {"W": np.eye(2)}, 2, 2)
    with pytest.raises(
        ValueError, match=r"penalty \('l2', 0.1\) has nothing to act on: model 'recurrent custom'"
    ):
        gf.train(mine, gf.tasks.adding(4), 2, penalty=("l2", 0.1))
    run = gf.train(mine, gf.tasks.adding(4), 3, lyapunov=0.1, record_every=1)  # a custom step flosses too
    assert np.all(run.objective > run.loss) and list(run.records.columns) == ["step", "split", "loss"]
    with pytest.raises(ValueError, match="model must be a gradflow Cell or SequenceModel; got str"):
        gf.train("lstm", gf.tasks.adding(4), 2)


def test_digits_are_evaluated_on_the_test_split_only():
    task = gf.tasks.sequential_digits(seed=0)
    run = gf.train(gf.rnn(6, 1, seed=0), task, steps=3, batch=8, record_every=10, seed=0)
    test_x, test_y = task.test_set()
    objective, _ = gf.training_objective(gf.rnn(6, 1, seed=0), task, seed=0)
    assert run.eval_loss == pytest.approx(objective(run.params, test_x, test_y), rel=1e-12)
    assert list(run.records.split) == ["train", "held out"]
    # No training batch contains a test image.
    train_rows = {row.tobytes() for i in range(3) for row in task.batch(8, (0, i))[0][:, :, 0].T}
    assert not train_rows & {row.tobytes() for row in test_x[:, :, 0].T}


def test_a_direction_killed_exactly_is_not_divergence():
    # ReLU units at rest kill Q vectors; ln|R_ii| stays finite (-345) and training goes on.
    run = gf.train(gf.rnn(5, 2, activation="relu", seed=1), gf.tasks.adding(12), steps=3, lyapunov=(0.1, 2))
    assert run.diverged_at is None and np.isfinite(run.eval_loss)
    assert set(run.to_frame().quantity) >= {"loss", "grad_norm"}


def test_a_huge_learning_rate_is_divergence_not_a_finite_loss():
    # lr=1e10 gives a finite loss of ~1e20 after one step (tanh saturates, the readout explodes).
    task = gf.tasks.adding(10)
    run = gf.train(gf.rnn(8, 2, seed=0), task, steps=30, lr=1e10, record_every=5, progress=False)
    assert run.diverged_at == 1 and np.isnan(run.eval_loss) and np.isnan(run.final_loss)
    assert run.loss[1] > _objective.DIVERGED_FACTOR * max(run.loss[0], task.baseline)
    assert np.all(np.isnan(run.loss[2:]))
    numbers = run.records.select_dtypes("number").to_numpy()
    assert not np.isinf(numbers).any() and list(run.records.step) == [0]
    assert "diverged at step 1" in run._repr_html_()


def test_ctrl_c_returns_the_partial_run():
    calls = []

    def interrupt_at_step_10(row):
        calls.append(row["step"])
        if row["step"] == 10 and row["split"] == "train":
            raise KeyboardInterrupt

    task = gf.tasks.adding(6)
    with pytest.warns(RuntimeWarning, match="interrupted at step 10 of 30"):
        run = gf.train(
            gf.rnn(4, 2, seed=0), task, 30, record_every=5, callback=interrupt_at_step_10, progress=False
        )
    assert run.interrupted_at == 10 and run.steps == 10 and run.diverged_at is None
    assert np.all(np.isfinite(run.loss)) and "interrupted_at=10" in repr(run)
    assert list(run.records.step) == [0, 5, 10] and list(run.records.split) == ["train", "train", "held out"]
    # the partial run is the first 10 steps of the full one, bit for bit
    full = gf.train(gf.rnn(4, 2, seed=0), task, 30, record_every=5, progress=False)
    np.testing.assert_array_equal(run.loss, full.loss[:10])
    # the held-out row measures the weights after 10 steps: the full run's row at step 10
    measured = ["spectral_radius", "lyapunov_top", "flow_rate"]
    np.testing.assert_array_equal(run.records[measured].to_numpy(), full.records[measured][:3].to_numpy())
    assert "interrupted at step 10" in run._repr_html_()


def test_training_progress_bar_shows_steps_and_loss(monkeypatch):
    import gradflow.core._options as options

    bars, shown = [], []
    real = options.progress_bar

    def spy(total, desc, unit, progress, **kwargs):
        shown.append(options.resolve_progress(progress))
        bars.append(real(total, desc, unit, progress, **kwargs))
        return bars[-1]

    monkeypatch.setattr(_train, "progress_bar", spy)
    monkeypatch.setattr(options, "interactive", lambda: True)  # as in JupyterLab
    gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(6), 5, record_every=5, progress=True)
    assert shown == [True] and bars[-1].n == 5 and "loss" in bars[-1].postfix
    with gf.options(progress=False):
        gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(6), 2, record_every=5)
    gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(6), 2, record_every=5)  # the default again
    assert shown == [True, False, True]
    monkeypatch.setattr(options, "interactive", lambda: False)  # a log file, a worker process
    gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(6), 2, record_every=5)
    gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(6), 2, record_every=5, progress=True)
    assert shown[3:] == [False, True]
    with pytest.raises(ValueError, match="progress must be True, False or None; got 'yes'"):
        gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(6), 2, progress="yes")


def test_lstm_training_equals_pytorch_step_by_step():
    """gf.train's LSTM (one primitive for the whole sequence, `model_forward`) against
    torch.nn.LSTM + Linear + torch.optim.Adam from the same weights on the same batches: equal
    losses for 20 Adam steps, and equal first gradients."""
    torch = pytest.importorskip("torch")
    task = gf.tasks.adding(15, seed=0)
    cell = gf.lstm(6, task.input_size, init="pytorch", seed=1)
    model = gf.recurrent(cell)
    assert gf.training.model_forward(model) != model.apply  # the fused path is what is tested
    lr, batch, steps, seed = 0.02, 5, 20, 3
    run = gf.train(cell, task, steps, lr=lr, batch=batch, record_every=steps, seed=seed, progress=False)
    start = initial_params(model, task, seed)
    lstm = torch.nn.LSTM(task.input_size, 6, dtype=torch.float64)
    readout = torch.nn.Linear(6, 1, dtype=torch.float64)
    with torch.no_grad():
        for name, value in start["model"].items():
            getattr(lstm, name).copy_(torch.from_numpy(value))
        readout.weight.copy_(torch.from_numpy(start["readout"]["weight"]))
        readout.bias.copy_(torch.from_numpy(start["readout"]["bias"]))
    opt = torch.optim.Adam([*lstm.parameters(), *readout.parameters()], lr=lr)  # betas, eps as gf.ADAM
    objective, _ = make_objective(model, task, seed=seed)
    losses = []
    for i in range(steps):
        xs, ys = task.batch(batch, (seed, i))
        opt.zero_grad()
        loss = torch.mean((readout(lstm(torch.from_numpy(xs))[0][-1])[:, 0] - torch.from_numpy(ys)) ** 2)
        loss.backward()
        if i == 0:
            g = grad(objective)(start, xs, ys)
            np.testing.assert_allclose(
                g["model"]["weight_hh_l0"], lstm.weight_hh_l0.grad.numpy(), rtol=1e-9, atol=1e-14
            )
            np.testing.assert_allclose(
                g["readout"]["weight"], readout.weight.grad.numpy(), rtol=1e-9, atol=1e-14
            )
        opt.step()
        losses.append(float(loss.detach()))
    np.testing.assert_allclose(run.loss, losses, rtol=1e-10, atol=0)
    assert losses[-1] < losses[0]  # it learnt: the comparison is not of a frozen model


def _unfused_step(kind):
    """PyTorch's equations of one layer in plain ``autograd.numpy``: no fused operation, no
    whole-sequence primitive (the reference the fused paths are held to)."""

    def logistic(a):
        return 1.0 / (1.0 + anp.exp(-a))

    def step(p, s, x):
        gi, gh = x @ p["weight_ih_l0"].T + p["bias_ih_l0"], p["bias_hh_l0"]
        if kind == "rnn":
            return anp.tanh(gi + s @ p["weight_hh_l0"].T + gh)
        if kind == "lstm":
            n = s.shape[-1] // 2
            a = gi + s[:, :n] @ p["weight_hh_l0"].T + gh
            c = logistic(a[:, n : 2 * n]) * s[:, n:] + logistic(a[:, :n]) * anp.tanh(a[:, 2 * n : 3 * n])
            return anp.concatenate([logistic(a[:, 3 * n :]) * anp.tanh(c), c], axis=1)
        n = s.shape[-1]
        gh = s @ p["weight_hh_l0"].T + gh
        r, z = logistic(gi[:, :n] + gh[:, :n]), logistic(gi[:, n : 2 * n] + gh[:, n : 2 * n])
        return (1.0 - z) * anp.tanh(gi[:, 2 * n :] + r * gh[:, 2 * n :]) + z * s

    return step


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_training_gradient_equals_unfused_autograd_and_pytorch(kind):
    """The objective's gradient (LSTM, GRU and tanh RNN through their whole-sequence primitives)
    equals autograd's through the unfused equations to 1e-12 and PyTorch's (nn.LSTM / GRU / RNN +
    Linear, MSE) to 1e-10, every weight."""
    torch = pytest.importorskip("torch")
    task = gf.tasks.adding(12, seed=0)
    cell = getattr(gf, kind)(5, task.input_size, init="pytorch", seed=2)
    model = gf.recurrent(cell)
    assert gf.training.model_forward(model) != model.apply  # the fused paths
    xs, ys = task.batch(4, 0)
    params = initial_params(model, task, 1)
    loss, g = value_and_grad(make_objective(model, task)[0])(params, xs, ys)
    plain = gf.Cell(
        _unfused_step(kind), cell.params, cell.state_size, cell.input_size, components=cell.components
    )
    g_plain = grad(make_objective(gf.recurrent(plain), task)[0])(params, xs, ys)
    assert rel_err(flatten(g)[0], flatten(g_plain)[0]) < 1e-12
    net = getattr(torch.nn, kind.upper())(task.input_size, 5, dtype=torch.float64)
    readout = torch.nn.Linear(5, 1, dtype=torch.float64)
    with torch.no_grad():
        for name, value in params["model"].items():
            getattr(net, name).copy_(torch.from_numpy(value))
        readout.weight.copy_(torch.from_numpy(params["readout"]["weight"]))
        readout.bias.copy_(torch.from_numpy(params["readout"]["bias"]))
    theirs = torch.mean((readout(net(torch.from_numpy(xs))[0][-1])[:, 0] - torch.from_numpy(ys)) ** 2)
    theirs.backward()
    assert float(theirs.detach()) == pytest.approx(loss, rel=1e-12)
    for name, value in g["model"].items():
        assert rel_err(value, getattr(net, name).grad.numpy()) < 1e-10, name
    assert rel_err(g["readout"]["weight"], readout.weight.grad.numpy()) < 1e-10
    assert rel_err(g["readout"]["bias"], readout.bias.grad.numpy()) < 1e-10


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_vanilla_training_through_its_sequence_equals_the_traced_steps(monkeypatch, activation):
    """gf.train of a one-layer vanilla cell through its whole-sequence primitive (`rnn_sequence`)
    against the same run through the traced step (`model.apply`): the same losses for 20 Adam
    steps to 1e-10."""
    task = gf.tasks.adding(15, seed=0)
    cell = gf.rnn(6, task.input_size, activation=activation, seed=1)
    model = gf.recurrent(cell)
    assert gf.training.model_forward(model) != model.apply  # the fused path is what is tested
    budget = dict(lr=0.02, batch=5, record_every=20, seed=3, progress=False)
    fused = gf.train(cell, task, 20, **budget)
    monkeypatch.setattr(_objective, "model_forward", lambda model: model.apply)
    traced = gf.train(cell, task, 20, **budget)
    np.testing.assert_allclose(fused.loss, traced.loss, rtol=1e-10, atol=0)
    assert fused.loss[-1] < fused.loss[0]  # it learnt: the comparison is not of a frozen model
