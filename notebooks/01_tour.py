# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tour of gradflow
#
# Build a cell, measure how its gradient flows back through time, predict the same without
# back-propagating, compare the two, and report a small sweep. Every result shows itself as
# a table with a coloured regime badge and a small chart; `.plot()` draws it in full.
#
# **Run time** (whole notebook, kernel start included): full size 46 s wall (13 s of kernel CPU),
# quick mode 21 s (7 s CPU), measured on a 2-core machine shared with other jobs (load ~10):
# expect less on your own. `gf.options(quick=True)` in the first code cell (or
# `GRADFLOW_NOTEBOOK_QUICK=1` in the environment) switches to the small sizes.

# %%
import gradflow as gf

# gf.options(quick=True)  # uncomment for small sizes (or set GRADFLOW_NOTEBOOK_QUICK=1)
QUICK = gf.options().quick
N, T = (32, 150) if QUICK else (128, 1000)

# %% [markdown]
# ## A cell
# Weights are data in PyTorch's layout. The chart is the spectrum of the recurrent matrix in
# the complex plane; the dashed circle is |lambda| = 1, the line the eigenvalue rule draws.

# %%
cell = gf.rnn(N, 8, gain=1.5, seed=0)
cell

# %% [markdown]
# ## Measure
# One reverse pass through the unrolled network, in log space: ln ||dL/dh_{T-k}|| by lag k,
# and the fitted rate in nats per step.

# %%
xs = gf.inputs.gaussian(T, 4, 8, scale=1.0)
flow = gf.gradient_flow(cell, xs)
flow

# %%
flow.plot();

# %% [markdown]
# ## Predict, without back-propagation through time

# %%
prediction = gf.predict(cell, xs)
prediction

# %% [markdown]
# ## Compare
# A DataFrame, one row per predictor; the dashed line in its chart is the measured rate.

# %%
comparison = gf.compare(prediction, flow)
comparison

# %%
comparison.plot();

# %% [markdown]
# ## Report: a small sweep
# `gf.sweep.run` returns a DataFrame; `gf.sweep.summary` shows it at a glance.

# %%
grid = {"cell": "rnn", "hidden": N // 2, "gain": [0.5, 1.0, 1.5, 2.5], "input_scale": [0.0, 1.0],
        "seq_len": T // 2, "predictors": "mean-field"}
frame = gf.sweep.run(grid, seeds=[0] if QUICK else [0, 1, 2], cache=False, progress=False)
summary = gf.sweep.summary(frame)
summary

# %%
summary.plot();

# %% [markdown]
# `make report` runs every study in `gradflow/studies/` and writes PDFs and CSVs to `reports/`.
