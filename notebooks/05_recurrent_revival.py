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
# # The recurrent revival: an LRU beside an LSTM and attention
#
# Linear recurrences (Orvieto et al.'s LRU, S4D, minGRU, Mamba) answer two of the 2019 claims
# against RNNs: a diagonal recurrence kept inside the unit circle keeps its gradient over
# thousands of steps, and a recurrence linear in its state is an associative scan, log-deep in
# time. Here an LRU, an LSTM and causal self-attention side by side: the gradient by lag, the
# path lengths and sequential depth from the dependency graph, and the scan's CPU time against
# the loop's. `python -m gradflow.studies.recurrent_revival` decides the claims over many networks.
#
# **Run time** (whole notebook, kernel start included): full size 42 s wall (14 s of kernel CPU),
# quick mode 23 s (8 s CPU), measured on a 2-core machine shared with other jobs (load ~9):
# expect less on your own. `gf.options(quick=True)` in the first code cell (or
# `GRADFLOW_NOTEBOOK_QUICK=1` in the environment) switches to the small sizes.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import gradflow as gf

# gf.options(quick=True)  # uncomment for small sizes (or set GRADFLOW_NOTEBOOK_QUICK=1)
QUICK = gf.options().quick
sns.set_theme(style="whitegrid")  # the style of gradflow's own .plot()
N, D = 16, 8  # N: complex modes of the LRU, hidden units of the LSTM
T = 200 if QUICK else 1000
LENGTHS = (64, 256, 1024) if QUICK else (64, 256, 1024, 4096, 16384)

# %%
lru = gf.lru(N, D, seed=0)  # the reference ring: |lambda| uniform (in area) on [0, 1]
lstm = gf.lstm(N, D, init="pytorch", seed=0)
attention = gf.self_attention(2 * N, heads=2, inputs=D, seed=0)
lru

# %% [markdown]
# ## The gradient by lag
# `gf.gradient_flow` back-propagates a loss at the last state through T steps in log space. The
# LRU's state is complex, held as `[Re h, Im h]`: its norms are complex norms. Its gradient falls
# only as fast as its slowest eigenvalue, `ln max |lambda|` per step (`gf.diagonal_rate`, exact);
# the LSTM's falls by a fraction of a nat per step.

# %%
xs = gf.inputs.gaussian(T, 4, D, seed=1)
flows = {"LRU": gf.gradient_flow(lru, xs), "LSTM": gf.gradient_flow(lstm, xs)}
flows["LRU"]

# %%
table = pd.DataFrame({name: {"rate (nats/step)": f.rate, "memory horizon": f.memory_horizon,
                             "kept at lag T": f"{np.exp(f.profile[-1] - f.profile[1]):.2e}"}
                      for name, f in flows.items()})
table.assign(**{"LRU exact rate": [gf.diagonal_rate(lru, xs), "", ""]})

# %%
fig, ax = plt.subplots(figsize=(6, 3.4))
for name, f in flows.items():
    ax.plot(f.lags, f.profile - f.profile[1], label=name)
ax.axhline(np.log(1e-3), color="0.4", linestyle="--", linewidth=0.8, label="1e-3 of lag 1")
ax.set(xlabel="lag k", ylabel="ln ||g_k|| - ln ||g_1||", ylim=(-40, 2))
ax.legend();

# %% [markdown]
# The same question for the output's sensitivity to each input, with attention beside them:
# `gf.sensitivity` measures `||d y_(n-1) / d x_t||` through each model, recurrent ones in log space.

# %%
models = {"LRU": gf.recurrent(lru), "LSTM": gf.recurrent(lstm), "self-attention": attention}
sensitivities = {name: gf.sensitivity(m, xs[: min(T, 256)]) for name, m in models.items()}
fig, ax = plt.subplots(figsize=(6, 3.4))
for s in sensitivities.values():
    s.plot(ax=ax)
ax.set_ylim(bottom=-40);

# %% [markdown]
# ## Path lengths and sequential depth, from the graph
# A loop over time is n steps deep whatever the cell; the LRU's forward pass as a doubling scan
# (`gf.recurrent(cell, scan=True)`) is the input map plus `ceil(log2 n)` rounds; one attention
# layer is one hop from every input, in one round.

# %%
graphs = {"LSTM (loop)": gf.recurrent(lstm), "LRU (loop)": gf.recurrent(lru),
          "LRU (scan)": gf.recurrent(lru, scan=True), "self-attention": attention}
n = 256
paths = {name: gf.path_lengths(m, n) for name, m in graphs.items()}
pd.DataFrame({"max path (hops)": {k: p.max_path for k, p in paths.items()},
              "sequential depth": {k: p.sequential_depth for k, p in paths.items()}})

# %%
paths["LRU (scan)"]

# %% [markdown]
# ## The scan against the loop, timed
# `gf.scan` computes every state from the cell's per-step affine maps (all positions at once)
# and the doubling scan; it must equal `gf.unroll` to rounding. CPU seconds (`time.process_time`),
# best of three, as measured on this machine: a shared machine's wall time would measure the
# neighbours.


# %%
def cpu_seconds(fn, repeats=3):
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


rows = []
for n in LENGTHS:
    x = gf.inputs.gaussian(n, 4, D, seed=2)
    error = float(np.max(np.abs(gf.scan(lru, x) - gf.unroll(lru, x))))
    rows.append(dict(n=n, loop_s=cpu_seconds(lambda x=x: gf.unroll(lru, x)),
                     scan_s=cpu_seconds(lambda x=x: gf.scan(lru, x)), rounds=gf.scan_depth(n),
                     max_error=error))
times = pd.DataFrame(rows).assign(speedup=lambda f: f.loop_s / f.scan_s)
times

# %%
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(times.n, times.loop_s, "o-", label="loop (gf.unroll)")
ax.plot(times.n, times.scan_s, "s--", label="scan (gf.scan)")
ax.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="CPU seconds")
ax.legend();
