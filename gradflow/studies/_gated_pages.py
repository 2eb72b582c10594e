"""The gated_cells study's figure pages (gradient norm against lag, rate and memory horizon against gate
bias, the LSTM's cell path against its hidden path), the interval text and the gate bias from which rates
stop vanishing that they quote, and the names they share with the study: the neutral band, the cells'
usual gate biases and the reference RNN's label."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gradflow.report import PALETTE, figure_page, palette
from gradflow.studies import _protocol as protocol

if TYPE_CHECKING:
    from gradflow.studies.gated_cells import Config

NEUTRAL = protocol.NEUTRAL_BAND  # nats/step
DEFAULT_BIAS = {"LSTM": 1.0, "GRU": 0.0}  # the usual forget / update biases
RNN = "RNN tanh (gaussian)"


def stops_vanishing(summary: pd.DataFrame, arch: str) -> float | None:
    """The smallest gate bias from which on every rate interval reaches into or above the neutral band."""
    sub = summary[summary.architecture == arch].sort_values("gate_bias")
    ok = (sub.rate_high >= -NEUTRAL).to_numpy()
    for i in range(len(ok)):
        if ok[i:].all():
            return float(sub.gate_bias.iloc[i])
    return None


def iv(r, col: str) -> str:
    return f"{r[col]:+.3f} [{r[col + '_low']:+.3f}, {r[col + '_high']:+.3f}]"


def plots(data: dict[str, pd.DataFrame], summary: pd.DataFrame, cfg: Config, finding: str):
    pages = []
    prof = data["profiles"]
    fig, ax = plt.subplots(figsize=(8.27, 6.5))
    fig.subplots_adjust(left=0.1, right=0.96, top=0.93, bottom=0.3)
    state = prof[prof.quantity == "state"]
    colours = palette(list(dict.fromkeys(state.cell)))
    for cell, g in state.groupby("cell", sort=False):
        by_lag = g.groupby("lag").log_norm
        ax.plot(by_lag.mean().index, by_lag.mean(), color=colours[cell], label=cell, linewidth=1.4)
        ax.fill_between(
            by_lag.mean().index,
            by_lag.quantile(0.025),
            by_lag.quantile(0.975),
            color=colours[cell],
            alpha=0.2,
            linewidth=0,
        )
    ax.set(
        xlabel="lag k (steps back from the final state)",
        ylabel="ln ||dL/dh_{T-k}||  (nats)",
        title=f"Gradient norm against lag at initialisation: mean of {cfg.seeds} networks, band: 95%",
    )
    fig.legend(loc="lower center", ncol=2, bbox_to_anchor=(0.5, 0.14), frameon=False, fontsize="small")
    pages.append(
        figure_page(fig, f"{finding}. N = {cfg.hidden}, T = {cfg.steps}, input std {cfg.input_scale:g}.")
    )

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 10.0))
    fig.subplots_adjust(left=0.12, right=0.96, top=0.95, bottom=0.24, hspace=0.3)
    gated = summary[summary.architecture.isin(list(DEFAULT_BIAS))]
    colours = palette([*DEFAULT_BIAS, RNN, "RNN tanh (orthogonal)"])
    for arch, g in gated.groupby("architecture", sort=False):
        ax1.errorbar(
            g.gate_bias,
            g.rate,
            yerr=[g.rate - g.rate_low, g.rate_high - g.rate],
            marker="o",
            ms=4,
            capsize=2,
            color=colours[arch],
            label=f"{arch} (95% interval over networks)",
        )
        ax2.plot(g.gate_bias, g.horizon, marker="o", color=colours[arch], label=arch)
    for arch, style in ((RNN, "--"), ("RNN tanh (orthogonal)", ":")):
        r = summary[summary.architecture == arch].iloc[0]
        ax1.axhline(r.rate, color=colours[arch], linestyle=style, label=f"{arch}: {iv(r, 'rate')}")
    ax1.axhspan(-NEUTRAL, NEUTRAL, color=PALETTE[2], alpha=0.25, label="neutral band")
    ax1.set(
        xlabel="gate bias (LSTM forget / GRU update)",
        ylabel="rate (nats/step)",
        title="Fitted gradient rate against gate bias",
    )
    ax2.set(
        xlabel="gate bias",
        ylabel="median memory horizon (lags)",
        yscale="log",
        title=f"Lag where the gradient norm has fallen by 1e-3 (missing: never within T = {cfg.steps})",
    )
    fig.legend(
        *ax1.get_legend_handles_labels(),
        loc="lower center",
        ncol=2,
        bbox_to_anchor=(0.5, 0.09),
        frameon=False,
        fontsize="small",
    )
    stops = {a: stops_vanishing(summary, a) for a in DEFAULT_BIAS}
    text = "; ".join(
        f"{a} from gate bias {b:g} on" if b is not None else f"{a} at no bias tried" for a, b in stops.items()
    )
    pages.append(
        figure_page(
            fig,
            f"Rates reach the neutral band (95% interval touching -{NEUTRAL} or above): {text}. {finding}.",
        )
    )

    fig, ax = plt.subplots(figsize=(8.27, 6.0))
    fig.subplots_adjust(left=0.1, right=0.96, top=0.93, bottom=0.28)
    lstm_prof = prof[prof.cell.str.startswith("LSTM") & prof.quantity.isin(["h", "c"])]
    colours = palette(["h", "c"])
    for q, g in lstm_prof.groupby("quantity", sort=False):
        by_lag = g.groupby("lag").log_norm
        ax.plot(by_lag.mean().index, by_lag.mean(), color=colours[q], label=f"{q} path")
        ax.fill_between(
            by_lag.mean().index,
            by_lag.quantile(0.025),
            by_lag.quantile(0.975),
            color=colours[q],
            alpha=0.2,
            linewidth=0,
        )
    ax.set(
        xlabel="lag k",
        ylabel="ln ||dL/d part of state_{T-k}||  (nats)",
        title="LSTM (forget bias 1): hidden path h against cell path c",
    )
    fig.legend(loc="lower center", ncol=2, bbox_to_anchor=(0.5, 0.14), frameon=False, fontsize="small")
    r = data["rates"]
    sub = r[(r.architecture == "LSTM") & (r.gate_bias == 1.0)]
    h = protocol.bootstrap_interval(sub.rate_h, seed=cfg.seed)
    c = protocol.bootstrap_interval(sub.rate_c, seed=cfg.seed)
    pages.append(
        figure_page(
            fig,
            (
                f"LSTM (forget bias 1) fitted rates, mean over {len(sub)} networks: h path {h} and c path "
                f"{c} nats/step (95% intervals); ln sigmoid(1) = {-np.log1p(np.exp(-1.0)):+.3f} is the decay "
                "of the bare cell path with no recurrent input."
            ),
        )
    )
    return pages
