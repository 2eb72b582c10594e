"""The protocol every study follows: a claim from a source file, intervals over networks, one verdict.

A study states its `Claim` (in ``_claim``: the folklore sentence, the source file in
shared/seeds/ it comes from and an exact quote, the quantity measured, the decision rule and
its threshold) before any result, measures the quantity on many independent networks (one
random seed each), puts a percentile `bootstrap_interval` (or a `wilson_interval` for a
success rate) around it, and lets `decide` turn interval and threshold into a `Verdict` in
the fixed vocabulary `WORDS`. Design cells that disagree are joined by `combine` into "holds
only when <the cells where it holds>".

The shared conventions live here too, so that no two studies measure differently:
`NEUTRAL_BAND` (gradflow's ``tol``), `WARMUP` and `INITIAL_STD` (`warm_start`: how every
network's initial state is drawn), `fit_from` (the rate's fit window) and `RATE_UNIT`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.stats

import gradflow as gf
from gradflow.studies._claim import SIDES

if TYPE_CHECKING:
    from gradflow.studies._claim import Claim

MIN_NETWORKS = 10  # no verdict from fewer independent networks per design cell
LEVEL = 0.95  # every interval is a 95% interval
RESAMPLES = 2000  # bootstrap resamples
NEUTRAL_BAND = 0.01  # nats/step: |rate| <= this is neutral, never vanishing or exploding (gradflow's tol)
RATE_UNIT = "nats/step"
INPUTS = 8  # input dimension of every study's vanilla networks
WARMUP = 100  # steps run from a random state, driven by the study's inputs, before anything is measured
INITIAL_STD = 0.5  # std of every state unit before the warm-up
INITIAL_STATE = (
    f"each network starts from a state drawn N(0, {INITIAL_STD:g}^2) per unit and is run "
    f"{WARMUP} warm-up steps on its own input process (zero input for input-free "
    f"networks); the state after the warm-up is where every measurement starts"
)
FIT_WINDOW = "lags T/10..T"  # gradflow's default fit of the rate, used by every study

HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
HOLDS_ONLY_WHEN = "holds only when"  # always followed by the measured condition
WORDS = (HOLDS, DOES_NOT_HOLD, HOLDS_ONLY_WHEN, INCONCLUSIVE)


@dataclass(frozen=True)
class Interval:
    """An estimate with its ``level`` interval ``[low, high]`` from ``n`` networks."""

    estimate: float
    low: float
    high: float
    n: int
    level: float = LEVEL
    method: str = "percentile bootstrap"

    def __str__(self) -> str:
        return f"{_num(self.estimate)} [{_num(self.low)}, {_num(self.high)}]"


def _num(v: float) -> str:
    return "inf" if v == np.inf else "-inf" if v == -np.inf else f"{v:.3g}"


def _check_level(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level = {level!r} must be in (0, 1)")
    return float(level)


def bootstrap_interval(
    values, statistic: Callable = np.mean, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over independent networks.

    ``values`` holds one number per network (infinite values are allowed, e.g. a memory
    horizon beyond T, NaN is not); ``statistic(array, axis=-1)`` must reduce the last axis
    (``np.mean``, ``np.median``). The interval's ends are order statistics of the
    resampled statistic, so they stay finite or infinite as the data are, never NaN, and
    the same ``seed`` gives the same interval.

    Examples
    --------
    >>> import numpy as np
    >>> iv = bootstrap_interval(np.arange(20.0), seed=0)
    >>> iv.estimate, iv.low < 9.5 < iv.high, iv.n
    (9.5, True, 20)
    """
    values = np.asarray(values, dtype=float).ravel()
    level = _check_level(level)
    if values.size == 0:
        raise ValueError("values must hold at least one network's number; got none")
    if np.isnan(values).any():
        raise ValueError(f"values must not be NaN; got {int(np.isnan(values).sum())} NaN of {values.size}")
    if not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples = {resamples!r} must be a positive integer")
    estimate = float(statistic(values, axis=-1))
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, values.size, size=(resamples, values.size))]
    with np.errstate(invalid="ignore"):  # the mean of +inf and -inf is NaN; sorted last
        stats = np.sort(np.asarray(statistic(draws, axis=-1), dtype=float))
    alpha = (1.0 - level) / 2
    low = stats[max(0, math.floor(alpha * resamples))]
    high = stats[min(resamples - 1, math.ceil((1 - alpha) * resamples) - 1)]
    return Interval(estimate, float(low), float(high), int(values.size), level)


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> Interval:
    """Wilson score interval of a success rate ``successes / n`` (better than the bootstrap at 0 or 1).

    Examples
    --------
    >>> iv = wilson_interval(10, 10)
    >>> iv.estimate, round(iv.low, 3), iv.high
    (1.0, 0.722, 1.0)
    """
    level = _check_level(level)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n = {n!r} must be a positive integer")
    if not isinstance(successes, (int, np.integer)) or not 0 <= successes <= n:
        raise ValueError(f"successes = {successes!r} must be an integer in [0, n = {n}]")
    z = float(scipy.stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, not 1 - 1e-16
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high, int(n), level, "Wilson score")


def success_interval(flags) -> Interval:
    """`wilson_interval` of an array of booleans, one per network."""
    flags = np.asarray(flags, dtype=bool).ravel()
    if flags.size == 0:
        raise ValueError("flags must hold at least one network; got none")
    return wilson_interval(int(flags.sum()), int(flags.size))


@dataclass(frozen=True)
class Verdict:
    """A decision in the fixed vocabulary and the numbers behind it.

    ``word`` is one of `WORDS`; ``condition`` says when the claim holds (for "holds only
    when") or why it is undecided (e.g. "n < 10"). ``cells`` holds the per-cell verdicts a
    combined verdict was made from.
    """

    word: str
    estimate: float
    interval: tuple[float, float]
    networks: int
    threshold: float
    quantity: str = ""
    holds_when: str = "above"
    condition: str = ""
    cells: tuple[tuple[str, Verdict], ...] = field(default=(), repr=False)

    def __post_init__(self):
        if self.word not in WORDS:
            raise ValueError(f"word = {self.word!r} is not one of {', '.join(map(repr, WORDS))}")
        if self.word == HOLDS_ONLY_WHEN and not self.condition:
            raise ValueError("a 'holds only when' verdict needs its condition")

    @property
    def label(self) -> str:
        """The verdict as a reader quotes it: "holds only when N >= 64", "inconclusive (n < 10)"."""
        if self.word == HOLDS_ONLY_WHEN:
            return f"{HOLDS_ONLY_WHEN} {self.condition}"
        if self.word == INCONCLUSIVE and self.condition:
            return f"{INCONCLUSIVE} ({self.condition})"
        return self.word

    @property
    def numbers(self) -> str:
        """The estimate, its interval and the network count: "0.49 [0.46, 0.53], 840 networks"."""
        lo, hi = self.interval
        return f"{_num(self.estimate)} [{_num(lo)}, {_num(hi)}], {self.networks} networks"

    def sentence(self) -> str:
        """One sentence: the label, then the estimate, its interval, the network count and threshold."""
        lo, hi = self.interval
        return (
            f"{self.label}: estimate {_num(self.estimate)} (95% interval {_num(lo)} to {_num(hi)}, "
            f"{self.networks} networks) against the threshold {self.threshold:g} (holds "
            f"{self.holds_when})."
        )

    def __str__(self) -> str:
        return self.label


def decide(
    interval: Interval | tuple[float, float],
    threshold: float,
    *,
    holds_when: str = "above",
    estimate: float | None = None,
    networks: int | None = None,
    quantity: str = "",
    min_networks: int = MIN_NETWORKS,
    per_cell: int | None = None,
) -> Verdict:
    """The verdict an interval gives against a threshold.

    "holds" when the whole interval lies on the ``holds_when`` side of ``threshold``, "does
    not hold" when it lies wholly on the other side, "inconclusive" when it touches or
    straddles the threshold, and "inconclusive (n < 10)" from fewer than ``min_networks``
    networks whatever the interval says. ``per_cell`` is the fewest networks in any design
    cell behind the interval (default: ``networks``); it is what ``min_networks`` is held to.

    Examples
    --------
    >>> decide(wilson_interval(19, 20), 0.5).label
    'holds'
    >>> decide(wilson_interval(1, 20), 0.5).label
    'does not hold'
    >>> decide(wilson_interval(10, 20), 0.5).label
    'inconclusive'
    >>> decide(wilson_interval(5, 5), 0.5).label
    'inconclusive (n < 10)'
    """
    if holds_when not in SIDES:
        raise ValueError(f"holds_when = {holds_when!r} is not one of {', '.join(map(repr, SIDES))}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold = {threshold!r} must be a finite number")
    if isinstance(interval, Interval):
        estimate = interval.estimate if estimate is None else estimate
        networks = interval.n if networks is None else networks
        low, high = interval.low, interval.high
    else:
        low, high = (float(v) for v in interval)
        if estimate is None or networks is None:
            raise ValueError("estimate and networks are needed with a plain (low, high) interval")
    if np.isnan(low) or np.isnan(high) or low > high:
        raise ValueError(f"interval = ({low}, {high}) must be two numbers, low <= high")
    above, below = low > threshold, high < threshold
    if (networks if per_cell is None else per_cell) < min_networks:
        word, condition = INCONCLUSIVE, f"n < {min_networks}"
    elif above or below:
        word, condition = (HOLDS if above == (holds_when == "above") else DOES_NOT_HOLD), ""
    else:
        word, condition = INCONCLUSIVE, ""
    return Verdict(
        word,
        float(estimate),
        (float(low), float(high)),
        int(networks),
        float(threshold),
        quantity,
        holds_when,
        condition,
    )


def decide_claim(
    claim: Claim, interval: Interval, *, min_networks: int = MIN_NETWORKS, per_cell: int | None = None
) -> Verdict:
    """`decide` with the claim's threshold, side and quantity."""
    return decide(
        interval,
        claim.threshold,
        holds_when=claim.holds_when,
        quantity=claim.quantity,
        min_networks=min_networks,
        per_cell=per_cell,
    )


def combine(cells: Mapping[str, Verdict] | Sequence[tuple[str, Verdict]], overall: Verdict) -> Verdict:
    """One verdict from the verdicts of each design cell, with ``overall``'s pooled numbers.

    All cells hold: "holds"; none holds: "does not hold"; some hold and some do not:
    "holds only when <the cells that hold>" (a condition read off the data, not assumed);
    any cell undecided while the others agree: "inconclusive", saying which cells found what.

    Examples
    --------
    >>> yes, no = decide((0.8, 0.9), 0.5, estimate=0.85, networks=20), decide((0.1, 0.2), 0.5,
    ...                                                                       estimate=0.15, networks=20)
    >>> combine({"N = 64": yes, "N = 16": no}, yes).label
    'holds only when N = 64'
    """
    items = list(cells.items()) if isinstance(cells, Mapping) else list(cells)
    if not items:
        raise ValueError("cells must hold at least one design cell's verdict")
    held = [name for name, v in items if v.word == HOLDS]
    failed = [name for name, v in items if v.word == DOES_NOT_HOLD]
    open_ = [name for name, v in items if v.word not in (HOLDS, DOES_NOT_HOLD)]
    if held and failed:
        word, condition = HOLDS_ONLY_WHEN, " or ".join(held)
    elif open_:  # say what the decided cells found too: "does not hold for A; undecided for B"
        parts = [(HOLDS, held), (DOES_NOT_HOLD, failed), ("undecided", open_)]
        word, condition = INCONCLUSIVE, "; ".join(f"{w} for {', '.join(c)}" for w, c in parts if c)
    else:
        word, condition = (HOLDS if held else DOES_NOT_HOLD), ""
    return replace(overall, word=word, condition=condition, cells=tuple(items))


def regime(rate: float) -> str:
    """ "vanishing", "neutral" or "exploding" for a rate in nats/step, with the shared `NEUTRAL_BAND`."""
    return gf.regime_of(rate, NEUTRAL_BAND)


def fit_from(steps: int) -> int:
    """First lag of every rate fit: gradflow's default ``T // 10`` (skips the final-state transient)."""
    return steps // 10


def network_seeds(seed: int) -> dict[str, int]:
    """Independent streams for one network's weights, inputs, initial state and loss direction, all
    from its one seed (one stream reused would correlate the weights with the inputs)."""
    state = np.random.SeedSequence(seed).generate_state(4)
    return dict(zip(("cell", "inputs", "state", "direction"), (int(s) for s in state), strict=True))


def study_inputs(steps: int, batch: int, inputs: int, scale: float, seed: int) -> np.ndarray:
    """``WARMUP + steps`` gaussian inputs of std ``scale`` (zeros at scale 0), as `warm_start` takes them."""
    if scale == 0:
        return np.zeros((WARMUP + steps, batch, inputs))
    return gf.inputs.gaussian(WARMUP + steps, batch, inputs, scale=scale, seed=seed)


def warm_start(cell, xs: np.ndarray, *, seed: int, warmup: int = WARMUP) -> tuple[np.ndarray, np.ndarray]:
    """The shared initial-state convention: ``(h0, measured inputs)`` from ``warmup + T`` steps of input.

    The state is drawn ``N(0, INITIAL_STD^2)`` per unit from ``seed`` and run through the
    first ``warmup`` steps of ``xs``; what the study measures then starts from that state
    on ``xs[warmup:]``. An input-free network gets zero inputs here like everywhere else, so
    it leaves the origin only if its dynamics carry it away from a random state.

    Examples
    --------
    >>> import gradflow as gf
    >>> cell = gf.rnn(8, 2, gain=0.5, seed=0)
    >>> h0, xs = warm_start(cell, np.zeros((110, 3, 2)), seed=0)
    >>> h0.shape, xs.shape, bool(np.abs(h0).max() < 1e-20)
    ((3, 8), (10, 3, 2), True)
    """
    xs = np.asarray(xs, dtype=float)
    if xs.ndim != 3 or xs.shape[0] <= warmup:
        raise ValueError(
            f"xs must have shape (warmup + T, batch, inputs) with T >= 1 and warmup = {warmup}; "
            f"got {xs.shape}"
        )
    rng = np.random.default_rng(seed)
    start = rng.normal(0.0, INITIAL_STD, (xs.shape[1], cell.state_size))
    h0 = gf.unroll(cell, xs[:warmup], h0=start)[-1] if warmup else start
    return h0, xs[warmup:]


def run_networks(grid, task: Callable, cfg) -> pd.DataFrame:
    """``task`` on every point of ``grid`` for seeds ``cfg.seed .. cfg.seed + cfg.seeds - 1`` on
    ``cfg.executor`` (`gradflow.sweep.run`); a network that failed stops the study, naming the first
    error (a verdict never rests on the networks that happened to survive)."""
    frame = gf.sweep.run(
        grid,
        task=task,
        seeds=range(cfg.seed, cfg.seed + cfg.seeds),
        executor=cfg.executor,
        progress=sys.stderr.isatty(),  # a bar for people, not logs
    )
    failed = frame.error.fillna("") != ""
    if failed.any():
        raise FloatingPointError(f"{int(failed.sum())} networks failed: {frame.error[failed].iloc[0]}")
    return frame.drop(columns=["error"])


def conventions() -> list[tuple[str, str]]:
    """(heading, text) of the conventions every study states on its Methods page."""
    return [
        ("Initial state", INITIAL_STATE + "."),
        (
            "Neutral band",
            f"|rate| <= {NEUTRAL_BAND:g} {RATE_UNIT} is neutral: never called vanishing or exploding.",
        ),
        (
            "Fit window",
            f"rates are least-squares slopes of the batch-mean ln ||dL/dh_(T-k)|| over "
            f"{FIT_WINDOW}, in {RATE_UNIT} (natural logarithms).",
        ),
        (
            "Intervals",
            f"{LEVEL:.0%} percentile bootstrap over independent networks ({RESAMPLES} "
            f"resamples, seeded), Wilson score intervals for success rates; no verdict from "
            f"fewer than {MIN_NETWORKS} networks per design cell.",
        ),
    ]
