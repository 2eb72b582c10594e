import os

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

import gradflow as gf
from gradflow.studies import STUDIES, remedies
from gradflow.studies import _remedies_networks as networks
from gradflow.studies._protocol import success_interval


@pytest.fixture(scope="module")
def report(study_run):
    run = study_run("remedies")  # the tiny sizes of conftest.TINY
    return run.out, run.result


@pytest.mark.slow
def test_study_writes_pdf_and_the_csv_behind_every_figure(report):
    out, result = report
    assert sorted(os.listdir(out)) == [
        "remedies.pdf",
        "remedies_checks.csv",
        "remedies_config.toml",
        "remedies_runs.csv",
        "remedies_success.csv",
    ]
    pdf = PdfReader(out / "remedies.pdf")
    assert len(pdf.pages) == 5
    assert pdf.metadata.subject == f"Verdict: {result['verdict']}"
    text = "\n".join(page.extract_text() for page in pdf.pages)
    for heading in (
        "Claim",
        "Quote",
        "Verdict",
        "Configuration",
        "Methods",
        "Self-checks run with this report",
    ):
        assert heading in text
    first = " ".join(pdf.pages[1].extract_text().split())
    assert " ".join(result["sentence"].split())[:200] in first
    assert pd.read_csv(out / "remedies_checks.csv").passed.all()
    assert "remedies" in STUDIES and set(result) >= {"verdict", "sentence", "pdf", "decision", "claim"}


@pytest.mark.slow
def test_summary_numbers_are_the_csv_numbers_one_row_per_network(report):
    out, result = report
    runs = pd.read_csv(out / "remedies_runs.csv")
    success = pd.read_csv(out / "remedies_success.csv")
    config = result["config"]
    assert len(runs) == len(config.configurations) * len(config.adding_T) * config.seeds
    assert not runs.duplicated(["configuration", "T", "seed"]).any()
    assert (runs.success == (runs.eval_loss / runs.baseline < config.success)).all()
    first = " ".join(PdfReader(out / "remedies.pdf").pages[1].extract_text().split())
    for row in success.itertuples():
        flags = runs[(runs.configuration == row.configuration) & (runs["T"] == row.T)].success.to_numpy(bool)
        iv = success_interval(flags)
        assert (row.success_rate, row.low, row.high, row.networks) == pytest.approx(
            (iv.estimate, iv.low, iv.high, len(flags))
        )
        assert f"{row.success_rate:.2f} [{row.low:.2f}, {row.high:.2f}]" in first
    # Tiny runs have 2 networks per remedy: the protocol allows no verdict from them.
    assert result["verdict"].startswith("inconclusive") and "n < 10" in result["sentence"]


def _runs(rates: dict[str, float], n: int = 40, T: int = 100) -> pd.DataFrame:
    rows = []
    for conf, rate in rates.items():
        for seed in range(n):
            rows.append(dict(configuration=conf, T=T, seed=seed, success=seed < rate * n))
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("rates", "label"),
    [
        ({"RNN": 0.0, "RNN + clip norm 1": 0.95, "LSTM + forget bias 3": 1.0}, "holds"),
        ({"RNN": 0.0, "RNN + clip norm 1": 0.0, "LSTM + forget bias 3": 0.1}, "does not hold"),
        (
            {"RNN": 0.0, "RNN + clip norm 1": 0.05, "LSTM + forget bias 3": 0.9},
            "holds only when remedy = LSTM + forget bias 3",
        ),
        (
            {"RNN": 0.0, "RNN + clip norm 1": 0.05, "LSTM + forget bias 3": 0.5},
            "inconclusive (does not hold for remedy = RNN + clip norm 1; undecided for remedy = LSTM + forget bias 3)",
        ),
    ],
)
def test_verdict_follows_the_success_rates_at_the_longest_T(rates, label):
    runs = pd.concat([_runs(rates, T=5).assign(success=True), _runs(rates)])  # short T never decides
    decision, cells = remedies.verdict(runs)
    assert decision.label == label and "remedy = RNN" not in cells  # the reference is not a remedy
    assert all(v.networks == 40 for v in cells.values())


def test_stacked_networks_train_as_gradflow_train_and_independently():
    cfg = networks.Config(hidden=3, steps=5, batch=4, seeds=1)
    pair = networks.train_stack([("RNN + clip norm 1", 4), ("RNN + L2 1e-3", 5)], 4, cfg)
    alone = networks.train_stack([("RNN + clip norm 1", 4)], 4, cfg)
    # A network's training does not depend on what else is in its stack.
    assert pair.eval_loss[0] == pytest.approx(alone.eval_loss[0], rel=1e-12)
    for row in pair.itertuples():
        run = gf.train(
            networks.cell_of(row.configuration, 3, 2, row.seed),
            gf.tasks.adding(4, seed=row.seed),
            5,
            lr=cfg.lr,
            batch=4,
            seed=row.seed,
            record_every=5,
            **networks.options(row.configuration),
        )
        assert run.loss[-1] == pytest.approx(row.final_train_loss, rel=1e-12, abs=1e-14)
    assert np.isfinite(pair.spectral_radius_final).all()


def test_a_config_without_the_reference_is_refused():
    with pytest.raises(ValueError, match="reference 'RNN'"):
        remedies.Config(configurations=("LSTM",))
