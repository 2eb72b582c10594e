"""Probes: identity maps whose backward pass records the norm of the cotangent.

A reverse sweep through an unrolled network (``_reverse.reverse_sweep``) yields
every gradient norm we report without materialising a product of Jacobians:

* ``state_probe`` sits on the state after every step. In the backward pass it
  records ``log ||g||`` for the whole state and each named component, keeps the
  cotangent, and rescales it to unit norm, so a product of 10,000 Jacobians
  neither overflows nor underflows: the scale lives in the recorded logs.
* ``probe(x, names)`` may be called inside a cell's step (the built-in LSTM and
  GRU call it on their gates' pre-activation input ``W_ih x + b``). It records
  ``log ||g||`` for each named equal part of the last axis and passes ``g``
  through. Outside a recording pass it returns ``x`` untouched, so cells cost
  nothing extra in ordinary use.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence

import numpy as np
from autograd.extend import defvjp, primitive

_ACTIVE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("gradflow_probes", default=None)


def log_row_norms(g: np.ndarray) -> np.ndarray:
    """``log ||g[b]||`` for each row ``b``, exact for any magnitude.

    ``-inf`` for a zero row, NaN for a row holding NaN (never silently -inf).
    """
    g2 = np.reshape(g, (g.shape[0], -1))
    if g2.shape[1] == 0:
        return np.full(g2.shape[0], -np.inf)
    sq = np.einsum("ij,ij->i", g2, g2)
    if np.all((sq > 1e-280) & (sq < 1e280)):  # the common case: squares are safe
        return 0.5 * np.log(sq)
    # Rescale first so that squaring cannot overflow or underflow.
    scale = np.max(np.abs(g2), axis=1)
    safe = np.where(scale > 0, scale, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(safe) + 0.5 * np.log(np.sum((g2 / safe[:, None]) ** 2, axis=1))
    return np.where(scale == 0, -np.inf, logs)


def unit_rows(g: np.ndarray) -> np.ndarray:
    """Each row scaled to unit norm (zero rows stay zero), without overflow for tiny rows."""
    scale = np.max(np.abs(g), axis=1, keepdims=True)
    u = g / np.where(scale > 0, scale, 1.0)
    n = np.sqrt(np.einsum("ij,ij->i", u, u))[:, None]
    return u / np.where(n > 0, n, 1.0)


class StateRecorder:
    """What the sequential sweep keeps for each state ``t``: raw log-norms, unit cotangent."""

    def __init__(self, steps: int, batch: int, state_size: int, components: dict[str, np.ndarray]):
        # A state no probe reached had no gradient at all: -inf, a zero cotangent.
        self.raw = np.full((steps + 1, batch), -np.inf)
        self.recorded = np.zeros(steps + 1, dtype=bool)
        self.component_raw = {k: np.full((steps + 1, batch), -np.inf) for k in components}
        # How to take each component: None for the whole state, a slice (a view) when its
        # indices are contiguous, else the index array.
        self.parts: dict[str, slice | np.ndarray | None] = {}
        for k, idx in components.items():
            if np.array_equal(idx, np.arange(state_size)):
                self.parts[k] = None
            elif np.all(np.diff(idx) == 1):
                self.parts[k] = slice(int(idx[0]), int(idx[-1]) + 1)
            else:
                self.parts[k] = idx
        # unit[t]: dL/dh_t rescaled to unit norm, the cotangent that enters step t.
        self.unit = np.zeros((steps + 1, batch, state_size))

    def record(self, t: int, g: np.ndarray) -> np.ndarray:
        # Few numpy calls: the sequential sweep makes one call a step.
        sq = np.einsum("ij,ij->i", g, g)
        unit = self.unit[t]
        # The common case (NaN and inf fail this test): squares are safe.
        if (1e-280 < sq[0] < 1e280) if len(sq) == 1 else np.all((sq > 1e-280) & (sq < 1e280)):
            self.raw[t] = 0.5 * np.log(sq)
            np.divide(g, np.sqrt(sq)[:, None], out=unit)
        else:
            if not np.all(np.isfinite(g)):
                raise FloatingPointError(
                    f"the gradient at state {t} is not finite: the step's "
                    f"derivative overflowed float64 (weights too large?)"
                )
            self.raw[t], unit[...] = log_row_norms(g), unit_rows(g)
        self.recorded[t] = True
        for name, idx in self.parts.items():
            if idx is not None:  # a whole-state component is taken from raw by `log_norms`
                self.component_raw[name][t] = log_row_norms(g[:, idx])
        return unit

    def log_norms(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """True ``log ||dL/dh_t||`` (T+1, B) and per component, undoing the rescaling.

        The cotangent reaching state t was divided by ``exp(S[t+1])``, where
        ``S[t] = sum_{s >= t} raw[s]``; so ``log ||dL/dh_t|| = raw[t] + S[t+1] = S[t]``.
        """
        S = np.cumsum(self.raw[::-1], axis=0)[::-1]
        after = np.concatenate([S[1:], np.zeros_like(S[:1])])
        raw = {k: self.raw if self.parts[k] is None else v for k, v in self.component_raw.items()}
        return S, {k: v + after for k, v in raw.items()}


@primitive
def _state_probe(x, recorder, t):
    return x


defvjp(_state_probe, lambda ans, x, recorder, t: lambda g: recorder.record(t, g))


def state_probe(x, recorder: StateRecorder, t: int):
    return _state_probe(x, recorder, t)


@primitive
def _named_probe(x, records, names):
    return x


def _named_probe_vjp(ans, x, records, names):
    def vjp(g):
        parts = np.split(g, len(names), axis=-1)
        for name, part in zip(names, parts, strict=True):
            new = log_row_norms(part)
            prev = records.get(name)
            # A name probed twice in one pass: the norm of both parts together,
            # sqrt(a^2 + b^2) in log space.
            records[name] = new if prev is None else 0.5 * np.logaddexp(2 * prev, 2 * new)
        return g

    return vjp


defvjp(_named_probe, _named_probe_vjp)


def probe(x, names: str | Sequence[str]):
    """Mark ``x`` (batch, ...) so `gradient_flow` reports ``||dL/dx||`` under ``names``.

    With several names, the last axis is split into that many equal parts (the
    gates of a fused pre-activation), each reported under its own name. Identity
    outside a gradient-flow pass: call it inside a custom cell's step on any
    intermediate whose gradient you want to see by lag.

    Examples
    --------
    >>> import autograd.numpy as anp
    >>> import numpy as np
    >>> import gradflow as gf
    >>> def step(p, h, x):
    ...     pre = gf.probe(h @ p["W"].T + x, "pre")
    ...     return anp.tanh(pre)
    >>> cell = gf.Cell(step, {"W": np.eye(3) * 0.5}, state_size=3, input_size=3)
    >>> sorted(gf.gradient_flow(cell, gf.inputs.gaussian(20, 2, 3)).gates)
    ['pre']
    """
    records = _ACTIVE.get()
    if records is None:
        return x
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"probe: names must be a non-empty string or a sequence of them; got {names!r}")
    if np.shape(x)[-1] % len(names):
        raise ValueError(
            f"probe: the last axis of size {np.shape(x)[-1]} does not split into "
            f"{len(names)} equal parts for names {names}"
        )
    return _named_probe(x, records, names)


class recording:
    """Context manager: probes called inside record into the returned dict."""

    def __enter__(self) -> dict:
        self.records: dict[str, np.ndarray] = {}
        self._token = _ACTIVE.set(self.records)
        return self.records

    def __exit__(self, *exc):
        _ACTIVE.reset(self._token)
        return False
