"""The combined report: an outline per study and per page, and a contents page that cuts nothing."""

import matplotlib.pyplot as plt
import pytest
from pypdf import PdfReader

from gradflow.report import PALETTE, combine_pdfs, figure_page, palette, table_page, write_pdf


def _study(path, name, figures):
    pages = [table_page(f"{name} summary", [("Verdict", "holds")])]
    for i in range(figures):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [i, i + 1])
        pages.append(figure_page(fig, f"Finding {i} of {name}: rate -0.1 [-0.12, -0.08]. More detail."))
    write_pdf(
        path,
        pages,
        title=f"gradflow: {name}",
        subject="Verdict: holds",
        keywords=["x"],
        study=name,
        config={"seed": 0},
        claim=[("Claim", f"the claim of {name}"), ("Source", "001_x.txt: a title")],
        verdict="holds",
    )


def _outline(reader):
    def walk(items, depth):
        for item in items:
            if isinstance(item, list):
                yield from walk(item, depth + 1)
            else:
                yield depth, item.title, reader.get_destination_page_number(item)

    return list(walk(reader.outline, 0))


def test_every_page_of_a_study_has_a_bookmark_named_by_its_content(tmp_path):
    _study(tmp_path / "a.pdf", "alpha", 2)
    reader = PdfReader(tmp_path / "a.pdf")
    assert _outline(reader) == [
        (0, "Title page: claim, verdict, configuration", 0),
        (0, "alpha summary", 1),
        (0, "Finding 0 of alpha: rate -0.1 [-0.12, -0.08]", 2),
        (0, "Finding 1 of alpha: rate -0.1 [-0.12, -0.08]", 3),
    ]
    title = " ".join(reader.pages[0].extract_text().split())
    assert "the claim of alpha" in title and "001_x.txt: a title" in title
    assert title.index("the claim of alpha") < title.index("Verdict")


def test_combined_report_has_study_bookmarks_and_full_contents(tmp_path):
    long_claim = "a claim long enough to need wrapping " * 8 + "END-OF-CLAIM"
    parts = []
    for name, figures in (("alpha", 1), ("beta", 2)):
        _study(tmp_path / f"{name}.pdf", name, figures)
        parts.append(
            dict(
                name=name,
                verdict=f"holds only when {name} is large",
                pdf=tmp_path / f"{name}.pdf",
                claim=long_claim,
                source="001_c88bba1d8530f5f5.txt",
                interval="0.8 [0.7, 0.9], 20 networks",
            )
        )
    pages = combine_pdfs(tmp_path / "all.pdf", parts, title="gradflow: test")
    reader = PdfReader(tmp_path / "all.pdf")
    assert pages == len(reader.pages) == 1 + 3 + 4
    outline = _outline(reader)
    top = [(title, page) for depth, title, page in outline if depth == 0]
    assert top == [
        ("Contents", 0),
        ("alpha: holds only when alpha is large", 1),
        ("beta: holds only when beta is large", 4),
    ]
    assert (1, "Finding 1 of beta: rate -0.1 [-0.12, -0.08]", 7) in outline
    contents = " ".join(reader.pages[0].extract_text().split())
    assert contents.count("END-OF-CLAIM") == 2  # nothing cut off
    assert "alpha (page 2)" in contents and "beta (page 5)" in contents
    assert "holds only when beta is large" in contents and "0.8 [0.7, 0.9], 20 networks" in contents


def test_contents_spill_onto_more_pages_and_page_numbers_follow(tmp_path):
    _study(tmp_path / "a.pdf", "alpha", 0)
    parts = [
        dict(name=f"s{i}", verdict="holds", pdf=tmp_path / "a.pdf", claim="word " * 120) for i in range(12)
    ]
    pages = combine_pdfs(tmp_path / "all.pdf", parts, title="gradflow: test")
    reader = PdfReader(tmp_path / "all.pdf")
    contents = len(reader.pages) - 12 * 2
    assert contents >= 2 and pages == len(reader.pages)
    text = " ".join(" ".join(reader.pages[i].extract_text() for i in range(contents)).split())
    assert f"s0 (page {contents + 1})" in text and f"s11 (page {contents + 23})" in text


def test_palette_is_eight_distinct_colours_and_refuses_a_ninth_series():
    assert len(set(PALETTE)) == 8
    assert list(palette(["a", "b", "a"])) == ["a", "b"]
    with pytest.raises(ValueError, match="labels has 9 series"):
        palette(range(9))
