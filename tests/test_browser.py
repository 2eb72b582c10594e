"""Every result's HTML in a real browser (headless Chromium), in JupyterLab's light and dark themes.

The page defines the theme variables JupyterLab 4 defines (the subset gradflow's displays use, values
copied from its theme-light and theme-dark stylesheets), shows each result as a notebook output
does, and runs a small script that measures, from the computed styles, the WCAG contrast of every
chart text against what is drawn behind it, and whether any mark or text leaves its chart. Skipped,
with the reason, when no Chromium is installed (``make test`` installs it when it can).
"""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import gradflow as gf

BROWSER = next(
    (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
THEMES = {
    "light": {
        "--jp-layout-color0": "white",
        "--jp-layout-color1": "white",
        "--jp-layout-color2": "#eee",
        "--jp-layout-color3": "#bdbdbd",
        "--jp-border-color1": "#bdbdbd",
        "--jp-ui-font-color1": "rgba(0,0,0,.87)",
        "--jp-ui-font-color2": "rgba(0,0,0,.54)",
        "--jp-ui-font-color3": "rgba(0,0,0,.38)",
    },
    "dark": {
        "--jp-layout-color0": "#111",
        "--jp-layout-color1": "#212121",
        "--jp-layout-color2": "#424242",
        "--jp-layout-color3": "#616161",
        "--jp-border-color1": "#616161",
        "--jp-ui-font-color1": "rgba(255,255,255,.87)",
        "--jp-ui-font-color2": "rgba(255,255,255,.54)",
        "--jp-ui-font-color3": "rgba(255,255,255,.38)",
    },
}
# WCAG 2 AA for normal text; chart text is 9 px.
MIN_CONTRAST = 4.5

MEASURE = """
<script>
function rgba(c) {
  const m = /rgba?\\(([^)]+)\\)/.exec(c || "");
  if (!m) return null;
  const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
}
function over(fg, bg) { return [0, 1, 2].map(i => fg[i] * fg[3] + bg[i] * (1 - fg[3])).concat([1]); }
function lum(c) {
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
}
function behind(el, x, y) {
  // the nearest painted rectangle or HTML box under the point, composited over the page
  const layers = [];
  for (const e of document.elementsFromPoint(x, y)) {
    if (e === el) continue;
    const s = getComputedStyle(e);
    const c = e instanceof SVGElement ? (e.tagName === "rect" ? rgba(s.fill) : null) : rgba(s.backgroundColor);
    if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  let bg = rgba(getComputedStyle(document.body).backgroundColor);
  for (const c of layers.reverse()) bg = over(c, bg);
  return bg;
}
const report = {texts: [], outside: []};
document.querySelectorAll(".result").forEach(box => {
  box.querySelectorAll("svg").forEach(svg => {
    svg.querySelectorAll("text").forEach(t => {
      t.scrollIntoView({block: "center"});  // hit-testing sees the viewport only
      const r = t.getBoundingClientRect();
      const fg = rgba(getComputedStyle(t).fill);
      const bg = behind(t, r.left + r.width / 2, r.top + r.height / 2);
      const a = lum(over(fg, bg)), b = lum(bg);
      report.texts.push({result: box.dataset.kind, text: t.textContent,
                         contrast: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)});
    });
    svg.querySelectorAll("text, circle").forEach(e => {
      const r = e.getBoundingClientRect(), frame = svg.getBoundingClientRect();
      if (r.left < frame.left - 0.5 || r.right > frame.right + 0.5 || r.top < frame.top - 0.5 ||
          r.bottom > frame.bottom + 0.5)
        report.outside.push({result: box.dataset.kind, element: e.tagName, text: e.textContent});
    });
  });
});
document.body.insertAdjacentHTML("beforeend",
  "<pre id='report'>" + JSON.stringify(report).replace(/</g, "\\\\u003c") + "</pre>");
</script>
"""


def results() -> dict[str, object]:
    """One small object of every type that shows itself in JupyterLab."""
    cell = gf.rnn(16, 2, gain=1.5, seed=0)
    xs = gf.inputs.gaussian(120, 2, 2)
    flow = gf.gradient_flow(cell, xs)
    lstm = gf.lstm(8, 2, seed=0)
    lstm_xs = gf.inputs.gaussian(80, 2, 2)
    prediction = gf.predict(lstm, lstm_xs, fixed_point_starts=1, progress=False)
    sens = gf.sensitivity(gf.tcn(4, 2, 3), gf.inputs.gaussian(24, 2, 4))
    frame = gf.sweep.run(
        {"hidden": 8, "gain": [0.5, 2.0], "seq_len": 40, "predictors": "mean-field"},
        seeds=[0],
        cache=False,
        progress=False,
    )
    task = gf.tasks.adding(6)
    return {
        "Cell": gf.rnn(128, 2, gain=1.0, seed=0),
        "Cell (lstm)": lstm,
        "GradientFlow": flow,
        "Prediction": prediction,
        "Comparison": gf.compare(prediction, gf.gradient_flow(lstm, lstm_xs)),
        "LyapunovSpectrum": gf.lyapunov_spectrum(cell, xs[:40], k=4, warmup=5),
        "SingularValues": gf.finite_time_singular_values(gf.rnn(4, 2), xs[:10], k=2),
        "SequenceModel": gf.recurrent(lstm),
        "PathLengths": sens.paths,
        "Sensitivity": sens,
        "SweepSummary": gf.sweep.summary(frame),
        "Task": task,
        "TrainingRun": gf.train(gf.rnn(4, 2, seed=0), task, 6, record_every=3, progress=False),
        "Exploration": gf.explore_update(hidden=8, seq_len=40),
    }


def page(theme: str, shown: dict[str, object]) -> str:
    variables = ";".join(f"{k}:{v}" for k, v in THEMES[theme].items())
    body = "".join(
        f'<div class="result" data-kind="{kind}" style="margin:8px 0">{obj._repr_html_()}</div>'
        for kind, obj in shown.items()
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>body{{{variables};"
        f"background:var(--jp-layout-color0);color:var(--jp-ui-font-color1);"
        f"font-family:sans-serif;font-size:13px;margin:8px}}</style></head>"
        f"<body>{body}{MEASURE}</body></html>"
    )


def run_browser(args: list[str], tmp_path, timeout: float = 60) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    out = subprocess.run(
        [BROWSER, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return out.stdout


@pytest.fixture(scope="module")
def shown():
    if BROWSER is None:
        pytest.skip(
            "no Chromium (chromium, chromium-browser or google-chrome) on PATH; "
            "`make test` installs it with apt-get when run as root"
        )
    return results()


@pytest.mark.parametrize("theme", THEMES)
def test_chart_text_reads_and_nothing_leaves_its_chart(theme, shown, tmp_path):
    path = tmp_path / f"{theme}.html"
    path.write_text(page(theme, shown), encoding="utf-8")
    dom = run_browser(["--dump-dom", "--virtual-time-budget=3000", path.as_uri()], tmp_path)
    found = re.search(r"<pre id=\"report\">(.*?)</pre>", dom, re.S)
    assert found, dom[-2000:]
    report = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    charted = {t["result"] for t in report["texts"]}
    assert charted >= {"Cell", "GradientFlow", "Prediction", "Comparison", "TrainingRun", "SweepSummary"}
    worst = min(report["texts"], key=lambda t: t["contrast"])
    assert worst["contrast"] >= MIN_CONTRAST, worst
    assert not report["outside"], report["outside"][:5]
    # the predictors' names are on the chart, not only in the table
    names = {t["text"] for t in report["texts"] if t["result"] == "Prediction"}
    assert {r.method for r in shown["Prediction"].results if np.isfinite(r.rate)} <= names


def test_screenshots_differ_by_theme(shown, tmp_path):
    """What a reader sees: the dark page is dark, the light page light (PNG pixels)."""
    means = {}
    for theme in THEMES:
        path = tmp_path / f"{theme}.html"
        path.write_text(page(theme, {k: shown[k] for k in ("Prediction", "TrainingRun")}), encoding="utf-8")
        png = tmp_path / f"{theme}.png"
        run_browser([f"--screenshot={png}", "--window-size=900,700", path.as_uri()], tmp_path)
        matplotlib = pytest.importorskip("matplotlib.image")
        means[theme] = float(np.mean(matplotlib.imread(png)[..., :3]))
    assert means["light"] > 0.8 > 0.2 > means["dark"], means


def test_double_click_opens_a_notebook_as_a_notebook_in_jupyterlab(tmp_path):
    """`make lab`'s settings (.jupyter/ on JUPYTER_CONFIG_PATH): JupyterLab opens notebooks/*.py
    with its default viewer, as a double-click does, and that viewer is jupytext's notebook."""
    import os
    import secrets
    import socket
    import sys
    import time
    import urllib.request
    from pathlib import Path

    if BROWSER is None:
        pytest.skip("no Chromium on PATH; `make test` installs it with apt-get when run as root")
    lab = shutil.which("jupyter-lab", path=str(Path(sys.executable).parent))
    if lab is None:
        pytest.skip("JupyterLab is not installed beside this Python (pip install -e '.[jupyter]')")
    pytest.importorskip("jupytext")
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "work" / "notebooks").mkdir(parents=True)
    (tmp_path / "work" / "notebooks" / "01_tour.py").write_bytes(
        (root / "notebooks" / "01_tour.py").read_bytes()
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(8)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(root / ".jupyter"),  # what `make lab` sets
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),  # nobody's saved settings
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    server = subprocess.Popen(
        [
            lab,
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={tmp_path / 'work'}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("JupyterLab did not start within 60 s")
                time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/lab/tree/notebooks/01_tour.py?token={token}"
        dom = run_browser(
            ["--window-size=1200,900", "--virtual-time-budget=15000", "--dump-dom", url],
            tmp_path,
            timeout=120,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "jp-NotebookPanel-notebook" in dom and "A tour of gradflow" in dom, dom[-2000:]
    assert not list((tmp_path / "work").rglob("*.ipynb"))
