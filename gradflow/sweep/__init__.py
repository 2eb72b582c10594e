"""Parameter sweeps that cache, resume, use every local core and run unchanged on Dask.

A grid (a dict of parameter lists, or a TOML file) times a list of seeds gives the
points; `run` calls a task at each, on one of three executors, and gathers one tidy
DataFrame (one row per point: the parameters, ``seed``, the results, ``error``).

* Executors: ``"serial"`` (this process), ``"process"`` (a local pool, every core by
  default), ``"dask"`` (an existing cluster's ``scheduler`` address, or a
  ``LocalCluster`` of ``workers`` processes). The same bits whichever runs it.
* The default task, `gradient_flow_task`, builds a cell from the point's parameters
  and returns its measured gradient-flow rate and every predictor's rate; points of the
  same shapes are measured together, in one batched reverse pass.
* A content-addressed cache (`default_cache_dir`) keyed by the point's configuration,
  the task and the gradflow version and source: a re-run computes only missing points, an
  interrupted one resumes, a damaged entry is recomputed with a `CacheWarning`.
* A grid file names only gradflow's own tasks (`TASKS`); your own task is a callable you
  pass, or ``--task-module module:function`` on the command line.
* A failed point becomes a row with its ``error``; the rest go on (`SweepWarning`).

`summary` wraps a finished sweep's frame for display (Jupyter, ``plot()``) without changing it.

The command line: ``gradflow sweep GRID.toml [--executor ...] [--scheduler tcp://...]
[--dask-local N] [--task-module M:F] [--yes] [--out FILE.csv]`` and ``gradflow cache info|clear``.

Examples
--------
>>> import gradflow as gf
>>> len(gf.sweep.points({"cell": ["rnn", "gru"], "hidden": [16, 32]}, seeds=[0, 1, 2]))
12
"""

from ._cache import CacheInfo, CacheWarning, cache_info, clear_cache, default_cache_dir
from ._grid import GridFile, points, read_grid
from ._jobs import TASKS, load_task
from ._run import SweepWarning, run
from ._summary import SweepSummary, summary
from ._task import GradientFlowTask, gradient_flow_task

__all__ = [
    "TASKS",
    "CacheInfo",
    "CacheWarning",
    "GradientFlowTask",
    "GridFile",
    "SweepSummary",
    "SweepWarning",
    "cache_info",
    "clear_cache",
    "default_cache_dir",
    "gradient_flow_task",
    "load_task",
    "points",
    "read_grid",
    "run",
    "summary",
]
