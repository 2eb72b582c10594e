"""The recurrent revival: do linear recurrences answer the 2019 claims against RNNs?

Linear recurrences and state-space models (LRU, S4D, minGRU, Mamba-style selective blocks)
brought recurrence back by answering two of the claims gradflow audits: a linear recurrence
is an associative scan, parallel in time with O(log n) depth, and a diagonal recurrence kept
inside the unit circle neither explodes nor vanishes by construction. Measured here, by the
protocol every study follows (claims quoted from shared/seeds/, decision rules stated before
the data, intervals over at least 10 independent networks per design cell):

1. Memory (source 002, "100s, not 1000s"): the share of networks of each architecture, at its
   standard initialisation, whose gradient at lag 1,000 (and 10,000 at full size) keeps at least
   1e-3 of its value at lag 1 (`gradflow.gradient_flow`, the shared warm start), and the fitted
   rate against the neutral band.
2. Parallelism (sources 000, 001, 003, "can't be parallelized"): the sequential depth of the
   forward pass against n, exact from the dependency graph (a loop: n; a scan: ceil(log2 n);
   attention: O(1)), with the scan's and the loop's CPU times measured beside it.
3. Parameter sensitivity (source 000, "shoot up to infinity", after Zucchet and Orvieto 2024): the
   exponent of E (dL/dtheta)^2 against 1 - |lambda|^2 as memory lengthens, with a bootstrap interval
   over seeds beside the closed form, for lambda with raw and with normalised input and for the
   LRU's exponential parametrisation nu_log.

4. Learning (source 002 again): the share of networks that learn `adding` and `copy_memory` (held-out
   loss below half the memoryless baseline, the remedies study's criterion) within a small budget of
   Adam steps, at a short T (the control) and a long one: the tanh RNN, LSTM and GRU (cell and linear
   readout) against the LRU, S4D, minGRU and Mamba in the blocks their papers train
   (`gradflow.residual_block`), with Wilson intervals over seeds. Quick: the LSTM, the LRU block and
   the minGRU block at T = 10 and 100, 10 seeds, 300 Adam steps (lr 0.02, batch 16, width 16): the
   budget at which the LSTM learns adding at T = 10 (120 networks, 1,270 CPU-s measured); --full:
   T = 20, 100, 300, 1000, 20 seeds, 1,000 steps, width 32, every architecture (the tanh RNN, GRU,
   S4D and Mamba blocks too).

    python -m gradflow.studies.recurrent_revival [--full] [--out reports] [--seed S] [--hidden N] [--steps T]
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

import gradflow as gf
from gradflow.report import figure_page, paper_theme, table_page, write_csv
from gradflow.studies import _protocol as protocol
from gradflow.studies._claim import Claim
from gradflow.studies._cli import check_fields, study_main
from gradflow.studies._finish import finish_study
from gradflow.studies._revival_claims import (
    ALSO_PARALLEL,
    CLAIMS,
    MEMORY,
    SENSITIVITY,
    memory_verdict,
    parallel_sentence,
    parallel_verdict,
    sensitivity_sentence,
    sensitivity_verdict,
    undecided,
)
from gradflow.studies._revival_learning import (
    LEARNERS,
    QUICK_LEARNERS,
    TASKS,
    learning_methods,
    learning_pages,
    learning_summary,
    learning_verdict,
    measure_learning,
)
from gradflow.studies._revival_measure import (
    ARCHITECTURES,
    KEEP,
    SCAN_TOL,
    decision_lags,
    fastest_forward,
    machine,
    measure_depth,
    measure_memory,
    measure_times,
    memory_summary,
    speedups,
)
from gradflow.studies._revival_pages import (
    cap,
    interval_text,
    memory_figure,
    parallel_facts,
    parallel_figure,
    sensitivity_figure,
    shares_text,
)
from gradflow.studies._revival_sensitivity import measure_sensitivity

STUDY = "recurrent_revival"
CLAIM = MEMORY  # the headline claim: the contents entry and the title page


@dataclass(frozen=True)
class Config:
    hidden: int = 16
    steps: int = 1000  # T of the gradient measurement: the longest lag measured
    batch: int = 1  # one sequence a network: the networks are the sample
    seeds: int = 10  # networks per architecture
    input_scale: float = 1.0
    lengths: tuple[int, ...] = (16, 64, 256, 1024)  # n of the depth and timing measurements
    repeats: int = 3  # timings: best of this many
    sensitivity_ks: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)  # |lambda| = 1 - 10^-k
    sensitivity_steps: int = 600  # T of the sensitivity measurement: six memory lengths at k = 2
    sensitivity_batch: int = 16  # sequences per seed: the mean over them is what the exponent is fitted to
    learners: tuple[str, ...] = QUICK_LEARNERS  # architectures trained in the learning part
    learn_tasks: tuple[str, ...] = tuple(TASKS)
    learn_lengths: tuple[int, ...] = (10, 100)  # T: the control, then the long range
    learn_seeds: int = 10  # networks per architecture, task and T
    learn_steps: int = 300  # Adam steps: the budget at which the LSTM learns adding at T = 10
    learn_batch: int = 16
    learn_lr: float = 0.02  # the remedies study's
    learn_width: int = 16  # hidden size of the cells, width of the blocks
    copy_symbols: int = 3  # symbols to copy in copy_memory
    executor: str = "process"
    seed: int = 0
    claim: ClassVar[Claim] = MEMORY

    def __post_init__(self):
        check_fields(
            self,
            choices={
                "executor": ("serial", "process", "dask"),
                "learners": tuple(LEARNERS),
                "learn_tasks": tuple(TASKS),
            },
            positive=(
                "lengths",
                "repeats",
                "sensitivity_ks",
                "sensitivity_steps",
                "sensitivity_batch",
                "learn_lengths",
                "learn_seeds",
                "learn_steps",
                "learn_batch",
                "learn_lr",
                "learn_width",
                "copy_symbols",
            ),
            non_negative=("input_scale",),
        )
        if min(self.learn_lengths) < 2:
            raise ValueError(f"learn_lengths = {self.learn_lengths!r}: every T must be at least 2 (adding's)")


QUICK = Config()
FULL = Config(
    hidden=64,
    steps=10_000,
    batch=2,
    seeds=20,
    lengths=(16, 64, 256, 1024, 4096, 16384),
    repeats=5,
    sensitivity_ks=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0),
    sensitivity_steps=5000,
    sensitivity_batch=8,
    learn_lengths=(20, 100, 300, 1000),
    learners=tuple(LEARNERS),
    learn_seeds=20,
    learn_steps=1000,
    learn_width=32,
)


def run(cfg: Config, out: str) -> dict:
    from tqdm.auto import tqdm

    lags = decision_lags(cfg.steps)
    bar = tqdm(total=5, desc=STUDY, unit="part", disable=not sys.stderr.isatty(), leave=False)
    networks, profiles = measure_memory(cfg)
    bar.update()
    depth = measure_depth(cfg)
    bar.update()
    host = machine()
    times = measure_times(cfg)
    bar.update()
    sensitivity, exponents = measure_sensitivity(cfg)
    bar.update()
    learning_start = time.perf_counter()
    learning_runs = measure_learning(cfg)
    learning_seconds = time.perf_counter() - learning_start  # wall: what make report waits
    bar.update()
    bar.close()
    memory, memory_cells = memory_verdict(networks, lags)
    summary = memory_summary(networks, lags, cfg.seed)
    parallel, parallel_cells = parallel_verdict(depth)
    explodes, sensitivity_cells = sensitivity_verdict(exponents)
    learning = learning_summary(learning_runs)
    learnt, learning_cells = learning_verdict(learning_runs)
    verdicts = {"memory": memory, "parallelism": parallel, "sensitivity": explodes, "learning": learnt}
    os.makedirs(out, exist_ok=True)
    for name, frame in (
        ("networks", networks),
        ("profiles", profiles),
        ("memory_summary", summary),
        ("depth", depth),
        ("times", times),
        ("speedups", speedups(times)),
        ("machine", pd.DataFrame([host])),
        ("sensitivity", sensitivity),
        ("exponents", exponents),
        ("learning_runs", learning_runs),
        ("learning", learning),
    ):
        write_csv(os.path.join(out, f"{STUDY}_{name}.csv"), frame)

    lag_text = " and ".join(f"{lag:,}" for lag in lags)
    memory_finding = "; ".join(
        f"{r.architecture}: {shares_text(r, lags)} keep it, rate "
        f"{interval_text(r.rate, r.rate_low, r.rate_high)} "
        f"({r.rate_regime})"
        for r in summary.itertuples()
    )
    best = fastest_forward(depth).set_index("architecture")
    per_arch = pd.DataFrame(
        {
            "architecture": summary.architecture,
            f"keeps at {lag_text} [95%]": [shares_text(r, lags, ".2f") for r in summary.itertuples()],
            "rate [95%], nats/step": [
                interval_text(r.rate, r.rate_low, r.rate_high) for r in summary.itertuples()
            ],
            "band": summary.rate_regime,
            f"depth at n = {max(cfg.lengths)}": [
                f"{best.loc[a, 'sequential_depth']} ({best.loc[a, 'method']})" for a in summary.architecture
            ],
            "n": summary.networks,
        }
    )
    sentences = {
        "memory": memory.sentence() + undecided(memory_cells),
        "parallelism": parallel_sentence(parallel, depth),
        "sensitivity": sensitivity_sentence(explodes, exponents) + undecided(sensitivity_cells),
        "learning": learnt.sentence() + undecided(learning_cells),
    }
    sentence = " ".join(f"{cap(part)}: {text}" for part, text in sentences.items())
    configuration = (
        f"hidden N = {cfg.hidden} (complex modes for LRU and S4D), {protocol.INPUTS} inputs of std "
        f"{cfg.input_scale:g}, T = {cfg.steps} after {protocol.WARMUP} warm-up steps, batch {cfg.batch}, "
        f"{cfg.seeds} networks (seeds from {cfg.seed}) per architecture; depth and CPU times at n = "
        f"{', '.join(map(str, cfg.lengths))}; gradflow {gf.__version__}."
    )
    claims_page = [
        (
            f"{cap(part)} ({c.source[:3]})",
            f"{c.text} Quote: \u201c{c.quote}\u201d Quantity: {c.quantity}. Rule: {c.rule}; "
            f"threshold {c.threshold:g} ({c.holds_when}).",
        )
        for part, c in CLAIMS.items()
    ]
    with paper_theme():
        pages = [
            table_page("The claims and their rules, set before the data", claims_page),
            table_page(
                "Do linear recurrences answer the claims against RNNs?",
                [
                    *((f"{cap(part)} ({CLAIMS[part].source[:3]})", text) for part, text in sentences.items()),
                    ("Configuration", configuration),
                ],
                per_arch,
                "Per architecture (95% intervals: Wilson, bootstrap)",
                col_widths=(0.2, 0.22, 0.25, 0.1, 0.17, 0.06),
            ),
            figure_page(
                memory_figure(profiles, summary, lags, cfg, MEMORY.threshold),
                (
                    f"{cap(memory.label)}. {memory_finding}. Dashed: ln {KEEP:g}, gradflow's memory drop. "
                    f"Each network: T = {cfg.steps}, {cfg.batch} sequence(s), norms relative to lag 1."
                ),
            ),
            figure_page(
                parallel_figure(depth, times, cfg, host),
                (
                    f"{cap(parallel.label)} (exact). {parallel_facts(depth, times, cfg)}. CPU seconds as "
                    f"measured on {host['cpu']} ({host['cores']} cores, load average {host['load']:.1f}), "
                    f"one BLAS thread; "
                    f"the scan's states equal the loop's to {SCAN_TOL:g} (relative)."
                ),
            ),
            figure_page(
                sensitivity_figure(sensitivity, exponents, SENSITIVITY.threshold),
                (
                    f"{cap(sensitivity_sentence(explodes, exponents))} The state gradients stay bounded: "
                    f"their largest ln-norm over lags is at most "
                    f"{sensitivity.state_gradient_log_norm.max():.2f} for every |lambda|. "
                    f"T = {cfg.sensitivity_steps}, batch {cfg.sensitivity_batch}, "
                    f"|lambda| = 1 - 10^-k for k = {', '.join(f'{k:g}' for k in cfg.sensitivity_ks)}, "
                    "phase pi/4."
                ),
            ),
            *learning_pages(learning, learnt, learning_cells, cfg, learning_seconds),
            table_page(
                "Methods",
                [
                    (
                        "Memory",
                        "gradflow.gradient_flow back-propagates a loss at the final state (a fixed random "
                        "unit direction) through the unrolled network in log space; the kept gradient at "
                        "lag L is ln ||dL/dh_(T-L)|| - ln ||dL/dh_(T-1)|| (batch mean of log norms; a "
                        "complex state's norm is that of its real and imaginary parts together). "
                        "Initialisations: "
                        + "; ".join(f"{a}: {s.init}" for a, s in ARCHITECTURES.items())
                        + ".",
                    ),
                    (
                        "Depth",
                        "gradflow.path_lengths(model, n).sequential_depth: Kahn rounds over the unrolled "
                        "dependency graph of gradflow.recurrent(cell) (a loop over time, n deep whatever "
                        "the cell), gradflow.recurrent(cell, scan=True) (the input map, then the ceil(log2 "
                        "n) rounds of the doubling scan gradflow.scan runs) and gradflow.self_attention. "
                        "Parallel Newton-type solvers for nonlinear recurrences are not measured.",
                    ),
                    (
                        "Times",
                        "time.process_time, best of the repeats, one BLAS thread: gradflow.unroll (one "
                        "step per position) against gradflow.scan (the cell's per-step affine map for all "
                        "positions at once, then the doubling scan). CPU seconds, not wall: the machine "
                        "was shared.",
                    ),
                    (
                        "Sensitivity",
                        "lambda: gradflow.sensitivity_scaling (one diagonal unit per |lambda|, loss "
                        "sum_i Re h_(T,i), gradflow.parameter_sensitivity's gradient, seeds 0.."
                        f"{cfg.seeds - 1}); LRU: gradflow.lru_from_arrays with mode i at |lambda_i| "
                        "reading input channel i (B = I), the same loss, d/d nu_log by "
                        f"gradflow.parameter_sensitivity, seeds from {cfg.seed}. Closed forms: "
                        "gradflow.measure.sensitivity_closed_form, and for nu_log "
                        "gamma^2 exp(2 nu) sum_j j^2 Re(lambda^j)^2 (checked against finite "
                        "differences in the tests). Exponents: gradflow.measure.scaling_exponents.",
                    ),
                    learning_methods(),
                    (
                        "Same claim elsewhere",
                        " ".join(f"{s} ({t}): \u201c{q}\u201d" for s, t, q in ALSO_PARALLEL),
                    ),
                    *protocol.conventions(),
                ],
            ),
        ]
        label = "; ".join(f"{part}: {v.label}" for part, v in verdicts.items())
        return finish_study(
            out,
            pages,
            study=STUDY,
            config=cfg,
            claim=MEMORY,
            decision=memory,
            label=label,
            title_verdict=(
                f"{label}. Share of all networks keeping their gradient at lag {lag_text}: "
                f"{memory.numbers}; per part and architecture on the summary page."
            ),
            title="gradflow: the recurrent revival, measured",
            keywords=["linear recurrence", "state-space model", "scan", "memory", "parallelism"],
            sentence=sentence,
            verdicts=verdicts,
            cells={
                "memory": memory_cells,
                "parallelism": parallel_cells,
                "sensitivity": sensitivity_cells,
                "learning": learning_cells,
            },
            networks=networks,
            summary=summary,
            depth=depth,
            times=times,
            machine=host,
            exponents=exponents,
            learning=learning,
            learning_seconds=learning_seconds,
        )


def main(argv=None) -> dict:
    return study_main(
        argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run, overrides=("hidden", "steps", "seeds")
    )


if __name__ == "__main__":
    main()
