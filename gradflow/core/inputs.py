"""Seeded generators of time-major input sequences, shape ``(seq_len, batch, inputs)``."""

from __future__ import annotations

import numpy as np

from ._deprecation import deprecated_spellings
from ._validation import check_finite_float, check_positive_int, check_seed

__all__ = ["constant", "gaussian", "one_hot"]


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(check_seed(seed))


@deprecated_spellings(renamed={"steps": "seq_len"})
def gaussian(seq_len: int, batch: int, inputs: int, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """I.i.d. ``N(0, scale^2)`` inputs.

    With the built-in cells' input weights ``N(0, 1/inputs)``, each unit receives a
    drive of standard deviation ``scale`` (mean-field ``sigma_x``).

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.inputs.gaussian(100, 2, 3, scale=0.5, seed=1).shape
    (100, 2, 3)
    """
    shape = (
        check_positive_int("seq_len", seq_len),
        check_positive_int("batch", batch),
        check_positive_int("inputs", inputs),
    )
    scale = check_finite_float("scale", scale, minimum=0.0)
    return scale * _rng(seed).standard_normal(shape)


@deprecated_spellings(renamed={"steps": "seq_len"})
def constant(seq_len: int, batch: int, inputs: int, value: float = 0.0) -> np.ndarray:
    """The same input ``value`` everywhere (``value=0`` gives an autonomous network).

    Examples
    --------
    >>> import gradflow as gf
    >>> float(gf.inputs.constant(3, 1, 2, value=0.5).sum())
    3.0
    """
    shape = (
        check_positive_int("seq_len", seq_len),
        check_positive_int("batch", batch),
        check_positive_int("inputs", inputs),
    )
    return np.full(shape, check_finite_float("value", value))


@deprecated_spellings(renamed={"steps": "seq_len"})
def one_hot(seq_len: int, batch: int, vocab: int, seed: int = 0) -> np.ndarray:
    """Uniformly random tokens from ``vocab`` symbols, one-hot encoded.

    Examples
    --------
    >>> import gradflow as gf
    >>> x = gf.inputs.one_hot(4, 2, 5, seed=3)
    >>> x.shape, float(x.sum())
    ((4, 2, 5), 8.0)
    """
    seq_len, batch = check_positive_int("seq_len", seq_len), check_positive_int("batch", batch)
    vocab = check_positive_int("vocab", vocab)
    tokens = _rng(seed).integers(0, vocab, size=(seq_len, batch))
    return np.eye(vocab)[tokens]
