"""Do clipping, penalties, initialisation and gates really fix long-range learning?

Claim (source 001 and the folklore around it): vanilla RNNs fail to learn long-range
dependencies because their gradients vanish or explode; gradient clipping, weight
penalties, orthogonal / identity initialisation and gates (an LSTM, a forget-gate bias)
fix it. Measured here by training many independent networks (one seed each) of every
configuration on the adding problem at short to long sequence lengths (up to T = 100, where
the claims bite), and counting how many learn it: held-out loss below half the memoryless
baseline. The verdict per remedy comes from its success rate's Wilson interval at the
longest T; remedies that disagree give "holds only when".

    python -m gradflow.studies.remedies [--full] [--out reports] [--seed S] [--hidden N]
        [--steps S] [--seeds K]

Design. Forty seeds per configuration give Wilson intervals of at most +-0.15 on every success
rate. To afford them, the seeds of one configuration train together: their weights are
stacked along a leading axis and one autograd pass through the stacked recurrence gives each
network its own gradient (the loss is a sum over networks, so nothing couples them), followed
by per-network clipping and Adam exactly as `gradflow.train` does; a self-check shows that a
stack of one network reproduces `gradflow.train`'s loss curve. Quick mode trains the tanh RNN
(plain, clipped, L2-penalised, orthogonal and identity initialised) and the LSTM (forget bias
1 and 3) on adding only. Cut from the study for time: copy memory, GRU, TCN, self-attention,
stacked layers and the Lyapunov regulariser (`gradflow.train` still trains all of them).
"""

from __future__ import annotations

import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

import gradflow as gf
from gradflow.report import figure_page, fixed_jitter, palette, paper_theme, table_page, write_csv
from gradflow.studies._claim import Claim
from gradflow.studies._cli import study_main
from gradflow.studies._finish import finish_study
from gradflow.studies._protocol import combine, conventions, decide_claim, success_interval
from gradflow.studies._remedies_checks import self_checks
from gradflow.studies._remedies_networks import CONFIGURATIONS, EVAL_BATCH, REFERENCE, Config, train_stack

STUDY = "remedies"

CLAIM = Claim(
    text="Vanilla RNNs fail on long-range dependencies because their gradients vanish or explode; "
    "gradient clipping, L1/L2 penalties on the recurrent weights, orthogonal or identity "
    "initialisation and gates (LSTM, forget-gate bias) fix it.",
    source="001_c88bba1d8530f5f5.txt",
    source_title='"Disadvantages of RNN" (OpenGenus)',
    quote="Solutions like LSTM networks and gradient clippings are now becoming an industry practice.",
    quantity="success rate at the longest T (adding problem, T >= 100): share of independently seeded "
    "networks whose held-out loss ends below half the memoryless baseline",
    rule="a remedy fixes long-range learning when the 95% Wilson interval of its success rate lies above "
    "the threshold, and does not when it lies below; remedies that disagree give 'holds only when'",
    threshold=0.5,
    holds_when="above",
)


QUICK = Config()
FULL = Config(
    hidden=32,
    steps=1500,
    batch=32,
    seeds=100,
    lr=0.01,
    adding_T=(5, 10, 25, 50, 100, 200),
    configurations=tuple(CONFIGURATIONS),
)


# ---------------------------------------------------------------- the study


def measure(cfg: Config) -> pd.DataFrame:
    """Every network of every configuration and T; networks of one architecture train as one stack."""
    frames = []
    jobs = [
        (T, arch)
        for T in cfg.adding_T
        for arch in ("RNN", "LSTM")
        if any(CONFIGURATIONS[c][0] == arch for c in cfg.configurations)
    ]
    with tqdm(total=len(jobs) * cfg.steps, desc=STUDY, unit="step", disable=None, leave=False) as bar:
        for T, arch in jobs:
            networks = [
                (c, cfg.seed + s)
                for c in cfg.configurations
                if CONFIGURATIONS[c][0] == arch
                for s in range(cfg.seeds)
            ]
            bar.set_postfix_str(f"{arch} x {len(networks)}, T = {T}")
            with threadpool_limits(1):  # small matrices: BLAS threads only contend
                frames.append(train_stack(networks, T, cfg, progress=bar))
    order = {c: i for i, c in enumerate(cfg.configurations)}
    runs = pd.concat(frames, ignore_index=True)
    return runs.sort_values(
        ["T", "configuration", "seed"],
        key=lambda col: col.map(order) if col.name == "configuration" else col,
        kind="stable",
    ).reset_index(drop=True)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (configuration, T): success rate with its Wilson 95% interval, median loss ratio, divergences."""
    rows = []
    for (conf, T), g in runs.groupby(["configuration", "T"], sort=False):
        iv = success_interval(g.success.to_numpy(bool))
        rows.append(
            dict(
                configuration=conf,
                remedy=g.remedy.iloc[0],
                T=int(T),
                success_rate=iv.estimate,
                low=iv.low,
                high=iv.high,
                median_ratio=float(g.ratio.median()),
                diverged=int(g.diverged.sum()),
                networks=len(g),
            )
        )
    return pd.DataFrame(rows)


def verdict(runs: pd.DataFrame):
    """Each remedy's success rate at the longest T decided against the claim, then combined."""
    longest = runs[runs["T"] == runs["T"].max()]
    remedied = longest[longest.configuration != REFERENCE]
    cells = {
        f"remedy = {conf}": decide_claim(CLAIM, success_interval(g.success.to_numpy(bool)))
        for conf, g in remedied.groupby("configuration", sort=False)
    }
    overall = decide_claim(CLAIM, success_interval(remedied.success.to_numpy(bool)))
    return combine(cells, overall), cells


def _interval(rate: float, low: float, high: float) -> str:
    return f"{rate:.2f} [{low:.2f}, {high:.2f}]"


def _pages(runs: pd.DataFrame, summary: pd.DataFrame, decision, cfg: Config) -> list[plt.Figure]:
    pages = []
    confs = list(dict.fromkeys(summary.configuration))
    colours = palette(confs)
    Ts = sorted(summary["T"].unique())
    fig, ax = plt.subplots(figsize=(8.27, 6.5))
    fig.subplots_adjust(left=0.1, right=0.68, top=0.93, bottom=0.3)
    width = 0.35 / max(1, len(confs) - 1)
    for k, conf in enumerate(confs):  # dodged: equal rates stay visible side by side
        sub = summary[summary.configuration == conf].set_index("T").reindex(Ts)
        x = np.arange(len(Ts)) - 0.175 + k * width
        ax.errorbar(
            x,
            sub.success_rate,
            yerr=[sub.success_rate - sub.low, sub.high - sub.success_rate],
            fmt="os^Dv<>p"[k % 8],
            color=colours[conf],
            capsize=3,
            label=conf,
        )
    ax.axhline(CLAIM.threshold, color="0.4", linestyle="--", linewidth=0.8)
    ax.set_xticks(np.arange(len(Ts)), [f"T = {T}" for T in Ts])
    ax.set(
        ylim=(-0.03, 1.03),
        ylabel="success rate (Wilson 95%)",
        xlabel="adding problem, sequence length",
        title=f"{cfg.seeds} networks per point, {cfg.steps} Adam steps",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    longest = summary[summary["T"] == max(Ts)].set_index("configuration")
    caption = (
        f"{decision.label[:1].upper()}{decision.label[1:]}: at T = {max(Ts)} the success rates are "
        + "; ".join(f"{c} {_interval(r.success_rate, r.low, r.high)}" for c, r in longest.iterrows())
        + f" (Wilson 95%, {cfg.seeds} networks each). Dashed: the threshold {CLAIM.threshold:g}."
    )
    pages.append(figure_page(fig, caption))

    fig, axes = plt.subplots(1, len(Ts), figsize=(8.27, 6.0), sharey=True, squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.42, wspace=0.08)
    shown = runs.assign(log_ratio=np.log10(runs.ratio.clip(upper=1e3)))
    for ax, T in zip(axes[0], Ts, strict=True):
        with fixed_jitter(cfg.seed):
            sns.stripplot(
                data=shown[shown["T"] == T],
                x="configuration",
                y="log_ratio",
                order=confs,
                hue="configuration",
                hue_order=confs,
                palette=colours,
                size=3,
                ax=ax,
                legend=False,
            )
        ax.axhline(np.log10(cfg.success), color="0.4", linestyle="--", linewidth=0.8)
        ax.set(title=f"T = {T}", xlabel="", ylabel="log10 held-out loss / baseline")
        ax.tick_params(axis="x", rotation=70, labelsize=8)
    ref = summary[summary.configuration == REFERENCE].set_index("T")
    at = {T: _interval(*ref.loc[T, ["success_rate", "low", "high"]]) for T in (min(Ts), max(Ts))}
    caption = (
        f"The plain RNN succeeds at T = {min(Ts)} in {at[min(Ts)]} and at T = {max(Ts)} in "
        f"{at[max(Ts)]} of networks. Each dot is one network's held-out loss over the memoryless "
        f"baseline; below the dashed line ({cfg.success:g}) is a success."
    )
    pages.append(figure_page(fig, caption))
    return pages


def run(cfg: Config, out: str) -> dict:
    start = time.perf_counter()
    checks = self_checks(cfg)
    runs = measure(cfg)
    summary = summarise(runs)
    decision, cells = verdict(runs)
    os.makedirs(out, exist_ok=True)
    for name, frame in (("runs", runs), ("success", summary), ("checks", checks)):
        write_csv(os.path.join(out, f"{STUDY}_{name}.csv"), frame)
    ref = summary[summary.configuration == REFERENCE].set_index("T")
    short, long_ = min(cfg.adding_T), max(cfg.adding_T)
    control = ref.loc[short]
    caveat = (
        ""
        if control.low > cfg.success
        else f" Caution: even at T = {short} the plain RNN succeeds in only {control.success_rate:.0%}: the "
        "training budget, not only the range, limits it."
    )
    sentence = (
        f"{decision.sentence()} Budget: {cfg.steps} Adam steps of batch {cfg.batch}, width "
        f"{cfg.hidden}. Per remedy at T = {long_}: "
        + "; ".join(
            f"{name.removeprefix('remedy = ')} {_interval(v.estimate, *v.interval)} ({v.label})"
            for name, v in cells.items()
        )
        + f". The plain RNN: {_interval(*ref.loc[long_, ['success_rate', 'low', 'high']])} at T = "
        f"{long_}, "
        f"{_interval(control.success_rate, control.low, control.high)} at T = {short}." + caveat
    )
    table = pd.DataFrame(
        {
            "configuration": summary.configuration,
            "T": summary["T"].astype(str),
            "success [95%]": [
                _interval(r, lo, hi)
                for r, lo, hi in zip(summary.success_rate, summary.low, summary.high, strict=True)
            ],
            "median loss ratio": summary.median_ratio.map(lambda v: f"{v:.3f}"),
            "diverged": summary.diverged.astype(str),
            "networks": summary.networks.astype(str),
        }
    )
    seconds = time.perf_counter() - start
    with paper_theme():
        pages = [
            table_page(
                "Do the remedies fix long-range learning?",
                [
                    ("Verdict", sentence),
                    (
                        "Configuration",
                        f"hidden {cfg.hidden}, {cfg.steps} Adam steps (lr {cfg.lr:g}), batch "
                        f"{cfg.batch}, {cfg.seeds} networks (seeds {cfg.seed}.."
                        f"{cfg.seed + cfg.seeds - 1}) per configuration and T; adding problem, T in "
                        f"{list(cfg.adding_T)}; success = held-out loss < {cfg.success:g} x baseline "
                        f"on {EVAL_BATCH} fresh sequences; {len(runs)} networks trained "
                        f"(remedies_runs.csv); gradflow {gf.__version__}.",
                    ),
                ],
                table,
                "Success rate per configuration and T (remedies_success.csv)",
                col_widths=(0.3, 0.08, 0.24, 0.16, 0.1, 0.12),
            ),
            *_pages(runs, summary, decision, cfg),
            table_page(
                "Methods",
                [
                    (
                        "Training",
                        "The networks of one architecture train as one stack: weights with a leading "
                        "network axis, one autograd value_and_grad of the sum of the networks' losses "
                        "(so each network gets exactly its own gradient), then per network: clipping of "
                        "its gradient's global norm, its own L2 weight, Adam (0.9, 0.999, 1e-8). Start "
                        "(gradflow.training_objective), batches (task.batch(batch, (seed, step))) and "
                        "update are gradflow.train's; the self-check below compares their losses.",
                    ),
                    (
                        "Remedies",
                        "Clipping by global norm 1; L2 1e-3 on W_hh; orthogonal W_hh; an LSTM with "
                        "forget bias 3. A network that produces a non-finite loss stops there and "
                        "counts as a failure.",
                    ),
                    (
                        "Task",
                        "Adding (two U(0,1) values marked in the first and second half; baseline 1/6, the "
                        "variance of their sum). Each seed fixes weights, readout and batches.",
                    ),
                    (
                        "Cut for time",
                        "Copy memory, GRU, TCN, self-attention, stacked layers and the Lyapunov "
                        "regulariser (all trainable with gradflow.train); quick mode also leaves "
                        "out the identity initialisation and the LSTM with forget bias 1 (both "
                        "in --full).",
                    ),
                    *[c for c in conventions() if c[0] == "Intervals"],
                ],
                checks.drop(columns="passed"),
                "Self-checks run with this report",
                col_widths=(0.56, 0.16, 0.28),
            ),
        ]
        return finish_study(
            out,
            pages,
            study=STUDY,
            config=cfg,
            claim=CLAIM,
            decision=decision,
            title="gradflow: do remedies fix long-range learning?",
            keywords=["training", "clipping", "LSTM", "adding problem", "success rate"],
            sentence=sentence,
            summary=summary,
            runs=runs,
            table=table,
            seconds=seconds,
        )


def main(argv=None) -> dict:
    return study_main(
        argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run, overrides=("hidden", "steps", "seeds")
    )


if __name__ == "__main__":
    main()
