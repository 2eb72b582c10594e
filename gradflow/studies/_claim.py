"""What a study claims and where the claim comes from: `Claim` (the folklore sentence, the source
file in the project's ``shared/seeds/`` folder and an exact quote from it, the quantity measured,
the decision rule, its threshold and the side of it on which the claim holds, one of `SIDES`)
and `seeds_folder`, which finds that folder from this checkout. ``_protocol`` decides a claim
from the measured intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

SIDES = ("above", "below")


@dataclass(frozen=True)
class Claim:
    """A folklore claim, where it comes from, and how a study decides it.

    ``source`` is the file name in the project's ``shared/seeds/`` folder and ``source_title``
    its title and author; ``quote`` is copied from that file word for word (a test checks it).
    The claim holds when the measured ``quantity``'s interval lies entirely on the
    ``holds_when`` side ("above" or "below") of ``threshold``.
    """

    text: str
    source: str
    source_title: str
    quote: str
    quantity: str
    rule: str
    threshold: float
    holds_when: str = "above"

    def __post_init__(self):
        if self.holds_when not in SIDES:
            raise ValueError(f"holds_when = {self.holds_when!r} is not one of {', '.join(map(repr, SIDES))}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold = {self.threshold!r} must be a finite number")

    def facts(self) -> list[tuple[str, str]]:
        """(heading, text) pairs for a title page: what is claimed, by whom, and how it is decided."""
        return [
            ("Claim", self.text),
            ("Source", f"{self.source}: {self.source_title}"),
            ("Quote", f"\u201c{self.quote}\u201d"),
            ("Quantity", self.quantity),
            ("Rule", self.rule),
            ("Threshold", f"{self.threshold:g} ({self.holds_when})"),
        ]


def seeds_folder(start: str | Path | None = None) -> Path | None:
    """The ``shared/seeds`` folder beside this repository (or any of its parents), if reachable."""
    here = Path(start) if start is not None else Path(__file__).resolve().parents[1]
    for parent in (here, *here.parents):
        candidate = parent / "shared" / "seeds"
        if candidate.is_dir():
            return candidate
    return None
