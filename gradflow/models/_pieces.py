"""The pieces the sequence-model builders share: initial weights, sinusoidal positions, layer norm,
masked softmax, the input embedding, the batch-major to time-major transpose and the ``inputs``
argument check, written with ``autograd.numpy`` so they trace; ``POSITIONAL`` lists the position
encodings an attention model takes. The builders are in ``_attention`` and ``_convolution``; the
`SequenceModel` container and `path_lengths` are in ``_sequence``.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from ..core._validation import check_positive_int

POSITIONAL = ("sinusoidal", "none")


def normal_weights(rng, shape, std):
    return rng.normal(0.0, std, size=shape)


def sinusoidal_positions(n: int, width: int) -> np.ndarray:
    """Vaswani et al.'s fixed encodings, ``(n, width)``."""
    pos = np.arange(n)[:, None]
    i = np.arange(width)[None, :]
    angle = pos / np.power(10000.0, (2 * (i // 2)) / width)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle))


def layer_norm(z, gain, bias, eps=1e-5):
    mu = anp.mean(z, axis=-1, keepdims=True)
    var = anp.mean((z - mu) ** 2, axis=-1, keepdims=True)
    return (z - mu) / anp.sqrt(var + eps) * gain + bias


def softmax(scores, mask, axis=-1):
    """Masked softmax; masked entries get exactly zero weight (and zero gradient)."""
    scores = anp.where(mask, scores, -np.inf)
    scores = scores - anp.max(scores, axis=axis, keepdims=True)
    e = anp.where(mask, anp.exp(scores), 0.0)
    return e / anp.sum(e, axis=axis, keepdims=True)


def embed(params, xs, positional: str):
    """Time-major ``(n, B, d)`` to batch-major ``(B, n, W)``: projection plus positions."""
    z = anp.einsum("nbd,dw->bnw", xs, params["input_projection"])
    if positional == "sinusoidal":
        z = z + sinusoidal_positions(xs.shape[0], params["input_projection"].shape[1])
    return z


def to_time_major(z):
    return anp.transpose(z, (1, 0, 2))


def check_inputs_arg(inputs, width):
    return width if inputs is None else check_positive_int("inputs", inputs)
