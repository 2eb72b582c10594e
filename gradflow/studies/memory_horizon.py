"""Do LSTMs and GRUs remember hundreds of steps but not thousands? The memory horizon, measured.

Claim (source 002_6d33935d2b5896cb.txt): LSTM and GRU "can remember sequences of 100s, not 1000s". Measured
here at initialisation, as a cached `gradflow.sweep` with at least 10 independent networks
per design cell, each started by the shared convention (a random state run through a
warm-up on its own inputs): the effective memory horizon of the gradient (the lag where
``||dL/dh_{T-k}||`` has fallen by 1e-3 from its value at the end) for LSTMs and GRUs, with
tanh RNNs beside them, over sizes, initialisations and input scales; its distribution,
medians with bootstrap intervals, and the share of networks reaching 1000 steps with its
Wilson interval, from which the protocol decides.

    python -m gradflow.studies.memory_horizon [--full] [--out reports] [--seed S]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.report import figure_page, palette, paper_theme, table_page, write_csv
from gradflow.studies import _protocol as protocol
from gradflow.studies._claim import Claim
from gradflow.studies._cli import check_fields, study_main
from gradflow.studies._finish import finish_study

STUDY = "memory_horizon"
BUILD: dict[str, Callable[..., gf.Cell]] = {"rnn": gf.rnn, "lstm": gf.lstm, "gru": gf.gru}
NAMES = {"rnn": "RNN tanh", "lstm": "LSTM", "gru": "GRU"}
CLAIMED = ("LSTM", "GRU")  # the architectures the quote is about; the tanh RNN is shown beside them
LONG = 1000  # steps: "not 1000s"
CLAIM = Claim(
    text="LSTMs and GRUs remember sequences of hundreds of steps, not thousands.",
    source="002_6d33935d2b5896cb.txt",
    source_title='"The fall of RNN / LSTM" (Eugenio Culurciello)',
    quote="but they can remember sequences of 100s, not 1000s or 10,000s or more",
    quantity=f"share of LSTM and GRU networks at initialisation whose gradient memory horizon (lag where "
    f"||dL/dh_(T-k)|| has fallen by 1e-3) reaches {LONG} steps",
    rule="holds where the 95% Wilson interval of that share lies below the threshold; decided per "
    "architecture, then combined",
    threshold=0.05,
    holds_when="below",
)


@dataclass(frozen=True)
class Config:
    hidden: int = 64  # the largest size; a quarter of it runs too
    steps: int = 1000
    batch: int = 1  # one sequence a network (25% cheaper than two): the networks are the sample
    seeds: int = 10
    input_scales: tuple[float, ...] = (0.1, 1.0)
    executor: str = "process"
    seed: int = 0
    claim: ClassVar[Claim] = CLAIM

    def __post_init__(self):
        check_fields(
            self, choices={"executor": ("serial", "process", "dask")}, non_negative=("input_scales",)
        )


QUICK = Config()
FULL = Config(hidden=256, steps=3000, batch=4, seeds=20)


def horizon_task(point: Mapping[str, Any]) -> dict[str, Any]:
    """One network's memory horizon and rate from the shared warm-up start (importable by workers)."""
    seeds = protocol.network_seeds(int(point["seed"]))
    cell = BUILD[point["cell"]](
        int(point["hidden"]), protocol.INPUTS, gain=1.0, init=point["init"], seed=seeds["cell"]
    )
    xs = protocol.study_inputs(
        int(point["seq_len"]),
        int(point["batch"]),
        protocol.INPUTS,
        float(point["input_scale"]),
        seeds["inputs"],
    )
    h0, xs = protocol.warm_start(cell, xs, seed=seeds["state"])
    flow = gf.gradient_flow(cell, xs, h0=h0, seed=seeds["direction"], tol=protocol.NEUTRAL_BAND)
    h = flow.memory_horizon
    return {"horizon": float(h) if h is not None else np.inf, "rate": flow.rate, "regime": flow.regime}


def grid(cfg: Config) -> list[dict[str, list]]:
    """Sizes N/4 and N; gaussian and orthogonal weights for every cell, identity (IRNN-style) for the RNN."""
    sizes = sorted({max(4, cfg.hidden // 4), cfg.hidden})
    common: dict[str, list] = {
        "hidden": sizes,
        "seq_len": [cfg.steps],
        "batch": [cfg.batch],
        "input_scale": list(cfg.input_scales),
    }
    return [
        {"cell": ["rnn"], "init": ["gaussian", "orthogonal", "identity"], **common},
        {"cell": ["lstm", "gru"], "init": ["gaussian", "orthogonal"], **common},
    ]


def measure(cfg: Config) -> pd.DataFrame:
    frame = protocol.run_networks(grid(cfg), horizon_task, cfg)
    frame["architecture"] = frame.cell.map(NAMES)
    frame["beyond_T"] = ~np.isfinite(frame.horizon)
    # "Reaches 1000 steps" needs T >= 1000; shorter (test) runs ask whether it reaches T instead.
    frame["reaches_1000"] = frame.horizon >= min(LONG, cfg.steps)
    return frame


def summarise(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Per design cell: median horizon with its bootstrap interval, and the share reaching 1000 steps
    with its Wilson interval."""
    rows = []
    for (arch, init, hidden, scale), g in frame.groupby(
        ["architecture", "init", "hidden", "input_scale"], sort=False
    ):
        med = protocol.bootstrap_interval(g.horizon, np.median, seed=seed)
        share = protocol.success_interval(g.reaches_1000)
        rows.append(
            dict(
                architecture=arch,
                init=init,
                hidden=int(hidden),
                input_scale=scale,
                networks=len(g),
                median_horizon=med.estimate,
                median_low=med.low,
                median_high=med.high,
                reaches_1000=share.estimate,
                reaches_low=share.low,
                reaches_high=share.high,
                median_rate=float(g.rate.median()),
            )
        )
    return pd.DataFrame(rows)


def verdict(frame: pd.DataFrame) -> protocol.Verdict:
    claimed = frame[frame.architecture.isin(CLAIMED)]
    per_cell = int(claimed.groupby(["architecture", "init", "hidden", "input_scale"]).size().min())
    cells = {
        arch: protocol.decide_claim(CLAIM, protocol.success_interval(g.reaches_1000), per_cell=per_cell)
        for arch, g in claimed.groupby("architecture", sort=False)
    }
    overall = protocol.decide_claim(CLAIM, protocol.success_interval(claimed.reaches_1000), per_cell=per_cell)
    if overall.word == protocol.INCONCLUSIVE and overall.condition:
        return overall
    return protocol.combine(cells, overall)


def _h(v: float) -> str:
    return "> T" if not np.isfinite(v) else f"{v:.0f}"


def _figure(frame: pd.DataFrame, cfg: Config):
    """One axes per architecture and input std; one series per (init, N): at most 6 per axes."""
    archs = [a for a in NAMES.values() if a in set(frame.architecture)]
    scales = sorted(frame.input_scale.unique())
    fig, axes = plt.subplots(
        len(archs), len(scales), figsize=(8.27, 2.6 * len(archs) + 2.2), squeeze=False, sharex=True
    )
    fig.subplots_adjust(left=0.1, right=0.97, top=0.95, bottom=0.25, hspace=0.5, wspace=0.25)
    shown = np.where(frame.beyond_T, 1.5 * cfg.steps, frame.horizon)
    plot = frame.assign(shown=shown, series=frame.init + ", N = " + frame.hidden.astype(int).astype(str))
    colours = palette(sorted(plot.series.unique()))
    for row, arch in zip(axes, archs, strict=True):
        for ax, scale in zip(row, scales, strict=True):
            sub = plot[(plot.architecture == arch) & (plot.input_scale == scale)]
            for y, (series, g) in enumerate(sorted(sub.groupby("series"))):
                jitter = np.random.default_rng(cfg.seed + y).uniform(-0.25, 0.25, len(g))
                ax.scatter(g.shown, y + jitter, s=10, color=colours[series], linewidths=0, label=series)
                ax.plot([np.median(g.shown)] * 2, [y - 0.35, y + 0.35], color="k", linewidth=1.5)
            ax.set_yticks([])
            for x in (100, LONG):
                ax.axvline(x, color="0.4", linestyle=":", linewidth=1)
            ax.axvline(cfg.steps, color="k", linestyle="--", linewidth=1)
            ax.set(xscale="log", title=f"{arch}, input std {scale:g}", xlabel="memory horizon (steps)")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=c, label=s) for s, c in colours.items()]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=3,
        bbox_to_anchor=(0.5, 0.1),
        frameon=False,
        fontsize="small",
    )
    return fig


def run(cfg: Config, out: str) -> dict:
    frame = measure(cfg)
    summary = summarise(frame, cfg.seed)
    decision = verdict(frame)
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, f"{STUDY}_points.csv"), frame)
    write_csv(os.path.join(out, f"{STUDY}_summary.csv"), summary)
    by_arch = []
    for arch, g in frame.groupby("architecture", sort=False):
        med = protocol.bootstrap_interval(g.horizon, np.median, seed=cfg.seed)
        share = protocol.success_interval(g.reaches_1000)
        by_arch.append(
            f"{arch}: median {_h(med.estimate)} [{_h(med.low)}, {_h(med.high)}] steps, "
            f"{share.estimate:.0%} [{share.low:.0%}, {share.high:.0%}] reach {LONG} "
            f"({len(g)} networks)"
        )
    finding = "; ".join(by_arch)
    shown = pd.DataFrame(
        {
            "architecture": summary.architecture,
            "init": summary.init,
            "N": summary.hidden,
            "input std": summary.input_scale.map(lambda v: f"{v:g}"),
            "median horizon [95%]": [
                f"{_h(r.median_horizon)} [{_h(r.median_low)}, {_h(r.median_high)}]"
                for r in summary.itertuples()
            ],
            f"reach {LONG} [95%]": [
                f"{r.reaches_1000:.0%} [{r.reaches_low:.0%}, {r.reaches_high:.0%}]"
                for r in summary.itertuples()
            ],
            "n": summary.networks,
        }
    )
    sizes = sorted(int(v) for v in frame.hidden.unique())
    configuration = (
        f"tanh RNN (gaussian, orthogonal, identity weights), LSTM (forget bias 1) and GRU (gaussian, "
        f"orthogonal) at gain 1; N in {sizes}; T = {cfg.steps} after {protocol.WARMUP} warm-up steps, input "
        f"std {', '.join(f'{s:g}' for s in cfg.input_scales)}, batch {cfg.batch}, {cfg.seeds} networks "
        f"(seeds from {cfg.seed}) per cell; a cached gradflow.sweep; gradflow {gf.__version__}."
    )
    with paper_theme():
        pages = [
            table_page(
                "Do LSTMs and GRUs remember hundreds of steps, not thousands?",
                [
                    ("Verdict", decision.sentence()),
                    ("Finding", finding + "."),
                    ("Configuration", configuration),
                ],
                shown,
                "Per design cell: median horizon (bootstrap) and share reaching 1000 steps (Wilson), 95%",
                col_widths=(0.13, 0.13, 0.06, 0.09, 0.29, 0.23, 0.05),
            ),
            figure_page(
                _figure(frame, cfg),
                (
                    f"{finding}. Each dot: one network; bar: median. Dotted: 100 and {LONG} steps; "
                    f"dashed: T = {cfg.steps} (dots past it never fell by 1e-3 within T)."
                ),
            ),
            table_page(
                "Methods",
                [
                    (
                        "Horizon",
                        "gradflow.gradient_flow(...).memory_horizon: the lag where the gradient norm has "
                        "fallen by a factor 1e-3 from its value at the final state; beyond T when it "
                        f"never does within the sequence (it then reaches {LONG} when T >= {LONG}).",
                    ),
                    (
                        "Decision",
                        f"The quote is about LSTM and GRU: the share of their networks reaching {LONG} "
                        "steps, per architecture, with a Wilson interval, against the claim's "
                        "threshold; the tanh RNN is measured beside them for reference.",
                    ),
                    (
                        "Scope",
                        "At initialisation, with random inputs: how far the gradient signal reaches, not "
                        "what a trained network stores (the remedies study trains).",
                    ),
                    *protocol.conventions(),
                ],
            ),
        ]
        return finish_study(
            out,
            pages,
            study=STUDY,
            config=cfg,
            claim=CLAIM,
            decision=decision,
            title="gradflow: do LSTMs and GRUs remember hundreds of steps, not thousands?",
            keywords=["memory horizon", "initialisation", "sweep"],
            summary=summary,
            points=frame,
            finding=finding,
        )


def main(argv=None) -> dict:
    return study_main(
        argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run, overrides=("hidden", "steps", "seeds")
    )


if __name__ == "__main__":
    main()
