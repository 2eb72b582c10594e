"""``gradflow report`` and ``gradflow analyze``: reports from the command line, and bad input as
one line with exit code 2 and nothing written."""

import os

import numpy as np
import pandas as pd
import pypdfium2
import pytest
from pypdf import PdfReader

import gradflow as gf
from gradflow import cli as _cli
from gradflow.measure import _flow

SMALL = ["--steps", "80", "--batch", "2", "--exponents", "4"]


def _pages(path):
    document = pypdfium2.PdfDocument(str(path))
    try:
        return [
            np.mean(document[i].render(scale=0.4).to_numpy()[..., :3].min(axis=-1) < 200)
            for i in range(len(document))
        ]
    finally:
        document.close()


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze")
    assert (
        _cli.main(
            [
                "analyze",
                "--cell",
                "lstm",
                "--hidden",
                "6",
                "--input-size",
                "3",
                "--forget-bias",
                "2",
                *SMALL,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_analyze_writes_a_report_and_every_table_behind_it(analyzed):
    files = sorted(os.listdir(analyzed))
    assert files == sorted(
        ["lstm.pdf"]
        + [
            f"lstm_{k}.csv"
            for k in (
                "summary",
                "rates",
                "predictors",
                "flow",
                "spectra",
                "lyapunov",
                "fixed_points",
                "fixed_point_eigenvalues",
            )
        ]
    )
    pdf = PdfReader(analyzed / "lstm.pdf")
    assert len(pdf.pages) == 8
    assert pdf.metadata.title == "gradflow: how do gradients flow through lstm?"
    text = "\n".join(p.extract_text() for p in pdf.pages)
    for heading in (
        "Configuration",
        "Library versions",
        "Key numbers",
        "eigenvalues of each W_hh block",
        "largest Lyapunov exponents",
        "fixed point",
        "Methods",
        "gradflow analyze --cell lstm",
        "Rate by layer, direction and state part",
        "step Jacobian at the origin",
        "12 = h 6 + c 6: an LSTM's state is h plus its memory c",
    ):
        assert heading in text
    assert all(ink > 0.003 for ink in _pages(analyzed / "lstm.pdf"))
    # No inputs were given: the verdict on the first pages says the inputs were synthetic.
    assert "synthetic Gaussian inputs" in pdf.pages[0].extract_text() + pdf.pages[1].extract_text()


def test_analyze_numbers_are_the_engines_and_the_csvs(analyzed):
    cell = gf.lstm(6, 3, forget_bias=2.0, seed=0)
    xs = gf.inputs.gaussian(80, 2, 3, seed=0)
    summary = pd.read_csv(analyzed / "lstm_summary.csv").set_index("quantity").value
    start = int(summary["rate fit lags"].split("-")[0])
    flow = gf.gradient_flow(cell, xs, seed=0, fit_from=start)
    predictors = pd.read_csv(analyzed / "lstm_predictors.csv")
    assert predictors.measured_rate.iloc[0] == pytest.approx(flow.rate, rel=1e-9)
    assert summary["measured rate (nats/step)"] == f"{flow.rate:+.4f}"
    rates = pd.read_csv(analyzed / "lstm_rates.csv").set_index(["measure", "part"])
    c_rate = _flow.fit_rate(flow.lags, flow.components["c"].mean(axis=1), start).rate
    assert rates.loc[("random direction", "c"), "rate"] == pytest.approx(c_rate, rel=1e-9)
    assert rates.ci_low.le(rates.rate).all() and rates.rate.le(rates.ci_high).all()
    text = PdfReader(analyzed / "lstm.pdf").pages[2].extract_text()
    assert f"{flow.rate:+.4f}" in text and summary["top Lyapunov exponent (nats/step)"] in text
    spectra = pd.read_csv(analyzed / "lstm_spectra.csv")
    W_f = cell.params["weight_hh_l0"][6:12]  # PyTorch order i, f, g, o
    rho = spectra[spectra.gate == "f"].eig_abs.max()
    assert rho == pytest.approx(np.max(np.abs(np.linalg.eigvals(W_f))), rel=1e-9)  # the CSV keeps 10 digits
    assert spectra[spectra.gate == "f"].singular_value.to_numpy() == pytest.approx(
        np.linalg.svd(W_f, compute_uv=False), rel=1e-9
    )  # the CSV keeps 10 digits


def test_analyze_reads_pytorch_layout_weights_and_infers_the_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    rng = np.random.default_rng(3)
    H, D = 5, 2
    weights = {
        f"{w}_l{l}": rng.normal(size=shape) / np.sqrt(H)
        for l in range(2)
        for w, shape in (
            ("weight_ih", (3 * H, D if l == 0 else H)),
            ("weight_hh", (3 * H, H)),
            ("bias_ih", (3 * H,)),
            ("bias_hh", (3 * H,)),
        )
    }
    np.savez(tmp_path / "my_gru.npz", **weights)
    args = ["analyze", str(tmp_path / "my_gru.npz"), *SMALL, "--out", str(tmp_path / "a")]
    assert _cli.main(args) == 0
    a = tmp_path / "a" / "my_gru.pdf"
    first = a.read_bytes()
    assert _cli.main(args) == 0
    assert a.read_bytes() == first  # same weights, seed, command and date: same bytes
    cell = gf.from_torch("gru", weights)
    summary = pd.read_csv(tmp_path / "a" / "my_gru_summary.csv").set_index("quantity").value
    start = int(summary["rate fit lags"].split("-")[0])
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(80, 2, D, seed=0), seed=0, fit_from=start)
    rate = pd.read_csv(tmp_path / "a" / "my_gru_predictors.csv").measured_rate.iloc[0]
    assert rate == pytest.approx(flow.rate, rel=1e-9)
    assert "sha256" in PdfReader(a).pages[0].extract_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["analyze"], "give a weights file, or --cell and --hidden"),
        (["analyze", "--cell", "lstm"], "give a weights file, or --cell and --hidden"),
        (
            ["analyze", "--cell", "gru", "--hidden", "4", "--forget-bias", "1"],
            "--forget-bias applies to --cell lstm only",
        ),
        (
            ["analyze", "--cell", "lstm", "--hidden", "4", "--gain", "nan"],
            "expected a finite number; got 'nan'",
        ),
        (["analyze", "--cell", "lstm", "--hidden", "0"], "expected a positive integer; got '0'"),
        (["analyze", "--cell", "tcn", "--hidden", "4"], "invalid choice: 'tcn'"),
        (["analyze", "MISSING.npz"], "does not exist"),
        (["analyze", "JUNK.npz"], "is not a readable .npz archive of arrays"),
        (["analyze", "ODD.npz"], "cannot tell the cell kind"),
        (["analyze", "NAN.npz"], "contains non-finite values"),
        (["analyze", "ODD.npz", "--gain", "2"], "--gain builds a new cell"),
        (["report", "nonsense"], "unknown study 'nonsense'"),
        (["report", "--bogus"], "unrecognized arguments: --bogus"),
        (["report", "cost", "--config", "BADKEY.toml"], "[cost] has unknown key 'hiden'"),
        (["report", "cost", "--config", "BADVALUE.toml"], "[cost] steps = 'many': expected int"),
        (["report", "cost", "--config", "NOTSTUDY.toml"], "config table [costs] is not a study"),
        (["report", "cost", "--config", "BROKEN.toml"], "is not valid TOML"),
        (["report", "cost", "--config", "MISSING.toml"], "cannot be read"),
        (["report", "cost", "--quick", "--full"], "not allowed with argument"),
        (["analyze", "--cell", "lstm", "--hidden", "3", "--steps", "1"], "--steps must be at least 2"),
        (["analyze", "--cell", "lstm", "--hidden", "3", "--gain", "-1"], "gain must be a finite number >= 0"),
        (["analyze", "ARRAY.npy"], "is a single .npy array, not an archive"),
        (["analyze", "GRU.npz", "--inputs", "3"], "--inputs '3' must be a .npy array or task:NAME:T"),
        (["analyze", "GRU.npz", "--inputs", "task:adding:ten"], "is not a task; expected task:adding:T"),
        (["analyze", "GRU.npz", "--inputs", "task:__import__('os')"], "is not a task"),
        (["analyze", "GRU.npz", "--inputs", "task:copy_memory:20"], "the model reads 2 inputs per step"),
        (["analyze", "GRU.npz", "--inputs", "ARRAY.npy"], "must be a real 3-D array (T, batch, inputs)"),
        (["analyze", "GRU.npz", "--inputs", "MISSING.npy"], "does not exist"),
        (["analyze", "GRU.npz", "--batch-first"], "--batch-first describes an --inputs array"),
        (["analyze", "GRU.npz", "--prefix", "enc"], "prefix 'enc' is not a recurrent block"),
        (["analyze", "GRU.npz", "--head", "fc"], "head 'fc' not found"),
        (["analyze", "--cell", "gru", "--hidden", "3", "--prefix", "a"], "--prefix and --head choose parts"),
        (
            ["report", "remedies", "--config", "CHOICE.toml"],
            "[remedies] configurations = 'bogus' is not one of",
        ),
        (
            ["report", "remedies", "--config", "NAN.toml"],
            "[remedies] success = nan: expected a finite number",
        ),
        (["report", "cost", "--config", "RANGE.toml"], "[lyapunov_atlas] gains = 0.0 must be > 0"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, message, tmp_path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "JUNK.npz").write_text("not an archive")
    np.savez(tmp_path / "ODD.npz", weight_ih_l0=rng.normal(size=(6, 2)), weight_hh_l0=rng.normal(size=(6, 4)))
    bad = rng.normal(size=(12, 4))
    bad[1, 2] = np.nan
    np.savez(tmp_path / "NAN.npz", weight_ih_l0=rng.normal(size=(12, 2)), weight_hh_l0=bad)
    (tmp_path / "BADKEY.toml").write_text("[cost]\nhiden = 3\n")
    (tmp_path / "BADVALUE.toml").write_text("[cost]\nsteps = 'many'\n")
    (tmp_path / "NOTSTUDY.toml").write_text("[costs]\nsteps = 8\n")
    (tmp_path / "BROKEN.toml").write_text("[cost\n")
    (tmp_path / "CHOICE.toml").write_text("[remedies]\nconfigurations = ['bogus']\n")
    (tmp_path / "NAN.toml").write_text("[remedies]\nsuccess = nan\n")
    (tmp_path / "RANGE.toml").write_text("[lyapunov_atlas]\ngains = [1.0, 0.0]\n")  # checked though not run
    np.save(tmp_path / "ARRAY.npy", np.zeros(3))
    np.savez(tmp_path / "GRU.npz", **gf.gru(3, 2).params)
    argv = [str(tmp_path / a) if a.endswith((".npz", ".npy", ".toml")) else a for a in argv]
    out = tmp_path / "out"
    assert _cli.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


@pytest.mark.slow
def test_report_runs_studies_from_a_config_file(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text("[cost]\nhidden = 8\nsteps = 32\nrepeats = 1\n")
    assert _cli.main(["report", "cost", "--config", str(config), "--seed", "3", "--out", str(tmp_path)]) == 0
    written = (tmp_path / "cost_config.toml").read_text()
    assert "hidden = 8" in written and "repeats = 1" in written and "seed = 3" in written
    assert PdfReader(tmp_path / "gradflow-report.pdf").pages[0].extract_text().count("cost") >= 1
    assert "cost: " in capsys.readouterr().out


def test_analyze_handles_a_one_unit_cell(tmp_path):
    # A 1-unit GRU has a 1 x 1 moment map, too small for ARPACK: it is solved densely.
    assert _cli.main(["analyze", "--cell", "gru", "--hidden", "1", *SMALL, "--out", str(tmp_path)]) == 0
    predictors = pd.read_csv(tmp_path / "gru_predictors.csv").set_index("method")
    assert np.isfinite(predictors.loc["moment map", "rate"])
