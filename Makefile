# Two commands a newcomer needs: `make report` (the main job) and `make test`.
# Each builds .venv from pyproject.toml first, and reuses it while pyproject.toml is unchanged.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test report lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,dask]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

report: $(STAMP)
	$(PY) -m analyses --out reports

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) benchmarks/jacobians.py
	$(PY) benchmarks/lyapunov.py
	$(PY) benchmarks/paths.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/sweep.py

clean:
	rm -rf $(VENV) reports/*.pdf reports/*.csv
