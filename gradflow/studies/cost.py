"""Are RNNs slow, sequential and memory-bandwidth bound? Depth, wall time, and where a step's time goes.

Claims (sources 000 and 002): recurrent nets cannot be parallelised over time, are slow,
and are memory-bandwidth bound ("as much memory bandwidth as operations"), while
attention and convolutions re-use each byte many times. Measured here on this machine:
the sequential depth from each model's dependency graph; forward+backward wall time
against n for a tanh RNN, self-attention and a TCN written in numpy/autograd, and for one
linear recurrence (an LRU) run both as a loop and as a log-depth associative scan
(``gradflow.recurrent(cell, scan=True)``), so "RNNs are sequential" is put to scanned
recurrences too; and, for
one recurrent step ``h <- tanh(W h + U x + b)`` at several widths, the time per step in
plain numpy, in gradflow and (when importable) in PyTorch, set against the time its
arithmetic needs at this core's peak flop rate and the time its bytes need at this
machine's memory bandwidth. Whatever is left is interpreter overhead.

    python -m gradflow.studies.cost [--full] [--out reports] [--seed S]
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from autograd import grad

import gradflow as gf
from gradflow.report import figure_page, palette, paper_theme, table_page, write_csv
from gradflow.studies._claim import Claim
from gradflow.studies._cli import check_fields, study_main
from gradflow.studies._cost_machine import IDLE_LOAD, best_time, growth, intensity, machine_balance
from gradflow.studies._cost_scan import check_scan, linear_models, scan_facts, scan_sentence, scan_table
from gradflow.studies._cost_steps import step_costs, step_page
from gradflow.studies._finish import finish_study
from gradflow.studies._protocol import bootstrap_interval, combine, conventions, decide_claim

STUDY = "cost"

CLAIM = Claim(
    text="RNNs are memory-bandwidth bound: a recurrent step needs as much memory bandwidth as "
    "operations, so the processor waits on memory.",
    source="002_6d33935d2b5896cb.txt",
    source_title='"The fall of RNN / LSTM" (Eugenio Culurciello)',
    quote="RNN and LSTM are memory-bandwidth limited problems",
    quantity="share of one recurrent step's wall time (fastest of plain numpy, gradflow and PyTorch) "
    "that reading its W x W matrix once takes, from wherever a matrix of that size lives",
    rule="bandwidth bound at a width when the 95% bootstrap interval over networks of that share lies "
    "above the threshold, not bandwidth bound when below; widths that disagree give 'holds only "
    "when'",
    threshold=0.5,
    holds_when="above",
)


@dataclass(frozen=True)
class Config:
    hidden: int = 64  # model width of the architecture timings
    steps: int = 512  # the largest n timed
    batch: int = 4
    repeats: int = 3
    widths: tuple[int, ...] = (16, 64, 256, 1024)  # widths of the timed recurrent step
    networks: int = 10  # independent networks (weight seeds) per width
    step_length: int = 32  # steps per timing of the recurrent step
    seed: int = 0

    def __post_init__(self):
        check_fields(
            self, positive=("hidden", "steps", "batch", "repeats", "widths", "networks", "step_length")
        )


QUICK = Config()
FULL = Config(
    hidden=128, steps=4096, batch=8, repeats=5, widths=(16, 64, 256, 1024, 2048), networks=20, step_length=64
)


def lengths(cfg: Config) -> list[int]:
    top = max(16, cfg.steps)
    return sorted({min(top, 2**k) for k in range(4, int(math.log2(top)) + 1)} | {top})


def models(cfg: Config, n: int, seed: int):
    w = cfg.hidden
    levels = max(1, math.ceil(math.log2((n - 1) / 4 + 1)))
    return [
        ("RNN tanh", gf.recurrent(gf.rnn(w, w, seed=seed))),
        ("self-attention", gf.self_attention(w, heads=4, inputs=w, seed=seed)),
        ("TCN (k = 3)", gf.tcn(w, 3, levels, inputs=w, seed=seed)),
        *linear_models(w, seed),
    ]


def measure(cfg: Config) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(cfg.seed)
    for n in lengths(cfg):
        xs = rng.standard_normal((n, cfg.batch, cfg.hidden))
        built = models(cfg, n, cfg.seed)
        check_scan(built, xs)
        for name, model in built:
            u = rng.standard_normal(model.width)

            def loss(params, model=model, u=u, xs=xs):
                return (model.apply(params, xs)[-1] @ u).sum()

            g = grad(loss)
            fwd = best_time(lambda model=model, xs=xs: model.apply(model.params, xs), cfg.repeats)
            both = best_time(lambda g=g, model=model: g(model.params), cfg.repeats)
            p = gf.path_lengths(model, n)
            rows.append(
                dict(
                    architecture=name,
                    n=n,
                    forward_s=fwd,
                    forward_backward_s=both,
                    sequential_depth=p.sequential_depth,
                    flops=float(p.operations.flops.sum()),
                )
            )
    frame = pd.DataFrame(rows)
    frame["gflops_achieved"] = 3 * frame.flops / frame.forward_backward_s / 1e9  # backward ~ 2x forward
    return frame


def fastest(steps: pd.DataFrame) -> pd.DataFrame:
    """Per (width, network): the row of the fastest implementation."""
    return steps.loc[steps.groupby(["width", "seed"]).seconds_per_step.idxmin()].reset_index(drop=True)


def decide_widths(steps: pd.DataFrame, seed: int):
    """The claim decided per width from the fastest implementation's memory share, then combined.

    The share is a ratio of two timings taken back to back under the same load (reading W,
    running the step), so a busy machine slows both alike.
    """
    best = fastest(steps)
    cells = {}
    for width, g in best.groupby("width"):
        v = decide_claim(CLAIM, bootstrap_interval(g.memory_share.to_numpy(), seed=seed))
        cells[f"width = {width}"] = v
    overall = decide_claim(CLAIM, bootstrap_interval(best.memory_share.to_numpy(), seed=seed))
    return combine(cells, overall), cells


def verdict(
    times: pd.DataFrame, inten: pd.DataFrame, machine: dict, steps: pd.DataFrame, seed: int = 0
) -> tuple[str, str, dict]:
    top = times[times.n == times.n.max()].set_index("architecture")
    depth = growth(times, "sequential_depth")
    slope = growth(times, "forward_backward_s")
    decision, cells = decide_widths(steps, seed)
    best = fastest(steps)
    med = steps.groupby(["width", "implementation"]).median(numeric_only=True)
    share = best.groupby("width").memory_share.median()
    peak = best.groupby("width").peak_fraction.median()
    facts = dict(
        n=int(times.n.max()),
        rnn_depth=int(top.loc["RNN tanh", "sequential_depth"]),
        attention_depth=int(top.loc["self-attention", "sequential_depth"]),
        rnn_time=top.loc["RNN tanh", "forward_backward_s"],
        attention_time=top.loc["self-attention", "forward_backward_s"],
        tcn_time=top.loc["TCN (k = 3)", "forward_backward_s"],
        rnn_slope=slope["RNN tanh"],
        attention_slope=slope["self-attention"],
        rnn_intensity=inten.flops_per_byte.iloc[0],
        attention_intensity=inten.flops_per_byte.iloc[1],
        balance=machine["balance"],
        depth_slopes=depth.to_dict(),
        decision=decision,
        cells=cells,
        memory_share=share.to_dict(),
        peak_fraction=peak.to_dict(),
        per_step_us={f"{impl} at {w}": 1e6 * v for (w, impl), v in med.seconds_per_step.items()},
        **scan_facts(times),
    )
    small, large = min(share.index), max(share.index)
    impls = sorted(steps.implementation.unique())
    busy = (
        ""
        if machine["idle"]
        else (
            f" The machine was busy (load {machine['load']:.1f} on "
            f"{machine['cores']} cores): its memory bandwidth and balance "
            "could not be measured, and the peak is a lower bound."
        )
    )
    sentence = (
        f"{decision.label[:1].upper()}{decision.label[1:]}. Per width, the fastest implementation's step "
        "spends this share of its time on memory traffic (mean, 95% bootstrap interval over networks): "
        + "; ".join(
            f"{name}: {v.estimate:.2f} [{v.interval[0]:.2f}, {v.interval[1]:.2f}] ({v.label})"
            for name, v in cells.items()
        )
        + f". At width {small} a step runs at {peak[small]:.2%} of one core's peak "
        f"({machine['peak_gflops']:.1f} GFLOP/s) and takes "
        + ", ".join(f"{impl} {1e6 * med.loc[(small, impl), 'seconds_per_step']:.1f} us" for impl in impls)
        + f": interpreter overhead; at width {large}, {peak[large]:.0%} of peak."
        + busy
        + f" Sequential depth grows as n^{depth['RNN tanh']:.2f} for the RNN and "
        f"n^{depth['self-attention']:.2f} for self-attention." + scan_sentence(facts)
    )
    return decision.label, sentence, facts


def run(cfg: Config, out: str) -> dict:
    machine = machine_balance(cfg.repeats)
    steps = step_costs(cfg, machine)
    times = measure(cfg)
    inten = intensity(cfg.hidden, int(times.n.max()), cfg.batch)
    _label, sentence, facts = verdict(times, inten, machine, steps, cfg.seed)
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, f"{STUDY}_times.csv"), times)
    write_csv(os.path.join(out, f"{STUDY}_scan.csv"), scan_table(times))
    write_csv(os.path.join(out, f"{STUDY}_steps.csv"), steps)
    write_csv(os.path.join(out, f"{STUDY}_intensity.csv"), inten)
    write_csv(os.path.join(out, f"{STUDY}_machine.csv"), pd.DataFrame([machine]))
    balance = machine["balance"]
    table = pd.DataFrame(
        {
            "operation": inten.operation,
            "flops": inten.flops.map(lambda v: f"{v:.3g}"),
            "bytes moved": inten.bytes.map(lambda v: f"{v:.3g}"),
            "flops/byte": inten.flops_per_byte.map(lambda v: f"{v:.2f}"),
            "vs balance": inten.flops_per_byte.map(
                lambda v: (
                    "not measured (busy)"
                    if np.isnan(balance)
                    else "below balance"
                    if v < balance
                    else "above balance"
                )
            ),
        }
    )
    with paper_theme():
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 9.5))
        fig.subplots_adjust(left=0.12, right=0.75, top=0.95, bottom=0.14, hspace=0.35)
        archs = list(dict.fromkeys(times.architecture))
        colours = palette(archs)
        sns.lineplot(
            data=times, x="n", y="forward_backward_s", hue="architecture", palette=colours, marker="o", ax=ax1
        )
        ax1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="x-small")
        ax1.set(
            xscale="log",
            yscale="log",
            xlabel="sequence length n",
            ylabel="seconds",
            title=f"Forward + backward wall time (batch {cfg.batch}, width {cfg.hidden}, best of "
            f"{cfg.repeats})",
        )
        sns.lineplot(
            data=times,
            x="n",
            y="sequential_depth",
            hue="architecture",
            palette=colours,
            marker="o",
            ax=ax2,
            legend=False,
        )
        ax2.set(
            xscale="log",
            yscale="log",
            xlabel="sequence length n",
            ylabel="sequential depth",
            title="Operations that must run one after another (from the dependency graph)",
        )
        for ax in (ax1, ax2):
            ax.set_xticks(sorted(times.n.unique()), [str(n) for n in sorted(times.n.unique())])
            ax.minorticks_off()
        caption = (
            f"The RNN's sequential depth grows as n^{facts['depth_slopes']['RNN tanh']:.2f}, "
            f"self-attention's as n^{facts['depth_slopes']['self-attention']:.2f}; wall time grows as "
            f"n^{facts['rnn_slope']:.2f} for the RNN and n^{facts['attention_slope']:.2f} for "
            f"self-attention (larger half of n; one timing per point, best of {cfg.repeats}). At n = "
            f"{facts['n']}: RNN {facts['rnn_time'] * 1e3:.0f} ms, attention "
            f"{facts['attention_time'] * 1e3:.0f} ms, TCN {facts['tcn_time'] * 1e3:.0f} ms. The same LRU "
            f"as a scan: depth {facts['scan_depth']} against the loop's {facts['scan_loop_depth']}; "
            f"forward + backward {facts['scan_forward_backward_speedup']:.2g}x the loop's speed "
            f"(forward {facts['scan_forward_speedup']:.2g}x)."
        )
        pages = [
            table_page(
                "Are RNNs slow, sequential and memory-bandwidth bound?",
                [
                    ("Verdict", sentence),
                    (
                        "Configuration",
                        f"recurrent step: widths {', '.join(map(str, cfg.widths))}, batch "
                        f"{cfg.batch}, "
                        f"{cfg.networks} networks per width, {cfg.step_length} steps per timing, best "
                        f"of {cfg.repeats}; architectures: width {cfg.hidden}, n up to {facts['n']}; "
                        f"float64, one thread; load average {machine['load']:.2f} on "
                        f"{machine['cores']} cores; gradflow {gf.__version__}.",
                    ),
                ],
                table,
                "Arithmetic intensity (weights streamed once per use)",
                col_widths=(0.34, 0.12, 0.14, 0.12, 0.18),
            ),
            step_page(steps, machine, facts, cfg),
            figure_page(fig, caption),
            table_page(
                "Methods",
                [
                    (
                        "Step",
                        "The same tanh recurrence three ways, each network's final states equal to 1e-9: "
                        "plain numpy (input drive for all steps in one matmul, then h @ W.T per step), "
                        "gradflow.unroll (the engine's cell step), torch.nn.RNN (float64, no_grad, one "
                        "thread). Seconds per step: best of the repeats over step_length steps.",
                    ),
                    (
                        "Decomposition",
                        "arithmetic = 2 B W^2 flops / peak (a 1024^3 float64 matmul on one "
                        "thread); memory = the time to read the network's W once (W.sum(), best of "
                        "the repeats), from whichever cache or main memory holds a matrix of that "
                        "size, less the fixed cost of one numpy call; the rest is interpreter "
                        "overhead (small W) and kernels below peak (large W: a batch of "
                        f"{cfg.batch} rows is a skinny matmul). A step below 1% of peak is "
                        "overhead-bound. "
                        "Machine balance (peak / bandwidth of a 256 MB copy) only when the load "
                        f"average per core is below {IDLE_LOAD:g}; otherwise it is not measured.",
                    ),
                    (
                        "Timing",
                        "time.perf_counter, best of the repeats, of model.apply (forward) and of "
                        "autograd.grad of u . y_{n-1} with respect to every weight (forward + backward).",
                    ),
                    (
                        "Depth",
                        "gradflow.path_lengths(model, n).sequential_depth: Kahn rounds over the "
                        "unrolled dependency graph.",
                    ),
                    (
                        "Scan",
                        f"one LRU ({cfg.hidden} complex modes, {cfg.hidden} inputs) through model.apply "
                        "twice: gradflow.recurrent(cell), the loop over time, and gradflow.recurrent(cell, "
                        "scan=True), the doubling associative scan (ceil(log2 n) rounds of whole-sequence "
                        "numpy work; its gradient a reverse scan), equal to the loop to 1e-12. Timed "
                        "as above, in the same run; speed-up = loop seconds / scan seconds (cost_scan.csv).",
                    ),
                    *[c for c in conventions() if c[0] == "Intervals"],
                ],
            ),
        ]
        return finish_study(
            out,
            pages,
            study=STUDY,
            config=cfg,
            claim=CLAIM,
            decision=facts["decision"],
            title="gradflow: are RNNs slow, sequential and bandwidth bound?",
            keywords=["cost", "sequential depth", "arithmetic intensity"],
            sentence=sentence,
            times=times,
            intensity=inten,
            steps=steps,
            machine=machine,
            facts=facts,
        )


def main(argv=None) -> dict:
    return study_main(
        argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run, overrides=("hidden", "steps")
    )


if __name__ == "__main__":
    main()
