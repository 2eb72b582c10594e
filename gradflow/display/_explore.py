"""An interactive explorer for JupyterLab: move a slider, see spectrum, gradient norms and verdict.

The work is `update`, a plain function of the slider values that returns the figure and the
verdict, so it is tested without a browser; `explore` only wires ipywidgets to it. A redraw
must stay interactive (the aim: under 0.5 s at N = 128, T = 200), so the predictors are the
cheap ones: the moment maps (seconds each) and the fixed-point search are left to `gradflow.predict`.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from ..cells._cells import Cell
from ..cells._linearisation import linearisation
from ..core import _html
from ..core._registry import cell_kind, is_vanilla
from ..core.inputs import gaussian
from ..measure._flow import GradientFlow, gradient_flow
from ..prediction._predict import METHODS
from ..prediction._results import Prediction
from ._latest import LatestOnly
from ._verdict import quick_prediction, verdict_html, verdict_lines, verdict_text

if TYPE_CHECKING:  # neither is imported by `import gradflow`
    import ipywidgets
    from matplotlib.figure import Figure

CELLS = ("rnn", "lstm", "gru")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


@dataclass(frozen=True, repr=False)
class Exploration:
    """One redraw of the explorer: the figure, the verdict and the objects behind them.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        Spectrum in the complex plane, gradient norm by lag with each predictor's line, verdict.
    verdict : str
        Predicted against measured regime, one line per predictor.
    cell : Cell
    flow : GradientFlow
        The measurement (`gradient_flow`).
    prediction : Prediction
        The cheap predictors of this explorer; ``method`` is the most accurate of them.
    eigenvalues : ndarray
        Of the matrix the eigenvalue rule reads: ``W_hh`` (vanilla), else the step Jacobian at
        the origin for the mean input.
    seconds : float
        Wall time of the update: build, measure, predict, lay out the figure (rasterising it,
        `png`, is extra: about 0.2 s).

    Examples
    --------
    For a vanilla cell the eigenvalue rule reads the recurrent matrix itself:

    >>> import numpy as np
    >>> import gradflow as gf
    >>> view = gf.explore_update(gain=0.5, hidden=16, seq_len=50)
    >>> view.cell.name, view.flow.regime, len(view.figure.axes)
    ('rnn-tanh', 'vanishing', 3)
    >>> W = view.cell.params["weight_hh_l0"]
    >>> bool(np.allclose(np.sort(np.abs(view.eigenvalues)), np.sort(np.abs(np.linalg.eigvals(W)))))
    True
    >>> view.verdict.splitlines()[1]
    'eigenvalue rule: vanishing (-0.6251) right'
    """

    figure: Figure
    verdict: str
    cell: Cell
    flow: GradientFlow
    prediction: Prediction
    eigenvalues: np.ndarray
    seconds: float

    def __repr__(self) -> str:
        return f"Exploration({self.verdict.splitlines()[0]}; {self.seconds:.2f} s)"

    def _repr_html_(self) -> str:
        return verdict_html(self.prediction, self.flow)


def build(
    gain: float,
    input_scale: float,
    hidden: int,
    seq_len: int,
    cell: str,
    activation: str,
    inputs: int,
    batch: int,
    seed: int,
) -> tuple[Cell, np.ndarray]:
    """The explorer's cell and inputs for one setting of the sliders."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
    make = cell_kind(cell).make
    model = (
        make(hidden, inputs, activation=activation, gain=gain, seed=seed)
        if is_vanilla(cell)
        else make(hidden, inputs, gain=gain, seed=seed)
    )
    return model, gaussian(seq_len, batch, inputs, scale=input_scale, seed=seed)


def update(
    gain: float = 1.0,
    input_scale: float = 1.0,
    hidden: int = 128,
    seq_len: int = 200,
    cell: str = "rnn",
    activation: str = "tanh",
    *,
    inputs: int = 8,
    batch: int = 1,
    seed: int = 0,
    figure: Figure | None = None,
) -> Exploration:
    """Build, measure, predict and draw one setting of the explorer's sliders.

    Parameters
    ----------
    gain, input_scale, hidden, seq_len, cell, activation
        The sliders and dropdowns of `explore` (``activation`` is ignored by gated cells).
    inputs, batch, seed
        Input width, sequences measured, seed of weights and inputs.
    figure : matplotlib.figure.Figure, optional
        Cleared and redrawn (what the widget does); a new figure by default.

    Returns
    -------
    Exploration

    Examples
    --------
    >>> import gradflow as gf
    >>> view = gf.explore_update(gain=0.5, hidden=16, seq_len=50)
    >>> print(view.verdict.splitlines()[0])
    measured: vanishing (-1.1507 nats/step)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    start = time.perf_counter()
    # One BLAS thread: small matrices, and a pool of threads on a busy machine made this 3x slower.
    with threadpool_limits(1):
        model, xs = build(gain, input_scale, hidden, seq_len, cell, activation, inputs, batch, seed)
        flow = gradient_flow(model, xs, seed=seed)
        # The matrix the eigenvalue rule reads, at the same mean input (gated: the step Jacobian there).
        A, what = linearisation(model, xs.reshape(-1, inputs).mean(axis=0))
        eigenvalues = scipy.linalg.eigvals(A)
        prediction = quick_prediction(model, xs, seed=seed, eigenvalues=(eigenvalues, what))
    if figure is None:
        # A fixed layout: constrained layout costs ~0.15 s per redraw on this figure.
        figure = Figure(figsize=(12, 3.8))
        FigureCanvasAgg(figure)  # a canvas of its own: no pyplot, so nothing is shown twice or kept
    else:
        figure.clear()
    draw(figure, model, flow, prediction, eigenvalues, what)
    return Exploration(
        figure,
        verdict_text(prediction, flow),
        model,
        flow,
        prediction,
        eigenvalues,
        time.perf_counter() - start,
    )


def draw(
    figure, model: Cell, flow: GradientFlow, prediction: Prediction, eigenvalues: np.ndarray, what: str
) -> None:
    """The explorer's three panels on ``figure``."""
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    from ..core._plot import STYLE, complex_plane, regime_color

    with sns.axes_style(STYLE):
        spectrum, norms, verdict = figure.subplots(1, 3, width_ratios=[1, 1.6, 1.1])
    for ax in (spectrum, norms):  # tick labels are most of the rasterising time: fewer of them
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(5))
    figure.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.85, wspace=0.28)
    complex_plane(spectrum, eigenvalues)
    spectrum.set_title(f"{what}\nmax |lambda| = {np.max(np.abs(eigenvalues)):.4g}", fontsize="medium")

    lags = flow.lags
    shown = np.where(np.isfinite(flow.profile), flow.profile, np.nan)
    norms.plot(lags, shown, color="k", linewidth=2, label=f"measured {flow.rate:+.3f}", gid="measured")
    # Predictors give rates, not levels: each line leaves from the measured fit's value at lag 0.
    anchor = flow.fit.intercept if np.isfinite(flow.fit.intercept) else shown[0]
    palette = dict(zip(METHODS, sns.color_palette("tab10", len(METHODS)), strict=True))
    for r in prediction.results:
        if np.isfinite(r.rate):
            color = palette.get(r.method, "0.5")
            style = ":" if r.regime is None else "--"  # an abstaining bound: dotted
            note = " (a bound; abstains)" if r.regime is None else ""
            norms.plot(
                lags,
                anchor + r.rate * lags,
                style,
                color=color,
                linewidth=1.3,
                label=f"predicted: {r.method} {r.rate:+.3f}{note}",
                gid="predicted",
            )
    finite = shown[np.isfinite(shown)]
    if finite.size:
        lo, hi = finite.min(), finite.max()
        margin = 0.25 * max(hi - lo, 1.0)
        norms.set_ylim(lo - margin, hi + margin)  # predicted lines may leave the measured range
    norms.set(xlabel="lag k (steps)", ylabel="ln ||dL/dh_{T-k}|| (nats)")
    norms.set_title(f"{model.name}: gradient norm by lag", fontsize="medium")
    # The corner the measured line leaves empty ("best" searches every line: slow).
    norms.legend(loc="upper left" if flow.regime == "exploding" else "lower left", fontsize="x-small")

    verdict.set_axis_off()
    verdict.set_title("verdict", fontsize="medium")
    verdict.text(
        0.0,
        0.95,
        f"measured: {flow.regime}\n{flow.rate:+.4f} nats/step",
        va="top",
        fontsize="large",
        color=regime_color(flow.regime),
        weight="bold",
        transform=verdict.transAxes,
        gid="verdict",
    )
    for i, (r, right) in enumerate(verdict_lines(prediction, flow)):
        verdict.text(
            0.0,
            0.7 - 0.11 * i,
            f"{'✓' if right else '✗'} {r.method}: {r.regime or 'abstains'}",
            va="top",
            color=regime_color(r.regime),
            transform=verdict.transAxes,
            gid="verdict",
        )


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes (what the widget shows)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()


def error_html(exc: BaseException, values: dict) -> str:
    """The card the explorer shows in place of its figure when a setting cannot be drawn."""
    setting = ", ".join(f"{k}={v}" for k, v in values.items())
    return _html.card(
        "No figure for this setting",
        None,
        [("error", type(exc).__name__), ("reason", str(exc)), ("setting", setting)],
        regime=None,
        badge_text="error",
        note="the figure and verdict are shown again for the next setting that works",
    )


def explore(
    gain: float = 1.0,
    input_scale: float = 1.0,
    hidden: int = 128,
    seq_len: int = 200,
    cell: str = "rnn",
    activation: str = "tanh",
) -> ipywidgets.VBox:
    """Interactive explorer (ipywidgets): sliders and dropdowns redraw spectrum, norms and verdict.

    The recurrent matrix's spectrum with the unit circle, the measured gradient norm by lag
    (`gradient_flow`) with each cheap predictor's line, and the predicted-against-measured
    verdict. Each redraw is `explore_update` plus rasterising the figure: at N = 128, T = 200
    about 0.3 s of CPU for a vanilla RNN or a GRU, 0.5 s for an LSTM (whose state is 2N).
    While a redraw runs the controls are disabled and the status says so; slider moves made
    meanwhile are merged into one redraw of the latest setting. A setting that cannot be drawn
    (the state overflows, say) shows the error and its reason in place of the figure.
    Needs ipywidgets: ``pip install 'gradflow[jupyter]'``.

    Returns
    -------
    ipywidgets.VBox
        Display it (the last expression of a notebook cell). Its children: the controls, the
        figure (a PNG image and, in its place when a setting fails, an HTML error card), and a
        row with the verdict and the status line.

    Examples
    --------
    >>> import gradflow as gf
    >>> box = gf.explore(hidden=16, seq_len=50)   # in a notebook: the last line of a cell
    >>> image, error = box.children[1].children
    >>> bytes(image.value[1:4]), error.layout.display
    (b'PNG', 'none')
    """
    try:
        import ipywidgets as widgets
    except ImportError as exc:
        raise ImportError(
            "gf.explore needs ipywidgets, which gradflow does not install by default: "
            "pip install 'gradflow[jupyter]' (or pip install ipywidgets)"
        ) from exc
    knobs = dict(
        gain=widgets.FloatSlider(value=gain, min=0.05, max=3.0, step=0.05, description="gain"),
        input_scale=widgets.FloatSlider(
            value=input_scale, min=0.0, max=3.0, step=0.1, description="input scale"
        ),
        hidden=widgets.IntSlider(value=hidden, min=8, max=256, step=8, description="hidden N"),
        seq_len=widgets.IntSlider(value=seq_len, min=20, max=1000, step=10, description="length T"),
        cell=widgets.Dropdown(options=CELLS, value=cell, description="cell"),
        activation=widgets.Dropdown(options=ACTIVATIONS, value=activation, description="activation"),
    )
    for knob in knobs.values():
        knob.continuous_update = False  # redraw when a slider is released, not on every pixel
    image = widgets.Image(format="png")
    error = widgets.HTML(layout=widgets.Layout(display="none"))
    verdict = widgets.HTML()
    status = widgets.Label()
    figure = None  # made by the first redraw, then reused (with its canvas)

    def draw_now(values: dict) -> None:
        nonlocal figure
        for knob in knobs.values():  # no new events while busy: the controls say so
            knob.disabled = True
        status.value = "⏳ computing…"
        start = time.perf_counter()
        try:
            view = update(**values, figure=figure)
            image.value = png(view.figure)
        except Exception as exc:  # shown where the figure was: in a callback it would reach only the log
            error.value = error_html(exc, values)
            image.layout.display, error.layout.display = "none", None
            verdict.value = ""
            status.value = f"error after {time.perf_counter() - start:.2f} s: {type(exc).__name__}"
        else:
            figure = view.figure
            image.layout.display, error.layout.display = None, "none"
            verdict.value = view._repr_html_()
            status.value = f"redrawn in {time.perf_counter() - start:.2f} s"
        finally:
            for knob in knobs.values():
                knob.disabled = False
            knobs["activation"].disabled = not is_vanilla(knobs["cell"].value)

    redraws = LatestOnly(draw_now)

    def on_change(_=None):
        status.value = "⏳ waiting…"
        redraws.request({name: knob.value for name, knob in knobs.items()})

    for knob in knobs.values():
        knob.observe(on_change, names="value")
    draw_now({name: knob.value for name, knob in knobs.items()})
    controls = widgets.HBox(
        [
            widgets.VBox([knobs[k] for k in ("gain", "input_scale", "hidden")]),
            widgets.VBox([knobs[k] for k in ("seq_len", "cell", "activation")]),
        ]
    )
    box = widgets.VBox([controls, widgets.Box([image, error]), widgets.HBox([verdict, status])])
    box.redraws = redraws  # for tests and the curious: how many superseded redraws were dropped
    return box
