"""The cost study's recurrent-step measurement and its page: one tanh step run three ways (plain
numpy, gradflow, PyTorch when installed) on the same networks, checked to end in the same state,
timed per step on one thread beside the time to read W once, and the figure of seconds per step
and share of peak flops against width."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

import gradflow as gf
from gradflow.report import figure_page, palette
from gradflow.studies._cost_machine import BYTES, best_time

INPUTS = 8  # input width of the timed recurrent step
OVERHEAD_BOUND = 0.01  # a step below 1% of peak flops is bound by overhead, not by memory

if TYPE_CHECKING:  # annotations only
    from gradflow.studies.cost import Config


def _numpy_steps(W, U, b, xs, h0):
    """The recurrence in plain numpy: the input drive for all steps at once, then one matmul per step."""
    drive = xs @ U.T + b
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(drive[t] + h @ W.T)
    return h


def _torch_runner(cell, xs, h0):
    """``run() -> final state`` of the same cell as ``torch.nn.RNN`` (float64), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    p = cell.params
    rnn = torch.nn.RNN(
        p["weight_ih_l0"].shape[1], p["weight_hh_l0"].shape[0], nonlinearity="tanh", dtype=torch.float64
    )
    with torch.no_grad():
        for name, value in p.items():
            getattr(rnn, name).copy_(torch.from_numpy(value))
    x, h = torch.from_numpy(xs), torch.from_numpy(h0[None])

    def run():
        with torch.no_grad():
            return rnn(x, h)[1][0].numpy()

    return run


def _runners(width: int, cfg: Config, seed: int, with_torch: bool) -> dict:
    """``{implementation: run() -> final state}`` of one network's recurrence."""
    cell = gf.rnn(width, INPUTS, bias_scale=0.1, seed=seed)
    p = cell.params
    W, U, b = p["weight_hh_l0"], p["weight_ih_l0"], p["bias_ih_l0"] + p["bias_hh_l0"]
    xs = gf.inputs.gaussian(cfg.step_length, cfg.batch, INPUTS, seed=seed)
    h0 = np.zeros((cfg.batch, width))
    runners = {
        "read W": W.sum,
        "numpy": lambda: _numpy_steps(W, U, b, xs, h0),
        "gradflow": lambda: gf.unroll(cell, xs, h0=h0)[-1],
    }
    if with_torch:
        runners["PyTorch"] = _torch_runner(cell, xs, h0)
    return runners


def step_costs(cfg: Config, machine: dict) -> pd.DataFrame:
    """Seconds per recurrent step, per width, network (weight seed) and implementation, one thread.

    Each network's three implementations must end in the same state (to 1e-9): the same
    recurrence is timed, not three different ones. Beside them, the time to read the network's
    W once (``W.sum()``, less the cost of summing a 1-element array) measures its memory
    traffic wherever W lives at that size (a cache or main memory), under the same load.
    """
    implementations = ["numpy", "gradflow"]
    rows = []
    todo = [(w, cfg.seed + k) for w in cfg.widths for k in range(cfg.networks)]
    torch_threads = None
    try:
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        implementations.append("PyTorch")
    except ImportError:
        pass
    one = np.ones(1)
    try:
        with threadpool_limits(1):
            call_s = best_time(one.sum, 5 * cfg.repeats)  # the fixed cost of one numpy reduction
            for width, seed in tqdm(todo, desc="cost: steps", unit="network", disable=None, leave=False):
                runners = _runners(width, cfg, seed, "PyTorch" in implementations)
                read = runners.pop("read W")
                read_s = max(0.0, best_time(read, cfg.repeats) - call_s)  # W's bytes, not the call
                reference = runners["numpy"]()
                for name, fn in runners.items():
                    err = float(np.max(np.abs(fn() - reference)))
                    if err > 1e-9:
                        raise FloatingPointError(f"{name}'s recurrence differs from numpy's by {err:.2g}")
                    seconds = best_time(fn, cfg.repeats) / cfg.step_length
                    rows.append(
                        dict(
                            width=width,
                            seed=seed,
                            implementation=name,
                            seconds_per_step=seconds,
                            memory_s=read_s,
                            max_abs_difference=err,
                        )
                    )
    finally:
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
    frame = pd.DataFrame(rows)
    frame["flops"] = 2.0 * cfg.batch * frame.width**2  # W h: the recurrent matmul
    frame["bytes"] = BYTES * (frame.width**2 + 2.0 * cfg.batch * frame.width)  # W once, h in and out
    frame["gflops"] = frame.flops / frame.seconds_per_step / 1e9
    frame["peak_fraction"] = frame.gflops / machine["peak_gflops"]
    frame["arithmetic_s"] = frame.flops / (machine["peak_gflops"] * 1e9)
    frame["memory_share"] = frame.memory_s / frame.seconds_per_step
    frame["other_s"] = (frame.seconds_per_step - np.maximum(frame.arithmetic_s, frame.memory_s)).clip(0)
    return frame


def step_page(steps: pd.DataFrame, machine: dict, facts: dict, cfg: Config) -> plt.Figure:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 9.5))
    fig.subplots_adjust(left=0.12, right=0.96, top=0.95, bottom=0.2, hspace=0.35)
    impls = list(dict.fromkeys(steps.implementation))
    colours = palette(impls)
    sns.lineplot(
        data=steps,
        x="width",
        y="seconds_per_step",
        hue="implementation",
        hue_order=impls,
        palette=colours,
        style="implementation",
        markers=True,
        dashes=False,
        errorbar=("pi", 100),
        ax=ax1,
    )
    bounds = steps.groupby("width")[["arithmetic_s", "memory_s"]].median()
    ax1.plot(bounds.index, bounds.arithmetic_s, color="0.2", linestyle=":", label="arithmetic at peak")
    ax1.plot(bounds.index, bounds.memory_s, color="0.2", linestyle="--", label="reading W once")
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel="width W",
        ylabel="seconds per step",
        title=f"One recurrent step tanh(W h + U x + b), batch {cfg.batch}, one thread",
    )
    ax1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="x-small")
    sns.lineplot(
        data=steps,
        x="width",
        y="peak_fraction",
        hue="implementation",
        hue_order=impls,
        palette=colours,
        style="implementation",
        markers=True,
        dashes=False,
        errorbar=("pi", 100),
        ax=ax2,
        legend=False,
    )
    ax2.axhline(OVERHEAD_BOUND, color="0.3", linestyle="--")
    ax2.set(
        xscale="log",
        yscale="log",
        xlabel="width W",
        ylabel="fraction of peak flops",
        title="Share of one core's peak float64 flop rate reached",
    )
    for ax in (ax1, ax2):
        ax.set_xticks(list(cfg.widths), [str(w) for w in cfg.widths])
        ax.minorticks_off()
    fig.subplots_adjust(right=0.78)
    d = facts["decision"]
    caption = (
        f"{d.label[:1].upper()}{d.label[1:]}: memory traffic accounts for "
        + ", ".join(
            f"{v.estimate:.0%} [{v.interval[0]:.0%}, {v.interval[1]:.0%}] at {k}"
            for k, v in facts["cells"].items()
        )
        + f" of the fastest step's time ({cfg.networks} networks per width, 95% bootstrap). Dotted: "
        f"the matmul's flops at {machine['peak_gflops']:.1f} GFLOP/s; dashed: reading W once "
        f"(median; load {machine['load']:.1f} on {machine['cores']} cores"
        f"{'' if machine['idle'] else ', busy: peak a lower bound'}). Bands: range over networks."
    )
    return figure_page(fig, caption)
