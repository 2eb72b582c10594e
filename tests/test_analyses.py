import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from analyses import gated_cells

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(study_run):
    run = study_run("gated_cells")
    return run.out, run.result


def test_study_writes_pdf_and_the_csv_behind_it(report):
    out, result = report
    assert sorted(os.listdir(out)) == ["gated_cells.pdf", "gated_cells_checks.csv", "gated_cells_config.toml",
                                       "gated_cells_profiles.csv", "gated_cells_rates.csv",
                                       "gated_cells_summary.csv"]  # nothing half-written left
    pdf = PdfReader(out / "gated_cells.pdf")
    assert len(pdf.pages) == 6
    assert pdf.metadata.title == "gradflow: do gates mitigate vanishing gradients?"
    assert pdf.metadata.subject == f"Verdict: {result['verdict']}"
    text = "\n".join(page.extract_text() for page in pdf.pages)
    for heading in ("Claim", "Verdict", "Configuration", "Key numbers", "Methods",
                    "Self-checks run with this report"):
        assert heading in text
    assert result["verdict"] in {"holds", "holds only when the gate bias is positive", "does not hold"}
    assert result["verdict"] in text


def test_summary_numbers_are_the_csv_numbers(report):
    out, result = report
    rates = pd.read_csv(out / "gated_cells_rates.csv")
    text = PdfReader(out / "gated_cells.pdf").pages[1].extract_text()
    for row in result["table"].itertuples():
        sub = rates[rates.architecture == row.architecture]
        if row._2 != "-":
            sub = sub[np.isclose(sub.gate_bias, float(row._2))]
        assert f"{sub.rate.median():+.4f}" == row._3
        assert row._3 in text
    checks = pd.read_csv(out / "gated_cells_checks.csv")
    assert checks.passed.all()


def _summary(lstm, gru, rnn=-0.5, spread=0.01):
    rows = [dict(architecture="RNN tanh (gaussian)", gate_bias=np.nan, rate=rnn, rate_spread=spread)]
    for arch, values in (("LSTM", lstm), ("GRU", gru)):
        rows += [dict(architecture=arch, gate_bias=b, rate=r, rate_spread=spread)
                 for b, r in zip((0.0, 1.0, 2.0), values, strict=True)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("lstm", "gru", "word"), [
    ((-0.45, -0.2, -0.05), (-0.3, -0.2, -0.1), "holds"),
    ((-0.5, -0.5, -0.2), (-0.5, -0.5, -0.5), "holds only when the gate bias is positive"),
    ((-0.5, -0.5, -0.6), (-0.5, -0.51, -0.5), "does not hold"),
])
def test_verdict_follows_the_rates(lstm, gru, word):
    got, sentence, facts = gated_cells.verdict(_summary(lstm, gru))
    assert got == word and sentence.startswith(word)
    assert facts["LSTM"]["at_default"] == lstm[1]


def test_differences_within_seed_spread_do_not_count():
    got, _, facts = gated_cells.verdict(_summary((-0.45, -0.45, -0.4), (-0.45, -0.45, -0.4),
                                                 rnn=-0.45, spread=0.08))
    assert got == "does not hold" and not facts["LSTM"]["beats_at_default"]


def test_runner_rejects_an_unknown_study_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "analyses", "nonsense", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    from analyses import STUDIES

    assert proc.stderr.strip() == ("error: unknown study 'nonsense'; expected one of "
                                   + ", ".join(STUDIES))
    assert os.listdir(tmp_path) == []


def test_bad_size_override_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "analyses.gated_cells", "--hidden", "0",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("python -m analyses.gated_cells: error: "
                                                    "--hidden must be a positive integer; got 0")
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def paths_report(study_run):
    run = study_run("path_lengths")
    return run.out, run.result


def test_path_lengths_study_rebuilds_the_table_from_graphs(paths_report):
    out, result = paths_report
    assert sorted(os.listdir(out)) == ["path_lengths.pdf", "path_lengths_classes.csv", "path_lengths_config.toml",
                                       "path_lengths_graphs.csv", "path_lengths_sensitivity.csv",
                                       "path_lengths_summary.csv"]
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
        rows.append(dict(architecture="RNN tanh", seed=seed, oldest=rnn, mean_log_sensitivity=-30.0, horizon=15))
        for arch, gain in gains.items():
            rows.append(dict(architecture=arch, seed=seed, oldest=rnn + gain + 0.3 * rng.standard_normal(),
                             mean_log_sensitivity=-5.5, horizon=255))
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("gains", "label"), [
    ((50.0, 40.0, 30.0), "holds"),
    ((1.0, 2.0, -3.0), "does not hold"),
    ((50.0, 2.0, 30.0), "holds only when architecture = self-attention (2 layers) or architecture = TCN "
                        "(k = 3, dilated)"),
    ((50.0, 6.9, 30.0), "inconclusive (undecided for architecture = hierarchical attention (c = 4))"),
])
def test_path_verdict_pairs_each_short_path_with_the_rnn_of_its_seed(gains, label):
    from analyses import path_lengths

    archs = list(path_lengths.SHORT_PATHS)
    classes = pd.DataFrame({"architecture": ["RNN tanh", *archs],
                            "max_path": ["O(n)", *path_lengths.SHORT_PATHS.values()]})
    summary = _path_summary({"LSTM": 20.0, "GRU": 5.0, **dict(zip(archs, gains, strict=True))})
    decision, sentence, facts = path_lengths.verdict(classes, summary, 256)
    assert decision.label == label and sentence.startswith(label) and facts["paths_as_claimed"]
    assert all(v.networks == 12 for v in facts["cells"].values())


def test_coinciding_curves_are_named():
    from analyses import path_lengths

    frame = pd.DataFrame({"architecture": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "n": [1, 2, 3] * 3,
                          "max_path": [1, 2, 3, 1, 2, 3, 1, 1, 1]})
    assert path_lengths.coinciding(frame, "n", "max_path") == [["a", "b"]]


def test_cost_study_measures_depth_time_and_intensity(study_run):
    run = study_run("cost")
    out, result = run.out, run.result
    times = pd.read_csv(out / "cost_times.csv")
    assert set(times.n) == {16, 32} and (times.forward_backward_s > 0).all()
    rnn = times[times.architecture == "RNN tanh"]
    assert (rnn.sequential_depth == rnn.n).all()
    assert (times[times.architecture == "self-attention"].sequential_depth == 1).all()
    inten = pd.read_csv(out / "cost_intensity.csv")
    # One recurrent step: 2 B W^2 flops over the W^2 matrix plus two states, 8 bytes each.
    assert inten.flops_per_byte[0] == pytest.approx(2 * 4 * 64 / (8 * (64 + 2 * 4 * 8)))
    pdf = PdfReader(out / "cost.pdf")
    assert len(pdf.pages) == 5 and pdf.metadata.subject == f"Verdict: {result['verdict']}"
    text = pdf.pages[1].extract_text()
    assert result["verdict"][1:] in text and f"{inten.flops_per_byte[0]:.2f}" in text


def test_cost_times_one_recurrence_three_ways_and_decides_from_the_csv(study_run):
    from analyses import cost

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
                rows.append(dict(width=width, seed=seed, implementation=impl, seconds_per_step=t,
                                 memory_share=share * (1 + 0.02 * rng.standard_normal()) / slower))
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("shares", "label"), [
    ({64: 0.9, 1024: 0.8}, "holds"),
    ({64: 0.1, 1024: 0.2}, "does not hold"),
    ({64: 0.1, 1024: 0.9}, "holds only when width = 1024"),
    ({64: 0.1, 1024: 0.5}, "inconclusive (undecided for width = 1024)"),
])
def test_cost_decides_bandwidth_bound_from_the_fastest_step(shares, label):
    from analyses import cost

    decision, cells = cost.decide_widths(_shares(shares), seed=0)
    assert decision.label == label
    assert all(v.networks == 12 for v in cells.values())  # the fastest implementation's row per network


def test_lyapunov_atlas_sets_exponents_beside_gradients(study_run):
    from analyses import lyapunov_atlas

    run = study_run("lyapunov_atlas")
    out, result = run.out, run.result
    table = pd.read_csv(out / "lyapunov_atlas_summary.csv")
    assert len(table) == len(lyapunov_atlas.QUICK.gains) * len(lyapunov_atlas.QUICK.input_scales)
    # The gradient's rate is the top exponent of the same trajectory (up to the finite-T fit).
    assert np.median(np.abs(table.top_exponent - table.gradient_rate)) < 0.05
    assert (table.kaplan_yorke[table.top_exponent < 0] == 0).all()
    pdf = PdfReader(out / "lyapunov_atlas.pdf")
    assert len(pdf.pages) == 5 and pdf.metadata.subject == f"Verdict: {result['verdict']}"
    first = pdf.pages[1].extract_text()
    assert result["verdict"] in first and f"{table.top_exponent[0]:+.3f}" in first


def test_edge_crossing_interpolates():
    from analyses import lyapunov_atlas

    assert lyapunov_atlas.crossing(np.array([1.0, 2.0, 3.0]), np.array([-0.2, -0.1, 0.1])) == 2.5
    assert np.isnan(lyapunov_atlas.crossing(np.array([1.0, 2.0]), np.array([-0.2, -0.1])))


def test_eigenvalue_rule_study_runs_as_a_cached_sweep(study_run, monkeypatch):
    from analyses import eigenvalue_rule

    run = study_run("eigenvalue_rule")
    monkeypatch.setenv("GRADFLOW_CACHE_DIR", str(run.cache))
    result, out = run.result, run.out
    points = pd.read_csv(out / "eigenvalue_rule_points.csv")
    # The rule's regime is the spectral radius against 1, by construction of the column.
    rule = np.where(points.spectral_radius > np.exp(0.01), "exploding",
                    np.where(points.spectral_radius < np.exp(-0.01), "vanishing", "neutral"))
    assert (rule == points.regime_eigenvalue_rule).all()
    acc = pd.read_csv(out / "eigenvalue_rule_accuracy.csv").set_index("predictor")
    right = (points.regime_eigenvalue_rule == points.measured_regime).mean()
    assert acc.loc["eigenvalue rule", "overall"] == pytest.approx(right)
    pdf = PdfReader(out / "eigenvalue_rule.pdf")
    assert len(pdf.pages) == 5 and pdf.metadata.subject == f"Verdict: {result['verdict']}"
    assert f"{right:.0%}" in pdf.pages[1].extract_text()
    # A second run reads every point from the cache.
    again = eigenvalue_rule.measure(eigenvalue_rule.Config(hidden=8, steps=40))
    assert again.attrs["sweep"]["computed"] == 0


def test_memory_horizon_study(study_run):
    from analyses import memory_horizon

    run = study_run("memory_horizon")
    out, result = run.out, run.result
    points = pd.read_csv(out / "memory_horizon_points.csv")
    assert len(points) == 3 * 3 * 2 * 2 * 2  # cells x inits x sizes (2, 4 -> 4, 8) x scales x seeds
    # The horizon is the engine's: recompute one point directly.
    row = points.iloc[0]
    direct = memory_horizon.horizon_task(dict(cell=row.cell, hidden=row.hidden, init=row.init, seed=row.seed,
                                              seq_len=60, batch=row.batch, input_scale=row.input_scale))
    assert direct["horizon"] == row.horizon and direct["rate"] == pytest.approx(row.rate, rel=1e-9)  # CSV: 10 digits
    counts = result["facts"]["shares"]
    assert sum(counts.values()) == len(points)
    pdf = PdfReader(out / "memory_horizon.pdf")
    assert len(pdf.pages) == 4 and pdf.metadata.subject == f"Verdict: {result['verdict']}"


def test_runner_writes_one_combined_report_with_contents(tmp_path, capsys):
    from analyses.__main__ import main as run_all

    config = tmp_path / "tiny.toml"
    config.write_text("[lyapunov_atlas]\nhidden = 12\nsteps = 120\n[cost]\nhidden = 8\nsteps = 32\n"
                      "widths = [8]\nnetworks = 2\nstep_length = 8\nrepeats = 1\n")
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
    # The study pages follow the contents page in order, unchanged.
    assert combined.pages[1].extract_text() == parts[0].pages[0].extract_text()
    assert "combined: 2 studies" in capsys.readouterr().out


def test_predictor_accuracy_scores_held_out_networks_one_row_each(study_run):
    from analyses import predictor_accuracy as pa

    run = study_run("predictor_accuracy")
    results = pd.read_csv(run.out / "predictor_accuracy_results.csv", keep_default_na=False,
                          na_values=[""])
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
        best = max(methods, key=lambda m: ((train[f"{m}: regime"] == train.measured_regime).mean(),
                                           -methods.index(m)))
        assert set(held.cv_chosen) == {best}
        assert (held.cv_correct == (held[f"{best}: regime"] == held.measured_regime)).all()
    assert set(done.groupby("configuration").fold.nunique()) == {1}  # a configuration's seeds stay together


def _pa_results(right_by_arch: dict[str, float], n: int = 40) -> pd.DataFrame:
    rows = []
    for arch, share in right_by_arch.items():
        for i in range(n):
            rows.append({"architecture": arch, "skipped": "", "measured_regime": "vanishing",
                         "eigenvalue rule: regime": "vanishing" if i < share * n else "exploding"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("shares", "label"), [
    ({"GRU": 1.0, "LSTM": 1.0}, "holds"),
    ({"GRU": 0.5, "LSTM": 0.3}, "does not hold"),
    ({"GRU": 1.0, "LSTM": 0.3}, "holds only when cell = GRU"),
    ({"GRU": 0.9, "LSTM": 0.3}, "inconclusive (undecided for cell = GRU)"),
])
def test_predictor_accuracy_verdict_per_cell_type(shares, label):
    from analyses import predictor_accuracy as pa

    decision, cells = pa.verdict(_pa_results(shares))
    assert decision.label == label and all(v.networks == 40 for v in cells.values())
