"""Independent references for the tests: finite differences and plain-numpy cells."""

import numpy as np


def fd_jacobian(f, x, eps=1e-6):
    """Central-difference Jacobian of ``f`` at the 1-D point ``x``: shape (out, in)."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = eps
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps))
    return np.stack(cols, axis=-1)


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def torch_reference_step(kind, w, h, x, nonlinearity="tanh"):
    """PyTorch's documented equations, one layer, written directly in numpy.

    ``h`` is the hidden state (and for LSTM the tuple ``(h, c)``).
    """
    Wi, Wh, bi, bh = w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"], w["bias_hh_l0"]
    if kind == "rnn":
        a = x @ Wi.T + bi + h @ Wh.T + bh
        return np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
    if kind == "lstm":
        hh, c = h
        gates = x @ Wi.T + bi + hh @ Wh.T + bh
        i, f, g, o = np.split(gates, 4, axis=1)
        c2 = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c2), c2
    gi, gh = x @ Wi.T + bi, h @ Wh.T + bh
    ir, iz, in_ = np.split(gi, 3, axis=1)
    hr, hz, hn = np.split(gh, 3, axis=1)
    r, z = sigmoid(ir + hr), sigmoid(iz + hz)
    n = np.tanh(in_ + r * hn)
    return (1 - z) * n + z * h
