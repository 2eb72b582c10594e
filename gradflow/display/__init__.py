"""Interactive display: the Jupyter explorer (ipywidgets) and its redraw.

The rich reprs themselves all go through ``gradflow.core._html``.
"""

from ._explore import Exploration, explore
from ._explore import update as explore_update

__all__ = ["Exploration", "explore", "explore_update"]
