"""Do gates mitigate vanishing gradients? RNN vs LSTM vs GRU at matched hidden size.

Claim (source 002_6d33935d2b5896cb.txt): LSTM "can bypass units" and so removes some of the vanishing-gradient
problem. Measured here at initialisation with gradflow's reverse pass through the unrolled
network, at least 10 independent networks (seeds) per configuration, each started by the
shared convention (a random state run through a warm-up on its own inputs): the fitted
gradient rate (nats/step) of each architecture, the paired difference to a tanh RNN on the
same inputs with its bootstrap interval, the memory horizon, the LSTM's cell path against
its hidden path, and how all of it moves with the gate bias (LSTM forget bias, GRU update
bias). One `Verdict` object from the protocol is printed on the title page and the summary.

    python -m gradflow.studies.gated_cells [--full] [--out reports] [--seed S]
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import gradflow as gf
from gradflow.report import paper_theme, table_page, write_csv
from gradflow.studies import _protocol as protocol
from gradflow.studies._claim import Claim
from gradflow.studies._cli import check_fields, study_main
from gradflow.studies._finish import finish_study
from gradflow.studies._gated_pages import DEFAULT_BIAS, NEUTRAL, RNN, iv, plots

STUDY = "gated_cells"
CLAIM = Claim(
    text="LSTM and GRU bypass the multiplicative path of a vanilla RNN, so their gradients vanish less.",
    source="002_6d33935d2b5896cb.txt",
    source_title='"The fall of RNN / LSTM" (Eugenio Culurciello)',
    quote="LSTM thus have a way to remove some of the vanishing gradients problems",
    quantity="gradient rate of the gated cell at its usual gate bias (LSTM forget bias 1, GRU update bias 0) "
    "minus that of a tanh RNN on the same inputs, paired by seed, mean over networks (nats/step)",
    rule="holds where the 95% bootstrap interval of the mean difference lies above the neutral band's width "
    f"({NEUTRAL} nats/step); decided per gated architecture, then combined",
    threshold=NEUTRAL,
)


@dataclass(frozen=True)
class Config:
    hidden: int = 64
    inputs: int = 16
    steps: int = 300
    batch: int = 4
    seeds: int = 10
    input_scale: float = 1.0
    biases: tuple[float, ...] = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0)
    seed: int = 0
    claim: ClassVar[Claim] = CLAIM

    def __post_init__(self):
        check_fields(self, non_negative=("input_scale",))
        missing = [b for b in (0.0, 1.0) if b not in self.biases]
        if missing:
            raise ValueError(
                f"biases = {self.biases!r} must include 0 and 1 (the GRU's and LSTM's usual biases)"
            )


QUICK = Config()
FULL = Config(
    hidden=128, steps=2000, batch=8, seeds=20, biases=tuple(np.round(np.arange(-2.0, 5.01, 0.5), 2))
)


def _cells(cfg: Config, seed: int):
    """(architecture, gate bias or NaN, cell) for every configuration of one seed."""
    n, d = cfg.hidden, cfg.inputs
    yield RNN, np.nan, gf.rnn(n, d, gain=1.0, seed=seed)
    yield "RNN tanh (orthogonal)", np.nan, gf.rnn(n, d, gain=1.0, init="orthogonal", seed=seed)
    for b in cfg.biases:
        yield "LSTM", b, gf.lstm(n, d, forget_bias=b, seed=seed)
        yield "GRU", b, gf.gru(n, d, update_bias=b, seed=seed)


def usual_bias(frame: pd.DataFrame) -> np.ndarray:
    """Rows of gated cells at their usual gate bias."""
    pairs = zip(frame.architecture, frame.gate_bias, strict=True)
    return np.array([DEFAULT_BIAS.get(a) == b for a, b in pairs], dtype=bool)


def _representative(arch: str, bias: float) -> bool:
    return bool(np.isnan(bias) or DEFAULT_BIAS.get(arch) == bias)


def measure(cfg: Config) -> dict[str, pd.DataFrame]:
    rates, profiles = [], []
    for s in tqdm(range(cfg.seeds), desc=STUDY, unit="seed", disable=not sys.stderr.isatty(), leave=False):
        seed = cfg.seed + s
        streams = protocol.network_seeds(seed)
        inputs = protocol.study_inputs(cfg.steps, cfg.batch, cfg.inputs, cfg.input_scale, streams["inputs"])
        for arch, bias, cell in _cells(cfg, streams["cell"]):
            h0, xs = protocol.warm_start(cell, inputs, seed=streams["state"])
            flow = gf.gradient_flow(cell, xs, h0=h0, seed=streams["direction"], tol=NEUTRAL)
            row = dict(
                architecture=arch,
                gate_bias=bias,
                seed=seed,
                rate=flow.rate,
                rate_stderr=flow.fit.stderr,
                r2=flow.fit.r2,
                regime=flow.regime,
                memory_horizon=flow.memory_horizon if flow.memory_horizon is not None else np.nan,
            )
            if arch == "LSTM":
                for comp in ("h", "c"):
                    row[f"rate_{comp}"] = _slope(
                        flow.lags, flow.components[comp].mean(axis=1), protocol.fit_from(cfg.steps)
                    )
            rates.append(row)
            if _representative(arch, bias):
                label = arch if np.isnan(bias) else f"{arch} (bias {bias:g})"
                quantities = {"state": flow.log_norms}
                if arch == "LSTM":
                    quantities.update(h=flow.components["h"], c=flow.components["c"])
                for q, values in quantities.items():
                    profiles.append(
                        pd.DataFrame(
                            {
                                "cell": label,
                                "quantity": q,
                                "seed": seed,
                                "lag": flow.lags,
                                "log_norm": values.mean(axis=1),
                            }
                        )
                    )
    frame = pd.DataFrame(rates)
    rnn = frame[frame.architecture == RNN].set_index("seed").rate
    frame["minus_rnn"] = frame.rate - frame.seed.map(rnn)  # paired: same seed, same inputs
    return {"rates": frame, "profiles": pd.concat(profiles, ignore_index=True)}


def _slope(lags, profile, start):
    x, y = lags[start:], profile[start:]
    if not np.all(np.isfinite(y)):
        return -np.inf
    return float(np.polyfit(x, y, 1)[0])


def self_checks(cfg: Config) -> pd.DataFrame:
    """Closed forms the engine must reproduce before its numbers are reported."""
    rows = []
    alpha = 0.9
    cell = gf.rnn(cfg.hidden, cfg.inputs, activation="linear", init="orthogonal", gain=alpha, seed=cfg.seed)
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(200, 2, cfg.inputs, seed=cfg.seed))
    err = float(np.max(np.abs(flow.log_norms - flow.lags[:, None] * np.log(alpha))))
    rows.append(
        dict(
            check="linear RNN, W = 0.9 Q (Q orthogonal): rate = ln 0.9",
            expected=f"{np.log(alpha):.6f}/step",
            measured=f"{flow.rate:.6f}/step",
            max_error=f"{err:.1e}",
            passed=err < 1e-9,
        )
    )
    fb = 1.0
    cell = gf.lstm(8, 2, forget_bias=fb, init="identity", gain=0.0, seed=cfg.seed)
    cell.params["weight_ih_l0"][:] = 0.0
    flow = gf.gradient_flow(cell, gf.inputs.constant(100, 1, 2, 0.0), h0=np.ones(16))
    c_rate = _slope(flow.lags, flow.components["c"][:, 0], 1)
    expected = -np.log1p(np.exp(-fb))  # ln sigmoid(1): the cell path with no other input
    err = abs(c_rate - expected)
    rows.append(
        dict(
            check="LSTM, zero weights, forget bias 1: c rate = ln sigmoid(1)",
            expected=f"{expected:.6f}/step",
            measured=f"{c_rate:.6f}/step",
            max_error=f"{err:.1e}",
            passed=err < 1e-9,
        )
    )
    checks = pd.DataFrame(rows)
    if not checks.passed.all():
        raise FloatingPointError(f"engine self-check failed: {checks[~checks.passed].check.tolist()}")
    return checks


def summarise(rates: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Per architecture and gate bias: mean rate and mean paired difference to the tanh RNN, each with a
    bootstrap interval over networks, and the median horizon."""
    rows = []
    for (arch, bias), g in rates.groupby(["architecture", "gate_bias"], dropna=False, sort=False):
        rate = protocol.bootstrap_interval(g.rate, seed=seed)
        diff = protocol.bootstrap_interval(g.minus_rnn, seed=seed)
        rows.append(
            dict(
                architecture=arch,
                gate_bias=bias,
                networks=len(g),
                rate=rate.estimate,
                rate_low=rate.low,
                rate_high=rate.high,
                minus_rnn=diff.estimate,
                minus_rnn_low=diff.low,
                minus_rnn_high=diff.high,
                horizon=float(g.memory_horizon.median()),
                beyond_T=int(g.memory_horizon.isna().sum()),
            )
        )
    return pd.DataFrame(rows)


def verdict(rates: pd.DataFrame) -> protocol.Verdict:
    """The protocol's verdict: per gated architecture at its usual bias, the paired difference to the RNN."""
    usual = rates[usual_bias(rates)]
    per_cell = int(rates.groupby(["architecture", "gate_bias"], dropna=False).size().min())
    cells = {
        f"{arch} (bias {DEFAULT_BIAS[arch]:g})": protocol.decide_claim(
            CLAIM, protocol.bootstrap_interval(g.minus_rnn, seed=int(g.seed.min())), per_cell=per_cell
        )
        for arch, g in usual.groupby("architecture", sort=False)
    }
    pooled = protocol.bootstrap_interval(usual.minus_rnn, seed=int(usual.seed.min()))
    overall = protocol.decide_claim(CLAIM, pooled, per_cell=per_cell)
    if overall.word == protocol.INCONCLUSIVE and overall.condition:
        return overall
    return protocol.combine(cells, overall)


def run(cfg: Config, out: str) -> dict:
    checks = self_checks(cfg)
    data = measure(cfg)
    summary = summarise(data["rates"], cfg.seed)
    decision = verdict(data["rates"])
    os.makedirs(out, exist_ok=True)
    for name, frame in (
        ("rates", data["rates"]),
        ("profiles", data["profiles"]),
        ("summary", summary),
        ("checks", checks),
    ):
        write_csv(os.path.join(out, f"{STUDY}_{name}.csv"), frame)
    usual = summary[(summary.architecture == RNN).to_numpy() | usual_bias(summary)]
    finding = (
        "Mean rates: "
        + "; ".join(
            f"{r.architecture}{'' if np.isnan(r.gate_bias) else f' (bias {r.gate_bias:g})'} {iv(r, 'rate')}"
            for _, r in usual.iterrows()
        )
        + " nats/step (95% bootstrap intervals over networks)"
    )
    key = summary[summary.gate_bias.isna() | summary.gate_bias.isin([0.0, 1.0, 2.0])]
    table = pd.DataFrame(
        {
            "architecture": key.architecture,
            "gate bias": key.gate_bias.map(lambda b: "-" if np.isnan(b) else f"{b:g}"),
            "rate [95%]": [iv(r, "rate") for _, r in key.iterrows()],
            "minus RNN [95%]": [iv(r, "minus_rnn") for _, r in key.iterrows()],
            "horizon": key.horizon.map(lambda v: "> T" if np.isnan(v) else f"{v:.0f}"),
            "n": key.networks,
        }
    )
    sentence = decision.sentence()  # one Verdict: the title page and the summary print the same sentence
    with paper_theme():
        pages = [
            table_page(
                "Do gates mitigate vanishing gradients?",
                [
                    ("Verdict", sentence),
                    ("Finding", finding + "."),
                    (
                        "Configuration",
                        f"hidden N = {cfg.hidden}, inputs {cfg.inputs}, T = {cfg.steps} after "
                        f"{protocol.WARMUP} warm-up steps, batch {cfg.batch}, {cfg.seeds} networks "
                        f"(seeds from {cfg.seed}) per configuration, gaussian inputs of std "
                        f"{cfg.input_scale:g}, "
                        f"recurrent gain 1, gradflow {gf.__version__}.",
                    ),
                ],
                table,
                "Key numbers (nats/step, means over networks; every bias: gated_cells_summary.csv)",
                col_widths=(0.24, 0.1, 0.24, 0.24, 0.1, 0.06),
            ),
            *plots(data, summary, cfg, finding),
            table_page(
                "Methods",
                [
                    (
                        "Measured",
                        "For each cell and seed, gradflow.gradient_flow back-propagates a loss at the "
                        "final state (a fixed random unit direction) through the unrolled network in "
                        "one reverse pass and records ln ||dL/dh_{T-k}|| for every lag k, per state "
                        "part. The memory horizon is the first lag where the norm has fallen by 1e-3.",
                    ),
                    (
                        "Paired",
                        "Every configuration of one seed sees the same inputs and loss direction, so the "
                        "difference to the tanh RNN is taken network by network before averaging.",
                    ),
                    (
                        "Cells",
                        "PyTorch's equations; recurrent blocks W_ij ~ N(0, 1/N) (or orthogonal), input "
                        "weights N(0, 1/D), biases zero but for the gate bias.",
                    ),
                    (
                        "Checked",
                        "Before measuring, the engine reproduces the closed forms below; the test suite "
                        "checks every Jacobian against finite differences and the gradient norms against "
                        "autograd.grad taken directly.",
                    ),
                    *protocol.conventions(),
                ],
                checks.drop(columns="passed"),
                "Self-checks run with this report",
                col_widths=(0.52, 0.17, 0.17, 0.14),
            ),
        ]
        return finish_study(
            out,
            pages,
            study=STUDY,
            config=cfg,
            claim=CLAIM,
            decision=decision,
            title="gradflow: do gates mitigate vanishing gradients?",
            keywords=["gradient flow", "LSTM", "GRU", "RNN"],
            sentence=sentence,
            summary=summary,
            rates=data["rates"],
            table=table,
        )


def main(argv=None) -> dict:
    return study_main(
        argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run, overrides=("hidden", "steps", "seeds")
    )


if __name__ == "__main__":
    main()
