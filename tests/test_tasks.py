"""The tasks: generators do what their papers say, baselines match an independent computation."""

import numpy as np
import pytest
from scipy import stats

import gradflow as gf


def test_copy_memory_follows_bai_et_al_generator():
    T, s = 12, 10
    task = gf.tasks.copy_memory(T)
    xs, ys = task.batch(5, 3)
    assert xs.shape == (T + 2 * s, 5, 10) and ys.shape == (T + 2 * s, 5)
    tokens = xs.argmax(axis=-1)
    assert np.all(xs.sum(axis=-1) == 1.0)  # one-hot
    assert np.all((tokens[:s] >= 1) & (tokens[:s] <= 8))
    assert np.all(tokens[s : s + T - 1] == 0) and np.all(tokens[s + T - 1 :] == 9)
    assert np.all(ys[: T + s] == 0) and np.array_equal(ys[-s:], tokens[:s])
    assert task.readout_size == 10 and task.readout == "sequence"


def test_batches_are_seeded():
    task = gf.tasks.copy_memory(5, seed=4)
    a, b = task.batch(3, (1, 2)), task.batch(3, (1, 2))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], task.batch(3, (1, 3))[1])
    assert not np.array_equal(a[1], gf.tasks.copy_memory(5, seed=5).batch(3, (1, 2))[1])


def test_copy_baseline_is_the_best_memoryless_predictor_on_a_large_sample():
    # The best predictor that ignores the inputs outputs, at each position, the empirical
    # distribution of the targets there; its cross-entropy must be 10 ln 8 / (T + 20).
    T = 30
    task = gf.tasks.copy_memory(T)
    _, ys = task.batch(20_000, 9)
    n = ys.shape[0]
    freq = np.stack([np.bincount(ys[t], minlength=10) / ys.shape[1] for t in range(n)])
    with np.errstate(divide="ignore"):
        logits = np.log(freq)[:, None, :].repeat(ys.shape[1], axis=1)
    logp = np.take_along_axis(logits, ys[..., None], axis=-1)[..., 0]
    empirical = -logp.mean()
    assert task.baseline == pytest.approx(10 * np.log(8) / (T + 20), rel=1e-15)
    assert empirical == pytest.approx(task.baseline, rel=2e-3)


def test_copy_loss_is_cross_entropy():
    task = gf.tasks.copy_memory(3, symbols=2, categories=3)
    _, ys = task.batch(4)
    logits = np.random.default_rng(0).normal(size=(*ys.shape, 5))
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    expected = -np.take_along_axis(logp, ys[..., None], axis=-1).mean()
    assert float(task.loss(logits, ys)) == pytest.approx(expected, rel=1e-13)


def test_adding_markers_targets_and_baseline():
    T = 40
    task = gf.tasks.adding(T)
    xs, ys = task.batch(50_000, 1)
    marks = xs[..., 1]
    assert np.all(marks.sum(axis=0) == 2)
    assert np.all(marks[: T // 2].sum(axis=0) == 1) and np.all(marks[T // 2 :].sum(axis=0) == 1)
    assert np.allclose((xs[..., 0] * marks).sum(axis=0), ys)
    assert task.baseline == 1 / 6
    # Best memoryless prediction: the mean; its mean squared error is the variance of the target.
    best = ys.mean()
    empirical = float(task.loss(np.full((len(ys), 1), best), ys))
    se = ys.var() * np.sqrt(2 / len(ys))
    assert abs(best - 1.0) < 0.01 and abs(empirical - 1 / 6) < 4 * se


def test_sequential_digits_baseline_is_the_class_entropy():
    task = gf.tasks.sequential_digits(seed=1)
    xs, _ = task.batch(8)
    assert xs.shape == (64, 8, 1) and 0.0 <= xs.min() and xs.max() <= 1.0
    test_x, test_y = task.test_set()
    assert test_x.shape == (64, len(test_y), 1) and len(test_y) == 449
    # The prior, as logits, scores exactly the baseline on a batch holding every class in proportion.
    from sklearn.datasets import load_digits

    labels = load_digits().target
    train = np.setdiff1d(np.arange(len(labels)), np.random.default_rng([1, 0]).permutation(len(labels))[:449])
    counts = np.bincount(labels[train], minlength=10)
    assert task.baseline == pytest.approx(stats.entropy(counts), rel=1e-14)
    prior = np.log(counts / counts.sum())
    assert float(task.loss(np.tile(prior, (len(train), 1)), labels[train])) == pytest.approx(
        task.baseline, rel=1e-12
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gf.tasks.copy_memory(0), "T must be an integer >= 1; got 0"),
        (lambda: gf.tasks.copy_memory(-3), "T must be an integer >= 1; got -3"),
        (lambda: gf.tasks.adding(1), "seq_len must be an integer >= 2; got 1"),
        (lambda: gf.tasks.copy_memory(5, categories=1), "categories must be an integer >= 2; got 1"),
        (lambda: gf.tasks.copy_memory(5).batch(0), "size must be an integer >= 1; got 0"),
        (lambda: gf.tasks.copy_memory(5).batch(2, -1), "index must be a non-negative integer; got -1"),
        (lambda: gf.tasks.sequential_digits(test_fraction=1.5), "test_fraction must be in (0, 1); got 1.5"),
        (lambda: gf.tasks.sequential_digits(test_fraction=None), "test_fraction must be a number; got None"),
        (
            lambda: gf.tasks.sequential_digits(test_fraction="abc"),
            "test_fraction must be a number; got 'abc'",
        ),
        (
            lambda: gf.tasks.sequential_digits(test_fraction=1e-9),
            "test_fraction must leave at least 10 test images "
            "and every class in training (about 0.01 to 0.9 of 1797 images); got 1e-09",
        ),
        (
            lambda: gf.tasks.sequential_digits(test_fraction=0.995),
            "test_fraction must leave at least 10 test images "
            "and every class in training (about 0.01 to 0.9 of 1797 images); got 0.995",
        ),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_reprs():
    task = gf.tasks.adding(10)
    assert repr(task) == (
        "Task(name='adding (T=10)', seq_len=10, inputs=2, readout=1 (last), baseline=0.166667, seed=0)"
    )
    assert "<b>Task</b>" in task._repr_html_() and "Var(u1 + u2)" in task._repr_html_()
