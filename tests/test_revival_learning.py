"""Linear recurrences in their papers' blocks (`gradflow.residual_block`) and the recurrent_revival
study's learning part: the block against a numpy transcription run by the loop, its gradient against
finite differences, that it trains, and the learning verdict on data where the answer is known."""

from dataclasses import replace

import autograd
import numpy as np
import pandas as pd
import pytest

import gradflow as gf
from gradflow.models._blocks import gelu
from gradflow.studies import _revival_learning as learning
from gradflow.studies import recurrent_revival as rr


def _np_layer_norm(z, gain, bias, eps=1e-5):
    mu = z.mean(-1, keepdims=True)
    return (z - mu) / np.sqrt(((z - mu) ** 2).mean(-1, keepdims=True) + eps) * gain + bias


def _np_gelu(z):
    return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))


def _np_dense(p, name, z):
    return z @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def _np_block(block, cells, head, xs):
    """The block by hand: numpy, each recurrence run step by step (`gradflow.unroll`), its output by
    `gradflow.layer_outputs` (LRU, S4D, Mamba) or the state (minGRU)."""
    p = block.params
    u = _np_dense(p, "encoder", xs)
    for k, cell in enumerate(cells):
        z = _np_layer_norm(u, p[f"b{k}.norm.weight"], p[f"b{k}.norm.bias"])
        y = gf.layer_outputs(cell, z) if cell.kind in ("lru", "s4d", "mamba") else gf.unroll(cell, z)[1:]
        if head == "glu":
            g = _np_gelu(y)
            gate = 1 / (1 + np.exp(-_np_dense(p, f"b{k}.head.out2", g)))
            u = u + _np_dense(p, f"b{k}.head.out1", g) * gate
        else:
            v = u + y
            w = _np_layer_norm(v, p[f"b{k}.head.norm.weight"], p[f"b{k}.head.norm.bias"])
            u = v + _np_dense(p, f"b{k}.head.fc2", _np_gelu(_np_dense(p, f"b{k}.head.fc1", w)))
    return u


BLOCKS = {
    "lru+s4d, glu": (lambda: [gf.lru(5, 6, r_min=0.5, seed=1), gf.s4d(4, 6, seed=2)], "glu"),
    "mingru x2, mlp": (lambda: [gf.mingru(6, 6, seed=3), gf.minlstm(6, 6, seed=4)], "mlp"),
    "mamba, mlp": (lambda: [gf.mamba(6, d_state=3, d_conv=3, seed=11)], "mlp"),
}


@pytest.mark.parametrize("which", list(BLOCKS))
def test_block_is_its_numpy_transcription_run_by_the_loop(which):
    make, head = BLOCKS[which]
    cells = make()
    block = gf.residual_block(cells, inputs=3, head=head, seed=5)
    xs = gf.inputs.gaussian(37, 2, 3, seed=6)
    ref = _np_block(block, cells, head, xs)
    assert np.max(np.abs(block(xs) - ref)) <= 1e-12 * max(1.0, np.max(np.abs(ref)))


@pytest.mark.parametrize("which", list(BLOCKS))
def test_block_gradient_matches_finite_differences(which):
    make, head = BLOCKS[which]
    block = gf.residual_block(make(), inputs=3, head=head, seed=7)
    xs = gf.inputs.gaussian(9, 2, 3, seed=8)
    w = np.random.default_rng(9).normal(size=(2, block.width))

    def loss(p):
        return np.sum(block.apply(p, xs)[-1] * w)

    grad = autograd.grad(loss)(block.params)
    rng = np.random.default_rng(10)
    for name, value in block.params.items():  # two entries of every weight: encoder, norms, layers, heads
        for index in {tuple(rng.integers(0, s) for s in value.shape) for _ in range(2)}:
            eps = 1e-6
            up = {**block.params, name: value.copy()}
            down = {**block.params, name: value.copy()}
            up[name][index] += eps
            down[name][index] -= eps
            fd = (loss(up) - loss(down)) / (2 * eps)
            assert abs(grad[name][index] - fd) <= 1e-6 * max(1.0, abs(fd)), (name, index)


def test_gelu_is_torchs_tanh_gelu():
    torch = pytest.importorskip("torch")
    z = np.linspace(-6, 6, 101)
    ref = torch.nn.functional.gelu(torch.tensor(z), approximate="tanh").numpy()
    assert np.allclose(gelu(z), ref, rtol=1e-12, atol=1e-15)


def test_block_trains_on_a_tiny_task():
    task = gf.tasks.adding(6, seed=0)
    block = gf.residual_block([gf.lru(4, 4, seed=0), gf.lru(4, 4, seed=1)], inputs=task.input_size)
    run = gf.train(block, task, 60, lr=0.02, batch=16, seed=0, progress=False)
    assert run.diverged_at is None
    assert run.loss[-10:].mean() < 0.5 * run.loss[:10].mean()


@pytest.mark.parametrize(
    ("cells", "kwargs", "message"),
    [
        (lambda: gf.lstm(4, 4), {}, "kind 'lstm' cannot be scanned"),
        (lambda: gf.lru(4, 4), {"head": "relu"}, "head must be one of 'glu', 'mlp'; got 'relu'"),
        (lambda: gf.mingru(3, 4), {}, r"hidden size \(3\) must equal its inputs \(4\)"),
        (lambda: [gf.lru(4, 4), gf.lru(4, 5)], {}, "cells\\[1\\] takes inputs of width 5"),
        (lambda: [], {}, "at least one cell"),
        (lambda: gf.lru(4, 4), {"inputs": 0}, "inputs"),
    ],
)
def test_block_rejects_bad_arguments_by_name(cells, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gf.residual_block(cells(), **{"inputs": 2, **kwargs})


TINY = replace(
    rr.QUICK,
    learners=("LSTM", "LRU block"),
    learn_tasks=("adding", "copy_memory"),
    learn_lengths=(4, 6),
    learn_seeds=2,
    learn_steps=3,
    learn_width=4,
    copy_symbols=2,
    executor="serial",
)


def test_learning_part_runs_at_tiny_size_and_counts_the_networks():
    runs = learning.measure_learning(TINY)
    assert len(runs) == 2 * 2 * 2 * 2  # learners x tasks x T x seeds
    assert np.allclose(runs.ratio, runs.eval_loss / runs.baseline)
    assert (runs.learnt == (runs.ratio < learning.SUCCESS)).all()
    summary = learning.learning_summary(runs)
    assert summary.learnt.sum() == runs.learnt.sum() and (summary.networks == 2).all()
    decision, cells = learning.learning_verdict(runs)
    assert decision.label == "inconclusive (n < 10)" and len(cells) == 4
    assert learning.learning_table(summary).shape == (8, 7)


def _runs(shares: dict[str, float], n: int = 20) -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(architecture=arch, task="adding", T=T, seed=seed, learnt=seed < share * n)
            for arch, share in shares.items()
            for T in (20, 200)
            for seed in range(n)
        ]
    )


@pytest.mark.parametrize(
    ("shares", "label"),
    [
        ({"LSTM": 0.0, "GRU": 0.05}, "holds"),
        ({"LSTM": 1.0, "LRU block": 0.9}, "does not hold"),
        ({"LSTM": 0.0, "LRU block": 1.0}, "holds only when LSTM on adding"),
        (
            {"LSTM": 0.0, "LRU block": 0.5},
            "inconclusive (holds for LSTM on adding; undecided for LRU block on adding)",
        ),
    ],
)
def test_learning_verdict_follows_the_shares_that_learnt(shares, label):
    assert learning.learning_verdict(_runs(shares))[0].label == label


def test_learning_config_rejects_bad_values_by_name():
    with pytest.raises(ValueError, match="learners = 'Transformer' is not one of"):
        replace(rr.QUICK, learners=("LSTM", "Transformer"))
    with pytest.raises(ValueError, match="learn_lengths"):
        replace(rr.QUICK, learn_lengths=(1, 20))


@pytest.mark.slow
def test_study_learning_csvs_agree_and_intervals_are_wilsons(study_run):
    out = study_run("recurrent_revival").out  # the tiny sizes of conftest.TINY_CONFIG
    runs = pd.read_csv(out / "recurrent_revival_learning_runs.csv")
    summary = pd.read_csv(out / "recurrent_revival_learning.csv")
    assert len(runs) == summary.networks.sum() and set(runs.architecture) == set(rr.QUICK.learners)
    z = 1.959963984540054  # Wilson's score interval by hand, 95%
    for r in summary.itertuples():
        g = runs[(runs.task == r.task) & (runs.architecture == r.architecture) & (runs["T"] == r.T)]
        k, n = int(g.learnt.sum()), len(g)
        assert (r.learnt, r.networks) == (k, n)
        centre = (k / n + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(k / n * (1 - k / n) / n + z * z / (4 * n * n))
        assert r.low == pytest.approx(0.0 if k == 0 else centre - half, abs=1e-9)  # the CSV keeps 10 digits
        assert r.high == pytest.approx(1.0 if k == n else centre + half, abs=1e-9)  # the CSV keeps 10 digits


@pytest.mark.slow
def test_same_seed_trains_the_same_networks(study_run):
    run = study_run("recurrent_revival")  # run.again: the same tiny run repeated
    a, b = (pd.read_csv(out / "recurrent_revival_learning_runs.csv") for out in (run.out, run.again))
    pd.testing.assert_frame_equal(a.drop(columns="cpu_seconds"), b.drop(columns="cpu_seconds"))
