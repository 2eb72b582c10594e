"""PDF and CSV output for the studies in ``gradflow/studies/`` and for ``gradflow analyze``.

The numeric core never imports matplotlib; this subpackage does, and only the
report writers and plots use it.
"""

from ..core._files import atomic_path, write_csv
from ._combine import combine_pdfs
from ._model import model_report, spectra
from ._pdf import (
    PALETTE,
    figure_page,
    fixed_jitter,
    library_versions,
    palette,
    paper_theme,
    table_page,
    title_page,
    write_pdf,
)
from ._rates import model_rates

__all__ = [
    "PALETTE",
    "atomic_path",
    "combine_pdfs",
    "figure_page",
    "fixed_jitter",
    "library_versions",
    "model_rates",
    "model_report",
    "palette",
    "paper_theme",
    "spectra",
    "table_page",
    "title_page",
    "write_csv",
    "write_pdf",
]
