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

    python -m gradflow.studies.recurrent_revival [--full] [--out reports] [--seed S] [--hidden N] [--steps T]
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.report import figure_page, paper_theme, table_page, write_csv, write_pdf
from gradflow.studies import _protocol as protocol
from gradflow.studies._cli import check_fields, study_main
from gradflow.studies._revival_measure import (
    ARCHITECTURES,
    KEEP,
    SCAN_TOL,
    decision_lags,
    depth_slopes,
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
    shares_text,
)

STUDY = "recurrent_revival"
DEPTH_SLOPE = 0.5  # log-log slope of depth against n: above, the depth grows like n
SOURCE_000 = ("\"Why are Natural Language Processing (NLP) researchers trying to abandon RNNs and design new "
              "architectures that are not recurrent?\" (Tony Petrov)")
SOURCE_001 = "\"Disadvantages of RNN\" (OpenGenus)"
SOURCE_002 = "\"The fall of RNN / LSTM\" (Eugenio Culurciello)"
SOURCE_003 = "\"Recurrent Neural Networks\" (GitBook notes)"


MEMORY = protocol.Claim(
    text="Recurrent networks remember sequences of hundreds of steps, not thousands: their gradient is "
         "gone after 1,000 steps.",
    source="002_6d33935d2b5896cb.txt", source_title=SOURCE_002,
    quote="but they can remember sequences of 100s, not 1000s or 10,000s or more",
    quantity=f"share of an architecture's networks (standard initialisation, shared warm start) whose "
             f"gradient norm at lag L keeps at least {KEEP:g} of its value at lag 1, "
             f"||dL/dh_(T-L)|| / ||dL/dh_(T-1)|| >= {KEEP:g}, for L = 1,000 (and 10,000 at full size)",
    rule="holds for an architecture (and lag) when the 95% Wilson interval of that share lies below the "
         "threshold (most of its networks lose the gradient), does not hold when it lies above (most keep "
         "it); architectures that disagree give 'holds only when'. A majority is what 10 networks per "
         "architecture can decide: 0 of 10 gives [0, 0.28], 10 of 10 [0.72, 1]",
    threshold=0.5, holds_when="below")

PARALLEL = protocol.Claim(
    text="RNNs cannot be parallelised over time: each step needs the previous step's state, so the "
         "forward pass takes n sequential steps.",
    source="000_f5c5d6523f02834e.txt", source_title=SOURCE_000,
    quote="Due to the way they\u2019re designed RNNs can\u2019t be parallelized.",
    quantity="log-log slope of the forward pass's sequential depth against the sequence length n "
             "(n = 16 ... 2^k), exact from the dependency graph (a loop: n; an associative scan: "
             "ceil(log2 n) combine rounds; attention: its layer count)",
    rule=f"holds for an architecture when the slope is above {DEPTH_SLOPE:g} (depth grows like n), does "
         f"not hold when below (depth grows like log n or not at all); exact numbers, so no interval "
         "and no sampling: architectures that disagree give 'holds only when'",
    threshold=DEPTH_SLOPE, holds_when="above")
ALSO_PARALLEL = (  # the same claim in the other sources, quoted on the Methods page
    ("001_c88bba1d8530f5f5.txt", SOURCE_001,
     "RNNs are not suitable for parallelizing or stacking up with other models"),
    ("003_db39b3b7a81f09a2.txt", SOURCE_003,
     "their computation is sequential since each step in the sequence requires a hidden state computed "
     "from the previous step"),
)
CLAIMS = {"memory": MEMORY, "parallelism": PARALLEL}
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
    executor: str = "process"
    seed: int = 0
    claim: ClassVar[protocol.Claim] = MEMORY

    def __post_init__(self):
        check_fields(self, choices={"executor": ("serial", "process", "dask")},
                     positive=("lengths", "repeats"), non_negative=("input_scale",))


QUICK = Config()
FULL = Config(hidden=64, steps=10_000, batch=2, seeds=20, lengths=(16, 64, 256, 1024, 4096, 16384), repeats=5)


# ---------------------------------------------------------------- 1. memory


def memory_verdict(networks: pd.DataFrame, lags: list[int]) -> tuple[protocol.Verdict, dict]:
    """The memory claim per architecture (and lag) from the share keeping its gradient, then combined."""
    per_cell = int(networks.groupby("architecture").size().min())
    cells = {}
    for arch, g in networks.groupby("architecture", sort=False):
        for lag in lags:
            name = f"architecture = {arch}" if len(lags) == 1 else f"{arch} at lag {lag}"
            cells[name] = protocol.decide_claim(MEMORY, protocol.success_interval(g[f"keeps_{lag}"]),
                                                per_cell=per_cell)
    pooled = np.concatenate([networks[f"keeps_{lag}"].to_numpy(bool) for lag in lags])
    overall = protocol.decide_claim(MEMORY, protocol.success_interval(pooled), per_cell=per_cell)
    if overall.word == protocol.INCONCLUSIVE and overall.condition:
        return overall, cells
    return protocol.combine(cells, overall), cells


# ---------------------------------------------------------------- 2. parallelism


def parallel_verdict(depth: pd.DataFrame) -> tuple[protocol.Verdict, dict]:
    """The parallelism claim per recurrent architecture from the exact depth slope of its shallowest
    forward pass, then combined.

    The slope is a property of the graph, not a sample: its "interval" is the point itself and
    ``min_networks`` is 1 (the protocol's n >= 10 guards sampled quantities).
    """
    slopes = depth_slopes(depth)
    points = depth.n.nunique()
    cells = {}
    for row in fastest_forward(depth).itertuples():
        if row.architecture not in ARCHITECTURES:
            continue  # attention is shown beside the recurrences, not decided
        s = slopes[(row.architecture, row.method)]
        cells[f"architecture = {row.architecture}"] = protocol.decide(
            (s, s), PARALLEL.threshold, holds_when="above", estimate=s, networks=points,
            quantity=PARALLEL.quantity, min_networks=1)
    estimates = np.array([v.estimate for v in cells.values()])
    overall = protocol.decide((estimates.min(), estimates.max()), PARALLEL.threshold,
                              estimate=estimates.mean(), networks=points, quantity=PARALLEL.quantity,
                              min_networks=1)
    return protocol.combine(cells, overall), cells


# ---------------------------------------------------------------- pages


def parallel_sentence(decision: protocol.Verdict, depth: pd.DataFrame) -> str:
    """The parallelism verdict in words: exact depth slopes, grouped by how the forward pass runs."""
    slopes = depth_slopes(depth)
    best = fastest_forward(depth)
    groups: dict[str, list[str]] = {}
    for r in best.itertuples():
        key = f"{r.method} (slope {slopes[(r.architecture, r.method)]:.2f})"
        groups.setdefault(key, []).append(r.architecture)
    lengths = sorted(depth.n.unique())
    return (f"{decision.label}: the log-log slope of the shallowest forward pass's sequential depth "
            f"against n "
            f"(exact, from n = {lengths[0]} to {lengths[-1]}) is " + "; ".join(
                f"{method} for {', '.join(archs)}" for method, archs in groups.items())
            + f", against the threshold {PARALLEL.threshold:g} (holds above).")


def run(cfg: Config, out: str) -> dict:
    from tqdm.auto import tqdm

    lags = decision_lags(cfg.steps)
    bar = tqdm(total=3, desc=STUDY, unit="part", disable=not sys.stderr.isatty(), leave=False)
    networks, profiles = measure_memory(cfg)
    bar.update()
    depth = measure_depth(cfg)
    bar.update()
    host = machine()
    times = measure_times(cfg)
    bar.update()
    bar.close()
    memory, memory_cells = memory_verdict(networks, lags)
    summary = memory_summary(networks, lags, cfg.seed)
    parallel, parallel_cells = parallel_verdict(depth)
    verdicts = {"memory": memory, "parallelism": parallel}
    os.makedirs(out, exist_ok=True)
    for name, frame in (("networks", networks), ("profiles", profiles), ("memory_summary", summary),
                        ("depth", depth), ("times", times), ("speedups", speedups(times)),
                        ("machine", pd.DataFrame([host]))):
        write_csv(os.path.join(out, f"{STUDY}_{name}.csv"), frame)

    lag_text = " and ".join(f"{lag:,}" for lag in lags)
    memory_finding = "; ".join(
        f"{r.architecture}: {shares_text(r, lags)} keep it, rate "
        f"{interval_text(r.rate, r.rate_low, r.rate_high)} "
        f"({r.rate_regime})" for r in summary.itertuples())
    best = fastest_forward(depth).set_index("architecture")
    per_arch = pd.DataFrame({
        "architecture": summary.architecture,
        f"keeps at {lag_text} [95%]": [shares_text(r, lags, ".2f") for r in summary.itertuples()],
        "rate [95%], nats/step": [interval_text(r.rate, r.rate_low, r.rate_high)
                                  for r in summary.itertuples()],
        "band": summary.rate_regime,
        f"depth at n = {max(cfg.lengths)}": [f"{best.loc[a, 'sequential_depth']} ({best.loc[a, 'method']})"
                                             for a in summary.architecture],
        "n": summary.networks})
    sentences = {"memory": memory.sentence(), "parallelism": parallel_sentence(parallel, depth)}
    sentence = " ".join(f"{cap(part)}: {text}" for part, text in sentences.items())
    configuration = (
        f"hidden N = {cfg.hidden} (complex modes for LRU and S4D), {protocol.INPUTS} inputs of std "
        f"{cfg.input_scale:g}, T = {cfg.steps} after {protocol.WARMUP} warm-up steps, batch {cfg.batch}, "
        f"{cfg.seeds} networks (seeds from {cfg.seed}) per architecture; depth and CPU times at n = "
        f"{', '.join(map(str, cfg.lengths))}; gradflow {gf.__version__}.")
    claims_page = [(f"{cap(part)} ({c.source[:3]})",
                    f"{c.text} Quote: \u201c{c.quote}\u201d Quantity: {c.quantity}. Rule: {c.rule}; "
                    f"threshold {c.threshold:g} ({c.holds_when}).") for part, c in CLAIMS.items()]
    with paper_theme():
        pages = [
            table_page("The claims and their rules, set before the data", claims_page),
            table_page("Do linear recurrences answer the claims against RNNs?", [
                *((f"{cap(part)} ({CLAIMS[part].source[:3]})", text) for part, text in sentences.items()),
                ("Configuration", configuration)],
                per_arch, "Per architecture (95% intervals: Wilson, bootstrap)",
                col_widths=(0.2, 0.22, 0.25, 0.1, 0.17, 0.06)),
            figure_page(memory_figure(profiles, summary, lags, cfg, MEMORY.threshold), (
                f"{cap(memory.label)}. {memory_finding}. Dashed: ln {KEEP:g}, gradflow's memory drop. Each "
                f"network: T = {cfg.steps}, {cfg.batch} sequence(s), norms relative to lag 1.")),
            figure_page(parallel_figure(depth, times, cfg, host), (
                f"{cap(parallel.label)} (exact). {parallel_facts(depth, times, cfg)}. CPU seconds as "
                f"measured on {host['cpu']} ({host['cores']} cores, load average {host['load']:.1f}), one "
                f"BLAS thread; "
                f"the scan's states equal the loop's to {SCAN_TOL:g} (relative).")),
            table_page("Methods", [
                ("Memory", "gradflow.gradient_flow back-propagates a loss at the final state (a fixed random "
                           "unit direction) through the unrolled network in log space; the kept gradient at "
                           "lag L is ln ||dL/dh_(T-L)|| - ln ||dL/dh_(T-1)|| (batch mean of log norms; a "
                           "complex state's norm is that of its real and imaginary parts together). "
                           "Initialisations: " + "; ".join(f"{a}: {s.init}" for a, s in ARCHITECTURES.items())
                           + "."),
                ("Depth", "Loops and attention: gradflow.path_lengths(model, n).sequential_depth, "
                          "Kahn rounds over the unrolled dependency graph (a loop over time is n deep "
                          "whatever the cell). Scans: gradflow.scan_depth(n) = ceil(log2 n) rounds of the "
                          "doubling scan that gradflow.scan runs. Parallel Newton-type solvers for "
                          "nonlinear recurrences are not measured."),
                ("Times", "time.process_time, best of the repeats, one BLAS thread: gradflow.unroll (one "
                          "step per position) against gradflow.scan (the cell's per-step affine map for all "
                          "positions at once, then the doubling scan). CPU seconds, not wall: the machine "
                          "was shared."),
                ("Same claim elsewhere",
                 " ".join(f"{s} ({t}): \u201c{q}\u201d" for s, t, q in ALSO_PARALLEL)),
                *protocol.conventions()]),
        ]
        pdf = os.path.join(out, f"{STUDY}.pdf")
        label = "; ".join(f"{part}: {v.label}" for part, v in verdicts.items())
        title_verdict = (f"{label}. Share of all networks keeping their gradient at lag {lag_text}: "
                         f"{memory.numbers}; per part and architecture on the summary page.")
        write_pdf(pdf, pages, study=STUDY, config=cfg, claim=MEMORY.facts(), verdict=title_verdict,
                  title="gradflow: the recurrent revival, measured",
                  subject=f"Verdict: {label}", keywords=["linear recurrence", "state-space model", "scan",
                                                          "memory", "parallelism"])
    return {"verdict": label, "decision": memory, "claim": MEMORY, "verdicts": verdicts, "sentence": sentence,
            "cells": {"memory": memory_cells, "parallelism": parallel_cells}, "networks": networks,
            "summary": summary, "depth": depth, "times": times, "machine": host, "pdf": pdf}


def main(argv=None) -> dict:
    return study_main(argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run,
                      overrides=("hidden", "steps", "seeds"))


if __name__ == "__main__":
    main()
