"""The study protocol: intervals, the decision rule on data with a known answer, claims and conventions."""

import importlib
import math

import numpy as np
import pytest
import scipy.stats

import gradflow as gf
from gradflow.studies import STUDIES
from gradflow.studies import _protocol as protocol
from gradflow.studies._claim import seeds_folder


def _networks(mean, n=40, seed=0):
    return np.random.default_rng(seed).normal(mean, 0.05, n)


@pytest.mark.parametrize(
    ("mean", "side", "word"),
    [
        (0.6, "above", "holds"),
        (0.4, "above", "does not hold"),
        (0.5, "above", "inconclusive"),
        (0.4, "below", "holds"),
        (0.6, "below", "does not hold"),
        (0.5, "below", "inconclusive"),
    ],
)
def test_decision_rule_on_synthetic_networks_with_a_known_answer(mean, side, word):
    values = _networks(mean)
    interval = protocol.bootstrap_interval(values, seed=1)
    verdict = protocol.decide(interval, 0.5, holds_when=side, quantity="mean rate")
    assert verdict.word == word and verdict.label == word
    assert verdict.networks == 40 and verdict.interval == (interval.low, interval.high)
    assert verdict.sentence().lower().startswith(word) and "40 networks" in verdict.sentence()


def test_success_rates_decide_with_wilson_intervals():
    assert protocol.decide(protocol.success_interval([True] * 18 + [False] * 2), 0.5).word == "holds"
    assert protocol.decide(protocol.success_interval([True] * 2 + [False] * 18), 0.5).word == "does not hold"
    assert protocol.decide(protocol.success_interval([True, False] * 10), 0.5).word == "inconclusive"


def test_fewer_than_ten_networks_are_inconclusive_whatever_the_interval():
    verdict = protocol.decide(protocol.bootstrap_interval(_networks(5.0, n=9)), 0.5)
    assert verdict.label == "inconclusive (n < 10)"
    assert protocol.decide(protocol.bootstrap_interval(_networks(5.0, n=10)), 0.5).word == "holds"


def test_wilson_interval_matches_its_closed_form_at_the_ends():
    z = scipy.stats.norm.ppf(0.975)
    for n in (10, 37):
        all_ = protocol.wilson_interval(n, n)
        none = protocol.wilson_interval(0, n)
        assert math.isclose(all_.low, n / (n + z * z), rel_tol=1e-12) and all_.high == 1.0
        assert math.isclose(none.high, z * z / (n + z * z), rel_tol=1e-12) and none.low == 0.0
    with pytest.raises(ValueError, match="successes = 11"):
        protocol.wilson_interval(11, 10)


def test_bootstrap_is_seeded_and_covers_the_true_mean():
    values = _networks(0.3, n=25, seed=3)
    assert protocol.bootstrap_interval(values, seed=7) == protocol.bootstrap_interval(values, seed=7)
    rng = np.random.default_rng(0)
    covered = 0
    for i in range(150):
        iv = protocol.bootstrap_interval(rng.exponential(1.0, 30), resamples=400, seed=i)
        covered += iv.low < 1.0 < iv.high
    assert 0.85 <= covered / 150 <= 0.99


def test_bootstrap_of_medians_with_infinite_values_stays_finite_or_infinite():
    values = np.r_[np.arange(1.0, 8.0), [np.inf] * 5]
    iv = protocol.bootstrap_interval(values, np.median, seed=0)
    assert iv.estimate == 6.5 and not np.isnan([iv.low, iv.high]).any() and iv.high == np.inf
    with pytest.raises(ValueError, match="NaN"):
        protocol.bootstrap_interval([1.0, np.nan])
    with pytest.raises(ValueError, match=r"level = 1\.5"):
        protocol.bootstrap_interval([1.0, 2.0], level=1.5)


def test_cells_that_disagree_give_holds_only_when_with_the_measured_condition():
    yes = protocol.decide(protocol.bootstrap_interval(_networks(0.7)), 0.5)
    no = protocol.decide(protocol.bootstrap_interval(_networks(0.3)), 0.5)
    maybe = protocol.decide(protocol.bootstrap_interval(_networks(0.5)), 0.5)
    assert protocol.combine({"N = 64": yes, "N = 16": no}, yes).label == "holds only when N = 64"
    assert protocol.combine({"a": yes, "b": yes}, yes).word == "holds"
    assert protocol.combine({"a": no, "b": no}, no).word == "does not hold"
    assert (
        protocol.combine({"a": yes, "b": maybe}, yes).label == "inconclusive (holds for a; undecided for b)"
    )
    assert (
        protocol.combine({"a": no, "b": maybe}, no).label
        == "inconclusive (does not hold for a; undecided for b)"
    )
    with pytest.raises(ValueError, match="condition"):
        protocol.Verdict("holds only when", 0.5, (0.4, 0.6), 20, 0.5)


def test_the_neutral_band_is_gradflows_tolerance():
    assert protocol.NEUTRAL_BAND == gf.gradient_flow.__kwdefaults__["tol"]
    assert protocol.regime(protocol.NEUTRAL_BAND) == protocol.regime(-protocol.NEUTRAL_BAND) == "neutral"
    assert protocol.regime(1.01 * protocol.NEUTRAL_BAND) == "exploding"


def test_warm_start_leaves_the_origin_for_chaotic_networks_and_is_seeded():
    xs = np.zeros((protocol.WARMUP + 5, 2, 3))
    chaotic = gf.rnn(16, 3, gain=3.0, seed=0)
    h0, rest = protocol.warm_start(chaotic, xs, seed=4)
    again, _ = protocol.warm_start(chaotic, xs, seed=4)
    assert rest.shape == (5, 2, 3) and np.array_equal(h0, again)
    assert np.sqrt(np.mean(h0**2)) > 0.3  # on the attractor, not at the origin
    with pytest.raises(ValueError, match="warmup"):
        protocol.warm_start(chaotic, xs[:50], seed=0)


def _claims():
    out = []
    for name in STUDIES:
        claim = getattr(importlib.import_module(f"gradflow.studies.{name}"), "CLAIM", None)
        if claim is not None:
            out.append(pytest.param(claim, id=name))
    return out


@pytest.mark.parametrize("claim", _claims())
def test_every_claims_quote_occurs_in_its_seed_file(claim):
    folder = seeds_folder()
    if folder is None:
        pytest.skip("the shared seeds folder is not reachable from this checkout")
    text = (folder / claim.source).read_text(encoding="utf-8")
    assert claim.quote in text
    assert claim.threshold == claim.threshold and claim.rule and claim.quantity
