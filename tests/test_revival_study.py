"""The recurrent_revival study: its tiny run, its numbers against the CSVs, and each decision rule on
synthetic data where the answer is known."""

import math
import os

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

import gradflow as gf
from gradflow.studies import STUDIES, _protocol
from gradflow.studies import _revival_measure as measure
from gradflow.studies import _revival_sensitivity as sensitivity
from gradflow.studies import recurrent_revival as rr
from gradflow.studies._claim import seeds_folder


@pytest.fixture(scope="module")
def report(study_run):
    run = study_run("recurrent_revival")  # the tiny sizes of conftest.TINY
    return run.out, run.result


@pytest.mark.slow
def test_study_writes_pdf_and_the_csv_behind_every_figure(report):
    out, result = report
    assert sorted(os.listdir(out)) == sorted(
        ["recurrent_revival.pdf"]
        + [
            f"recurrent_revival_{name}"
            for name in (
                "config.toml",
                "depth.csv",
                "exponents.csv",
                "learning.csv",
                "learning_runs.csv",
                "machine.csv",
                "memory_summary.csv",
                "networks.csv",
                "profiles.csv",
                "sensitivity.csv",
                "speedups.csv",
                "times.csv",
            )
        ]
    )
    pdf = PdfReader(out / "recurrent_revival.pdf")
    assert pdf.metadata.subject == f"Verdict: {result['verdict']}"
    text = " ".join(" ".join(page.extract_text() for page in pdf.pages).split())
    for claim in rr.CLAIMS.values():  # every claim and its rule is printed before any result
        assert claim.text in text and f"threshold {claim.threshold:g}" in text
    for heading in ("Claim", "Quote", "Threshold", "Verdict", "Configuration", "Methods"):
        assert heading in text
    assert "recurrent_revival" in STUDIES
    # Two networks per architecture: the protocol allows no memory verdict from them.
    assert result["verdicts"]["memory"].label == "inconclusive (n < 10)"
    assert result["verdict"].startswith("memory: inconclusive (n < 10); parallelism: ")
    assert result["verdict"].endswith("sensitivity: inconclusive (n < 10); learning: inconclusive (n < 10)")
    assert "Can they learn where the LSTM fails?" in text


@pytest.mark.slow
def test_memory_numbers_are_the_engines_and_the_csvs(report):
    out, result = report
    networks = pd.read_csv(out / "recurrent_revival_networks.csv")
    config = result["config"]
    assert (
        len(networks) == len(measure.ARCHITECTURES) * config.seeds
        and not networks.duplicated(["architecture", "seed"]).any()
    )  # one row per network, with its seed
    lag = measure.decision_lags(config.steps)[0]
    assert lag == config.steps  # a tiny run asks whether the gradient reaches the end of the sequence
    assert (networks[f"keeps_{lag}"] == (networks[f"lag_{lag}"] >= math.log(measure.KEEP))).all()
    # One network recomputed directly with gradflow gives the CSV's numbers.
    row = networks[networks.architecture == "LRU"].iloc[0]
    cell = gf.lru(config.hidden, _protocol.INPUTS, seed=_protocol.network_seeds(int(row.seed))["cell"])
    streams = _protocol.network_seeds(int(row.seed))
    xs = _protocol.study_inputs(
        config.steps, config.batch, _protocol.INPUTS, config.input_scale, streams["inputs"]
    )
    h0, xs = _protocol.warm_start(cell, xs, seed=streams["state"])
    flow = gf.gradient_flow(cell, xs, h0=h0, seed=streams["direction"])
    assert row[f"lag_{lag}"] == pytest.approx(flow.profile[lag] - flow.profile[1], rel=1e-9)
    assert row.rate == pytest.approx(flow.rate, rel=1e-9)
    summary = pd.read_csv(out / "recurrent_revival_memory_summary.csv").set_index("architecture")
    for arch, g in networks.groupby("architecture"):
        iv = _protocol.success_interval(g[f"keeps_{lag}"].to_numpy(bool))
        assert (summary.loc[arch, f"share_{lag}"], summary.loc[arch, f"share_{lag}_low"]) == pytest.approx(
            (iv.estimate, iv.low)
        )
    text = " ".join(PdfReader(out / "recurrent_revival.pdf").pages[2].extract_text().split())
    first = summary.iloc[0]
    assert f"{first.rate:+.3f} [{first.rate_low:+.3f}, {first.rate_high:+.3f}]" in text


@pytest.mark.slow
def test_depth_is_exact_and_the_scan_equals_the_loop(report):
    out, _ = report
    depth = pd.read_csv(out / "recurrent_revival_depth.csv")
    loops, scans = depth[depth.method == measure.LOOP], depth[depth.method == measure.SCAN]
    assert (loops.sequential_depth == loops.n).all()
    assert (scans.sequential_depth == 1 + np.ceil(np.log2(scans.n)).astype(int)).all()  # input map + rounds
    assert set(scans.architecture) == {a for a, spec in measure.ARCHITECTURES.items() if spec.linear}
    assert (depth[depth.method == "attention"].sequential_depth == 1).all()
    times = pd.read_csv(out / "recurrent_revival_times.csv")
    assert (times.max_relative_difference <= measure.SCAN_TOL).all() and (times.cpu_seconds > 0).all()
    speed = pd.read_csv(out / "recurrent_revival_speedups.csv")
    wide = times.pivot_table(index=["architecture", "n"], columns="method", values="cpu_seconds").dropna()
    np.testing.assert_allclose(speed.speedup, (wide[measure.LOOP] / wide[measure.SCAN]).to_numpy(), rtol=1e-8)
    machine = pd.read_csv(out / "recurrent_revival_machine.csv").iloc[0]
    assert machine.cores >= 1 and isinstance(machine.cpu, str)


def test_every_claims_quote_occurs_in_its_seed_file():
    folder = seeds_folder()
    if folder is None:
        pytest.skip("the shared seeds folder is not reachable from this checkout")
    quotes = [(c.source, c.quote) for c in rr.CLAIMS.values()] + [(s, q) for s, _, q in rr.ALSO_PARALLEL]
    for source, quote in quotes:
        assert quote in (folder / source).read_text(encoding="utf-8"), (source, quote)


def _networks(shares: dict[str, float], n: int = 20, lag: int = 1000) -> pd.DataFrame:
    rows = [
        dict(architecture=arch, seed=seed, **{f"keeps_{lag}": seed < share * n})
        for arch, share in shares.items()
        for seed in range(n)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("shares", "label"),
    [
        ({"LSTM": 0.0, "GRU": 0.0}, "holds"),
        ({"LSTM": 1.0, "LRU": 0.9}, "does not hold"),
        ({"LSTM": 0.0, "LRU": 1.0}, "holds only when architecture = LSTM"),
        (
            {"LSTM": 0.1, "LRU": 0.5},
            "inconclusive (holds for architecture = LSTM; undecided for architecture = LRU)",
        ),
    ],
)
def test_memory_verdict_follows_the_shares_keeping_their_gradient(shares, label):
    decision, cells = rr.memory_verdict(_networks(shares), [1000])
    assert decision.label == label and all(v.networks == 20 for v in cells.values())


def test_memory_verdict_needs_ten_networks_per_architecture():
    decision, _ = rr.memory_verdict(_networks({"LSTM": 0.0, "LRU": 1.0}, n=9), [1000])
    assert decision.label == "inconclusive (n < 10)"


def _depth(laws: dict[str, str]) -> pd.DataFrame:
    """Synthetic exact depths: "n", "log" (ceil log2 n) or "1" per (architecture, method)."""
    law = {"n": lambda n: n, "log": lambda n: math.ceil(math.log2(n)), "1": lambda n: 1}
    rows = []
    for key, kind in laws.items():
        arch, method = key.split("/")
        rows += [
            dict(architecture=arch, method=method, n=n, sequential_depth=law[kind](n))
            for n in (16, 64, 256, 1024)
        ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("laws", "label"),
    [
        ({"LSTM/loop": "n", "GRU/loop": "n"}, "holds"),
        ({"LRU/loop": "n", "LRU/scan": "log", "minGRU/loop": "n", "minGRU/scan": "log"}, "does not hold"),
        (
            {"LSTM/loop": "n", "LRU/loop": "n", "LRU/scan": "log", "self-attention (1 layer)/attention": "1"},
            "holds only when architecture = LSTM",
        ),
    ],
)
def test_parallel_verdict_reads_the_shallowest_forward_pass(laws, label):
    decision, cells = rr.parallel_verdict(_depth(laws))
    assert decision.label == label
    assert "architecture = self-attention (1 layer)" not in cells  # shown beside, not decided
    assert rr.parallel_sentence(decision, _depth(laws)).startswith(label)


@pytest.mark.slow
def test_sensitivity_exponents_are_fitted_from_the_csv(report):
    out, result = report
    frame = pd.read_csv(out / "recurrent_revival_sensitivity.csv")
    exponents = pd.read_csv(out / "recurrent_revival_exponents.csv").set_index("parametrisation")
    config = result["config"]
    assert set(frame.parametrisation) == {
        sensitivity.LAMBDA_RAW,
        sensitivity.LAMBDA_NORMALISED,
        sensitivity.LRU_NU,
    }
    assert len(frame) == 3 * len(config.sensitivity_ks) * config.seeds  # one row per unit and seed
    for name, g in frame.groupby("parametrisation"):
        mean = g.groupby("one_minus_r").squared_sensitivity.mean()
        slope = np.polyfit(np.log(mean.index.to_numpy()), np.log(mean.to_numpy()), 1)[0]
        assert exponents.loc[name, "exponent"] == pytest.approx(slope, rel=1e-8)
        assert exponents.loc[name, "low"] <= exponents.loc[name, "high"]


def test_lru_sensitivity_closed_form_is_the_sum_of_its_exact_coefficients():
    """dL/dnu of one LRU mode is a fixed linear form in the inputs (finite differences of a numpy
    transcription); the closed form is the sum of its squared coefficients."""
    T, modulus, phase = 40, 0.9, sensitivity.SENSITIVITY_PHASE  # k = 1
    gamma, nu = np.sqrt(1 - modulus**2), np.log(-np.log(modulus))

    def final(nu, x):
        lam, h = np.exp(-np.exp(nu) + 1j * phase), 0j
        for value in x:
            h = lam * h + gamma * value
        return h.real

    eye, eps = np.eye(T), 1e-6
    coefficients = [(final(nu + eps, e) - final(nu - eps, e)) / (2 * eps) for e in eye]
    expected = sensitivity.lru_sensitivity_closed_form(modulus, T)
    assert float(np.sum(np.square(coefficients))) == pytest.approx(float(expected), rel=1e-7)
    frame = sensitivity.lru_sensitivity([1.0], seq_len=T, batch=2, seeds=1, seed=3)  # parameter_sensitivity's
    x = np.random.default_rng(3).standard_normal((T, 2, 1))[:, :, 0]
    direct = sum(float(np.dot(coefficients, x[:, b])) for b in range(2)) ** 2 / 2
    assert frame.squared_sensitivity.iloc[0] == pytest.approx(direct, rel=1e-6)


def _exponents(values: dict[str, tuple[float, float, float]], seeds: int = 10) -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(
                parametrisation=name,
                exponent=e,
                low=lo,
                high=hi,
                closed_form_exponent=e,
                asymptotic_exponent=e,
                seeds=seeds,
            )
            for name, (e, lo, hi) in values.items()
        ]
    )


@pytest.mark.parametrize(
    ("values", "label"),
    [
        ({"raw": (-3.0, -3.3, -2.7), "normalised": (-2.0, -2.3, -1.7)}, "holds"),
        ({"raw": (0.0, -0.2, 0.2), "normalised": (0.1, -0.1, 0.3)}, "does not hold"),
        ({"raw": (-3.0, -3.3, -2.7), "LRU": (0.0, -0.3, 0.3)}, "holds only when parametrisation = raw"),
        (
            {"raw": (-3.0, -3.3, -2.7), "LRU": (-0.4, -0.9, 0.1)},
            "inconclusive (holds for parametrisation = raw; undecided for parametrisation = LRU)",
        ),
    ],
)
def test_sensitivity_verdict_follows_the_exponents_intervals(values, label):
    decision, cells = rr.sensitivity_verdict(_exponents(values))
    assert decision.label == label and all(v.networks == 10 for v in cells.values())
    assert rr.sensitivity_sentence(decision, _exponents(values)).startswith(label)


def test_a_holds_only_when_verdict_still_names_the_undecided_cells():
    decision, cells = rr.memory_verdict(_networks({"LSTM": 0.0, "LRU": 1.0, "minGRU": 0.5}), [1000])
    assert decision.label == "holds only when architecture = LSTM"
    assert rr.undecided(cells) == " Undecided (interval touching the threshold): architecture = minGRU."
    assert rr.undecided({"architecture = LSTM": cells["architecture = LSTM"]}) == ""


def test_an_lrus_kept_gradient_is_its_eigenvalues_closed_form():
    """For h_t = lambda h_(t-1) + b_t the gradient at lag k is (Lambda^k)^* u: mode i keeps |lambda_i|^k
    of its share of the loss direction u, whatever the inputs and the start."""
    point = dict(architecture="LRU", hidden=4, seq_len=200, batch=2, input_scale=1.0, seed=7)
    row = measure.memory_task(point)
    streams = _protocol.network_seeds(7)
    lam = np.exp(-np.exp(gf.lru(4, _protocol.INPUTS, seed=streams["cell"]).params["nu_log"]))  # |lambda|
    u = np.random.default_rng(streams["direction"]).standard_normal(8)
    share = u[:4] ** 2 + u[4:] ** 2  # mode i's part of u: its real and imaginary entries

    def log_norm(k):
        return 0.5 * np.log(np.sum(lam ** (2 * k) * share))

    lags = measure.profile_lags(200)
    assert lags[-1] == 200 and len(lags) > 20
    for k in lags:
        assert row[f"lag_{k}"] == pytest.approx(log_norm(k) - log_norm(1), rel=1e-9, abs=1e-9)
