"""The recurrent_revival study's four claims (memory, parallelism, parameter sensitivity, learning), with
their sources and decision rules, and how each is decided from the measurements: the verdict per
architecture or parametrisation, combined, and the sentence that states it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradflow.studies import _protocol as protocol
from gradflow.studies import remedies
from gradflow.studies._claim import Claim
from gradflow.studies._revival_measure import ARCHITECTURES, KEEP, depth_slopes, fastest_forward

DEPTH_SLOPE = 0.5  # log-log slope of depth against n: above, the depth grows like n
SOURCE_000 = (
    '"Why are Natural Language Processing (NLP) researchers trying to abandon RNNs and design new '
    'architectures that are not recurrent?" (Tony Petrov)'
)
SOURCE_001 = '"Disadvantages of RNN" (OpenGenus)'
SOURCE_002 = '"The fall of RNN / LSTM" (Eugenio Culurciello)'
SOURCE_003 = '"Recurrent Neural Networks" (GitBook notes)'


MEMORY = Claim(
    text="Recurrent networks remember sequences of hundreds of steps, not thousands: their gradient is "
    "gone after 1,000 steps.",
    source="002_6d33935d2b5896cb.txt",
    source_title=SOURCE_002,
    quote="but they can remember sequences of 100s, not 1000s or 10,000s or more",
    quantity=f"share of an architecture's networks (standard initialisation, shared warm start) whose "
    f"gradient norm at lag L keeps at least {KEEP:g} of its value at lag 1, "
    f"||dL/dh_(T-L)|| / ||dL/dh_(T-1)|| >= {KEEP:g}, for L = 1,000 (and 10,000 at full size)",
    rule="holds for an architecture (and lag) when the 95% Wilson interval of that share lies below the "
    "threshold (most of its networks lose the gradient), does not hold when it lies above (most keep "
    "it); architectures that disagree give 'holds only when'. A majority is what 10 networks per "
    "architecture can decide: 0 of 10 gives [0, 0.28], 10 of 10 [0.72, 1]",
    threshold=0.5,
    holds_when="below",
)

PARALLEL = Claim(
    text="RNNs cannot be parallelised over time: each step needs the previous step's state, so the "
    "forward pass takes n sequential steps.",
    source="000_f5c5d6523f02834e.txt",
    source_title=SOURCE_000,
    quote="Due to the way they\u2019re designed RNNs can\u2019t be parallelized.",
    quantity="log-log slope of the forward pass's sequential depth against the sequence length n "
    "(n = 16 ... 2^k), exact from the dependency graph (a loop: n; an associative scan: the "
    "input map and ceil(log2 n) combine rounds; attention: its layer count)",
    rule=f"holds for an architecture when the slope is above {DEPTH_SLOPE:g} (depth grows like n), does "
    f"not hold when below (depth grows like log n or not at all); exact numbers, so no interval "
    "and no sampling: architectures that disagree give 'holds only when'",
    threshold=DEPTH_SLOPE,
    holds_when="above",
)
ALSO_PARALLEL = (  # the same claim in the other sources, quoted on the Methods page
    (
        "001_c88bba1d8530f5f5.txt",
        SOURCE_001,
        "RNNs are not suitable for parallelizing or stacking up with other models",
    ),
    (
        "003_db39b3b7a81f09a2.txt",
        SOURCE_003,
        "their computation is sequential since each step in the sequence requires a hidden state computed "
        "from the previous step",
    ),
)
EXPLODES = -0.5  # exponent of the squared sensitivity against 1 - |lambda|^2: below, it blows up
SENSITIVITY = Claim(
    text="Recurrent gradients shoot up to infinity or vanish: even a recurrence built not to vanish (a "
    "diagonal linear one, |lambda| -> 1, its state gradients bounded) has a gradient with respect to "
    "its recurrent parameter that grows without bound as its memory lengthens (Zucchet and Orvieto "
    "2024).",
    source="000_f5c5d6523f02834e.txt",
    source_title=SOURCE_000,
    quote="their values tend to shoot up to infinity or completely vanish",
    quantity="log-log slope of E (dL/dtheta)^2 against 1 - |lambda|^2 for |lambda| = 1 - 10^-k "
    "(theta: lambda itself with raw or normalised input, or the LRU's nu_log with its gamma "
    "normalisation), mean over seeds, 95% bootstrap interval over seeds",
    rule=f"holds for a parametrisation when the interval lies below {EXPLODES:g} (the squared sensitivity "
    "grows at least like the square root of the memory length 1/(1 - |lambda|^2)), does not hold "
    "when above; parametrisations that disagree give 'holds only when'",
    threshold=EXPLODES,
    holds_when="below",
)
SUCCESS = remedies.QUICK.success  # learnt: held-out loss below this fraction of the memoryless baseline
LEARNING = Claim(
    text="Recurrent networks cannot learn what they saw hundreds of steps back: trained on a small "
    "budget, they fail on the adding and copy-memory problems once the dependency is long.",
    source=MEMORY.source,
    source_title=MEMORY.source_title,
    quote=MEMORY.quote,
    quantity=f"share of an architecture's networks (independent seeds, the same budget of Adam steps) "
    f"whose held-out loss ends below {SUCCESS:g} x the task's memoryless baseline, at the longest T, "
    "per task (adding: sequence length T; copy memory: delay T)",
    rule="holds for an (architecture, task) when the 95% Wilson interval of that share lies below the "
    "threshold (most networks fail to learn), does not hold when it lies above (most learn); cells "
    "that disagree give 'holds only when'. The shortest T is the control: where an architecture fails "
    "there too, the budget, not the range, limits it",
    threshold=0.5,
    holds_when="below",
)
CLAIMS = {"memory": MEMORY, "parallelism": PARALLEL, "sensitivity": SENSITIVITY, "learning": LEARNING}


# ---------------------------------------------------------------- 1. memory


def memory_verdict(networks: pd.DataFrame, lags: list[int]) -> tuple[protocol.Verdict, dict]:
    """The memory claim per architecture (and lag) from the share keeping its gradient, then combined."""
    per_cell = int(networks.groupby("architecture").size().min())
    cells = {}
    for arch, g in networks.groupby("architecture", sort=False):
        for lag in lags:
            name = f"architecture = {arch}" if len(lags) == 1 else f"{arch} at lag {lag}"
            cells[name] = protocol.decide_claim(
                MEMORY, protocol.success_interval(g[f"keeps_{lag}"]), per_cell=per_cell
            )
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
            (s, s),
            PARALLEL.threshold,
            holds_when="above",
            estimate=s,
            networks=points,
            quantity=PARALLEL.quantity,
            min_networks=1,
        )
    estimates = np.array([v.estimate for v in cells.values()])
    overall = protocol.decide(
        (estimates.min(), estimates.max()),
        PARALLEL.threshold,
        estimate=estimates.mean(),
        networks=points,
        quantity=PARALLEL.quantity,
        min_networks=1,
    )
    return protocol.combine(cells, overall), cells


# ---------------------------------------------------------------- 3. parameter sensitivity


def sensitivity_verdict(exponents: pd.DataFrame) -> tuple[protocol.Verdict, dict]:
    """The sensitivity claim per parametrisation from its fitted exponent's bootstrap interval, then
    combined; the pooled numbers are those of the raw-input lambda (the paper's unnormalised case)."""
    cells = {
        f"parametrisation = {r.parametrisation}": protocol.decide(
            (r.low, r.high),
            SENSITIVITY.threshold,
            holds_when=SENSITIVITY.holds_when,
            estimate=r.exponent,
            networks=int(r.seeds),
            quantity=SENSITIVITY.quantity,
        )
        for r in exponents.itertuples()
    }
    first = next(iter(cells.values()))
    if first.word == protocol.INCONCLUSIVE and first.condition:
        return first, cells
    return protocol.combine(cells, first), cells


def sensitivity_sentence(decision: protocol.Verdict, exponents: pd.DataFrame) -> str:
    return (
        f"{decision.label}: the squared sensitivity grows as (1 - |lambda|^2)^p with p (95% bootstrap "
        "interval over seeds; closed form at this T; limit T -> infinity): "
        + "; ".join(
            f"{r.parametrisation}: {r.exponent:+.2f} [{r.low:+.2f}, {r.high:+.2f}] (closed form "
            f"{r.closed_form_exponent:+.2f}; limit {r.asymptotic_exponent:+.0f})"
            for r in exponents.itertuples()
        )
        + f", against the threshold {SENSITIVITY.threshold:g} (holds below), "
        f"{int(exponents.seeds.min())} seeds each."
    )


def undecided(cells: dict[str, protocol.Verdict]) -> str:
    """A sentence naming the design cells whose interval touched the threshold, else "": a "holds only
    when" verdict names only the cells that hold."""
    names = [name for name, v in cells.items() if v.word == protocol.INCONCLUSIVE]
    return f" Undecided (interval touching the threshold): {', '.join(names)}." if names else ""


def parallel_sentence(decision: protocol.Verdict, depth: pd.DataFrame) -> str:
    """The parallelism verdict in words: exact depth slopes, grouped by how the forward pass runs."""
    slopes = depth_slopes(depth)
    best = fastest_forward(depth)
    groups: dict[str, list[str]] = {}
    for r in best.itertuples():
        key = f"{r.method} (slope {slopes[(r.architecture, r.method)]:.2f})"
        groups.setdefault(key, []).append(r.architecture)
    lengths = sorted(depth.n.unique())
    return (
        f"{decision.label}: the log-log slope of the shallowest forward pass's sequential depth "
        f"against n "
        f"(exact, from n = {lengths[0]} to {lengths[-1]}) is "
        + "; ".join(f"{method} for {', '.join(archs)}" for method, archs in groups.items())
        + f", against the threshold {PARALLEL.threshold:g} (holds above)."
    )
