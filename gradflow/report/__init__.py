"""PDF and CSV output for the studies in ``analyses/``.

The numeric core never imports matplotlib; this subpackage does, and only the
report writers and plots use it.
"""

from .._files import atomic_path, write_csv
from ._pdf import combine_pdfs, figure_page, paper_theme, table_page, write_pdf

__all__ = ["atomic_path", "combine_pdfs", "figure_page", "paper_theme", "table_page", "write_csv",
           "write_pdf"]
