"""Results that hold a table: the table's everyday reads, without being a DataFrame subclass.

A subclass of ``pandas.DataFrame`` loses itself (and its display) on every slice or copy;
a result that *holds* its frame keeps its own repr, ``plot`` and HTML, and hands out the frame.
"""

from __future__ import annotations

import warnings

import pandas as pd


class FrameView:
    """Mixin for a result whose table is its ``frame`` attribute.

    ``result[...]``, ``len(result)``, ``result.loc``, ``result.iloc``, ``result.columns``,
    ``result.to_frame()`` and a column as an attribute (``result.rate``) read the frame. Any
    other DataFrame attribute still works for one release with a `DeprecationWarning` naming
    ``result.frame.<name>``: such results were DataFrame subclasses before gradflow 0.3.0.

    Examples
    --------
    >>> import pandas as pd
    >>> class Table(FrameView):
    ...     def __init__(self, frame):
    ...         self.frame = frame
    >>> t = Table(pd.DataFrame({"rate": [0.5, -0.1]}))
    >>> len(t), float(t.rate.sum()), float(t.loc[1, "rate"]), t["rate"].tolist()
    (2, 0.4, -0.1, [0.5, -0.1])
    """

    frame: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.frame

    def __getitem__(self, key):
        return self.frame[key]

    def __len__(self) -> int:
        return len(self.frame)

    def __getattr__(self, name: str):
        frame = self.__dict__.get("frame")  # absent while unpickling
        # IPython probes _repr_*_ and _ipython_*_: those must be the result's own, never the frame's
        if frame is None or name.startswith("_") or not hasattr(frame, name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        if name not in frame.columns and name not in ("loc", "iloc", "columns"):
            warnings.warn(
                f"{type(self).__name__}.{name} is deprecated since gradflow 0.3.0 ("
                f"{type(self).__name__} is no longer a DataFrame); write .frame.{name} (the "
                f"old spelling stops working in 0.4.0)",
                DeprecationWarning,
                stacklevel=2,
            )
        return getattr(frame, name)
