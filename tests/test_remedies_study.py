import os

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from analyses import STUDIES, remedies


@pytest.fixture(scope="module")
def report(study_run):
    run = study_run("remedies")  # the tiny sizes of conftest.TINY
    return run.out, run.result


def test_study_writes_pdf_and_the_csv_behind_every_figure(report):
    out, result = report
    assert sorted(os.listdir(out)) == ["remedies.pdf", "remedies_checks.csv", "remedies_config.toml", "remedies_depth.csv",
                                       "remedies_memory_end.csv", "remedies_norms.csv", "remedies_runs.csv",
                                       "remedies_success.csv"]
    pdf = PdfReader(out / "remedies.pdf")
    assert len(pdf.pages) == 8
    assert pdf.metadata.subject == f"Verdict: {result['verdict']}"
    text = "\n".join(page.extract_text() for page in pdf.pages)
    for heading in ("Claim", "Verdict", "Configuration", "Methods", "Self-checks run with this report"):
        assert heading in text
    first = " ".join(pdf.pages[1].extract_text().split())
    assert " ".join(result["sentence"].split())[:200] in first
    assert pd.read_csv(out / "remedies_checks.csv").passed.all()
    assert "remedies" in STUDIES and set(result) >= {"verdict", "sentence", "pdf"}


def test_summary_table_numbers_are_the_csv_numbers(report):
    out, result = report
    runs = pd.read_csv(out / "remedies_runs.csv")
    success = pd.read_csv(out / "remedies_success.csv")
    ends = pd.read_csv(out / "remedies_memory_end.csv")
    first = PdfReader(out / "remedies.pdf").pages[1].extract_text()
    for row in result["table"].itertuples():
        sub = success[(success.task == row.task) & (success.configuration == row.configuration)]
        cells = dict(part.split(":") for part in row._3.split())
        assert {int(k): float(v) for k, v in cells.items()} == {
            int(t): float(f"{v:.2f}") for t, v in zip(sub["T"], sub.success_rate, strict=True)}
        end = ends[(ends.task == row.task) & (ends.configuration == row.configuration)].memory_end.iloc[0]
        assert row._4 == str(end)
        assert row._3 in first
    # The success rates are the runs' successes, and a success is a held-out loss below the threshold.
    one = runs[runs.layers == 1]
    assert (one.success == (one.eval_loss / one.baseline < remedies.QUICK.success)).all()
    rnn = one[(one.task == "adding") & (one.architecture == "RNN") & (one.remedy == "none")]
    got = success[(success.task == "adding") & (success.configuration == "RNN")].success_rate.to_numpy()
    assert np.allclose(rnn.groupby("T").success.mean().to_numpy(), got)


def _summary(rates: dict[str, list[float]], task="adding"):
    rows = []
    for conf, values in rates.items():
        arch, _, remedy = conf.partition(" + ")
        for T, v in zip((4, 8, 16), values, strict=True):
            rows.append(dict(task=task, configuration=conf, architecture=arch, remedy=remedy or "none",
                             family=remedies.REMEDIES[remedy or "none"], T=T, success_rate=v))
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("clip", "lstm", "word"), [
    ([1, 1, 1], [1, 1, 1], "holds only for clipping, gates"),
    ([1, 0, 0], [1, 1, 0], "does not hold: remedies help at short range only"),
    ([1, 0, 0], [1, 0, 0], "does not hold"),
])
def test_verdict_follows_the_success_rates(clip, lstm, word):
    base = {"RNN": [1, 0, 0], "GRU": [1, 0, 0], "TCN": [1, 1, 1], "self-attention": [1, 1, 1],
            "LSTM": lstm, "RNN + clip norm 1": clip, "RNN + L2 1e-3": [1, 0, 0]}
    summary = _summary(base)
    got, sentence, facts = remedies.verdict(summary, remedies.memory_end(summary), remedies.QUICK)
    assert got == word and sentence.startswith(word)
    assert facts["tasks"]["adding"]["architectures"]["TCN"]["memory_end"] == 16


def test_memory_end_is_the_last_length_before_the_first_failure():
    summary = _summary({"RNN": [1, 0.5, 0]})
    assert remedies.memory_end(summary).memory_end.tolist() == [8]
    assert remedies.memory_end(_summary({"RNN": [0, 1, 1]})).memory_end.tolist() == [0]
