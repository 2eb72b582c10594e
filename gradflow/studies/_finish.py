"""A study's last step, the same for every study: its PDF (title page with the claim and the
verdict sentence, metadata ``Subject: Verdict: <label>``) and the result every study returns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gradflow.report import write_pdf

if TYPE_CHECKING:
    import matplotlib.pyplot as plt

    from gradflow.studies._claim import Claim
    from gradflow.studies._protocol import Verdict


def finish_study(
    out: str,
    pages: Sequence[plt.Figure],
    *,
    study: str,
    config: Any,
    claim: Claim,
    decision: Verdict,
    title: str,
    keywords: Sequence[str],
    sentence: str | None = None,
    label: str | None = None,
    title_verdict: str | None = None,
    **results: Any,
) -> dict:
    """Write ``<out>/<study>.pdf`` and return the study's result.

    The title page states ``decision.sentence()`` (the verdict, its interval, network count and
    threshold); ``sentence`` is the study's longer summary (default: that same sentence). A study
    deciding several claims gives its combined ``label`` and ``title_verdict`` instead of
    ``decision``'s (``decision`` stays the headline claim's). The result holds ``verdict`` (the
    label), ``decision``, ``claim``, ``sentence`` and ``pdf``, then ``results``.

    Examples
    --------
    >>> import tempfile
    >>> import matplotlib.pyplot as plt
    >>> from gradflow.studies._finish import finish_study
    >>> from gradflow.studies._protocol import decide
    >>> from gradflow.studies.eigenvalue_rule import CLAIM
    >>> decision = decide((0.8, 0.95), 0.5, estimate=0.9, networks=20)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     result = finish_study(out, [plt.figure()], study="demo", config={"seed": 0}, claim=CLAIM,
    ...                           decision=decision, title="demo", keywords=["demo"], table=1)
    >>> result["verdict"], result["table"], result["pdf"].endswith("demo.pdf")
    ('holds', 1, True)
    """
    verdict = decision.sentence()
    label = decision.label if label is None else label
    pdf = os.path.join(out, f"{study}.pdf")
    write_pdf(
        pdf,
        pages,
        study=study,
        config=config,
        claim=claim.facts(),
        verdict=verdict if title_verdict is None else title_verdict,
        title=title,
        subject=f"Verdict: {label}",
        keywords=keywords,
    )
    return {
        "verdict": label,
        "decision": decision,
        "claim": claim,
        "sentence": verdict if sentence is None else sentence,
        "pdf": pdf,
        **results,
    }
