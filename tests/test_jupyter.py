"""JupyterLab: every result's HTML is valid, escaped and small; plots draw; the explorer redraws."""

import html
import os
import sys
from html.parser import HTMLParser

import matplotlib
import numpy as np
import pandas as pd
import pytest

import gradflow as gf
from gradflow.core import _html
from gradflow.display import _explore, _latest

EVIL = "<script>alert('x')</script>&"
VOID = {"br", "hr", "img", "meta", "input", "col", "wbr", "link"}


class Balanced(HTMLParser):
    """Fails on any end tag that does not close the innermost open element."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(page: str) -> str:
    """Assert the page is balanced, small and script-free; return its visible text."""
    parser = Balanced()
    parser.feed(page)
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    assert len(page.encode()) < 100_000
    assert "<script" not in page.lower()
    return "".join(parser.text)


@pytest.fixture(scope="module")
def results():
    cell = gf.rnn(16, 2, gain=1.5, seed=0, name=EVIL)
    xs = gf.inputs.gaussian(120, 2, 2)
    flow = gf.gradient_flow(cell, xs)
    prediction = gf.predict(cell, xs, fixed_point_starts=1)
    model = gf.tcn(4, 2, 3, name=EVIL)
    sens = gf.sensitivity(model, gf.inputs.gaussian(24, 2, 4))
    evil_map = gf.Cell(lambda p, h, x: 0.5 * h, {}, 2, 1, name=EVIL)
    frame = gf.sweep.run(
        {"hidden": 8, "gain": [0.5, 2.0], "seq_len": 40, "predictors": "mean-field"},
        seeds=[0],
        cache=False,
        progress=False,
    )
    return {
        "Cell": cell,
        "Cell (lstm)": gf.lstm(4, 2, name=EVIL),
        "GradientFlow": flow,
        "Prediction": prediction,
        "Comparison": gf.compare(prediction, flow),
        "LyapunovSpectrum": gf.lyapunov_spectrum(cell, xs[:40], k=4, warmup=5),
        "SingularValues": gf.finite_time_singular_values(gf.rnn(4, 2, name=EVIL), xs[:10], k=2),
        "SequenceModel": model,
        "PathLengths": sens.paths,
        "Sensitivity": sens,
        "SweepSummary": gf.sweep.summary(frame),
        "LyapunovSpectrum (map)": gf.lyapunov_spectrum(evil_map, gf.inputs.constant(20, 1, 1, 0.0), warmup=2),
    }


NAMED = [
    "Cell",
    "Cell (lstm)",
    "GradientFlow",
    "Prediction",
    "Comparison",
    "LyapunovSpectrum",
    "SingularValues",
    "SequenceModel",
    "PathLengths",
    "Sensitivity",
    "LyapunovSpectrum (map)",
]


@pytest.mark.parametrize("kind", [*NAMED, "SweepSummary"])
def test_html_is_valid_small_and_escaped(results, kind):
    obj = results[kind]
    page = obj._repr_html_()
    text = check_html(page)
    if kind in NAMED:  # the user's name shows as text, never as markup
        assert EVIL in text and html.escape(EVIL) in page
    assert "\n" not in repr(obj)
    assert len(repr(obj)) < 2000


def test_html_shows_regime_badge_units_and_figure(results):
    flow = results["GradientFlow"]
    page = flow._repr_html_()
    assert _html.REGIME_COLORS[flow.regime] in page and "nats/step" in page and "<svg" in page
    # the numbers are the object's own
    assert f"{flow.rate:+.4g}" in page and str(flow.memory_horizon) in page
    spectrum = results["Cell"]._repr_html_()
    assert spectrum.count("<circle") == 16 and "<ellipse" in spectrum  # N eigenvalues, unit circle
    comparison = results["Comparison"]._repr_html_()
    assert comparison.count("<tr") == len(results["Comparison"]) + 1


def _points(ax) -> np.ndarray:
    """The offsets of the axes' one scatter (eigenvalues, predicted rates)."""
    scatters = [c for c in ax.collections if len(c.get_offsets())]
    assert len(scatters) == 1, scatters
    return np.asarray(scatters[0].get_offsets())


def _reachable(paths) -> tuple[np.ndarray, np.ndarray]:
    """Lag and hops of the positions that reach the output, by increasing lag (seaborn sorts x)."""
    order = np.argsort(paths.lags)
    lags, hops = paths.lags[order], paths.hops[order]
    return lags[np.isfinite(hops)], hops[np.isfinite(hops)]


RESULT_KINDS = [
    "Cell",
    "Cell (lstm)",
    "GradientFlow",
    "Prediction",
    "Comparison",
    "LyapunovSpectrum",
    "SingularValues",
    "SequenceModel",
    "PathLengths",
    "Sensitivity",
    "SweepSummary",
    "LyapunovSpectrum (map)",
]


@pytest.mark.parametrize("kind", RESULT_KINDS)
def test_every_result_plots_its_own_data(results, kind):
    # The artists carry the object's numbers: a plot of anything else fails.
    obj = results[kind]
    ax = obj.plot(seq_len=24) if kind == "SequenceModel" else obj.plot()
    if kind.startswith("Cell"):
        ev = obj.eigenvalues()[0]
        points = _points(ax)
        np.testing.assert_allclose(np.sort_complex(points[:, 0] + 1j * points[:, 1]), np.sort_complex(ev))
        assert any(line.get_gid() == "unit-circle" for line in ax.lines)
    elif kind == "GradientFlow":
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), obj.lags)
        np.testing.assert_allclose(ax.lines[0].get_ydata(), obj.profile)
        lo, hi = obj.fit.lag_range
        np.testing.assert_allclose(ax.lines[1].get_ydata(), obj.fit.intercept + obj.rate * np.array([lo, hi]))
    elif kind in ("Prediction", "Comparison"):
        frame = obj.to_frame() if kind == "Prediction" else obj
        finite = np.isfinite(frame.rate.to_numpy())
        np.testing.assert_allclose(_points(ax)[:, 0], frame.rate[finite])
        np.testing.assert_array_equal(_points(ax)[:, 1], np.flatnonzero(finite))
        assert [t.get_text().removesuffix(" *") for t in ax.get_yticklabels()] == list(frame.method)
        if kind == "Comparison":  # the measured rate is the dashed vertical line
            assert ax.lines[0].get_linestyle() == "--"
            np.testing.assert_allclose(ax.lines[0].get_xdata(), obj.measured[1])
    elif kind.startswith("LyapunovSpectrum"):
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(1, len(obj.exponents) + 1))
        np.testing.assert_allclose(ax.lines[0].get_ydata(), obj.exponents)
    elif kind == "SingularValues":
        np.testing.assert_allclose(ax.lines[0].get_ydata(), obj.rates)
        for line, row in zip(ax.lines[1 : 1 + len(obj.log_values)], obj.log_values, strict=True):
            np.testing.assert_allclose(line.get_ydata(), row / obj.steps)
    elif kind in ("SequenceModel", "PathLengths"):
        paths = gf.path_lengths(obj, 24) if kind == "SequenceModel" else obj
        lags, hops = _reachable(paths)
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), lags)
        np.testing.assert_array_equal(ax.lines[0].get_ydata(), hops)
    elif kind == "Sensitivity":  # by lag, the mean over the samples whose gradient is not exactly 0
        finite = np.isfinite(obj.log_norms)
        alive = finite.any(axis=1)
        means = np.where(finite, obj.log_norms, 0.0).sum(axis=1)[alive] / finite.sum(axis=1)[alive]
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), obj.lags[alive])
        np.testing.assert_allclose(ax.lines[0].get_ydata(), means)
    elif kind == "SweepSummary":  # one seed a gain: the line is the measured rates
        frame = obj.frame.sort_values("gain")
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), frame.gain)
        np.testing.assert_allclose(ax.lines[0].get_ydata(), frame.measured_rate)
    matplotlib.pyplot.close("all")


def test_the_plot_test_covers_every_result(results):
    assert sorted(RESULT_KINDS) == sorted(results)


def test_comparison_holds_its_frame_and_keeps_its_display(results):
    table = results["Comparison"]
    assert isinstance(table, gf.Comparison) and isinstance(table.frame, pd.DataFrame)
    assert table.to_frame() is table.frame and len(table) == len(table.frame) == len(
        results["Prediction"].results
    )
    trusted = table[table.trusted]  # a slice is the frame's; the Comparison keeps its display
    assert type(trusted) is pd.DataFrame and len(trusted) == 1 and "<svg" in table._repr_html_()
    assert table.loc[table.trusted, "method"].iloc[0] == results["Prediction"].method
    assert table.measured == (results["GradientFlow"].regime, results["GradientFlow"].rate)


def test_sweep_summary_reads_the_frame_without_changing_it(results):
    summary = results["SweepSummary"]
    frame = summary.frame
    assert summary.varied == ["gain"] and summary.counts == frame.attrs["sweep"]
    assert sum(summary.regimes.values()) == len(frame)
    assert summary.rate_errors["mean-field"] == pytest.approx(
        np.mean(np.abs(frame.rate_mean_field - frame.measured_rate))
    )
    with pytest.raises(ValueError, match="takes the DataFrame"):
        gf.sweep.summary([1, 2])


def test_chart_draws_gaps_and_stays_small():
    svg = _html.chart(
        [_html.Series(np.arange(10_000), np.r_[np.zeros(5000), np.full(5000, -np.inf)])],
        xlabel="<x>",
        ylabel="y",
    )
    check_html(svg)
    assert len(svg) < 20_000 and "&lt;x&gt;" in svg


# ------------------------------------------------------------------ the explorer


def test_explorer_update_draws_spectrum_predictions_and_verdict():
    view = gf.explore_update(gain=1.5, input_scale=1.0, hidden=24, seq_len=80, cell="rnn")
    spectrum, norms, verdict = view.figure.axes
    assert any(line.get_gid() == "unit-circle" for line in spectrum.lines)
    points = [c for c in spectrum.collections if c.get_gid() == "eigenvalues"]
    assert len(points) == 1 and len(points[0].get_offsets()) == 24
    predicted = [line for line in norms.lines if line.get_label().startswith("predicted: ")]
    assert len(predicted) == len(view.prediction.results) == 5  # one line per predictor
    labels = [line.get_label().removeprefix("predicted: ") for line in predicted]
    assert {label.split(" (a bound")[0].rsplit(" ", 1)[0] for label in labels} == {
        r.method for r in view.prediction.results
    }
    abstaining = {r.method for r in view.prediction.results if r.regime is None}
    assert {
        label.split(" +")[0].split(" -")[0] for label in labels if "(a bound; abstains)" in label
    } == abstaining
    texts = " ".join(t.get_text() for t in verdict.texts)
    assert f"measured: {view.flow.regime}" in texts and "eigenvalue rule" in texts
    assert view.verdict.startswith(f"measured: {view.flow.regime} ({view.flow.rate:+.4f} nats/step)")
    # the measured line is the measurement
    measured = next(line for line in norms.lines if line.get_gid() == "measured")
    np.testing.assert_allclose(measured.get_ydata(), view.flow.profile)
    check_html(view._repr_html_())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_explorer_update_gated_cells_and_figure_reuse(cell):
    first = gf.explore_update(hidden=8, seq_len=40, cell=cell)
    again = gf.explore_update(gain=0.5, hidden=8, seq_len=40, cell=cell, figure=first.figure)
    assert again.figure is first.figure and len(again.figure.axes) == 3
    points = [c for c in again.figure.axes[0].collections if c.get_gid() == "eigenvalues"]
    assert len(points[0].get_offsets()) == again.cell.state_size
    assert "gated mean-field" in again.verdict
    assert _explore.png(again.figure).startswith(b"\x89PNG")


def test_explorer_update_at_n128_t200_runs_only_the_cheap_predictors():
    # What keeps a redraw interactive (0.1-0.3 s measured; speed is for benchmarks, not unit tests):
    # the predictors of one forward run only, never predict's moment maps or fixed-point search.
    view = _explore.update(hidden=128, seq_len=200)
    assert [r.method for r in view.prediction.results] == [
        "eigenvalue rule",
        "pascanu bound",
        "mean-field",
        "local gain",
        "averaged jacobian",
    ]
    assert view.prediction.method == "local gain"
    assert view.flow.steps == 200 and view.cell.state_size == 128
    # the spectrum drawn is W_hh's (a vanilla cell), all 128 eigenvalues
    W = view.cell.params["weight_hh_l0"]
    np.testing.assert_allclose(
        np.sort_complex(view.eigenvalues), np.sort_complex(np.linalg.eigvals(W)), rtol=1e-10, atol=1e-12
    )
    points = [c for c in view.figure.axes[0].collections if c.get_gid() == "eigenvalues"]
    assert len(points[0].get_offsets()) == 128
    assert 0.0 < view.seconds < float("inf")  # the redraw reports its own wall time


def test_explore_without_ipywidgets_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # makes `import ipywidgets` fail
    with pytest.raises(ImportError, match=r"pip install 'gradflow\[jupyter\]'"):
        gf.explore()


def test_explore_builds_widgets():
    pytest.importorskip("ipywidgets")
    box = gf.explore(hidden=8, seq_len=30)
    controls, (image, error), (verdict, status) = (
        box.children[0],
        box.children[1].children,
        box.children[2].children,
    )
    assert bytes(image.value).startswith(b"\x89PNG") and "measured" in verdict.value
    assert error.layout.display == "none" and status.value.startswith("redrawn in")
    gain = controls.children[0].children[0]
    before = bytes(image.value)
    gain.value = 2.5  # a slider move redraws
    assert bytes(image.value) != before
    assert not any(knob.disabled for column in controls.children for knob in column.children[:3])
    matplotlib.pyplot.close("all")


def test_explorer_shows_the_error_in_place_of_the_figure_and_recovers():
    pytest.importorskip("ipywidgets")
    box = gf.explore(gain=3.0, hidden=16, seq_len=200, activation="relu")
    controls, (image, error), (verdict, status) = (
        box.children[0],
        box.children[1].children,
        box.children[2].children,
    )
    length = controls.children[1].children[0]
    length.value = 1000  # the ReLU state overflows float64 at step ~800
    assert image.layout.display == "none" and error.layout.display is None
    assert "FloatingPointError" in error.value and "became non-finite" in error.value
    assert "seq_len=1000" in error.value and verdict.value == "" and status.value.startswith("error after")
    check_html(error.value)
    length.value = 100  # a setting that works brings the figure back
    assert image.layout.display is None and error.layout.display == "none" and "measured" in verdict.value
    matplotlib.pyplot.close("all")


def test_superseded_redraws_are_dropped():
    runs, waiting = [], []
    latest = _latest.LatestOnly(runs.append, schedule=waiting.append)  # the loop runs them later
    for gain in (0.5, 1.0, 1.5):
        latest.request({"gain": gain})
    for callback in waiting:
        callback()
    assert runs == [{"gain": 1.5}] and latest.dropped == 2
    latest.request({"gain": 2.0})
    waiting[-1]()
    assert runs[-1] == {"gain": 2.0}


def test_explorer_merges_queued_slider_moves_into_one_redraw(monkeypatch):
    pytest.importorskip("ipywidgets")
    waiting, calls = [], []
    monkeypatch.setattr(_latest, "_soon", waiting.append)  # a kernel: callbacks run on its loop
    real = _explore.update

    busy = []

    def counted(**kwargs):
        calls.append(kwargs)
        if len(calls) > 1:  # while computing: the controls are off and the status says so
            busy.append((status.value, all(k.disabled for col in controls.children for k in col.children)))
        return real(**kwargs)

    monkeypatch.setattr(_explore, "update", counted)
    box = gf.explore(hidden=8, seq_len=30)
    controls, status = box.children[0], box.children[2].children[1]
    gain = controls.children[0].children[0]
    for value in (0.5, 1.0, 1.5, 2.0):  # four slider releases queued behind a slow redraw
        gain.value = value
    assert len(calls) == 1 and status.value == "⏳ waiting…"
    for callback in waiting:
        callback()
    assert len(calls) == 2 and calls[-1]["gain"] == 2.0 and box.redraws.dropped == 3
    assert busy == [("⏳ computing…", True)] and not gain.disabled
    matplotlib.pyplot.close("all")


def test_importing_gradflow_does_not_import_ipywidgets():
    import subprocess

    code = "import sys, gradflow; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_infinite_rate_leaves_no_nan_in_the_charts():
    cell = gf.lstm(4, 2, seed=0)
    xs = gf.inputs.gaussian(40, 2, 2, scale=1e300)  # saturated gates: the gradient is exactly 0
    with np.errstate(all="ignore"):
        table = gf.compare(gf.predict(cell, xs), gf.gradient_flow(cell, xs))
    # an exactly-zero gradient has no rate (NaN, regime None), never a -inf "vanishing" one;
    # the predictors' rates can still be -inf
    assert np.isnan(table.measured_rate.iloc[0])
    assert "nan" not in table._repr_html_().lower()


# ------------------------------------------------------------------ themes and labels


@pytest.mark.parametrize("kind", [*NAMED, "SweepSummary"])
def test_every_colour_follows_the_jupyterlab_theme(results, kind):
    import re

    page = results[kind]._repr_html_()
    # SVG presentation attributes cannot take var(): no colour may be set outside a style
    assert not re.search(r'\s(fill|stroke|color)="#', page), kind
    for text in re.findall(r"<text [^>]*>", page):
        assert "fill:var(--jp-ui-font-color1, #333)" in text, text
    for colour in re.findall(r"(?:fill|stroke|color):(#[0-9a-f]{3,6})", page):  # the regimes' own,
        assert colour in {*_html.REGIME_COLORS.values(), "#fff", "#111"}, (kind, colour)  # badge text
    assert "color:#666" not in page


def test_prediction_markers_are_named_and_inside_the_frame(results):
    import re

    page = results["Prediction"]._repr_html_()
    svg = page[page.index("<svg") :]
    width = float(re.search(r'<svg [^>]*width="(\d+)"', svg).group(1))
    circles = [
        (float(x), float(r)) for x, r in re.findall(r'<circle cx="([\d.]+)" cy="[\d.]+" r="([\d.]+)"', svg)
    ]
    shown = [r for r in results["Prediction"].results if np.isfinite(r.rate)]
    assert len(circles) == len(shown)
    left, right = 46, width - 8  # the plot area (chart's margins)
    assert all(left < x - r and x + r < right for x, r in circles)
    texts = re.findall(r"<text [^>]*>([^<]*)</text>", svg)
    titles = re.findall(r"<title>([^<]*)</title>", svg)
    for r in shown:
        assert r.method in texts and any(t.startswith(f"{r.method}: ") for t in titles)


def test_neutral_band_is_drawn_whenever_the_caption_mentions_it():
    import re

    # an LSTM whose rates lie far from the neutral band: the band must still be on the chart
    cell = gf.lstm(8, 2, seed=0, gain=0.3)  # every rate below -0.17 nats/step
    prediction = gf.predict(cell, gf.inputs.gaussian(80, 2, 2), fixed_point_starts=1, progress=False)
    page = prediction._repr_html_()
    assert "neutral band" in page
    band = re.search(
        r'<rect x="([\d.]+)" y="\d+" width="([\d.]+)" height="\d+" style="fill:var\(--jp-layout-color3', page
    )
    assert band and float(band.group(2)) >= 2.0 and 46 <= float(band.group(1)) <= 252


def test_cell_thumbnail_keeps_the_unit_circle_in_sight(results):
    page = gf.rnn(128, 2, seed=0)._repr_html_()
    assert page.count("<circle") == 128 and page.rindex("<circle") < page.index("<ellipse")  # drawn over


def test_sequence_model_rows_are_not_repeated(results):
    import re

    for model in (
        results["SequenceModel"],
        gf.recurrent(gf.lstm(4, 2)),
        gf.self_attention(4, heads=2, inputs=3),
    ):
        heads = re.findall(r"<th [^>]*>([^<]*)</th>", model._repr_html_())
        assert len(heads) == len(set(heads)), heads
        values = dict(zip(heads, re.findall(r"<td [^>]*>([^<]*)</td>", model._repr_html_()), strict=True))
        assert values["inputs, width"] == f"{model.input_size}, {model.width}"


def test_sweep_summary_names_predictors_as_the_tables_do(results):
    page = results["SweepSummary"]._repr_html_()
    assert "mean-field: mean |error|" in page and "mean_field" not in page


# ------------------------------------------------------------------ progress and options


def _spy_bars(monkeypatch, module):
    from gradflow.core import _options

    bars = []

    def spy(total, desc, unit, progress, **kwargs):
        bars.append(_options.progress_bar(total, desc, unit, progress, **kwargs))
        bars[-1].shown = _options.resolve_progress(progress)
        return bars[-1]

    monkeypatch.setattr(module, "progress_bar", spy)
    monkeypatch.setattr(_options, "interactive", lambda: True)  # as in JupyterLab
    return bars


def test_predict_ticks_once_per_predictor(monkeypatch):
    from gradflow.prediction import _predict

    bars = _spy_bars(monkeypatch, _predict)
    cell = gf.rnn(8, 2, seed=0)
    prediction = gf.predict(cell, gf.inputs.gaussian(30, 1, 2), fixed_point_starts=1)
    assert bars[-1].shown and bars[-1].total == bars[-1].n == len(prediction.results)
    assert bars[-1].postfix == prediction.results[-1].method
    with gf.options(progress=False):
        again = gf.predict(cell, gf.inputs.gaussian(30, 1, 2), fixed_point_starts=1)
    assert not bars[-1].shown and again.rate == prediction.rate  # the bar changes nothing
    with pytest.raises(ValueError, match="progress must be True, False or None; got 1"):
        gf.predict(cell, input_std=1.0, progress=1)


def test_lyapunov_spectrum_ticks_over_the_steps_when_many_exponents(monkeypatch):
    from gradflow.measure import _lyapunov

    bars = _spy_bars(monkeypatch, _lyapunov)
    cell = gf.rnn(8, 2, seed=0)
    xs = gf.inputs.gaussian(50, 1, 2)
    full = gf.lyapunov_spectrum(cell, xs, warmup=5, progress=True)
    assert bars[-1].shown and bars[-1].total == bars[-1].n == 50
    quiet = gf.lyapunov_spectrum(cell, xs, warmup=5, progress=False)
    assert not bars[-1].shown
    np.testing.assert_array_equal(full.exponents, quiet.exponents)


def test_options_switch_quick_and_progress_and_restore():
    before = gf.options()
    assert before.quick == (os.environ.get("GRADFLOW_NOTEBOOK_QUICK") == "1")
    with gf.options(quick=True, progress=False):
        assert gf.options().quick and not gf.options().progress
        with gf.options(quick=False):
            assert not gf.options().quick and not gf.options().progress
        assert gf.options().quick
    assert (gf.options().quick, gf.options().progress) == (before.quick, before.progress)
    with pytest.raises(ValueError, match="quick must be True, False or None; got 'yes'"):
        gf.options(quick="yes")


def test_quick_mode_follows_the_environment_variable():
    import subprocess

    code = "import gradflow as gf; print(gf.options().quick)"
    for value, expected in (("1", "True"), ("0", "False")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "GRADFLOW_NOTEBOOK_QUICK": value},
        )
        assert out.stdout.strip() == expected


def test_no_bars_in_worker_processes_or_logs():
    import concurrent.futures
    import multiprocessing

    from gradflow.core import _options

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_options.interactive).result(timeout=60) is False  # a sweep's worker
    assert _options.interactive() is sys.stderr.isatty()  # pytest captures stderr: not a terminal


def test_every_badge_text_reads_on_its_colour():
    # WCAG AA for normal text: 4.5:1 (white on the grey and the red badges was 2.6 and 4.2)
    assert _html.contrast_ratio("#ffffff", "#000000") == pytest.approx(21.0)
    for regime, colour in _html.REGIME_COLORS.items():
        page = str(_html.badge(regime))
        text = _html.text_colour_on(colour)
        assert f"color:{text}" in page and _html.contrast_ratio(text, colour) >= 4.5, regime
