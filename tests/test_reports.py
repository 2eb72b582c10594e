"""What every study's report must have: a title page, metadata, pages that render, the CSVs behind
it, a config file that reproduces it, and the same bytes for the same seed."""

import os

import numpy as np
import pandas as pd
import pypdfium2
import pytest
from conftest import TINY
from pypdf import PdfReader

from gradflow.report import library_versions
from gradflow.studies import STUDIES
from gradflow.studies._cli import config_from_mapping, read_config_file, study_section

# Studies whose report quotes wall-clock measurements: their bytes cannot repeat; the CSV named
# here holds what they count rather than time, which must.
TIMED = {"cost": "intensity", "recurrent_revival": "networks"}


def test_every_study_has_tiny_sizes_in_the_tests():
    assert set(TINY) == set(STUDIES)


@pytest.mark.parametrize("name", STUDIES)
@pytest.mark.slow
def test_report_has_title_page_metadata_and_the_csvs(name, study_run):
    run = study_run(name)
    pdf = PdfReader(run.out / f"{name}.pdf")
    meta = pdf.metadata
    assert meta.title.startswith("gradflow: ") and meta.subject == f"Verdict: {run.result['verdict']}"
    assert meta.get("/Keywords") and meta.creator.startswith("gradflow ")
    title = " ".join(pdf.pages[0].extract_text().split())  # a long verdict wraps across lines
    for needed in (
        "gradflow report",
        name,
        "Configuration",
        "Library versions",
        "Reproduce",
        run.result["verdict"],
    ):
        assert needed in title
    versions = library_versions()
    assert versions["numpy"] in title and versions["python"] in title
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert "Verdict" in text and "Methods" in text
    files = os.listdir(run.out)
    assert not [f for f in files if f.startswith(".tmp-")]  # nothing half-written left
    csvs = [f for f in files if f.endswith(".csv")]
    assert csvs and all(f.startswith(f"{name}_") for f in csvs)
    for f in csvs:
        assert len(pd.read_csv(run.out / f)) > 0


@pytest.mark.parametrize("name", STUDIES)
@pytest.mark.slow
def test_the_written_config_reproduces_the_run(name, study_run):
    run = study_run(name)
    module = __import__(f"gradflow.studies.{name}", fromlist=["QUICK"])
    document = read_config_file(run.out / f"{name}_config.toml")
    again = config_from_mapping(name, module.QUICK, study_section(name, document, STUDIES))
    assert again == run.result["config"]
    assert f"seed = {run.result['config'].seed}" in (run.out / f"{name}_config.toml").read_text()


@pytest.mark.parametrize("name", STUDIES)
@pytest.mark.slow
def test_every_page_renders_to_a_non_blank_image(name, study_run):
    document = pypdfium2.PdfDocument(str(study_run(name).out / f"{name}.pdf"))
    try:
        for index in range(len(document)):
            image = document[index].render(scale=0.5).to_numpy()
            ink = np.mean(image[..., :3].min(axis=-1) < 200)  # share of pixels that are not paper
            assert ink > 0.003, f"page {index + 1} of {name}.pdf is blank ({ink:.4%} ink)"
    finally:
        document.close()


@pytest.mark.parametrize("name", STUDIES)
@pytest.mark.slow
def test_same_seed_and_date_give_identical_bytes(name, study_run):
    run = study_run(name)
    a, b = run.out, run.again
    if name in TIMED:  # the timings differ; everything counted rather than timed must not
        counted = f"{name}_{TIMED[name]}.csv"
        assert pd.read_csv(a / counted).equals(pd.read_csv(b / counted))
        return
    assert (a / f"{name}.pdf").read_bytes() == (b / f"{name}.pdf").read_bytes()
    assert (a / f"{name}_config.toml").read_bytes() == (b / f"{name}_config.toml").read_bytes()
    for f in os.listdir(a):
        if f.endswith(".csv"):
            # Multi-threaded BLAS may round differently run to run: a rate of 1e-15 can come back
            # as 7e-16. The PDF quotes 4 digits and must not move at all (checked above).
            x, y = pd.read_csv(a / f), pd.read_csv(b / f)
            assert list(x.columns) == list(y.columns), f
            timed = [c for c in x.columns if c == "seconds" or c.endswith("_s")]  # wall-clock columns
            x, y = x.drop(columns=timed), y.drop(columns=timed)
            numeric = x.select_dtypes("number").columns
            pd.testing.assert_frame_equal(x.drop(columns=numeric), y.drop(columns=numeric))
            np.testing.assert_allclose(
                x[numeric].to_numpy(float), y[numeric].to_numpy(float), rtol=1e-9, atol=1e-12, err_msg=f
            )


def test_the_readme_config_example_is_accepted():
    import importlib
    import re
    from pathlib import Path

    from gradflow.studies._cli import tomllib

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", readme, re.S).group(1)
    document = tomllib.loads(block)
    for name in document:
        module = importlib.import_module(f"gradflow.studies.{name}")
        config = config_from_mapping(name, module.QUICK, study_section(name, document, STUDIES))
        assert all(
            getattr(config, k) == (tuple(v) if isinstance(v, list) else v) for k, v in document[name].items()
        )
