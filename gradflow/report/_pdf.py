"""Atomic, reproducible PDF and CSV writers and the pages a study report is made of."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import platform
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.transforms import Bbox

from ..core._files import atomic_path
from ..core._version import read_version

PAGE = (8.27, 11.69)  # A4 portrait, inches
# Okabe & Ito's colour-blind-safe palette: every study draws its series from it, at most
# MAX_SERIES per axes (facet the rest), so no two series ever share a colour.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MAX_SERIES = len(PALETTE)


def palette(labels: Sequence[Any]) -> dict[Any, str]:
    """A colour per label from `PALETTE`, in order; ValueError for more than `MAX_SERIES` labels."""
    labels = list(dict.fromkeys(labels))
    if len(labels) > MAX_SERIES:
        raise ValueError(
            f"labels has {len(labels)} series; at most {MAX_SERIES} fit one axes (facet the rest)"
        )
    return dict(zip(labels, PALETTE, strict=False))


@contextlib.contextmanager
def paper_theme() -> Iterator[None]:
    """Seaborn's paper context on a white grid, restored on exit."""
    with (
        sns.axes_style("whitegrid"),
        sns.plotting_context("paper", font_scale=1.1),
        plt.rc_context({"figure.dpi": 100, "savefig.dpi": 150, "pdf.fonttype": 42}),
    ):
        yield


@contextlib.contextmanager
def fixed_jitter(seed: int) -> Iterator[None]:
    """Seed numpy's global generator inside the block and restore it after.

    seaborn's ``stripplot`` jitters points with the global generator, so without this the
    same data would give different PDF bytes on every run.
    """
    state = np.random.get_state()  # noqa: NPY002 - seaborn reads the legacy global generator
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def write_pdf(
    path: str | os.PathLike,
    pages: Sequence[plt.Figure],
    *,
    title: str,
    subject: str,
    keywords: Sequence[str],
    study: str | None = None,
    config: Any = None,
    source: str | None = None,
    reproduce: str | None = None,
    claim: Sequence[tuple[str, str]] = (),
    verdict: str | None = None,
) -> None:
    """Write ``pages`` to ``path`` with metadata, atomically.

    With ``study`` (and its ``config``, ``source``, ``reproduce``, ``claim`` and ``verdict``)
    a `title_page` comes first; its verdict is ``verdict``, else ``subject``.
    ``CreationDate`` comes from ``SOURCE_DATE_EPOCH`` when it is set (matplotlib
    honours it), so the same inputs give the same bytes.
    """
    __version__ = read_version()

    if study is not None:
        pages = [
            title_page(
                title,
                study,
                config,
                subject if verdict is None else verdict,
                source=source,
                reproduce=reproduce,
                claim=claim,
            ),
            *pages,
        ]
    meta = {
        "Title": title,
        "Subject": subject,
        "Keywords": ", ".join(keywords),
        "Creator": f"gradflow {__version__}",
        "Author": "gradflow",
    }
    import io

    from pypdf import PdfReader, PdfWriter

    buffer = io.BytesIO()
    with PdfPages(buffer, metadata=meta) as pdf:
        for fig in pages:
            pdf.savefig(fig)
    # A bookmark per page, named by the page's label (figure_page, table_page and title_page set it).
    writer = PdfWriter(clone_from=PdfReader(buffer))
    for index, fig in enumerate(pages):
        writer.add_outline_item(title=str(fig.get_label() or f"page {index + 1}"), page_number=index)
    writer.page_mode = "/UseOutlines"
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer.write(fh)
    for fig in pages:
        plt.close(fig)


LIBRARIES = ("gradflow", "numpy", "scipy", "autograd", "matplotlib", "seaborn", "pandas", "pypdf")


def library_versions() -> dict[str, str]:
    """Python's and every runtime library's version: what a report's numbers came from."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _config_rows(config: Any) -> pd.DataFrame:
    is_instance = dataclasses.is_dataclass(config) and not isinstance(config, type)
    fields = dataclasses.asdict(config) if is_instance else dict(config or {})

    def show(value):
        if isinstance(value, (tuple, list)):
            return ", ".join(show(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    return pd.DataFrame(
        {"parameter": list(fields), "value": [textwrap.shorten(show(v), 90) for v in fields.values()]}
    )


def title_page(
    title: str,
    study: str,
    config: Any,
    verdict: str,
    *,
    source: str | None = None,
    reproduce: str | None = None,
    claim: Sequence[tuple[str, str]] = (),
) -> plt.Figure:
    """The first page of a report: its question, the claim, verdict, full configuration and library versions.

    ``claim`` holds ``(heading, text)`` pairs (a study's ``Claim.facts()``: the claim, its
    source and quote, the quantity, rule and threshold), printed before the verdict.
    ``config`` is the study's config dataclass (or a mapping). ``source`` (default
    ``gradflow/studies/<study>.py``) says what was analysed and ``reproduce`` (default: the
    ``gradflow report`` command with the ``<study>_config.toml`` written beside the PDF)
    how to get the same numbers again.
    """
    fig = plt.figure(figsize=PAGE)
    fig.set_label("Title page: claim, verdict, configuration")
    question = title.removeprefix("gradflow: ")
    question = question[:1].upper() + question[1:]
    fig.text(0.07, 0.93, "gradflow report", fontsize=12, color="0.35", va="top")
    heading = wrap(question, 36)  # 22 pt bold: about 40 characters fit the A4 width
    fig.text(0.07, 0.89, heading, fontsize=22, weight="bold", va="top")
    y = 0.89 - 0.035 * (heading.count("\n") + 1) - 0.02
    seed = getattr(config, "seed", None) if not isinstance(config, dict) else config.get("seed")
    if reproduce is None:
        reproduce = (
            f"gradflow report {study} --config {study}_config.toml  (the configuration below, "
            f"written beside this PDF)"
        )
    # With a claim, "Source" names the claim's source file; the study's code is then "Code".
    code = source or f"gradflow/studies/{study}.py"
    facts = [
        ("Study", study),
        ("Code" if claim else "Source", code),
        *claim,
        ("Verdict", verdict.removeprefix("Verdict: ")),
        ("Seed", "-" if seed is None else str(seed)),
        ("Reproduce", reproduce),
    ]
    # A claim block makes the page longer: everything below it is set more tightly then.
    size, line, row = (9.5, 0.018, 0.019) if claim else (10, 0.022, 0.022)
    for head, body in facts:
        fig.text(0.07, y, head, fontsize=size + 0.5, weight="bold", va="top")
        body = wrap(body, 84)
        fig.text(0.25, y, body, fontsize=size, va="top")
        y -= line * (body.count("\n") + 1) + 0.008
    rows = _config_rows(config)
    y -= 0.015
    fig.text(0.07, y, "Configuration", fontsize=11.5, weight="bold", va="top")
    height = row * (len(rows) + 1)
    ax = fig.add_axes((0.07, y - 0.015 - height, 0.86, height))
    ax.axis("off")
    tab = ax.table(
        cellText=rows.astype(str).to_numpy(),
        colLabels=list(rows.columns),
        cellLoc="left",
        colWidths=(0.3, 0.7),
        bbox=Bbox.from_bounds(0, 0, 1, 1),
    )
    tab.auto_set_font_size(False)
    tab.set_fontsize(8.5)
    y -= height + 0.045
    fig.text(0.07, y, "Library versions", fontsize=11.5, weight="bold", va="top")
    versions = wrap(", ".join(f"{k} {v}" for k, v in library_versions().items()), 100)
    fig.text(0.07, y - 0.025, versions, fontsize=9, va="top")
    return fig


def _first_sentence(text: str, limit: int = 120) -> str:
    """The text up to its first full stop followed by a space (a bookmark's title), at most ``limit``
    characters."""
    head = text.split(". ", 1)[0].rstrip(".")
    return head if len(head) <= limit else head[: limit - 3].rstrip() + "..."


def wrap(text: str, width: int = 95) -> str:
    return "\n".join(textwrap.fill(p, width) if p else "" for p in text.split("\n"))


def table_page(
    title: str,
    paragraphs: Sequence[tuple[str, str]],
    table: pd.DataFrame | None = None,
    table_title: str = "",
    col_widths: Sequence[float] | None = None,
    *,
    more_tables: Sequence[tuple[str, pd.DataFrame, Sequence[float] | None]] = (),
) -> plt.Figure:
    """A text page: a title, headed paragraphs, then tables of numbers, each under its own title.

    ``table`` (with ``table_title`` and ``col_widths``) is the first table; ``more_tables``
    holds ``(title, frame, col_widths)`` of any that follow it.
    """
    fig = plt.figure(figsize=PAGE)
    fig.set_label(title)  # its bookmark
    fig.text(0.07, 0.95, title, fontsize=16, weight="bold", va="top")
    y = 0.90
    for head, body in paragraphs:
        if head:
            fig.text(0.07, y, head, fontsize=11.5, weight="bold", va="top")
            y -= 0.025
        body = wrap(body)
        fig.text(0.07, y, body, fontsize=9.5, va="top", family="DejaVu Sans")
        y -= 0.0165 * (body.count("\n") + 1) + 0.02
    tables = ([(table_title, table, col_widths)] if table is not None else []) + list(more_tables)
    for head, frame, widths in tables:
        fig.text(0.07, y, head, fontsize=11.5, weight="bold", va="top")
        # The table fills its axes (bbox), so every row is 0.021 of the page and the next
        # heading lands right under it.
        height = min(0.021 * (len(frame) + 1), y - 0.08)
        ax = fig.add_axes((0.07, y - 0.025 - height, 0.86, height))
        ax.axis("off")
        tab = ax.table(
            cellText=frame.astype(str).to_numpy(),
            colLabels=list(frame.columns),
            cellLoc="center",
            colWidths=widths,
            bbox=Bbox.from_bounds(0, 0, 1, 1),
        )
        tab.auto_set_font_size(False)
        tab.set_fontsize(8.5)
        y -= height + 0.06
    return fig


def figure_page(fig: plt.Figure, caption: str, bookmark: str | None = None) -> plt.Figure:
    """Put a caption (which should open with its finding and interval) under a figure.

    The axes move up when the caption needs more room than the figure left for it, so
    a long caption never covers tick labels or the x label. The page's PDF bookmark is
    ``bookmark``, else the caption's first sentence.
    """
    fig.set_label(bookmark or _first_sentence(caption))
    text = wrap(caption, 110)
    height = fig.get_figheight()
    top_of_caption = 0.045 + (text.count("\n") + 1) * 9 * 1.3 / 72 / height
    needed = top_of_caption + 0.65 / height  # tick labels and the x label: about 0.65 inch
    if fig.subplotpars.bottom < needed:
        fig.subplots_adjust(bottom=needed)
    fig.text(0.07, 0.045, text, fontsize=9, va="bottom")
    return fig
