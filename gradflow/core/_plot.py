"""Shared pieces of the ``.plot()`` methods: seaborn-styled axes and the complex-plane spectrum.

Imported lazily (inside ``plot``), so the numeric core never imports matplotlib.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from ._html import REGIME_COLORS

STYLE = "whitegrid"


def new_axes(ax=None, figsize: tuple[float, float] = (5, 3.2)):
    """``ax`` itself, or fresh axes on a new seaborn-styled figure."""
    if ax is not None:
        return ax
    with sns.axes_style(STYLE):
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def regime_color(regime: str | None) -> str:
    return REGIME_COLORS.get(regime or "inconclusive", REGIME_COLORS["inconclusive"])


def unit_circle(ax):
    """The complex plane's frame: the unit circle (|lambda| = 1), both axes, equal scales."""
    theta = np.linspace(0.0, 2.0 * np.pi, 361)
    ax.plot(
        np.cos(theta),
        np.sin(theta),
        color="0.45",
        linewidth=1.0,
        linestyle="--",
        label="unit circle",
        gid="unit-circle",
    )
    ax.axhline(0.0, color="0.8", linewidth=0.6, zorder=0)
    ax.axvline(0.0, color="0.8", linewidth=0.6, zorder=0)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set(xlabel="Re lambda", ylabel="Im lambda")
    return ax


def complex_plane(ax, eigenvalues: np.ndarray, *, color: str = "C0", label: str = "eigenvalues"):
    """Eigenvalues as points in the complex plane beside the unit circle (|lambda| = 1)."""
    unit_circle(ax)
    ev = np.asarray(eigenvalues)
    ax.scatter(ev.real, ev.imag, s=10, color=color, alpha=0.8, label=label, gid="eigenvalues")
    return ax
