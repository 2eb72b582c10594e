"""What the benchmark scripts share: the timer and the Adam loop they time (they run as scripts,
so this imports as ``_timing``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def best_of(
    fn: Callable[[], Any], repeat: int, clock: Callable[[], float] = time.perf_counter
) -> tuple[float, Any]:
    """Fastest of ``repeat`` calls of ``fn`` in seconds of ``clock``, and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = clock()
        out = fn()
        best = min(best, clock() - t0)
    return best, out


def adam_steps(value_and_grad: Callable, flat: np.ndarray, lr: float = 1e-3) -> Callable[[], tuple]:
    """A function doing one Adam update of ``flat`` per call (torch.optim.Adam's defaults:
    betas 0.9 and 0.999, eps 1e-8) and returning ``value_and_grad`` at the point it started from."""
    state = {"x": flat, "m": np.zeros_like(flat), "v": np.zeros_like(flat), "t": 0}

    def step():
        loss, g = value_and_grad(state["x"])
        state["t"] += 1
        t = state["t"]
        state["m"] = 0.9 * state["m"] + 0.1 * g
        state["v"] = 0.999 * state["v"] + 0.001 * g**2
        state["x"] = state["x"] - lr * (state["m"] / (1 - 0.9**t)) / (
            np.sqrt(state["v"] / (1 - 0.999**t)) + 1e-8
        )
        return loss, g

    return step
