"""The recurrent_revival study's learning part: can linear recurrences, in the blocks their papers
train, learn `adding` and `copy_memory` at a T where the tanh RNN, the LSTM and the GRU fail?

Every network trains with `gradflow.train` (Adam, one seeded batch a step, a linear readout on
top) for the same budget of steps; it has learnt a task when its held-out loss ends below
`SUCCESS` times the task's memoryless baseline, the remedies study's criterion. The nonlinear
cells train as the other studies train them (the cell and the readout); the linear recurrences as
their papers do (`gradflow.residual_block`: an encoder, pre-norm, the recurrence, a nonlinear
position-wise head, a residual), since a bare linear recurrence under a linear readout cannot even
multiply two inputs. Decided per (architecture, task) from the Wilson interval of the share that
learnt at the longest T; the shortest T is the control that the budget suffices where the range is
short.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.report import palette
from gradflow.studies import _protocol as protocol
from gradflow.studies._revival_claims import LEARNING, SUCCESS, undecided
from gradflow.studies._revival_measure import ARCHITECTURES


@dataclass(frozen=True)
class Learner:
    """One architecture as it is trained: how to build it for a task, and what it is."""

    build: Callable[[int, int, int], gf.Cell | gf.SequenceModel]  # (width, task inputs, seed)
    linear: bool  # a linear recurrence (in its paper's block)
    description: str


def _blocks(cell: Callable[..., gf.Cell], blocks: int, head: str, **kwargs) -> Callable:
    """``(width, inputs, seed) -> `gradflow.residual_block` of ``blocks`` cells``, each its own seed."""
    return lambda w, d, s: gf.residual_block(
        [cell(w, w, seed=s + k, **kwargs) for k in range(blocks)], d, head=head, seed=s
    )


LEARNERS: dict[str, Learner] = {
    **{
        name: Learner(
            ARCHITECTURES[name].build, False, f"the cell ({ARCHITECTURES[name].init}), linear readout"
        )
        for name in ("RNN tanh", "LSTM", "GRU")
    },
    # Two blocks: the first block's head multiplies features of one input (it sees D * x_t), the
    # second's recurrence sums them; one linear recurrence cannot compute adding's product.
    "LRU block": Learner(
        _blocks(gf.lru, 2, "glu", r_min=0.9, r_max=0.999),
        True,
        "two blocks of encoder/LayerNorm, LRU (the paper's long-range ring |lambda| in [0.9, 0.999]), "
        "GELU, GLU, residual",
    ),
    "S4D block": Learner(
        _blocks(gf.s4d, 2, "glu"), True, "two blocks of LayerNorm, S4D-Lin, GELU, GLU, residual"
    ),
    # One block: its gate reads the input, so it can select what it writes (a product) by itself.
    "minGRU block": Learner(
        _blocks(gf.mingru, 1, "mlp"),
        True,
        "one block of LayerNorm, minGRU, residual; LayerNorm, GELU MLP, residual",
    ),
    # The module's own input gate and output gate (silu(z)) multiply, so one block can form a product.
    "Mamba block": Learner(
        lambda w, d, s: gf.residual_block([gf.mamba(w, seed=s)], d, head="mlp", seed=s),
        True,
        "one block of LayerNorm, Mamba (mamba_ssm's module: conv, selective scan, gate, out_proj), "
        "residual; LayerNorm, GELU MLP, residual",
    ),
}
# The quick run trains the LSTM (the baseline the claim is about) against one block of each kind of
# revival recurrence: a diagonal complex one (LRU) and a gated one (minGRU). The tanh RNN, GRU, S4D
# and Mamba blocks at full size (a Mamba block's step costs ~15x an LRU block's: its 600-wide state
# through the scan's VJP).
QUICK_LEARNERS = ("LSTM", "LRU block", "minGRU block")
TASKS: dict[str, Callable[..., gf.tasks.Task]] = {
    "adding": lambda T, seed, symbols: gf.tasks.adding(T, seed=seed),
    "copy_memory": lambda T, seed, symbols: gf.tasks.copy_memory(T, symbols=symbols, seed=seed),
}


def learn_task(point: Mapping[str, Any]) -> dict[str, Any]:
    """Train one network on one task (importable by workers): its held-out loss against the baseline.

    The point's seed gives independent streams (`_protocol.network_seeds`): the model's weights
    ("cell"), the task's batches ("inputs") and `gradflow.train`'s readout and batch order
    ("direction").
    """
    seeds = protocol.network_seeds(int(point["seed"]))
    task = TASKS[point["task"]](int(point["T"]), seeds["inputs"], int(point["symbols"]))
    model = LEARNERS[point["architecture"]].build(int(point["width"]), task.input_size, seeds["cell"])
    start = time.process_time()
    run = gf.train(
        model,
        task,
        int(point["train_steps"]),
        lr=float(point["lr"]),
        batch=int(point["batch"]),
        record_every=int(point["train_steps"]),
        seed=seeds["direction"],
        progress=False,
    )
    ratio = run.eval_loss / run.baseline  # NaN when it diverged
    return {
        "eval_loss": run.eval_loss,
        "baseline": run.baseline,
        "ratio": ratio,
        "learnt": bool(np.nan_to_num(ratio, nan=np.inf) < SUCCESS),
        "diverged": run.diverged_at is not None,
        "first_loss": float(run.loss[0]),
        "parameters": int(sum(np.size(v) for v in run.params["model"].values())),
        "cpu_seconds": time.process_time() - start,
    }


def measure_learning(cfg: Any) -> pd.DataFrame:
    """One row per trained network: every learner, task and T, ``cfg.learn_seeds`` seeds each."""
    grid = {
        "task": list(cfg.learn_tasks),
        "T": list(cfg.learn_lengths),
        "architecture": list(cfg.learners),
        "width": [cfg.learn_width],
        "train_steps": [cfg.learn_steps],
        "batch": [cfg.learn_batch],
        "lr": [cfg.learn_lr],
        "symbols": [cfg.copy_symbols],
    }
    return protocol.run_networks(grid, learn_task, replace(cfg, seeds=cfg.learn_seeds))


def learning_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, architecture, T): networks that learnt, the share with its Wilson 95% interval, the
    median loss ratio, divergences and CPU seconds."""
    rows = []
    for (task, arch, T), g in runs.groupby(["task", "architecture", "T"], sort=False):
        iv = protocol.success_interval(g.learnt)
        rows.append(
            dict(
                task=task,
                architecture=arch,
                T=int(T),
                learnt=int(g.learnt.sum()),
                networks=len(g),
                share=iv.estimate,
                low=iv.low,
                high=iv.high,
                median_ratio=float(g.ratio.median()),
                diverged=int(g.diverged.sum()),
                cpu_seconds=float(g.cpu_seconds.sum()),
            )
        )
    return pd.DataFrame(rows)


def learning_verdict(runs: pd.DataFrame) -> tuple[protocol.Verdict, dict]:
    """The learning claim per (architecture, task) at the longest T, then combined."""
    longest = runs[runs["T"] == runs["T"].max()]
    per_cell = int(longest.groupby(["architecture", "task"]).size().min())
    cells = {
        f"{arch} on {task}": protocol.decide_claim(
            LEARNING, protocol.success_interval(g.learnt), per_cell=per_cell
        )
        for (arch, task), g in longest.groupby(["architecture", "task"], sort=False)
    }
    overall = protocol.decide_claim(LEARNING, protocol.success_interval(longest.learnt), per_cell=per_cell)
    if overall.word == protocol.INCONCLUSIVE and overall.condition:
        return overall, cells
    return protocol.combine(cells, overall), cells


def _share(r) -> str:
    return f"{r.learnt}/{r.networks} [{r.low:.2f}, {r.high:.2f}]"


def learning_sentence(decision: protocol.Verdict, summary: pd.DataFrame, cfg: Any) -> str:
    """The verdict, the share that learnt at the longest T (Wilson 95%) and at the shortest (the
    control: an architecture that fails there is limited by the budget, not only by the range)."""
    short, long_ = min(summary["T"]), max(summary["T"])
    rows = list(summary.itertuples())  # itertuples keeps the counts integers

    def shares(T, text):
        return "; ".join(
            f"{task.replace('_', ' ')}: "
            + ", ".join(f"{r.architecture} {text(r)}" for r in rows if r.task == task and r.T == T)
            for task in dict.fromkeys(summary.task)
        )

    failed = [f"{r.architecture} on {r.task}" for r in rows if r.T == short and r.high < LEARNING.threshold]
    control = (
        f" At T = {short} (the control): {shares(short, lambda r: f'{r.learnt}/{r.networks}')}"
        + (f"; {', '.join(failed)} fail there already: the budget limits them." if failed else ".")
        if short != long_
        else ""
    )
    return (
        f"{decision.label}: networks that learnt (held-out loss < {SUCCESS:g} x baseline) at T = {long_}, "
        f"Wilson 95%: {shares(long_, _share)}." + control + f" Budget: {cfg.learn_steps} Adam steps (lr "
        f"{cfg.learn_lr:g}) of batch {cfg.learn_batch}, width {cfg.learn_width}."
    )


def learning_table(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": summary.task,
            "architecture": summary.architecture,
            "T": summary["T"].astype(str),
            "learnt, Wilson 95%": [_share(r) for r in summary.itertuples()],
            "loss/baseline (median)": summary.median_ratio.map(lambda v: f"{v:.3f}"),
            "diverged": summary.diverged.astype(str),
            "CPU s": summary.cpu_seconds.map(lambda v: f"{v:.0f}"),
        }
    )


def learning_figure(summary: pd.DataFrame, threshold: float):
    """Share of networks that learnt against T, one panel per task, Wilson 95% bars, dodged."""
    tasks = list(dict.fromkeys(summary.task))
    archs = list(dict.fromkeys(summary.architecture))
    colours = palette(archs)
    fig, axes = plt.subplots(len(tasks), 1, figsize=(8.27, 3.6 * len(tasks) + 1.5), squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.7, top=0.95, bottom=0.18, hspace=0.45)
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        sub = summary[summary.task == task]
        Ts = sorted(sub["T"].unique())
        width = 0.5 / max(1, len(archs) - 1)
        for k, arch in enumerate(archs):
            g = sub[sub.architecture == arch].set_index("T").reindex(Ts)
            x = np.arange(len(Ts)) - 0.25 + k * width
            ax.errorbar(
                x,
                g.share,
                yerr=[g.share - g.low, g.high - g.share],
                fmt="os^Dv<>p"[k % 8] + ("-" if LEARNERS[arch].linear else "--"),
                color=colours[arch],
                capsize=3,
                label=arch,
            )
        ax.axhline(threshold, color="0.4", linestyle=":", linewidth=0.8)
        ax.set_xticks(np.arange(len(Ts)), [f"T = {T}" for T in Ts])
        ax.set(ylim=(-0.03, 1.03), ylabel="share that learnt (Wilson 95%)", title=task.replace("_", " "))
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    return fig


def learning_pages(summary: pd.DataFrame, decision: protocol.Verdict, cells: dict, cfg: Any, seconds: float):
    """The learning part's figure page and table page."""
    from gradflow.report import figure_page, table_page

    text = learning_sentence(decision, summary, cfg)
    configuration = (
        f"{', '.join(cfg.learners)}; tasks {', '.join(cfg.learn_tasks)} (copy memory: {cfg.copy_symbols} "
        f"symbols of 8 categories) at T = {', '.join(map(str, cfg.learn_lengths))}; {cfg.learn_seeds} "
        f"networks per architecture, task and T (seeds from {cfg.seed}); {cfg.learn_steps} Adam steps, lr "
        f"{cfg.learn_lr:g}, batch {cfg.learn_batch}, width {cfg.learn_width}; {int(summary.networks.sum())} "
        f"networks trained in {seconds:.0f} s wall, {summary.cpu_seconds.sum():.0f} CPU-s "
        f"({cfg.executor} executor); learnt: held-out loss on 256 fresh sequences < {SUCCESS:g} x the "
        "memoryless baseline."
    )
    return [
        figure_page(
            learning_figure(summary, LEARNING.threshold),
            f"{text[:1].upper()}{text[1:]} Solid: linear recurrences in their blocks; dashed: nonlinear "
            f"cells; dotted: the threshold {LEARNING.threshold:g}.",
        ),
        table_page(
            "Can they learn where the LSTM fails?",
            [("Verdict", text + undecided(cells)), ("Configuration", configuration)],
            learning_table(summary),
            "Networks that learnt (recurrent_revival_learning.csv)",
            col_widths=(0.13, 0.15, 0.07, 0.3, 0.15, 0.1, 0.1),
        ),
    ]


def learning_methods() -> tuple[str, str]:
    """(heading, text) of the learning part on the Methods page."""
    return (
        "Learning",
        "gradflow.train: Adam (0.9, 0.999, 1e-8) on one seeded batch a step, a linear readout N(0, "
        "1/width) on the model's last output (adding) or every output (copy memory), no clipping; a "
        "network whose loss turns non-finite or exceeds 10^4 x its start has diverged and counts as not "
        "learnt. Architectures: "
        + "; ".join(f"{name}: {spec.description}" for name, spec in LEARNERS.items())
        + ". Blocks by gradflow.residual_block (an encoder to the width, then the residual blocks; the "
        "recurrence runs as a doubling scan, equal to the loop to 1e-12 in the tests). Each network's seed "
        "gives independent streams for its weights, its task's batches and the readout "
        "(gradflow.studies._protocol.network_seeds).",
    )
