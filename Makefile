# Two commands a newcomer needs: `make report` (the main job) and `make test`; `make lab` for JupyterLab.
# Each builds .venv from pyproject.toml first, and reuses it while pyproject.toml is unchanged.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LAB_STAMP := $(VENV)/.installed-jupyter

.PHONY: test report lint bench clean lab docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,dask]"
	touch $(STAMP)

# JupyterLab and its extras, on top of the test environment (reinstalled when pyproject.toml changes).
$(LAB_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,dask,jupyter]"
	touch $(LAB_STAMP)

# The browser tests need Chromium: installed from the system's packages when missing and allowed
# (root with apt-get); otherwise they skip with the reason. Never fails the run.
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium for the browser tests (apt-get)"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
				>/dev/null 2>&1 || echo "could not install chromium: browser tests will skip"; \
		else echo "no chromium, and not root with apt-get: browser tests will skip"; fi; }
	@# PyTorch is never a dependency, but the tests compare every loader and rate with it when it is
	@# importable: a torch wheel pip finds locally (--no-index: never a multi-GB download) is installed,
	@# then its small dependencies; otherwise those tests skip. Never fails the run.
	@$(PY) -c "import torch" >/dev/null 2>&1 || \
		{ $(PY) -m pip install --quiet --no-index --no-deps torch >/dev/null 2>&1 && \
		  $(PY) -m pip install --quiet "torch==$$($(PY) -c 'import importlib.metadata as m; print(m.version("torch"))')" \
			>/dev/null 2>&1 && echo "installed PyTorch (a local wheel) for the comparison tests"; } || \
		echo "no local PyTorch wheel: the comparisons with PyTorch will skip (pip install torch to run them)"
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -q --durations=15

report: $(STAMP)
	$(PY) -m gradflow.studies --out reports

# JupyterLab refuses to run as root (as in many containers) unless told to.
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

# .jupyter/ joins the config search path (your ~/.jupyter still wins): a double-click opens a
# notebooks/*.py as a notebook; jupytext.toml keeps a saved notebook's file as tracked.
lab: $(LAB_STAMP)
	JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
		$(VENV)/bin/jupyter lab $(LAB_FLAGS) notebooks

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The API reference (Sphinx) into docs/_build/html; a warning fails the build (tests/test_docs.py checks it too).
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

# One table with every speed target of issue 16 (ratio, pass/fail); run it on an idle machine.
# The per-topic scripts (jacobians, lyapunov, paths, training, sweep) still run one by one.
bench: $(STAMP)
	$(PY) benchmarks/targets.py

clean:
	rm -rf $(VENV) reports/*.pdf reports/*.csv docs/_build
