import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from gradflow.studies import gated_cells

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(study_run):
    run = study_run("gated_cells")
    return run.out, run.result


@pytest.mark.slow
def test_study_writes_pdf_and_the_csv_behind_it(report):
    out, result = report
    assert sorted(os.listdir(out)) == [
        "gated_cells.pdf",
        "gated_cells_checks.csv",
        "gated_cells_config.toml",
        "gated_cells_profiles.csv",
        "gated_cells_rates.csv",
        "gated_cells_summary.csv",
    ]  # nothing half-written left
    pdf = PdfReader(out / "gated_cells.pdf")
    assert len(pdf.pages) == 6
    assert pdf.metadata.title == "gradflow: do gates mitigate vanishing gradients?"
    assert pdf.metadata.subject == f"Verdict: {result['verdict']}"
    text = "\n".join(page.extract_text() for page in pdf.pages)
    for heading in (
        "Claim",
        "Quote",
        "Threshold",
        "Verdict",
        "Configuration",
        "Key numbers",
        "Methods",
        "Self-checks run with this report",
    ):
        assert heading in text
    assert result["verdict"] == "inconclusive (n < 10)"  # two networks per configuration in the tiny run


@pytest.mark.slow
def test_title_page_and_summary_print_the_same_verdict_object(report):
    out, result = report
    pdf = PdfReader(out / "gated_cells.pdf")
    title, summary = (" ".join(pdf.pages[i].extract_text().split()) for i in (0, 1))
    sentence = result["decision"].sentence()
    assert result["sentence"] == sentence
    assert sentence in title and sentence in summary
    assert "only partly" not in title + summary


@pytest.mark.slow
def test_summary_numbers_are_the_csv_numbers(report):
    out, result = report
    rates = pd.read_csv(out / "gated_cells_rates.csv")
    text = " ".join(PdfReader(out / "gated_cells.pdf").pages[1].extract_text().split())
    for row in result["table"].itertuples():
        sub = rates[rates.architecture == row.architecture]
        if row._2 != "-":
            sub = sub[np.isclose(sub.gate_bias, float(row._2))]
        assert row._3.startswith(f"{sub.rate.mean():+.3f} [")
        assert row._3 in text
    checks = pd.read_csv(out / "gated_cells_checks.csv")
    assert checks.passed.all()


def _rates(lstm, gru, seeds=12, spread=0.02):
    """Synthetic per-network rates: the RNN at -0.5, each gated cell at -0.5 + its paired difference."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        rows.append(dict(architecture="RNN tanh (gaussian)", gate_bias=np.nan, seed=seed, minus_rnn=0.0))
        for arch, bias, diff in (("LSTM", 1.0, lstm), ("GRU", 0.0, gru)):
            rows.append(
                dict(architecture=arch, gate_bias=bias, seed=seed, minus_rnn=diff + rng.normal(0, spread))
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("lstm", "gru", "label"),
    [
        (0.2, 0.15, "holds"),
        (0.2, -0.1, "holds only when LSTM (bias 1)"),
        (-0.1, -0.2, "does not hold"),
        (0.01, 0.01, "inconclusive (undecided for LSTM (bias 1), GRU (bias 0))"),
    ],
)
def test_verdict_follows_the_paired_differences(lstm, gru, label):
    decision = gated_cells.verdict(_rates(lstm, gru))
    assert decision.label == label and decision.sentence().startswith(label)
    assert decision.networks == 24


def test_fewer_than_ten_networks_per_configuration_cannot_decide():
    assert gated_cells.verdict(_rates(0.3, 0.3, seeds=9)).label == "inconclusive (n < 10)"


def test_runner_rejects_an_unknown_study_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gradflow.studies", "nonsense", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    from gradflow.studies import STUDIES

    assert proc.stderr.strip() == ("error: unknown study 'nonsense'; expected one of " + ", ".join(STUDIES))
    assert os.listdir(tmp_path) == []


def test_bad_size_override_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gradflow.studies.gated_cells", "--hidden", "0", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "python -m gradflow.studies.gated_cells: error: --hidden must be a positive integer; got 0"
    )
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def paths_report(study_run):
    run = study_run("path_lengths")
    return run.out, run.result


@pytest.mark.slow
def test_path_lengths_study_rebuilds_the_table_from_graphs(paths_report):
    out, result = paths_report
    assert sorted(os.listdir(out)) == [
        "path_lengths.pdf",
        "path_lengths_classes.csv",
        "path_lengths_config.toml",
        "path_lengths_graphs.csv",
        "path_lengths_sensitivity.csv",
        "path_lengths_summary.csv",
    ]
    classes = pd.read_csv(out / "path_lengths_classes.csv").set_index("architecture")
    assert classes.loc["RNN tanh", "max_path"] == "O(n)"
    assert classes.loc["self-attention (2 layers)", "max_path"] == "O(1)"
    assert classes.loc["TCN (k = 3, dilated)", "max_path"] == "O(log n)"
    assert classes.loc["hierarchical attention (c = 4)", "max_path"] == "O(log n)"
    graphs = pd.read_csv(out / "path_lengths_graphs.csv")
    rnn = graphs[graphs.architecture == "RNN tanh"]
    assert (rnn.max_path == rnn.n).all() and (rnn.sequential_depth == rnn.n).all()
    pdf = PdfReader(out / "path_lengths.pdf")
    assert len(pdf.pages) == 5
    assert pdf.metadata.subject == f"Verdict: {result['verdict']}"
    text = "\n".join(page.extract_text() for page in pdf.pages)
    for heading in ("Claim", "Verdict", "Configuration", "Methods"):
        assert heading in text
    # The summary table's numbers are the CSV's medians.
    summary = pd.read_csv(out / "path_lengths_summary.csv")
    med = summary.groupby("architecture").median(numeric_only=True)
    first = pdf.pages[1].extract_text()
    for arch in ("RNN tanh", "LSTM", "self-attention (2 layers)"):
        assert f"{med.loc[arch, 'oldest']:.2f}" in first


def _path_summary(gains: dict[str, float], seeds: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        rnn = -60.0 + rng.standard_normal()
        rows.append(
            dict(architecture="RNN tanh", seed=seed, oldest=rnn, mean_log_sensitivity=-30.0, horizon=15)
        )
        for arch, gain in gains.items():
            rows.append(
                dict(
                    architecture=arch,
                    seed=seed,
                    oldest=rnn + gain + 0.3 * rng.standard_normal(),
                    mean_log_sensitivity=-5.5,
                    horizon=255,
                )
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("gains", "label"),
    [
        ((50.0, 40.0, 30.0), "holds"),
        ((1.0, 2.0, -3.0), "does not hold"),
        (
            (50.0, 2.0, 30.0),
            "holds only when architecture = self-attention (2 layers) or architecture = TCN (k = 3, dilated)",
        ),
        (
            (50.0, 6.9, 30.0),
            "inconclusive (holds for architecture = self-attention (2 layers), architecture = TCN "
            "(k = 3, dilated); undecided for architecture = hierarchical attention (c = 4))",
        ),
    ],
)
def test_path_verdict_pairs_each_short_path_with_the_rnn_of_its_seed(gains, label):
    from gradflow.studies import path_lengths

    archs = list(path_lengths.SHORT_PATHS)
    classes = pd.DataFrame(
        {"architecture": ["RNN tanh", *archs], "max_path": ["O(n)", *path_lengths.SHORT_PATHS.values()]}
    )
    summary = _path_summary({"LSTM": 20.0, "GRU": 5.0, **dict(zip(archs, gains, strict=True))})
    decision, sentence, facts = path_lengths.verdict(classes, summary, 256)
    assert decision.label == label and sentence.startswith(label) and facts["paths_as_claimed"]
    assert all(v.networks == 12 for v in facts["cells"].values())


def test_coinciding_curves_are_named():
    from gradflow.studies import _path_pages

    frame = pd.DataFrame(
        {
            "architecture": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "n": [1, 2, 3] * 3,
            "max_path": [1, 2, 3, 1, 2, 3, 1, 1, 1],
        }
    )
    assert _path_pages.coinciding(frame, "n", "max_path") == [["a", "b"]]


@pytest.mark.slow
def test_cost_study_measures_depth_time_and_intensity(study_run):
    run = study_run("cost")
    out, result = run.out, run.result
    times = pd.read_csv(out / "cost_times.csv")
    assert set(times.n) == {16, 32} and (times.forward_backward_s > 0).all()
    rnn = times[times.architecture == "RNN tanh"]
    assert (rnn.sequential_depth == rnn.n).all()
    assert (times[times.architecture == "self-attention"].sequential_depth == 1).all()
    # One LRU timed as a loop and as a scan through model.apply: depth n against 1 + ceil(log2 n).
    loop, scan = (times[times.architecture == f"LRU ({how})"].set_index("n") for how in ("loop", "scan"))
    assert (loop.sequential_depth == loop.index).all()
    assert (scan.sequential_depth == 1 + np.ceil(np.log2(scan.index))).all()
    side = pd.read_csv(out / "cost_scan.csv").set_index("n")
    assert np.allclose(side.forward_backward_speedup, loop.forward_backward_s / scan.forward_backward_s)
    assert np.allclose(side.forward_speedup, loop.forward_s / scan.forward_s)
    assert "not for a linear recurrence run as a scan" in result["sentence"]
    inten = pd.read_csv(out / "cost_intensity.csv")
    # One recurrent step: 2 B W^2 flops over the W^2 matrix plus two states, 8 bytes each.
    assert inten.flops_per_byte[0] == pytest.approx(2 * 4 * 64 / (8 * (64 + 2 * 4 * 8)))
    pdf = PdfReader(out / "cost.pdf")
    assert len(pdf.pages) == 5 and pdf.metadata.subject == f"Verdict: {result['verdict']}"
    text = pdf.pages[1].extract_text()
    assert result["verdict"][1:] in text and f"{inten.flops_per_byte[0]:.2f}" in text


@pytest.mark.slow
def test_cost_times_one_recurrence_three_ways_and_decides_from_the_csv(study_run):
    from gradflow.studies import cost

    run = study_run("cost")
    steps = pd.read_csv(run.out / "cost_steps.csv")
    config = run.result["config"]
    implementations = {"numpy", "gradflow"} | ({"PyTorch"} if importlib.util.find_spec("torch") else set())
    assert set(steps.implementation) == implementations
    assert len(steps) == len(implementations) * len(config.widths) * config.networks  # one row per network
    assert (steps.max_abs_difference <= 1e-9).all()  # the same recurrence, checked against numpy
    assert np.allclose(steps.flops, 2 * config.batch * steps.width**2)
    assert np.allclose(steps.memory_share, steps.memory_s / steps.seconds_per_step)
    machine = pd.read_csv(run.out / "cost_machine.csv").iloc[0]
    assert np.allclose(steps.peak_fraction, steps.flops / steps.seconds_per_step / 1e9 / machine.peak_gflops)
    # The verdict is the protocol's, recomputed from the CSV (2 networks per width: n < 10).
    decision, _ = cost.decide_widths(steps, config.seed)
    assert decision.label == run.result["verdict"] == "inconclusive (undecided for width = 8, width = 32)"


def _shares(by_width: dict[int, float], networks: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for width, share in by_width.items():
        for seed in range(networks):
            for impl, slower in (("numpy", 1.0), ("gradflow", 3.0)):
                t = 1e-5 * slower
                rows.append(
                    dict(
                        width=width,
                        seed=seed,
                        implementation=impl,
                        seconds_per_step=t,
                        memory_share=share * (1 + 0.02 * rng.standard_normal()) / slower,
                    )
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("shares", "label"),
    [
        ({64: 0.9, 1024: 0.8}, "holds"),
        ({64: 0.1, 1024: 0.2}, "does not hold"),
        ({64: 0.1, 1024: 0.9}, "holds only when width = 1024"),
        ({64: 0.1, 1024: 0.5}, "inconclusive (does not hold for width = 64; undecided for width = 1024)"),
    ],
)
def test_cost_decides_bandwidth_bound_from_the_fastest_step(shares, label):
    from gradflow.studies import cost

    decision, cells = cost.decide_widths(_shares(shares), seed=0)
    assert decision.label == label
    assert all(v.networks == 12 for v in cells.values())  # the fastest implementation's row per network


@pytest.mark.slow
def test_lyapunov_atlas_sets_exponents_beside_gradients(study_run):
    run = study_run("lyapunov_atlas")
    out, result = run.out, run.result
    networks = pd.read_csv(out / "lyapunov_atlas_networks.csv")
    cfg = result["config"]
    assert len(networks) == len(cfg.gains) * len(cfg.input_scales) * cfg.seeds  # one row per network
    # The gradient's rate is the top exponent of the same trajectory (up to the finite-T fit).
    assert np.median(np.abs(networks.top_exponent - networks.gradient_rate)) < 0.05
    assert (networks.kaplan_yorke[networks.top_exponent < 0] == 0).all()
    gains = pd.read_csv(out / "lyapunov_atlas_gains.csv")
    means = networks.groupby(["input_scale", "gain"]).top_exponent.mean().to_numpy()
    np.testing.assert_allclose(gains.top_exponent, means, rtol=1e-8)  # the CSVs hold 10 digits
    assert (gains.top_low <= gains.top_exponent).all() and (gains.top_exponent <= gains.top_high).all()
    assert result["verdict"] == "inconclusive (n < 10)"  # two networks per gain in the tiny run
    pdf = PdfReader(out / "lyapunov_atlas.pdf")
    assert len(pdf.pages) == 5 and pdf.metadata.subject == f"Verdict: {result['verdict']}"
    first = " ".join(pdf.pages[1].extract_text().split())
    assert result["verdict"] in first and f"{gains.top_exponent[0]:+.3f}" in first
    # The spectra legend lists exactly the gains that were run.
    spectra = " ".join(pdf.pages[3].extract_text().split())
    for g in cfg.gains:
        assert f"g = {g:g}" in spectra
    assert "g = 0.6" not in spectra and "g = 1.2 " not in spectra


def test_a_bump_inside_the_neutral_band_is_not_an_edge():
    from gradflow.studies import _atlas_measure

    rng = np.random.default_rng(0)
    rows = [
        dict(
            input_scale=0.0,
            gain=g,
            top_exponent=mu + rng.normal(0, 0.002),
            gradient_rate=mu,
            ordered_above_edge=False,
            mean_field=0.0,
            critical_gain=1.0,
        )
        for g, mu in zip((0.5, 1.0, 1.1, 1.5, 2.0, 3.0), (-0.5, -0.1, -0.004, 0.003, -0.2, 0.2), strict=True)
        for _ in range(10)
    ]
    frame = pd.DataFrame(rows)
    table = _atlas_measure.per_gain(frame, seed=0)
    assert table.phase.tolist() == ["ordered", "ordered", "neutral", "neutral", "ordered", "chaotic"]
    edge = _atlas_measure.edge(frame, table, 0.0, seed=0, resamples=200)
    assert edge["located"] and 2.0 < edge["edge_low"] <= edge["edge"] <= edge["edge_high"] < 3.0
    flat = frame[frame.gain <= 1.5]  # ordered, then only the neutral bump: no edge at all
    edge = _atlas_measure.edge(flat, _atlas_measure.per_gain(flat, seed=0), 0.0, seed=0, resamples=200)
    assert not edge["located"]


def test_eigenvalue_rule_and_lyapunov_atlas_start_networks_by_the_same_convention():
    from gradflow.studies import _atlas_measure, eigenvalue_rule

    point = dict(gain=2.0, input_scale=0.0, hidden=16, seq_len=60, batch=2, seed=5)
    rule = eigenvalue_rule.network_task({**point, "activation": "tanh"})
    atlas = _atlas_measure.network_task(point)
    # Same network, same warmed-up start: the same measured gradient, to the last bit.
    assert rule["measured_rate"] == atlas["gradient_rate"]
    assert rule["spectral_radius"] == atlas["spectral_radius"]
    # An input-free network at g = 2 is chaotic from a random start; at the origin it would give ln rho(W).
    assert rule["state_rms"] > 0.3 and abs(rule["measured_rate"] - np.log(rule["spectral_radius"])) > 0.1


def test_ordered_networks_are_classified_by_where_they_settle():
    from gradflow.studies import _atlas_measure

    fixed = np.ones((30, 2, 4))
    cycle = np.tile(np.array([1.0, -1.0, 0.5])[:, None, None], (10, 2, 4))
    wander = np.random.default_rng(0).normal(size=(30, 2, 4))
    assert _atlas_measure.settles_on(fixed, driven=False) == "fixed point"
    assert _atlas_measure.settles_on(cycle, driven=False) == "cycle of period 3"
    assert _atlas_measure.settles_on(wander, driven=False) == "wandering"
    assert _atlas_measure.settles_on(wander, driven=True) == "input-driven"


def test_edge_crossing_interpolates():
    from gradflow.studies import _atlas_measure

    assert _atlas_measure.crossing(np.array([1.0, 2.0, 3.0]), np.array([-0.2, -0.1, 0.1])) == 2.5
    assert np.isnan(_atlas_measure.crossing(np.array([1.0, 2.0]), np.array([-0.2, -0.1])))


@pytest.mark.slow
def test_eigenvalue_rule_study_runs_as_a_cached_sweep(study_run, monkeypatch):
    from gradflow.studies import _protocol, eigenvalue_rule

    run = study_run("eigenvalue_rule")
    monkeypatch.setenv("GRADFLOW_CACHE_DIR", str(run.cache))
    result, out = run.result, run.out
    points = pd.read_csv(out / "eigenvalue_rule_networks.csv", keep_default_na=False)
    # One row per network with its seed; the rules' regimes are their rates against the shared band.
    assert len(points) == len(points[["activation", "gain", "input_scale", "seed"]].drop_duplicates())
    rule = np.where(
        points.spectral_radius > np.exp(0.01),
        "exploding",
        np.where(points.spectral_radius < np.exp(-0.01), "vanishing", "neutral"),
    )
    assert (rule == points.regime_folklore).all()
    acc = pd.read_csv(out / "eigenvalue_rule_accuracy.csv").set_index("activation")
    right = (points.regime_folklore == points.measured_regime).mean()
    assert acc.loc["all", "folklore"] == pytest.approx(right)
    low = _protocol.success_interval(points.regime_folklore == points.measured_regime).low
    assert acc.loc["all", "folklore_low"] == pytest.approx(low)
    # Tiny runs have one network per cell: the protocol refuses to decide.
    assert result["verdict"] == "inconclusive (n < 10)"
    pdf = PdfReader(out / "eigenvalue_rule.pdf")
    assert len(pdf.pages) == 5 and pdf.metadata.subject == f"Verdict: {result['verdict']}"
    assert f"{right:.0%} [{low:.0%}" in " ".join(pdf.pages[1].extract_text().split())
    # Every failure of the rule has a diagnosed reason, and only failures have one.
    assert ((points.reason != "") == (points.regime_folklore != points.measured_regime)).all()
    # A second run reads every point from the cache.
    again, _ = eigenvalue_rule.measure(eigenvalue_rule.Config(hidden=8, steps=40, seeds=1))
    assert again.attrs["sweep"]["computed"] == 0


def test_eigenvalue_rule_diagnoses_relu_failures_as_switched_off_units_not_saturation():
    from gradflow.studies import eigenvalue_rule

    point = dict(activation="relu", gain=1.2, hidden=16, seq_len=60, batch=2, seed=3)
    rows = [eigenvalue_rule.network_task({**point, "input_scale": s}) for s in (0.5, 2.0)]
    for row in rows:
        assert row["saturated_share"] == 0.0 and 0.2 < row["off_share"] < 0.8
        # gamma is the share of units on: the mean of ReLU' along the trajectory.
        assert row["gamma"] == pytest.approx(1.0 - row["off_share"])
    frame = pd.DataFrame(
        [
            dict(
                activation="relu",
                measured_regime="vanishing",
                regime_folklore="exploding",
                saturated_share=0.0,
                henrici=0.3,
            )
        ]
    )
    assert "switched off" in eigenvalue_rule.diagnose(next(frame.itertuples()))
    sigmoid = pd.DataFrame(
        [
            dict(
                activation="sigmoid",
                measured_regime="vanishing",
                regime_folklore="exploding",
                saturated_share=0.01,
                henrici=0.3,
            )
        ]
    )
    assert "sigmoid slope <= 1/4" in eigenvalue_rule.diagnose(next(sigmoid.itertuples()))


def test_henrici_departure_is_zero_for_normal_and_large_for_a_shift():
    from gradflow.studies import eigenvalue_rule

    Q = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))[0]
    assert eigenvalue_rule.henrici(2.0 * Q) == pytest.approx(0.0, abs=1e-7)
    assert eigenvalue_rule.henrici(np.eye(6, k=1)) == pytest.approx(1.0)


@pytest.mark.slow
def test_memory_horizon_study(study_run):
    from gradflow.studies import _protocol, memory_horizon

    run = study_run("memory_horizon")
    out, result = run.out, run.result
    points = pd.read_csv(out / "memory_horizon_points.csv")
    # RNN: 3 inits, LSTM and GRU: 2 each; sizes 2 (N/4 -> 4) and 8; 2 input scales; 2 seeds.
    assert len(points) == (3 + 2 + 2) * 2 * 2 * 2
    # The horizon is the engine's: recompute one point directly.
    row = points.iloc[-1]
    direct = memory_horizon.horizon_task(
        dict(
            cell=row.cell,
            hidden=row.hidden,
            init=row.init,
            seed=row.seed,
            seq_len=60,
            batch=row.batch,
            input_scale=row.input_scale,
        )
    )
    assert direct["horizon"] == row.horizon and direct["rate"] == pytest.approx(
        row.rate, rel=1e-9
    )  # CSV: 10 digits
    # The summary's medians and shares are the CSV's, with intervals around them.
    summary = pd.read_csv(out / "memory_horizon_summary.csv")
    first = summary.iloc[0]
    cell = points[
        (points.architecture == first.architecture)
        & (points.init == first.init)
        & (points.hidden == first.hidden)
        & (points.input_scale == first.input_scale)
    ]
    assert first.median_horizon == cell.horizon.median() and first.networks == len(cell)
    assert first.reaches_1000 == pytest.approx(cell.reaches_1000.mean())
    assert first.median_low <= first.median_horizon <= first.median_high
    # The verdict is the protocol's on LSTM and GRU only; two networks per cell cannot decide.
    claimed = points[points.architecture.isin(["LSTM", "GRU"])]
    assert result["decision"].interval == (
        _protocol.success_interval(claimed.reaches_1000).low,
        _protocol.success_interval(claimed.reaches_1000).high,
    )
    assert result["verdict"] == "inconclusive (n < 10)"
    pdf = PdfReader(out / "memory_horizon.pdf")
    assert len(pdf.pages) == 4 and pdf.metadata.subject == f"Verdict: {result['verdict']}"


@pytest.mark.slow
def test_runner_writes_one_combined_report_with_contents(tmp_path, capsys):
    from gradflow.studies.__main__ import main as run_all

    config = tmp_path / "tiny.toml"
    config.write_text(
        "[lyapunov_atlas]\nhidden = 12\nsteps = 120\nseeds = 2\n[cost]\nhidden = 8\nsteps = 32\n"
        "widths = [8]\nnetworks = 2\nstep_length = 8\nrepeats = 1\n"
    )
    tmp_path = tmp_path / "out"
    assert run_all(["lyapunov_atlas", "cost", "--out", str(tmp_path), "--config", str(config)]) == 0
    combined = PdfReader(tmp_path / "gradflow-report.pdf")
    parts = [PdfReader(tmp_path / f"{s}.pdf") for s in ("lyapunov_atlas", "cost")]
    assert len(combined.pages) == 1 + sum(len(p.pages) for p in parts)
    contents = combined.pages[0].extract_text()
    for part, name in zip(parts, ("lyapunov_atlas", "cost"), strict=True):
        verdict = part.metadata.subject.removeprefix("Verdict: ")
        assert name in contents and verdict[:40] in contents
        assert f"{name}: {verdict}" in combined.metadata.subject
    # Each study's contents entry names its claim, source and interval in full.
    flat = " ".join(contents.split())
    from gradflow.studies import lyapunov_atlas

    assert lyapunov_atlas.CLAIM.text in flat and lyapunov_atlas.CLAIM.source in flat and "networks" in flat
    # The outline has a bookmark per study, at its first page, holding one per page of the study.
    top = [
        (item.title, combined.get_destination_page_number(item))
        for item in combined.outline
        if not isinstance(item, list)
    ]
    assert top[1:] == [
        (f"lyapunov_atlas: {parts[0].metadata.subject.removeprefix('Verdict: ')}", 1),
        (f"cost: {parts[1].metadata.subject.removeprefix('Verdict: ')}", 1 + len(parts[0].pages)),
    ]
    assert len(combined.outline[2]) == len(parts[0].pages)  # the pages of lyapunov_atlas
    # The study pages follow the contents page in order, unchanged.
    assert combined.pages[1].extract_text() == parts[0].pages[0].extract_text()
    assert "combined: 2 studies" in capsys.readouterr().out


@pytest.mark.slow
def test_predictor_accuracy_scores_held_out_networks_one_row_each(study_run):
    from gradflow.studies import predictor_accuracy as pa

    run = study_run("predictor_accuracy")
    results = pd.read_csv(run.out / "predictor_accuracy_results.csv", keep_default_na=False, na_values=[""])
    config = run.result["config"]
    assert len(results) == len(pa.networks(config)) and results.seed.is_unique
    assert {"tuned", "untuned"} <= set(results.part)
    done = results[results.skipped.isna()]
    table = pd.read_csv(run.out / "predictor_accuracy_accuracy.csv").set_index("predictor")
    # The summary's numbers are the CSV's: held-out accuracy, and each predictor's share right.
    assert table.loc["cross-validated choice (held out)", "accuracy"] == pytest.approx(done.cv_correct.mean())
    right = (done["eigenvalue rule: regime"] == done.measured_regime).mean()
    assert table.loc["eigenvalue rule", "accuracy"] == pytest.approx(right)
    # Each fold's choice is the best predictor on the other folds, never on its own.
    methods = pa.methods(done)
    for fold, held in done.groupby("fold"):
        train = done[done.fold != fold]
        best = max(
            methods,
            key=lambda m: ((train[f"{m}: regime"] == train.measured_regime).mean(), -methods.index(m)),
        )
        assert set(held.cv_chosen) == {best}
        assert (held.cv_correct == (held[f"{best}: regime"] == held.measured_regime)).all()
    assert set(done.groupby("configuration").fold.nunique()) == {1}  # a configuration's seeds stay together


def _pa_results(right_by_arch: dict[str, float], n: int = 40) -> pd.DataFrame:
    rows = []
    for arch, share in right_by_arch.items():
        for i in range(n):
            rows.append(
                {
                    "architecture": arch,
                    "skipped": "",
                    "measured_regime": "vanishing",
                    "eigenvalue rule: regime": "vanishing" if i < share * n else "exploding",
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("shares", "label"),
    [
        ({"GRU": 1.0, "LSTM": 1.0}, "holds"),
        ({"GRU": 0.5, "LSTM": 0.3}, "does not hold"),
        ({"GRU": 1.0, "LSTM": 0.3}, "holds only when cell = GRU"),
        ({"GRU": 0.9, "LSTM": 0.3}, "inconclusive (does not hold for cell = LSTM; undecided for cell = GRU)"),
    ],
)
def test_predictor_accuracy_verdict_per_cell_type(shares, label):
    from gradflow.studies import predictor_accuracy as pa

    decision, cells = pa.verdict(_pa_results(shares))
    assert decision.label == label and all(v.networks == 40 for v in cells.values())
