"""Does the largest eigenvalue decide? The folklore rule on W beside the slope-corrected rule.

Claim (source 001_c88bba1d8530f5f5.txt): "If the largest eigenvalue is less than 1, the
gradient will vanish. If the largest eigenvalue is more than 1, the gradient explodes."
Measured here for vanilla tanh, ReLU and sigmoid RNNs on a grid of recurrent gains and input
scales, at least 10 independent networks per cell, each started by the shared convention (a
random state run through a warm-up on its own inputs): the measured regime of each network
against the rule on rho(W) and against the slope-corrected rule on gamma * rho(W) (gamma =
mean phi'(pre-activation) along the network's own trajectory), the accuracy of each with its
Wilson interval, and every failure of the rule diagnosed from the trajectory (saturated
units, switched-off ReLU units, the slope factor gamma, non-normality of W).

    python -m gradflow.studies.eigenvalue_rule [--full] [--out reports] [--seed S]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.report import figure_page, paper_theme, table_page, write_csv
from gradflow.studies import _protocol as protocol
from gradflow.studies._claim import Claim
from gradflow.studies._cli import check_fields, study_main
from gradflow.studies._eigenvalue_figures import phase_figure, rate_figure
from gradflow.studies._finish import finish_study

STUDY = "eigenvalue_rule"
INPUTS = protocol.INPUTS
SATURATED = 2.0  # |pre-activation| above this: tanh' < 0.071, sigmoid' < 0.105
RULES = {"folklore": "rho(W) against 1", "slope-corrected": "gamma * rho(W) against 1"}
CLAIM = Claim(
    text="Below 1 the largest eigenvalue of the recurrent weights makes gradients vanish, above 1 they "
    "explode.",
    source="001_c88bba1d8530f5f5.txt",
    source_title='"Disadvantages of RNN" (OpenGenus)',
    quote="If the largest eigenvalue is less than 1, the gradient will vanish. If the largest eigenvalue "
    "is more than 1, the gradient explodes.",
    quantity="share of networks whose measured regime (vanishing / neutral / exploding, neutral band "
    f"+-{protocol.NEUTRAL_BAND} nats/step) the rule on rho(W) names",
    rule="holds where the 95% Wilson interval of that share lies above the threshold; decided per "
    "activation and input drive, then combined",
    threshold=0.9,
)


@dataclass(frozen=True)
class Config:
    hidden: int = 32
    steps: int = 200
    batch: int = 2
    seeds: int = 10
    gains: tuple[float, ...] = (0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0)
    input_scales: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    activations: tuple[str, ...] = ("tanh", "relu", "sigmoid")
    executor: str = "process"
    seed: int = 0
    claim: ClassVar[Claim] = CLAIM

    def __post_init__(self):
        check_fields(
            self,
            choices={"activations": ("tanh", "relu", "sigmoid"), "executor": ("serial", "process", "dask")},
            positive=("gains",),
            non_negative=("input_scales",),
        )


QUICK = Config()
FULL = Config(
    hidden=128,
    steps=1000,
    batch=4,
    seeds=20,
    gains=(0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0),
    input_scales=(0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
)


def _slope(activation: str, pre: np.ndarray) -> np.ndarray:
    """phi'(pre) of the activation."""
    if activation == "tanh":
        return 1.0 - np.tanh(pre) ** 2
    if activation == "sigmoid":
        s = 0.5 * (1.0 + np.tanh(0.5 * pre))  # no overflow for large |pre|
        return s * (1.0 - s)
    return (pre > 0).astype(float)


def henrici(W: np.ndarray) -> float:
    """Henrici's relative departure from normality, sqrt(||W||_F^2 - sum |lambda|^2) / ||W||_F (0: normal)."""
    fro2 = float(np.sum(W * W))
    eig2 = float(np.sum(np.abs(np.linalg.eigvals(W)) ** 2))
    return float(np.sqrt(max(fro2 - eig2, 0.0) / fro2)) if fro2 > 0 else 0.0


def network_task(point: Mapping[str, Any]) -> dict[str, Any]:
    """One network: its measured rate and the diagnostics of its trajectory (a sweep task, importable
    by worker processes)."""
    seeds = protocol.network_seeds(int(point["seed"]))
    activation = point["activation"]
    cell = gf.rnn(
        int(point["hidden"]), INPUTS, activation=activation, gain=float(point["gain"]), seed=seeds["cell"]
    )
    xs = protocol.study_inputs(
        int(point["seq_len"]), int(point["batch"]), INPUTS, float(point["input_scale"]), seeds["inputs"]
    )
    h0, xs = protocol.warm_start(cell, xs, seed=seeds["state"])
    flow = gf.gradient_flow(cell, xs, h0=h0, seed=seeds["direction"], tol=protocol.NEUTRAL_BAND)
    states = gf.unroll(cell, xs, h0=h0)
    p = cell.params
    W = p["weight_hh_l0"]
    pre = states[:-1] @ W.T + xs @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]
    gamma = float(np.mean(_slope(activation, pre)))
    rho = float(np.max(np.abs(np.linalg.eigvals(W))))
    with np.errstate(divide="ignore"):  # gamma = 0 (every ReLU off): the corrected rule says -inf
        corrected = float(np.log(gamma * rho))
    off = pre <= 0
    return {
        "measured_rate": flow.rate,
        "rate_stderr": flow.fit.stderr,
        "spectral_radius": rho,
        "log_spectral_radius": float(np.log(rho)),
        "gamma": gamma,
        "corrected_rate": corrected,
        "saturated_share": float(np.mean(np.abs(pre) > SATURATED)) if activation != "relu" else 0.0,
        "off_share": float(np.mean(off)) if activation == "relu" else 0.0,
        "dead_units": float(np.mean(off.all(axis=(0, 1)))) if activation == "relu" else 0.0,
        "henrici": henrici(W),
        "state_rms": float(np.sqrt(np.mean(states[1:] ** 2))),
    }


def measure(cfg: Config) -> tuple[pd.DataFrame, int]:
    """One row per network; and how many networks were left out because their state overflowed."""
    grid = {
        "activation": list(cfg.activations),
        "gain": list(cfg.gains),
        "input_scale": list(cfg.input_scales),
        "hidden": [cfg.hidden],
        "seq_len": [cfg.steps],
        "batch": [cfg.batch],
    }
    frame = gf.sweep.run(
        grid,
        task=network_task,
        seeds=range(cfg.seed, cfg.seed + cfg.seeds),
        executor=cfg.executor,
        progress=sys.stderr.isatty(),
    )  # a bar for people, not logs
    ok = frame.error.fillna("") == ""
    frame = frame[ok].drop(columns=["error"]).reset_index(drop=True)
    frame["drive"] = np.where(frame.input_scale == 0, "input-free", "driven")
    frame["measured_regime"] = frame.measured_rate.map(protocol.regime)
    for rule, col in (("folklore", "log_spectral_radius"), ("slope-corrected", "corrected_rate")):
        frame[f"regime_{rule}"] = frame[col].map(protocol.regime)
        frame[f"right_{rule}"] = frame[f"regime_{rule}"] == frame.measured_regime
    frame["reason"] = [diagnose(r) if not r.right_folklore else "" for r in frame.itertuples()]
    return frame, int((~ok).sum())


def diagnose(r) -> str:
    """Why the rule on rho(W) named the wrong regime, read off this network's trajectory."""
    if r.measured_regime == "neutral":
        return "measured rate inside the neutral band"
    if r.measured_regime == "vanishing":  # rule: neutral or exploding
        if r.activation == "relu":
            return "ReLU units switched off (gamma = share on < 1/rho)"
        if r.saturated_share > 0.25:
            return "saturated units (|a| > 2) shrink gamma"
        if r.activation == "sigmoid":
            return "sigmoid slope <= 1/4 shrinks gamma"
        return "slope below 1 off the origin shrinks gamma"
    if r.regime_folklore == "vanishing" and r.henrici > 0.5:  # measured exploding with rho < 1
        return "non-normal W: transient growth"
    return (
        "chaotic trajectory: rate above ln(gamma rho)"
        if r.regime_folklore != "exploding"
        else ("exploding beyond the rule")
    )


def accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """Share right per rule, activation and drive (and overall), with Wilson intervals."""
    rows = []
    groups = [("all", "all", frame)] + [
        (a, d, g) for (a, d), g in frame.groupby(["activation", "drive"], sort=False)
    ]
    for act_, drive, g in groups:
        row = dict(activation=act_, drive=drive, networks=len(g))
        for rule in RULES:
            iv = protocol.success_interval(g[f"right_{rule}"])
            row.update({f"{rule}": iv.estimate, f"{rule}_low": iv.low, f"{rule}_high": iv.high})
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(frame: pd.DataFrame, cfg: Config) -> protocol.Verdict:
    """The protocol's verdict on the folklore rule: per activation and drive, combined."""
    per_cell = int(frame.groupby(["activation", "gain", "input_scale"]).size().min())
    cells = {}
    for (act_, drive), g in frame.groupby(["activation", "drive"], sort=False):
        cells[f"{act_} {drive}"] = protocol.decide_claim(
            CLAIM, protocol.success_interval(g.right_folklore), per_cell=per_cell
        )
    overall = protocol.decide_claim(CLAIM, protocol.success_interval(frame.right_folklore), per_cell=per_cell)
    if overall.word == protocol.INCONCLUSIVE and overall.condition:
        return overall  # too few networks: no cell may decide either
    return protocol.combine(cells, overall)


def reasons(frame: pd.DataFrame) -> pd.DataFrame:
    """The diagnosed failures: how many, and the median diagnostics of the networks behind each reason."""
    wrong = frame[~frame.right_folklore]
    if wrong.empty:
        return pd.DataFrame(
            columns=["reason", "networks", "activations", "gamma", "saturated_share", "off_share", "henrici"]
        )
    g = wrong.groupby("reason", sort=False)
    out = g.agg(
        networks=("seed", "size"),
        gamma=("gamma", "median"),
        saturated_share=("saturated_share", "median"),
        off_share=("off_share", "median"),
        henrici=("henrici", "median"),
    ).reset_index()
    out.insert(
        2,
        "activations",
        [", ".join(sorted(wrong[wrong.reason == r].activation.unique())) for r in out.reason],
    )
    return out.sort_values("networks", ascending=False, kind="stable").reset_index(drop=True)


def _pct(v: float) -> str:
    return f"{v:.0%}"


def _share(acc_row, rule: str) -> str:
    return f"{acc_row[rule]:.0%} [{acc_row[f'{rule}_low']:.0%}, {acc_row[f'{rule}_high']:.0%}]"


def run(cfg: Config, out: str) -> dict:
    frame, overflowed = measure(cfg)
    acc = accuracy(frame)
    why = reasons(frame)
    decision = verdict(frame, cfg)
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, f"{STUDY}_networks.csv"), frame)
    write_csv(os.path.join(out, f"{STUDY}_accuracy.csv"), acc)
    write_csv(os.path.join(out, f"{STUDY}_reasons.csv"), why)
    total = acc.iloc[0]
    shown = pd.DataFrame(
        {
            "activation": acc.activation,
            "drive": acc.drive,
            "networks": acc.networks,
            "rule on rho(W)": [_share(r, "folklore") for _, r in acc.iterrows()],
            "rule on gamma rho(W)": [_share(r, "slope-corrected") for _, r in acc.iterrows()],
        }
    )
    why_shown = pd.DataFrame(
        {
            "reason (diagnosed)": why.reason,
            "networks": why.networks,
            "median gamma": why.gamma.map(lambda v: f"{v:.2f}"),
            "saturated": why.saturated_share.map(_pct),
            "ReLU off": why.off_share.map(_pct),
            "Henrici": why.henrici.map(lambda v: f"{v:.2f}"),
        }
    )
    finding = (
        f"The rule on rho(W) names the measured regime in {_share(total, 'folklore')} of "
        f"{int(total.networks)} networks, the slope-corrected rule on gamma rho(W) in "
        f"{_share(total, 'slope-corrected')} (95% Wilson intervals)"
    )
    with paper_theme():
        pages = [
            table_page(
                "Does the largest eigenvalue decide?",
                [
                    ("Verdict", decision.sentence()),
                    ("Finding", finding + "."),
                    (
                        "Configuration",
                        f"vanilla {', '.join(cfg.activations)} RNNs, N = {cfg.hidden}, "
                        f"T = {cfg.steps} after {protocol.WARMUP} warm-up steps, batch {cfg.batch}, "
                        f"{cfg.seeds} networks (seeds from {cfg.seed}) per gain and input std; gains "
                        f"{', '.join(f'{g:g}' for g in cfg.gains)}; input std "
                        f"{', '.join(f'{s:g}' for s in cfg.input_scales)}; {overflowed} networks "
                        f"left out (state overflow); gradflow {gf.__version__}.",
                    ),
                ],
                shown,
                "Share of networks whose regime each rule names (95% Wilson interval)",
                col_widths=(0.14, 0.14, 0.1, 0.31, 0.31),
                more_tables=[
                    (
                        "Failures of the rule on rho(W), diagnosed from each trajectory",
                        why_shown,
                        (0.46, 0.1, 0.12, 0.1, 0.1, 0.12),
                    )
                ],
            )
        ]
        pages.append(
            figure_page(
                phase_figure(frame, cfg),
                (
                    f"{finding}. Majority regime per cell (v: vanishing, n: neutral, e: exploding; colour: "
                    f"mean over {cfg.seeds} networks) measured by gradflow.gradient_flow (left), named by "
                    "the rule on rho(W) (middle) and by the rule on gamma rho(W) (right)."
                ),
            )
        )
        slope = frame.groupby("activation").gamma.median()
        pages.append(
            figure_page(
                rate_figure(frame, cfg),
                (
                    f"{finding}. Each dot: one network. Top: measured rate against ln rho(W), the folklore "
                    "rule's prediction; bottom: against ln(gamma rho(W)), gamma = mean phi' along the "
                    "network's own trajectory (median gamma "
                    + ", ".join(f"{a} {v:.2f}" for a, v in slope.items())
                    + "). Dashed: measured = predicted; band: neutral."
                ),
            )
        )
        pages.append(
            table_page(
                "Methods",
                [
                    (
                        "Measured",
                        "gradflow.gradient_flow: slope of ln ||dL/dh_{T-k}|| over lags T/10..T from the "
                        "warmed-up state; regimes with the shared neutral band.",
                    ),
                    (
                        "Rules",
                        "folklore: regime of ln rho(W); slope-corrected: regime of ln(gamma rho(W)) with "
                        "gamma the mean of phi'(a) over steps, batch and units of the network's trajectory.",
                    ),
                    (
                        "Diagnostics",
                        f"from each trajectory's pre-activations a = W h + U x + b: saturated share "
                        f"(|a| > {SATURATED:g}, tanh and sigmoid), ReLU units off (a <= 0) and dead "
                        "units (off at every step), gamma, and Henrici's departure from normality of W. "
                        "A failure's reason follows from these numbers, not from the input scale.",
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
            title="gradflow: does the largest eigenvalue decide?",
            keywords=["eigenvalue rule", "phase diagram", "sweep"],
            accuracy=acc,
            points=frame,
            reasons=why,
        )


def main(argv=None) -> dict:
    return study_main(
        argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run, overrides=("hidden", "steps", "seeds")
    )


if __name__ == "__main__":
    main()
