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
# # Why the eigenvalue rule fails
#
# The folklore: "largest eigenvalue of W < 1: gradients vanish; > 1: they explode". It reads
# the weights only. But the Jacobian of a tanh step is `diag(phi'(a_t)) W`, and `phi'` is
# below 1 wherever units saturate: a big recurrent gain, or a strong input drive, pushes
# units into saturation and the gradient vanishes although |lambda_max| > 1.
#
# **Run time** (whole notebook, kernel start included): full size 126 s wall (37 s of kernel CPU),
# quick mode 17 s (6 s CPU), measured on a 2-core machine shared with other jobs (load ~10):
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
N, T, BATCH = (32, 200, 2) if QUICK else (128, 1000, 4)

# %% [markdown]
# ## The same weights, more and more input drive
# Gain 1.5: the eigenvalue rule says "exploding" for every input scale.

# %%
cell = gf.rnn(N, 8, gain=1.5, seed=0)
cell.plot();

# %%
rows = []
for scale in [0.0, 0.5, 1.0, 2.0, 4.0]:
    xs = gf.inputs.gaussian(T, BATCH, 8, scale=scale, seed=1)
    flow = gf.gradient_flow(cell, xs)
    p = gf.predict(cell, xs, fixed_point_starts=1)
    states = gf.unroll(cell, xs)
    rows.append({"input scale": scale, "measured rate": flow.rate, "measured": flow.regime,
                 "eigenvalue rule": p["eigenvalue rule"].regime, "mean-field": p["mean-field"].rate,
                 "mean |h|": float(np.mean(np.abs(states[T // 10:])))})
drive = pd.DataFrame(rows)
drive

# %% [markdown]
# Without input (and with zero biases) the state never leaves h = 0, where the step is exactly
# linear: there, and only there, the eigenvalue rule is exact. The mean |h| column is the
# saturation: as it approaches 1, tanh' falls and so does the rate, into vanishing. The
# mean-field rate tracks the measurement; the eigenvalue rule cannot see either.

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.axhspan(-0.01, 0.01, color="0.85", label="neutral")
ax.plot(drive["input scale"], drive["measured rate"], "o-", label="measured")
ax.plot(drive["input scale"], drive["mean-field"], "s--", label="mean-field")
ax.axhline(np.log(np.max(np.abs(cell.eigenvalues()[0]))), color="C3", linestyle=":",
           label="eigenvalue rule: ln |lambda_max|")
ax.set(xlabel="input scale", ylabel="rate (nats/step)")
ax.legend(fontsize="small");

# %% [markdown]
# ## Saturation from the recurrence itself: large gain
# A whisper of input (scale 0.01) knocks the state off h = 0; with gain 3 the network turns
# chaotic and its units saturate. The gradient still grows, so the rule names the regime, but
# at a fraction of ln |lambda_max|: the predicted line (dashed) climbs several times too fast.

# %%
view = gf.explore_update(gain=3.0, input_scale=0.01, hidden=N, seq_len=T)
print(view.verdict)
view.figure

# %% [markdown]
# Try it yourself: `gf.explore()` puts sliders on gain, input scale, size, length, cell and
# activation (needs `pip install 'gradflow[jupyter]'`).
