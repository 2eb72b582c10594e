"""The cost study's row for scanned recurrences: one linear recurrence (an LRU) run two ways through
``model.apply``, the sequential loop and the associative scan (``gradflow.recurrent(cell, scan=True)``),
timed in the same run as the other architectures, with the sequential depth of each."""

from __future__ import annotations

import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.studies._cost_machine import growth

LOOP = "LRU (loop)"
SCAN = "LRU (scan)"


def linear_models(width: int, seed: int) -> list[tuple[str, gf.SequenceModel]]:
    """The same LRU (``width`` complex modes, ``width`` inputs) as a loop and as a scan."""
    cell = gf.lru(width, width, seed=seed)
    return [(LOOP, gf.recurrent(cell)), (SCAN, gf.recurrent(cell, scan=True))]


def check_scan(models: list[tuple[str, gf.SequenceModel]], xs: np.ndarray) -> float:
    """The scan's outputs against the loop's on the timed inputs, relative to their largest entry;
    ``FloatingPointError`` above 1e-12: the two timings must be of the same computation."""
    built = dict(models)
    loop, scan = built[LOOP](xs), built[SCAN](xs)
    err = float(np.max(np.abs(scan - loop)) / np.max(np.abs(loop)))
    if not err <= 1e-12:
        raise FloatingPointError(f"the LRU's scan differs from its loop by {err:.2g} (relative)")
    return err


def per_doubling(frame: pd.DataFrame, column: str) -> pd.Series:
    """Growth of ``column`` per doubling of n, per architecture (slope against log2 n on the larger half
    of n, as `growth` fits): 1 for a depth of ``1 + ceil(log2 n)``."""
    out = {}
    for name, g in frame.groupby("architecture", sort=False):
        g = g[g.n >= g.n.median()] if len(g) >= 4 else g
        out[name] = float(np.polyfit(np.log2(g.n), g[column], 1)[0])
    return pd.Series(out)


def scan_table(times: pd.DataFrame) -> pd.DataFrame:
    """Per n: the LRU's loop and scan side by side, seconds and depth, and the scan's speed-up
    (loop seconds / scan seconds: above 1 the scan is faster)."""
    loop = times[times.architecture == LOOP].set_index("n")
    scan = times[times.architecture == SCAN].set_index("n")
    out = pd.DataFrame(
        {
            "loop_forward_s": loop.forward_s,
            "scan_forward_s": scan.forward_s,
            "loop_forward_backward_s": loop.forward_backward_s,
            "scan_forward_backward_s": scan.forward_backward_s,
            "loop_depth": loop.sequential_depth,
            "scan_depth": scan.sequential_depth,
        }
    )
    out["forward_speedup"] = out.loop_forward_s / out.scan_forward_s
    out["forward_backward_speedup"] = out.loop_forward_backward_s / out.scan_forward_backward_s
    return out.reset_index()


def scan_facts(times: pd.DataFrame) -> dict:
    """What the verdict and the figure say about the scanned recurrence."""
    table = scan_table(times)
    top = table.iloc[-1]
    slopes = growth(times[times.architecture.isin([LOOP, SCAN])], "sequential_depth")
    return dict(
        scan_n=int(top.n),
        scan_depth=int(top.scan_depth),
        scan_loop_depth=int(top.loop_depth),
        scan_depth_slope=slopes[SCAN],
        scan_loop_depth_slope=slopes[LOOP],
        scan_depth_per_doubling=per_doubling(times[times.architecture == SCAN], "sequential_depth")[SCAN],
        scan_forward_speedup=float(top.forward_speedup),
        scan_forward_backward_speedup=float(top.forward_backward_speedup),
        scan_forward_speedups=(float(table.forward_speedup.min()), float(table.forward_speedup.max())),
        scan_forward_backward_speedups=(
            float(table.forward_backward_speedup.min()),
            float(table.forward_backward_speedup.max()),
        ),
        scan_lengths=(int(table.n.min()), int(table.n.max())),
    )


def _ratio(speedup: float) -> str:
    return f"{speedup:.2g}x faster" if speedup >= 1 else f"{1 / speedup:.2g}x slower"


def scan_sentence(facts: dict) -> str:
    """The verdict's sentence on "RNNs are sequential", from what was measured."""
    lo, hi = facts["scan_lengths"]
    f_lo, f_hi = facts["scan_forward_speedups"]
    b_lo, b_hi = facts["scan_forward_backward_speedups"]
    return (
        f' "RNNs are sequential" holds for the nonlinear tanh RNN and for a linear recurrence run as a '
        f"loop (depth n, n^{facts['scan_loop_depth_slope']:.2f}), not for a linear recurrence run as a "
        f"scan: the same LRU by the associative scan has depth {facts['scan_depth']} at n = "
        f"{facts['scan_n']} (1 + ceil(log2 n): n^{facts['scan_depth_slope']:.2f}, "
        f"+{facts['scan_depth_per_doubling']:.2f} per doubling of n). Its wall time on this machine "
        f"at n = {facts['scan_n']}: forward {_ratio(facts['scan_forward_speedup'])} than the loop, "
        f"forward + backward {_ratio(facts['scan_forward_backward_speedup'])} (speed-ups "
        f"{f_lo:.2g}-{f_hi:.2g}x and {b_lo:.2g}-{b_hi:.2g}x over n = {lo}..{hi}; above 1 the scan "
        "is faster)."
    )
