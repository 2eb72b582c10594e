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
# # Recurrence vs attention: path lengths against measured sensitivity
#
# "Attention fixes vanishing gradients: every input is one hop from every output." The hop
# count comes from the dependency graph of the unrolled model; the sensitivity
# ||d y_{n-1} / d x_t|| is measured by autograd. A short path is not a strong gradient.
#
# **Run time** (whole notebook, kernel start included): full size 28 s wall (8 s of kernel CPU),
# quick mode 19 s (6 s CPU), measured on a 2-core machine shared with other jobs (load ~10):
# expect less on your own. `gf.options(quick=True)` in the first code cell (or
# `GRADFLOW_NOTEBOOK_QUICK=1` in the environment) switches to the small sizes.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import gradflow as gf

# gf.options(quick=True)  # uncomment for small sizes (or set GRADFLOW_NOTEBOOK_QUICK=1)
QUICK = gf.options().quick
sns.set_theme(style="whitegrid")  # the style of gradflow's own .plot()
W, n = (16, 64) if QUICK else (32, 512)

# %%
models = [gf.recurrent(gf.lstm(W, 8, seed=0)),
          gf.self_attention(W, heads=4, layers=2, inputs=8),
          gf.restricted_attention(W, window=16, layers=2, inputs=8),
          gf.tcn(W, kernel=3, layers=4, inputs=8)]
models[1]

# %% [markdown]
# ## Path lengths, from the graph

# %%
paths = [gf.path_lengths(m, n) for m in models]
paths[0]

# %%
pd.DataFrame({"model": [p.model for p in paths], "max path (hops)": [p.max_path for p in paths],
              "receptive field": [p.receptive_field for p in paths],
              "sequential depth": [p.sequential_depth for p in paths]})

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
for p in paths:
    p.plot(ax=ax)
ax.set_yscale("log");

# %% [markdown]
# ## Sensitivity, measured

# %%
xs = gf.inputs.gaussian(n, 2, 8, seed=1)
sensitivities = [gf.sensitivity(m, xs) for m in models]
sensitivities[1]

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
for s in sensitivities:
    s.plot(ax=ax)

# %% [markdown]
# ## Hops against sensitivity
# Each point is one input position. Self-attention puts every input at the same hop count,
# yet its sensitivity still differs by a factor of tens from input to input: attention
# weights, not hops, decide how much gradient arrives. The LSTM's falls with every step.

# %%
tidy = pd.concat([s.to_frame() for s in sensitivities])
tidy = tidy[np.isfinite(tidy.log_sensitivity) & np.isfinite(tidy.hops)]
ax = sns.scatterplot(data=tidy[tidy["sample"] == 0], x="hops", y="log_sensitivity", hue="model", s=12)
ax.set_xscale("log");
