# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Analyse your own PyTorch model (no torch needed)
#
# gradflow reads recurrent weights in PyTorch's names and layouts. In PyTorch you would save
# them with
#
# ```python
# import numpy as np
# np.savez("lstm.npz", **{k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
# ```
#
# Here we write such a file with numpy alone: an `nn.LSTM(input_size=D, hidden_size=N)` with
# PyTorch's default initialisation, uniform on (-1/sqrt(N), 1/sqrt(N)), gate order i, f, g, o.

# %%
import os
import tempfile

import numpy as np

import gradflow as gf

QUICK = os.environ.get("GRADFLOW_NOTEBOOK_QUICK") == "1"
N, D, T = (16, 4, 200) if QUICK else (128, 32, 1000)

# %%
rng = np.random.default_rng(0)
k = 1 / np.sqrt(N)
state_dict = {"weight_ih_l0": rng.uniform(-k, k, (4 * N, D)),
              "weight_hh_l0": rng.uniform(-k, k, (4 * N, N)),
              "bias_ih_l0": rng.uniform(-k, k, 4 * N),
              "bias_hh_l0": rng.uniform(-k, k, 4 * N)}
path = os.path.join(tempfile.mkdtemp(), "lstm.npz")
np.savez(path, **state_dict)
{name: array.shape for name, array in np.load(path).items()}

# %% [markdown]
# ## Load it

# %%
with np.load(path) as weights:
    cell = gf.from_torch("lstm", dict(weights), name="my-lstm")
cell

# %% [markdown]
# ## Measure, predict, compare
# Replace the Gaussian inputs with a batch of your own data, time-major `(T, batch, D)`.

# %%
xs = gf.inputs.gaussian(T, 4, D, scale=1.0, seed=1)
flow = gf.gradient_flow(cell, xs)
flow

# %% [markdown]
# An LSTM's state is `[h, c]`: the gradient by state part and by gate.

# %%
flow.plot(quantity="c");

# %%
gf.compare(gf.predict(cell, xs), flow)

# %% [markdown]
# ## Dynamics: the Lyapunov spectrum of the trajectory

# %%
gf.lyapunov_spectrum(cell, xs, k=8, warmup=T // 10)

# %% [markdown]
# ## Save it as a gradflow cell
# `cell.save` keeps the kind and configuration; `gf.load` rebuilds it.

# %%
cell.save(os.path.join(os.path.dirname(path), "my-lstm.npz"))
gf.load(os.path.join(os.path.dirname(path), "my-lstm.npz"))
