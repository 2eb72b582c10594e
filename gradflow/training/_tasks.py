"""Long-range learning tasks with known memoryless baselines, as seeded batch generators.

Each task draws time-major batches ``(T, batch, inputs)`` from ``numpy.random.default_rng``
seeded by the task's seed and the batch index, so batch ``i`` of a task is the same bits
every time. The loss is written with ``autograd.numpy``; the baseline is the loss of the
best predictor that does not remember the inputs, computed in closed form.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import autograd.numpy as anp
import numpy as np

from ..core import deprecated_spellings, renamed_attribute
from ..core._validation import check_finite_float, check_positive_int, check_seed

READOUTS = ("sequence", "last")


def cross_entropy(logits, labels: np.ndarray):
    """Mean of ``-ln softmax(logits)[label]`` over every leading position; ``logits`` (..., C)."""
    top = anp.max(logits, axis=-1, keepdims=True)
    log_z = top[..., 0] + anp.log(anp.sum(anp.exp(logits - top), axis=-1))
    picked = anp.sum(logits * np.eye(logits.shape[-1])[labels], axis=-1)
    return anp.mean(log_z - picked)


def mean_squared_error(outputs, targets: np.ndarray):
    """Mean of ``(output - target)^2`` for a one-unit readout ``outputs`` (batch, 1)."""
    return anp.mean((outputs[:, 0] - targets) ** 2)


@dataclass(frozen=True, repr=False)
class Task:
    """A seeded sequence task: batches, a loss, and the loss of the best memoryless predictor.

    Attributes
    ----------
    name : str
    seq_len : int
        Sequence length fed to the model (the task's T plus any fixed parts; ``steps`` before 0.3.0,
        a name `gradflow.train` keeps for optimiser steps).
    input_size, readout_size : int
        Width of one input vector and of the linear readout the task's loss expects.
    readout : {"sequence", "last"}
        Whether the loss reads the outputs at every position ``(seq_len, batch, readout_size)``
        or only at the last ``(batch, readout_size)``.
    baseline : float
        Loss of the best predictor that does not remember the inputs (nats or squared units).
    baseline_formula : str
        How ``baseline`` was computed, for reports.
    seed : int
        Seed of every batch (with the batch index).

    Examples
    --------
    The adding task's target is the sum of two U(0, 1) numbers: always answering their mean,
    1, scores the baseline, their variance 2/12.

    >>> import numpy as np
    >>> import gradflow as gf
    >>> task = gf.tasks.adding(5, seed=0)
    >>> task
    Task(name='adding (T=5)', seq_len=5, inputs=2, readout=1 (last), baseline=0.166667, seed=0)
    >>> xs, ys = task.batch(4000, 0)
    >>> xs.shape, ys.shape, bool(np.array_equal(task.batch(3, 1)[0], task.batch(3, 1)[0]))
    ((5, 4000, 2), (4000,), True)
    >>> bool(abs(task.loss(np.ones((4000, 1)), ys) - task.baseline) < 0.01)
    True
    """

    name: str
    seq_len: int
    input_size: int
    readout_size: int
    readout: str
    baseline: float
    baseline_formula: str
    seed: int
    _sample: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]] = field(compare=False)
    _loss: Callable = field(compare=False)
    steps = renamed_attribute("seq_len")  # before 0.3.0

    def batch(self, size: int, index: int | tuple[int, ...] = 0) -> tuple[np.ndarray, np.ndarray]:
        """Batch number ``index``: inputs ``(seq_len, size, input_size)`` and targets.

        ``index`` (an integer or tuple of integers) and the task's seed fix every draw.

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> task = gf.tasks.adding(5, seed=0)
        >>> xs, ys = task.batch(3, index=7)
        >>> xs.shape, ys.shape, bool(np.array_equal(xs, task.batch(3, index=7)[0]))
        ((5, 3, 2), (3,), True)
        >>> bool(np.array_equal(xs, task.batch(3, index=8)[0]))  # another batch, other draws
        False
        """
        size = check_positive_int("size", size)
        parts = index if isinstance(index, tuple) else (index,)
        for p in parts:
            check_seed(p, "index")
        return self._sample(np.random.default_rng([self.seed, *parts]), size)

    def held_out(self, size: int, index: int | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Data to evaluate on: a generated task's fresh batch ``index`` (never a training batch
        when ``index`` is not one); a dataset's test split (``size`` is then ignored).

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> task = gf.tasks.adding(5, seed=0)
        >>> xs, ys = task.held_out(4, index=(1, 0))  # training batches use integer indices
        >>> xs.shape, bool(np.array_equal(xs, task.batch(4, (1, 0))[0]))
        ((5, 4, 2), True)
        """
        return self.batch(size, index)

    def loss(self, outputs: Any, targets: np.ndarray) -> Any:
        """The task's loss (a scalar, differentiable with autograd) of readout ``outputs``.

        Examples
        --------
        The adding task's loss is the mean squared error of the last step's readout:

        >>> import numpy as np
        >>> import gradflow as gf
        >>> task = gf.tasks.adding(5, seed=0)
        >>> _, ys = task.batch(8)
        >>> outputs = np.full((8, 1), 0.9)
        >>> bool(np.isclose(task.loss(outputs, ys), np.mean((0.9 - ys) ** 2)))
        True
        """
        return self._loss(outputs, targets)

    def __repr__(self) -> str:
        return (
            f"Task(name={self.name!r}, seq_len={self.seq_len}, inputs={self.input_size}, "
            f"readout={self.readout_size} ({self.readout}), baseline={self.baseline:.6g}, "
            f"seed={self.seed})"
        )

    def _repr_html_(self) -> str:
        return summary_html(
            "Task",
            [
                ("task", self.name),
                ("sequence length", str(self.seq_len)),
                ("inputs", str(self.input_size)),
                ("readout", f"{self.readout_size} units, read at {self.readout}"),
                ("memoryless baseline", f"{self.baseline:.6g} = {self.baseline_formula}"),
                ("seed", str(self.seed)),
            ],
        )


def summary_html(title: str, rows: list[tuple[str, str]]) -> str:
    """A titled two-column HTML table of (label, value) rows, every string escaped."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(a)}</th>"
        f"<td style='text-align:left'>{html.escape(b)}</td></tr>"
        for a, b in rows
    )
    return f"<div><b>{html.escape(title)}</b><table>{body}</table></div>"


def copy_memory(T: int, *, symbols: int = 10, categories: int = 8, seed: int = 0) -> Task:
    """Copy memory (Arjovsky et al. 2016; Bai et al. 2018's generator).

    ``T`` is the copy delay (Arjovsky et al.'s T), not the sequence length ``T + 2 symbols``.
    Input: ``symbols`` tokens drawn uniformly from ``1..categories``, ``T - 1`` blanks (0),
    then ``symbols + 1`` delimiters (``categories + 1``), one-hot over ``categories + 2``
    classes; length ``T + 2 symbols``. Target: blanks, then the tokens in the last
    ``symbols`` positions. The loss is cross-entropy averaged over every position, so
    predicting blanks and then uniform guesses scores ``symbols ln(categories) / (T + 2 symbols)``.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> task = gf.tasks.copy_memory(20)
    >>> xs, ys = task.batch(2)
    >>> xs.shape, ys.shape, f"{task.baseline:.6f}", f"{10 * np.log(8) / 40:.6f}"
    ((40, 2, 10), (40, 2), '0.519860', '0.519860')
    """
    T = check_positive_int("T", T)
    symbols = check_positive_int("symbols", symbols)
    categories = check_positive_int("categories", categories, minimum=2)
    seed = check_seed(seed)
    classes = categories + 2
    n = T + 2 * symbols

    def sample(rng, size):
        tokens = rng.integers(1, categories + 1, size=(size, symbols))
        seq = np.zeros((size, n), dtype=np.intp)
        seq[:, :symbols] = tokens
        seq[:, symbols + T - 1 :] = categories + 1  # the delimiters: "recall now"
        target = np.zeros((size, n), dtype=np.intp)
        target[:, -symbols:] = tokens
        return np.eye(classes)[seq.T], target.T

    return Task(
        f"copy memory (T={T})",
        n,
        classes,
        classes,
        "sequence",
        symbols * np.log(categories) / n,
        f"{symbols} ln {categories} / (T + {2 * symbols})",
        seed,
        sample,
        cross_entropy,
    )


@deprecated_spellings(renamed={"T": "seq_len"})
def adding(seq_len: int, *, seed: int = 0) -> Task:
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015's form).

    Two input channels: values ``U(0, 1)`` and a marker that is 1 at one position drawn
    uniformly from the first half and one from the second half. The target, read at the
    last step, is the sum of the two marked values. The best memoryless prediction is the
    mean, 1, whose mean squared error is the variance of a sum of two independent
    ``U(0, 1)``: exactly ``2 / 12 = 1/6``. ``seq_len`` is the sequence length (the literature's T).

    Examples
    --------
    >>> import gradflow as gf
    >>> task = gf.tasks.adding(50)
    >>> xs, ys = task.batch(3)
    >>> xs.shape, ys.shape, task.baseline == 1 / 6
    ((50, 3, 2), (3,), True)
    """
    T = check_positive_int("seq_len", seq_len, minimum=2)
    seed = check_seed(seed)
    half = T // 2

    def sample(rng, size):
        values = rng.uniform(0.0, 1.0, size=(T, size))
        first = rng.integers(0, half, size=size)
        second = rng.integers(half, T, size=size)
        marks = np.zeros((T, size))
        cols = np.arange(size)
        marks[first, cols] = marks[second, cols] = 1.0
        return np.stack([values, marks], axis=-1), values[first, cols] + values[second, cols]

    return Task(
        f"adding (T={T})",
        T,
        2,
        1,
        "last",
        1.0 / 6.0,
        "Var(u1 + u2) = 2/12 for u ~ U(0, 1)",
        seed,
        sample,
        mean_squared_error,
    )


def sequential_digits(*, test_fraction: float = 0.25, seed: int = 0) -> Task:
    """scikit-learn's 8x8 digits read one pixel per step (T = 64), classified at the last step.

    The 1797 images (bundled with scikit-learn; nothing is downloaded) are split once,
    by ``seed``, into a training part (the batches) and a held-out part
    (``task.test_set()``). Pixels are scaled to ``[0, 1]``. The memoryless baseline is
    the entropy of the training part's class frequencies (about ln 10).

    Examples
    --------
    >>> import gradflow as gf
    >>> task = gf.tasks.sequential_digits()
    >>> xs, ys = task.batch(4)
    >>> xs.shape, ys.shape, round(task.baseline, 3)
    ((64, 4, 1), (4,), 2.302)
    """
    from sklearn.datasets import load_digits

    seed = check_seed(seed)
    test_fraction = check_finite_float("test_fraction", test_fraction)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction!r}")
    digits = load_digits()
    images, labels = digits.data / 16.0, digits.target.astype(np.intp)
    order = np.random.default_rng([seed, 0]).permutation(len(labels))
    n_test = round(test_fraction * len(labels))
    test, train = order[:n_test], order[n_test:]
    if n_test < 10 or len(np.unique(labels[train])) < 10:
        raise ValueError(
            f"test_fraction must leave at least 10 test images and every class in training "
            f"(about 0.01 to 0.9 of {len(labels)} images); got {test_fraction!r}"
        )
    freq = np.bincount(labels[train], minlength=10) / len(train)

    def sample(rng, size):
        pick = train[rng.integers(0, len(train), size=size)]
        return images[pick].T[:, :, None], labels[pick]

    task = _DigitsTask(
        "sequential digits (8x8, pixel by pixel)",
        64,
        1,
        10,
        "last",
        float(-np.sum(freq * np.log(freq))),
        "entropy of the training class frequencies",
        seed,
        sample,
        cross_entropy,
    )
    object.__setattr__(task, "_test", (images[test].T[:, :, None], labels[test]))
    return task


class _DigitsTask(Task):
    _test: tuple[np.ndarray, np.ndarray]  # set once by sequential_digits (the instance is frozen)

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The held-out images ``(64, n_test, 1)`` and their labels."""
        return self._test

    def held_out(self, size: int, index: int | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The test split: images never drawn for training (``size`` and ``index`` are ignored)."""
        return self._test
