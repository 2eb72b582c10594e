"""Do clipping, penalties, initialisation and gates really fix long-range learning?

Claim (seeds 001 and 002, and the folklore around them): vanilla RNNs fail to learn
long-range dependencies because their gradients vanish or explode; gradient clipping,
weight penalties, orthogonal / identity initialisation, a forget-gate bias, gates
(LSTM, GRU) and keeping the Lyapunov exponents near zero ("gradient flossing",
Engelken 2023) fix it, and convolutions (TCN) and attention avoid it. Measured here by
training each architecture, with and without each remedy, on the adding problem and
copy memory over a grid of sequence lengths T and several seeds: the success rate
(held-out loss below a stated fraction of the memoryless baseline) against T, where
each architecture's memory ends, how clipping changes the update norms, how the
penalties move the recurrent spectrum, and how stacking layers changes trainability
and the gradient's flow across layers. The verdict is computed from the success rates.

    python -m analyses.remedies [--full] [--out reports] [--seed S] [--hidden N] [--steps S] [--seeds K]

Run time: quick mode (116 runs of 100 steps, width 16) took 101 s on one core of a shared
2-core machine (load ~4). Full mode (width 32, 1500 steps, 5 seeds, T up to 200, remedies on
both tasks) is estimated from quick mode's measured cost per unrolled step at 10-20 hours on
one core; it has not been run.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from autograd import value_and_grad
from autograd.misc import flatten

import gradflow as gf
from analyses._cli import check_fields, study_main
from gradflow.report import figure_page, fixed_jitter, paper_theme, table_page, write_csv, write_pdf

STUDY = "remedies"
ARCHITECTURES = ("RNN", "LSTM", "GRU", "TCN", "self-attention")
# Remedies tried on the tanh RNN (the forget-gate bias on the LSTM), with their family.
REMEDIES = {
    "none": "none",
    "clip norm 1": "clipping",
    "clip value 0.1": "clipping",
    "L2 1e-3": "penalties",
    "L1 1e-4": "penalties",
    "orthogonal init": "initialisation",
    "identity init": "initialisation",
    "Lyapunov 0.1": "Lyapunov regulariser",
    "forget bias 3": "gates",
}
FAMILIES = ("clipping", "penalties", "initialisation", "gates")


@dataclass(frozen=True)
class Config:
    hidden: int = 16
    steps: int = 100
    batch: int = 16
    seeds: int = 2
    lr: float = 0.02
    adding_T: tuple[int, ...] = (4, 8, 16)
    copy_T: tuple[int, ...] = (2, 4, 8)
    copy_symbols: int = 1
    remedy_tasks: tuple[str, ...] = ("adding",)
    layers: tuple[int, ...] = (1, 2, 3)
    success: float = 0.5  # success: held-out loss below this fraction of the baseline
    seed: int = 0

    def __post_init__(self):
        check_fields(self, choices={"remedy_tasks": ("adding", "copy")}, positive=("lr",),
                     fractions=("success",))


QUICK = Config()
FULL = Config(hidden=32, steps=1500, batch=32, seeds=5, lr=0.01, adding_T=(10, 25, 50, 100, 200),
              copy_T=(5, 10, 20, 50, 100), copy_symbols=10, remedy_tasks=("adding", "copy"))


# ---------------------------------------------------------------- runs


def _task(name: str, T: int, cfg: Config, seed: int):
    if name == "adding":
        return gf.tasks.adding(T, seed=seed)
    return gf.tasks.copy_memory(T, symbols=cfg.copy_symbols, seed=seed)


def _model(arch: str, remedy: str, d: int, n_steps: int, cfg: Config, seed: int, layers: int = 1):
    n = cfg.hidden
    if arch == "RNN":
        init = {"orthogonal init": "orthogonal", "identity init": "identity"}.get(remedy, "gaussian")
        return gf.rnn(n, d, init=init, seed=seed, layers=layers)
    if arch == "LSTM":
        return gf.lstm(n, d, forget_bias=3.0 if remedy == "forget bias 3" else 1.0, seed=seed, layers=layers)
    if arch == "GRU":
        return gf.gru(n, d, seed=seed, layers=layers)
    if arch == "TCN":  # enough levels that the receptive field covers the whole sequence
        levels = max(1, math.ceil(math.log2((n_steps - 1) / 2 + 1)))
        return gf.tcn(n, kernel=2, levels=levels, inputs=d, seed=seed)
    return gf.self_attention(n, heads=2, layers=1, inputs=d, seed=seed)


def _options(remedy: str) -> dict:
    return {"clip norm 1": dict(clip=1.0), "clip value 0.1": dict(clip_value=0.1),
            "L2 1e-3": dict(penalty=("l2", 1e-3)), "L1 1e-4": dict(penalty=("l1", 1e-4)),
            "Lyapunov 0.1": dict(lyapunov=(0.1, 1))}.get(remedy, {})


def run_one(cfg: Config, task_name: str, T: int, arch: str, remedy: str, seed: int, layers: int = 1):
    """Train one configuration; returns its row and its per-step norms."""
    task = _task(task_name, T, cfg, seed)
    model = _model(arch, remedy, task.input_size, task.steps, cfg, seed, layers)
    run = gf.train(model, task, cfg.steps, lr=cfg.lr, batch=cfg.batch, seed=seed,
                   record_every=cfg.steps, **_options(remedy))
    row = dict(task=task_name, T=T, architecture=arch, remedy=remedy, family=REMEDIES[remedy],
               layers=layers, seed=seed, eval_loss=run.eval_loss, baseline=run.baseline,
               ratio=run.ratio, success=bool(run.ratio < cfg.success), diverged=run.diverged_at is not None,
               seconds=run.seconds)
    rec = run.records
    for col in rec.columns.drop(["step", "split", "loss"]):
        row[f"{col}_init"] = rec[col].iloc[0]
        row[f"{col}_final"] = rec[col].iloc[-1]
    norms = pd.DataFrame({"task": task_name, "T": T, "architecture": arch, "remedy": remedy, "seed": seed,
                          "step": np.arange(run.steps), "grad_norm": run.grad_norm,
                          "clipped_grad_norm": run.clipped_grad_norm, "update_norm": run.update_norm})
    return row, norms


def plan(cfg: Config) -> list[tuple[str, int, str, str, int]]:
    """Every (task, T, architecture, remedy, layers) trained, for each seed."""
    jobs = []
    grids = {"adding": cfg.adding_T, "copy": cfg.copy_T}
    for task_name, Ts in grids.items():
        for T in Ts:
            jobs += [(task_name, T, arch, "none", 1) for arch in ARCHITECTURES]
            if task_name in cfg.remedy_tasks:
                jobs += [(task_name, T, "RNN", r, 1) for r in REMEDIES if r not in ("none", "forget bias 3")]
                jobs.append((task_name, T, "LSTM", "forget bias 3", 1))
    depth_T = cfg.adding_T[len(cfg.adding_T) // 2]
    jobs += [("adding", depth_T, arch, "none", L) for arch in ("RNN", "LSTM") for L in cfg.layers if L > 1]
    return jobs


def measure(cfg: Config) -> dict[str, pd.DataFrame]:
    rows, norms = [], []
    for s in range(cfg.seeds):
        for task_name, T, arch, remedy, layers in plan(cfg):
            row, norm = run_one(cfg, task_name, T, arch, remedy, cfg.seed + s, layers)
            rows.append(row)
            if arch == "RNN" and remedy in ("none", "clip norm 1", "clip value 0.1") and layers == 1:
                norms.append(norm)
    return {"runs": pd.DataFrame(rows), "norms": pd.concat(norms, ignore_index=True)}


# ---------------------------------------------------------------- summaries


def _label(arch: str, remedy: str) -> str:
    return arch if remedy == "none" else f"{arch} + {remedy}"


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Success rate and median loss ratio per (task, configuration, T), one-layer models."""
    one = runs[runs.layers == 1].assign(configuration=lambda d: [_label(a, r) for a, r in
                                                                 zip(d.architecture, d.remedy, strict=True)])
    g = one.groupby(["task", "configuration", "architecture", "remedy", "family", "T"], sort=False)
    return g.agg(success_rate=("success", "mean"), median_ratio=("ratio", "median"),
                 diverged=("diverged", "sum"), runs=("seed", "count")).reset_index()


def memory_end(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (task, configuration): the largest T of the grid up to which the success rate stays >= 1/2
    (0 when it fails already at the shortest T)."""
    out = []
    for (task, conf), sub in summary.groupby(["task", "configuration"], sort=False):
        sub = sub.sort_values("T")
        ok = (sub.success_rate >= 0.5).to_numpy()
        first_fail = np.flatnonzero(~ok)
        reach = sub["T"].to_numpy()[first_fail[0] - 1] if first_fail.size and first_fail[0] > 0 else (
            0 if first_fail.size else int(sub["T"].max()))
        out.append(dict(task=task, configuration=conf, memory_end=int(reach),
                        success_overall=float(sub.success_rate.mean()),
                        success_longest=float(sub.success_rate.iloc[-1])))
    return pd.DataFrame(out)


def verdict(summary: pd.DataFrame, ends: pd.DataFrame, cfg: Config) -> tuple[str, str, dict]:
    """A remedy "fixes" long-range learning on a task when the remedied model succeeds in at least
    half its runs at the longest T of the grid while the plain RNN does not; it "helps" when its
    overall success rate beats the plain RNN's."""
    facts: dict = {"tasks": {}}
    fixing: set[str] = set()
    helping: set[str] = set()
    for task in sorted(set(summary.task)):
        e = ends[ends.task == task].set_index("configuration")
        rnn = e.loc["RNN"]
        t = {"rnn_longest": rnn.success_longest, "rnn_overall": rnn.success_overall,
             "rnn_end": int(rnn.memory_end), "longest_T": int(summary[summary.task == task]["T"].max()),
             "architectures": {a: dict(e.loc[a]) for a in ARCHITECTURES}, "remedies": {}}
        for conf, row in e.iterrows():
            remedy = conf.split(" + ", 1)[1] if " + " in conf else None
            family = REMEDIES.get(remedy) if remedy else ("gates" if conf in ("LSTM", "GRU") else None)
            if family is None:
                continue
            fixes = bool(row.success_longest >= 0.5 and rnn.success_longest < 0.5)
            helps = bool(row.success_overall > rnn.success_overall)
            t["remedies"][conf] = dict(family=family, fixes=fixes, helps=helps,
                                       longest=row.success_longest, overall=row.success_overall,
                                       end=int(row.memory_end))
            if fixes:
                fixing.add(family)
            if helps:
                helping.add(family)
        facts["tasks"][task] = t
    fixed = [f for f in FAMILIES if f in fixing]
    if len(fixed) == len(FAMILIES):
        word = "holds"
    elif fixed:
        word = f"holds only for {', '.join(fixed)}"
    elif any(f in helping for f in FAMILIES):
        word = "does not hold: remedies help at short range only"
    else:
        word = "does not hold"
    facts.update(fixed=fixed, helping=sorted(helping))
    parts = []
    for task, t in facts["tasks"].items():
        arch = ", ".join(f"{a} {t['architectures'][a]['success_longest']:.0%}" for a in ARCHITECTURES)
        best = max(t["remedies"].items(), key=lambda kv: (kv[1]["longest"], kv[1]["overall"]),
                   default=None)
        if best and best[1]["longest"] > 0:
            tail = f"; the best gated or remedied RNN is {best[0]} ({best[1]['longest']:.0%})"
        else:
            tail = "; no gated or remedied RNN succeeds there"
        parts.append(f"On {task} at the longest T = {t['longest_T']}, success rates are {arch}{tail}.")
    sentence = (f"{word}. " + " ".join(parts) + f" Success: held-out loss below {cfg.success:g} x the "
                f"memoryless baseline after {cfg.steps} steps.")
    return word, sentence, facts


def depth_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (architecture, layers): success rate and the per-layer gradient flow at init and end."""
    T = runs[runs.layers > 1]["T"].iloc[0] if (runs.layers > 1).any() else runs["T"].min()
    sub = runs[(runs.task == "adding") & (runs["T"] == T) & (runs.remedy == "none")
               & runs.architecture.isin(["RNN", "LSTM"])]
    rows = []
    for (arch, L), g in sub.groupby(["architecture", "layers"]):
        for layer in range(L):
            for when in ("init", "final"):
                rows.append(dict(architecture=arch, layers=L, T=T, layer=layer, when=when,
                                 success_rate=g.success.mean(),
                                 flow_rate=g[f"flow_rate_l{layer}_{when}"].median(),
                                 log_norm_at_T=g[f"flow_log_norm_T_l{layer}_{when}"].median()))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- checks


def self_checks(cfg: Config) -> pd.DataFrame:
    """Baselines, the training gradient and the Lyapunov regulariser, checked before reporting."""
    rows = []
    T = 10
    copy = gf.tasks.copy_memory(T, seed=cfg.seed)
    _, ys = copy.batch(4000, 1)
    freq = np.stack([np.bincount(y, minlength=10) / len(y) for y in ys])
    with np.errstate(divide="ignore"):
        logf = np.log(freq)
    emp = float(-np.mean(np.take_along_axis(logf[:, None, :].repeat(ys.shape[1], 1), ys[..., None], -1)))
    rows.append(dict(check=f"copy baseline (T = {T}) vs best memoryless predictor",
                     expected=f"{copy.baseline:.5f}", measured=f"{emp:.5f}",
                     passed=abs(emp / copy.baseline - 1) < 0.02))
    add = gf.tasks.adding(T, seed=cfg.seed)
    _, y = add.batch(20_000, 1)
    rows.append(dict(check="adding baseline 1/6 vs target variance (20,000)",
                     expected=f"{1 / 6:.5f}", measured=f"{y.var():.5f}",
                     passed=abs(y.var() - 1 / 6) < 0.01))
    model = gf.recurrent(gf.lstm(3, 2, seed=cfg.seed))
    obj, params = gf.training_objective(model, add, penalty=("l2", 0.1), seed=cfg.seed)
    flat, unflatten = flatten(params)
    xs, ys2 = add.batch(2, 2)
    _, g = value_and_grad(lambda v: obj(unflatten(v), xs, ys2))(flat)
    eps, worst = 1e-6, 0.0
    for i in range(0, flat.size, max(1, flat.size // 12)):
        e = np.zeros_like(flat)
        e[i] = eps
        fd = (obj(unflatten(flat + e), xs, ys2) - obj(unflatten(flat - e), xs, ys2)) / (2 * eps)
        worst = max(worst, abs(fd - g[i]) / max(abs(fd), 1e-8))
    rows.append(dict(check="training gradient vs central differences",
                     expected="rel. error < 1e-6", measured=f"{worst:.1e}", passed=worst < 1e-6))
    cell = gf.rnn(6, 2, gain=1.5, seed=cfg.seed)
    xs = gf.inputs.gaussian(20, 2, 2, seed=cfg.seed)
    lam = np.sort(np.asarray(gf.finite_time_exponents(cell, cell.params, xs, 2, seed=3)).T, axis=1)
    ref = np.sort(gf.lyapunov_spectrum(cell, xs, k=2, warmup=0, seed=3).per_sample, axis=1)
    err = float(np.max(np.abs(lam - ref)))
    rows.append(dict(check="Lyapunov term's exponents vs lyapunov_spectrum",
                     expected="equal", measured=f"max diff {err:.1e}", passed=err < 1e-10))
    checks = pd.DataFrame(rows)
    if not checks.passed.all():
        raise FloatingPointError(f"self-check failed: {checks[~checks.passed].check.tolist()}")
    return checks


# ---------------------------------------------------------------- report


def _success_plot(summary, configurations, title, ax):
    # A heatmap, not lines: with a few seeds the rates take a few values, and lines would hide
    # one another.
    sub = summary[summary.configuration.isin(configurations)]
    table = sub.pivot_table(index="configuration", columns="T", values="success_rate").reindex(
        [c for c in configurations if c in set(sub.configuration)])
    sns.heatmap(table, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="RdYlGn",
                cbar_kws={"label": "success rate"}, linewidths=0.5, ax=ax, annot_kws={"fontsize": 8})
    ax.set(xlabel="T (sequence length parameter)", ylabel="", title=title)
    ax.tick_params(axis="y", rotation=0)


def _pages(data, summary, ends, depth, facts, cfg):
    runs, norms = data["runs"], data["norms"]
    pages = []
    fig, axes = plt.subplots(2, 1, figsize=(8.27, 8.0))
    fig.subplots_adjust(left=0.25, right=0.96, top=0.95, bottom=0.14, hspace=0.35)
    for ax, task in zip(axes, ("adding", "copy"), strict=True):
        _success_plot(summary[summary.task == task], list(ARCHITECTURES),
                      f"{task}: success rate by architecture (no remedy)", ax)
    parts = []
    for task, t in facts["tasks"].items():
        parts.append(f"{task}: memory ends (largest T with success >= 50%) at " + ", ".join(
            f"{a} {t['architectures'][a]['memory_end']}" for a in ARCHITECTURES))
    pages.append(figure_page(fig, "; ".join(parts) + f". {cfg.seeds} seeds per point; 0 = fails already "
                             f"at the shortest T."))

    fig, axes = plt.subplots(len(cfg.remedy_tasks), 1, figsize=(8.27, 4.8 * len(cfg.remedy_tasks) + 1),
                             squeeze=False)
    fig.subplots_adjust(left=0.3, right=0.96, top=0.95, bottom=0.2, hspace=0.35)
    confs = ["RNN"] + [_label("RNN", r) for r in REMEDIES if r not in ("none", "forget bias 3")] + [
        "LSTM", "LSTM + forget bias 3"]
    for ax, task in zip(axes[:, 0], cfg.remedy_tasks, strict=True):
        _success_plot(summary[summary.task == task], confs, f"{task}: the tanh RNN with each remedy", ax)
    t = facts["tasks"][cfg.remedy_tasks[0]]
    caption = (f"{cfg.remedy_tasks[0]}: plain RNN succeeds in {t['rnn_overall']:.0%} of runs overall and "
               f"{t['rnn_longest']:.0%} at T = {t['longest_T']}; " + ", ".join(
                   f"{k.removeprefix('RNN + ')} {v['overall']:.0%}/{v['longest']:.0%}"
                   for k, v in t["remedies"].items()) + " (overall / at the longest T).")
    pages.append(figure_page(fig, caption))

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 9.0))
    fig.subplots_adjust(left=0.1, right=0.96, top=0.95, bottom=0.14, hspace=0.35)
    sns.ecdfplot(data=norms, x="grad_norm", hue="remedy", log_scale=True, ax=ax1)
    ax1.set(title="Gradient norm before clipping (all steps, all T, all seeds)", xlabel="||g||")
    sns.ecdfplot(data=norms, x="update_norm", hue="remedy", log_scale=True, ax=ax2)
    ax2.set(title="Norm of the applied Adam update", xlabel="||update||")
    med = norms.groupby("remedy")[["grad_norm", "clipped_grad_norm", "update_norm"]].median()
    clipped = norms[norms.remedy == "clip norm 1"]
    frac = float((clipped.grad_norm > 1.0).mean()) if len(clipped) else np.nan
    caption = ("Median gradient norm / applied gradient / update: " + "; ".join(
        f"{r} {v.grad_norm:.3g} / {v.clipped_grad_norm:.3g} / {v.update_norm:.3g}" for r, v in med.iterrows())
        + f". Clipping at norm 1 acted on {frac:.0%} of steps; Adam rescales each coordinate, so the "
          "update norms move far less than the gradient norms.")
    pages.append(figure_page(fig, caption))

    fig, axes = plt.subplots(1, 3, figsize=(8.27, 5.0))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.42, wspace=0.45)
    spec = runs[(runs.architecture == "RNN") & (runs.layers == 1)
                & runs.remedy.isin(["none", "L2 1e-3", "L1 1e-4", "Lyapunov 0.1", "orthogonal init"])]
    long = spec.melt(id_vars=["remedy"], value_vars=["spectral_radius_final", "top_singular_value_final",
                                                     "lyapunov_top_final"])
    for ax, (col, label) in zip(axes, (("spectral_radius_final", "spectral radius of W_hh"),
                                       ("top_singular_value_final", "top singular value of W_hh"),
                                       ("lyapunov_top_final", "top Lyapunov exponent")), strict=True):
        with fixed_jitter(cfg.seed):
            sns.stripplot(data=long[long.variable == col], x="remedy", y="value", ax=ax, color="0.3", size=4)
        ax.set(title=label, xlabel="", ylabel="after training")
        ax.tick_params(axis="x", rotation=70, labelsize=7)
    cols = ["spectral_radius_init", "spectral_radius_final", "lyapunov_top_final"]
    meds = spec.groupby("remedy")[cols].median()
    caption = ("Median spectral radius of the RNN's W_hh before -> after training, and top Lyapunov exponent "
               "after: " + "; ".join(f"{r} {v.spectral_radius_init:.3f} -> {v.spectral_radius_final:.3f}, "
                                     f"lambda_1 {v.lyapunov_top_final:+.3f}"
                                     for r, v in meds.iterrows()) + ".")
    pages.append(figure_page(fig, caption))

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 9.0))
    fig.subplots_adjust(left=0.1, right=0.96, top=0.95, bottom=0.16, hspace=0.35)
    succ = depth.drop_duplicates(["architecture", "layers"])
    sns.barplot(data=succ, x="layers", y="success_rate", hue="architecture", ax=ax1)
    ax1.set(ylim=(0, 1.05), title=f"Trainability against depth (adding, T = {int(depth['T'].iloc[0])})",
            ylabel="success rate")
    d = depth.assign(model=lambda x: x.architecture + " L=" + x.layers.astype(str) + " (" + x.when + ")")
    sns.lineplot(data=d, x="layer", y="flow_rate", hue="model", marker="o", ax=ax2)
    ax2.set(xlabel="layer (0 = bottom)", ylabel="gradient rate (nats/step)",
            title="Gradient flow through time within each layer, at init and after training")
    ax2.legend(fontsize="x-small")
    ax2.set_xticks(sorted(set(depth.layer)))
    rates = depth[depth.when == "init"].groupby(["architecture", "layers"]).apply(
        lambda g: ", ".join(f"{v:+.3f}" for v in g.sort_values("layer").flow_rate), include_groups=False)
    by_depth = succ[["architecture", "layers", "success_rate"]].itertuples(index=False)
    caption = ("Success rate by depth: " + "; ".join(f"{a} L={L} {s:.0%}" for a, L, s in by_depth)
               + ". Per-layer rates at init (bottom to top): " + "; ".join(
                   f"{a} L={L}: {r}" for (a, L), r in rates.items()) + ".")
    pages.append(figure_page(fig, caption))
    return pages


def _table(summary: pd.DataFrame, ends: pd.DataFrame) -> pd.DataFrame:
    wide = summary.pivot_table(index=["task", "configuration"], columns="T", values="success_rate",
                               sort=False)
    wide = wide[sorted(wide.columns)]
    rows = []
    for (task, conf), vals in wide.iterrows():
        end = ends[(ends.task == task) & (ends.configuration == conf)].memory_end.iloc[0]
        rows.append({"task": task, "configuration": conf,
                     "success by T": "  ".join(f"{T}:{v:.2f}" for T, v in vals.dropna().items()),
                     "memory end (T)": str(end)})
    return pd.DataFrame(rows)


def run(cfg: Config, out: str) -> dict:
    start = time.perf_counter()
    checks = self_checks(cfg)
    data = measure(cfg)
    summary = summarise(data["runs"])
    ends = memory_end(summary)
    depth = depth_table(data["runs"])
    word, sentence, facts = verdict(summary, ends, cfg)
    os.makedirs(out, exist_ok=True)
    for name, frame in (("runs", data["runs"]), ("norms", data["norms"]), ("success", summary),
                        ("memory_end", ends), ("depth", depth), ("checks", checks)):
        write_csv(os.path.join(out, f"{STUDY}_{name}.csv"), frame)
    table = _table(summary, ends)
    seconds = time.perf_counter() - start
    with paper_theme():
        pages = [table_page(
            "Do the remedies fix long-range learning?",
            [("Claim", "Vanilla RNNs fail on long-range dependencies because gradients vanish or explode; "
                       "clipping, weight penalties, orthogonal/identity initialisation, a forget-gate bias, "
                       "gates and a Lyapunov regulariser fix it; convolutions and attention avoid it."),
             ("Verdict", sentence),
             ("Configuration", f"hidden/width {cfg.hidden}, {cfg.steps} Adam steps (lr {cfg.lr:g}), batch "
                               f"{cfg.batch}, {cfg.seeds} seeds from {cfg.seed}; adding T in "
                               f"{list(cfg.adding_T)}, copy memory ({cfg.copy_symbols} symbols) T in "
                               f"{list(cfg.copy_T)}; success = held-out loss < {cfg.success:g} x baseline; "
                               f"{len(data['runs'])} training runs (wall times: remedies_runs.csv); "
                               f"gradflow {gf.__version__}.")],
            table, "Success rate by T; where memory ends (remedies_success.csv)",
            col_widths=(0.1, 0.3, 0.45, 0.15)),
            *_pages(data, summary, ends, depth, facts, cfg),
            table_page("Methods", [
                ("Training", "gradflow.train: autograd value_and_grad of the task loss through the unrolled "
                             "model (the engine's cell steps, SequenceModel.apply) plus a linear readout, "
                             "Adam (0.9, 0.999), one batch per step; held-out loss on 256 fresh sequences."),
                ("Tasks", "Adding (two U(0,1) values marked in the first and second half; baseline 1/6, the "
                          "variance of their sum). Copy memory (Bai et al.'s generator; baseline "
                          "s ln 8 / (T + 2s) for s symbols). Each seed fixes weights, readout and batches."),
                ("Remedies", "Clipping by global norm 1 and by value 0.1; L2 (1e-3) and L1 (1e-4) on W_hh; "
                             "orthogonal and identity W_hh; LSTM forget bias 3 instead of 1; Lyapunov "
                             "regulariser 0.1 x lambda_1^2 (finite-time exponent by QR of J_t Q along the "
                             "batch, differentiated by autograd). TCN: kernel 2, levels covering the "
                             "sequence; "
                             "self-attention: 1 layer, 2 heads, sinusoidal positions, causal."),
                ("Instruments", "At the start and end of each run: spectral radius and top singular value of "
                                "W_hh (layer 0), lambda_1 (gf.lyapunov_spectrum, k = 1) and per-layer "
                                "gradient "
                                "rates (gf.gradient_flow) on a 4-sequence probe batch."),
                ("Checked", "Before training, the checks below; the test suite checks gradients against "
                            "finite differences, clipping bounds and penalties exactly.")],
                checks.drop(columns="passed"), "Self-checks run with this report",
                col_widths=(0.56, 0.16, 0.28)),
        ]
        pdf = os.path.join(out, f"{STUDY}.pdf")
        write_pdf(pdf, pages, study=STUDY, config=cfg, title="gradflow: do remedies fix long-range learning?",
                  subject=f"Verdict: {word}", keywords=["training", "clipping", "LSTM", "copy memory",
                                                        "adding problem", "Lyapunov"])
    return {"verdict": word, "sentence": sentence, "facts": facts, "summary": summary, "ends": ends,
            "table": table, "pdf": pdf, "seconds": seconds}


def main(argv=None) -> dict:
    return study_main(argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run,
                      overrides=("hidden", "steps", "seeds"))


if __name__ == "__main__":
    main()
