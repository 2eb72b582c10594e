"""Where is the edge of chaos, and what does it mean for gradients? Lyapunov exponents against gain.

Claim (source 001_c88bba1d8530f5f5.txt, read dynamically): the gradient is a product of many factors, so it
vanishes on one side of a critical gain and explodes on the other. Measured here for
random tanh RNNs with and without input drive, at least 10 independent networks per gain,
each started by the shared convention (a random state run through a warm-up on its own
inputs): the top Lyapunov exponent (QR iteration) and the measured gradient rate of the
same network, the edge of chaos as the gain where the top exponent crosses 0 with a
bootstrap interval over networks (a crossing inside the neutral band is no edge), and,
for networks above mean-field theory's critical gain that stay ordered, what their
trajectories settle on (a fixed point, a cycle, or an input-driven contraction).

    python -m gradflow.studies.lyapunov_atlas [--full] [--out reports] [--seed S]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.report import PALETTE, figure_page, palette, paper_theme, table_page, write_csv
from gradflow.studies import _protocol as protocol
from gradflow.studies._atlas_measure import SETTLED, edge, measure, network, per_gain
from gradflow.studies._claim import Claim
from gradflow.studies._cli import check_fields, study_main
from gradflow.studies._finish import finish_study

STUDY = "lyapunov_atlas"
CLAIM = Claim(
    text="The gradient is a product of many per-step factors, so it vanishes below a critical gain and "
    "explodes above it (the edge of chaos).",
    source="001_c88bba1d8530f5f5.txt",
    source_title='"Disadvantages of RNN" (OpenGenus)',
    quote="it is hard to catch long haul conditions as a result of a multiplicative angle that can be "
    "dramatically diminishing/expanding",
    quantity="share of networks whose measured gradient regime is the side of mean-field theory's critical "
    "gain they are on (vanishing below, exploding above; networks whose mean-field rate is inside "
    f"the neutral band +-{protocol.NEUTRAL_BAND} nats/step are at the edge and not counted)",
    rule="holds where the 95% Wilson interval of that share lies above the threshold; decided per input std, "
    "then combined",
    threshold=0.9,
)


@dataclass(frozen=True)
class Config:
    hidden: int = 48
    steps: int = 300
    batch: int = 2
    seeds: int = 10
    gains: tuple[float, ...] = (0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0)
    input_scales: tuple[float, ...] = (0.0, 1.0)
    executor: str = "process"
    seed: int = 0
    claim: ClassVar[Claim] = CLAIM

    def __post_init__(self):
        check_fields(
            self,
            choices={"executor": ("serial", "process", "dask")},
            positive=("gains",),
            non_negative=("input_scales",),
        )


QUICK = Config()
# A full spectrum costs O(N^3) a step: N = 256, T = 2000 took 74 CPU-s a network, N = 128, T = 1000 about 6.
FULL = Config(
    hidden=128,
    steps=1000,
    batch=4,
    seeds=20,
    gains=tuple(np.round(np.arange(0.5, 4.01, 0.25), 3)),
    input_scales=(0.0, 0.5, 1.0, 2.0),
)


def verdict(frame: pd.DataFrame, cfg: Config) -> protocol.Verdict:
    counted = frame[frame.counted]
    per_cell = int(frame.groupby(["input_scale", "gain"]).size().min())
    cells = {
        f"input std {s:g}": protocol.decide_claim(
            CLAIM, protocol.success_interval(g.right), per_cell=per_cell
        )
        for s, g in counted.groupby("input_scale")
    }
    overall = protocol.decide_claim(CLAIM, protocol.success_interval(counted.right), per_cell=per_cell)
    if overall.word == protocol.INCONCLUSIVE and overall.condition:
        return overall
    return protocol.combine(cells, overall)


def _edge_text(e: dict) -> str:
    if e["located"]:
        return (
            f"input std {e['input_scale']:g}: edge at g = {e['edge']:.2f} [{e['edge_low']:.2f}, "
            f"{e['edge_high']:.2f}] (mean field {e['mean_field']:.2f})"
        )
    return (
        f"input std {e['input_scale']:g}: no edge located (no ordered gain followed by a chaotic one "
        f"beyond the neutral band; mean field {e['mean_field']:.2f})"
    )


def _figure(table: pd.DataFrame, edges: list[dict], cfg: Config):
    scales = sorted(table.input_scale.unique())
    fig, axes = plt.subplots(len(scales), 1, figsize=(8.27, 3.4 * len(scales) + 1.2), squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.95, bottom=0.22, hspace=0.45)
    colours = palette(["top Lyapunov exponent", "measured gradient rate", "mean-field 0.5 ln chi_1"])
    for ax, scale, e in zip(axes[:, 0], scales, edges, strict=True):
        sub = table[table.input_scale == scale].sort_values("gain")
        for label, col, lo, hi in (
            ("top Lyapunov exponent", "top_exponent", "top_low", "top_high"),
            ("measured gradient rate", "gradient_rate", "rate_low", "rate_high"),
        ):
            ax.errorbar(
                sub.gain,
                sub[col],
                yerr=[sub[col] - sub[lo], sub[hi] - sub[col]],
                marker="o",
                ms=3.5,
                capsize=2,
                color=colours[label],
                label=label,
                linewidth=1.2,
            )
        ax.plot(
            sub.gain,
            sub.mean_field,
            linestyle="--",
            color=colours["mean-field 0.5 ln chi_1"],
            label="mean-field 0.5 ln chi_1",
            linewidth=1,
        )
        ax.axhspan(
            -protocol.NEUTRAL_BAND, protocol.NEUTRAL_BAND, color=PALETTE[2], alpha=0.25, label="neutral band"
        )
        if e["located"]:
            ax.axvspan(e["edge_low"], e["edge_high"], color="0.6", alpha=0.3, label="edge, 95% interval")
        ax.set(
            xscale="log",
            xlabel="recurrent gain g (W ~ N(0, g^2/N))",
            ylabel="nats/step",
            title=f"input std {scale:g}: mean of {int(sub.networks.min())} networks a gain, 95% intervals",
        )
        ax.set_xticks(list(sub.gain), [f"{g:g}" for g in sub.gain])
        ax.minorticks_off()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=3,
        bbox_to_anchor=(0.5, 0.11),
        frameon=False,
        fontsize="small",
    )
    return fig


def _spectra_figure(cfg: Config, scale: float):
    """Full spectra of the first network of each gain (the legend lists exactly the gains run), faceted to
    at most 8 gains per axes."""
    gains = list(cfg.gains)
    chunks = [list(c) for c in np.array_split(gains, -(-len(gains) // 8))]  # at most 8 series per axes
    fig, axes = plt.subplots(len(chunks), 1, figsize=(8.27, 4.2 * len(chunks) + 1.5), squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.75, top=0.93, bottom=0.25, hspace=0.35)
    positives = {}
    for ax, chunk in zip(axes[:, 0], chunks, strict=True):
        colours = palette([f"g = {g:g}" for g in chunk])
        for g in chunk:
            point = dict(
                gain=g,
                input_scale=scale,
                hidden=cfg.hidden,
                seq_len=cfg.steps,
                batch=cfg.batch,
                seed=cfg.seed,
            )
            cell, xs, h0, seeds = network(point)
            spec = gf.lyapunov_spectrum(cell, xs, h0=h0, warmup=xs.shape[0] // 5, seed=seeds["direction"])
            positives[g] = int(np.sum(spec.exponents > protocol.NEUTRAL_BAND))
            ax.plot(
                np.arange(1, len(spec.exponents) + 1),
                spec.exponents,
                color=colours[f"g = {g:g}"],
                label=f"g = {g:g}",
                linewidth=1.2,
            )
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        ax.set(
            xlabel="exponent index",
            ylabel="nats/step",
            title=f"Full Lyapunov spectra, input std {scale:g}, seed {cfg.seed}",
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize="small")
    return fig, positives


def run(cfg: Config, out: str) -> dict:
    frame = measure(cfg)
    table = per_gain(frame, cfg.seed)
    edges = [edge(frame, table, s, cfg.seed) for s in sorted(frame.input_scale.unique())]
    decision = verdict(frame, cfg)
    ordered = frame[frame.ordered_above_edge]
    settle = ordered.groupby(["input_scale", "settles_on"]).size().rename("networks").reset_index()
    above = int((frame.gain > frame.critical_gain).sum())
    diff = protocol.bootstrap_interval(
        np.abs(frame.top_exponent - frame.gradient_rate), np.median, seed=cfg.seed
    )
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, f"{STUDY}_networks.csv"), frame)
    write_csv(os.path.join(out, f"{STUDY}_gains.csv"), table)
    write_csv(
        os.path.join(out, f"{STUDY}_edges.csv"),
        pd.DataFrame(
            [{**e, "ordered_again": ", ".join(f"{g:g}" for g in e["ordered_again"])} for e in edges]
        ),
    )
    edge_finding = "; ".join(_edge_text(e) for e in edges)
    where = ", ".join(
        f"{r.networks} {r.settles_on} at input std {r.input_scale:g}" for r in settle.itertuples()
    )
    settle_text = (
        f"{len(ordered)} of {above} networks above the mean-field critical gain stay ordered (top "
        f"exponent <= {protocol.NEUTRAL_BAND}): {where or 'none'}."
    )
    shown = pd.DataFrame(
        {
            "input std": table.input_scale.map(lambda v: f"{v:g}"),
            "gain": table.gain.map(lambda v: f"{v:g}"),
            "top exponent [95%]": [
                f"{r.top_exponent:+.3f} [{r.top_low:+.3f}, {r.top_high:+.3f}]" for r in table.itertuples()
            ],
            "gradient rate [95%]": [
                f"{r.gradient_rate:+.3f} [{r.rate_low:+.3f}, {r.rate_high:+.3f}]" for r in table.itertuples()
            ],
            "mean field": table.mean_field.map(lambda v: f"{v:+.3f}"),
            "phase": table.phase,
            "n": table.networks,
        }
    )
    with paper_theme():
        pages = [
            table_page(
                "Where is the edge of chaos?",
                [
                    ("Verdict", decision.sentence()),
                    ("Edge of chaos", edge_finding + "."),
                    (
                        "Exponent and gradient",
                        f"|top exponent - gradient rate|, median over networks: {diff} "
                        "nats/step (95% bootstrap interval).",
                    ),
                    ("Ordered above the edge", settle_text),
                    (
                        "Configuration",
                        f"tanh RNN, N = {cfg.hidden}, T = {cfg.steps} after {protocol.WARMUP} "
                        f"warm-up steps, batch {cfg.batch}, {cfg.seeds} networks (seeds from "
                        f"{cfg.seed}) per gain and input std; gradflow {gf.__version__}.",
                    ),
                ],
                shown,
                "Per gain: mean over networks (95% bootstrap interval), nats/step",
                col_widths=(0.09, 0.07, 0.27, 0.27, 0.11, 0.11, 0.06),
            )
        ]
        pages.append(
            figure_page(
                _figure(table, edges, cfg),
                (
                    f"{edge_finding}. Top exponent and gradient rate of the same networks, means with 95% "
                    f"bootstrap intervals over networks; median |difference| {diff} nats/step. Shaded: the "
                    "edge's 95% interval where one was located."
                ),
            )
        )
        scale = max(cfg.input_scales)
        fig, positives = _spectra_figure(cfg, scale)
        counts = frame[frame.input_scale == scale].groupby("gain").positive
        spread = ", ".join(f"g = {g:g}: {protocol.bootstrap_interval(v, seed=cfg.seed)}" for g, v in counts)
        drawn = ", ".join(f"g = {g:g}: {p}" for g, p in positives.items())
        pages.append(
            figure_page(
                fig,
                (
                    f"Positive exponents (> {protocol.NEUTRAL_BAND}) at input std {scale:g}, mean over "
                    f"networks with 95% bootstrap intervals: {spread}. Drawn: the spectrum of the first "
                    f"network (seed {cfg.seed}) of each gain; {drawn} positive."
                ),
            )
        )
        pages.append(
            table_page(
                "Methods",
                [
                    (
                        "Spectrum",
                        "gradflow.lyapunov_spectrum: QR iteration through the cell's batched Jacobians, "
                        "the first T/5 steps of the QR estimate discarded; Kaplan-Yorke dimension and "
                        "entropy rate from the spectrum.",
                    ),
                    (
                        "Edge",
                        "Per gain, the mean top exponent over networks with a 95% percentile bootstrap "
                        "interval: ordered below the neutral band, chaotic above it, neutral when it touches "
                        "it. The edge is where the mean crosses 0, its interval the 2.5-97.5% range of that "
                        "crossing over 2000 resamples of the networks at each gain; it is reported only when "
                        "an ordered gain is followed by a chaotic one and at least 95% of resamples cross.",
                    ),
                    (
                        "Settling",
                        f"For ordered networks above the mean-field edge, the end of the trajectory: a "
                        f"fixed point or a cycle of period <= 20 when the state repeats to rms {SETTLED:g}; "
                        "driven networks follow their inputs (an input-driven contraction).",
                    ),
                    (
                        "Mean field",
                        "gradflow.meanfield.rate = 0.5 ln chi_1 with the input variance as drive; "
                        "critical gain where chi_1 = 1.",
                    ),
                    *protocol.conventions(),
                ],
            )
        )
        return finish_study(
            out,
            pages,
            study=STUDY,
            config=cfg,
            claim=CLAIM,
            decision=decision,
            title="gradflow: where is the edge of chaos?",
            keywords=["Lyapunov", "edge of chaos", "mean-field"],
            table=table,
            networks=frame,
            edges=edges,
        )


def main(argv=None) -> dict:
    return study_main(
        argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run, overrides=("hidden", "steps", "seeds")
    )


if __name__ == "__main__":
    main()
