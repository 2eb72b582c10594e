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
# # Analyse your own PyTorch model, on its own data
#
# Bring the model as it is: `gf.from_torch` takes the module itself (an `nn.LSTM`, or your
# whole network with its `Linear` head), its `state_dict()` with module prefixes, or the file
# `torch.save(model.state_dict(), "model.pt")` wrote. torch is optional here: without it, this
# notebook builds the same state_dict with numpy (PyTorch's default initialisation, uniform on
# (-1/sqrt(N), 1/sqrt(N)), gate order i, f, g, o).
#
# **Run time** (whole notebook, kernel start included): full size 36 s wall, quick mode
# 14 s, measured on a 2-core machine shared with other jobs: expect less on your own.
# `gf.options(quick=True)` in the first code cell (or `GRADFLOW_NOTEBOOK_QUICK=1` in the
# environment) switches to the small sizes.

# %%
import tempfile

import numpy as np

import gradflow as gf
from gradflow.report import model_rates, model_report

QUICK = gf.options().quick
N, LAYERS, T = (8, 2, 30) if QUICK else (32, 2, 50)
task = gf.tasks.adding(T, seed=0)  # your data: here the adding problem, time-major (T, batch, 2)

try:
    import torch
except ImportError:
    torch = None

# %%
if torch is not None:
    torch.set_num_threads(1)  # a small model: two threads on a busy machine only spin against each other
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(2, N, num_layers=LAYERS)
            self.fc = torch.nn.Linear(N, 1)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][-1])[:, 0]

    net = Net().double()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    for step in range(20 if QUICK else 300):  # a short training run on the task
        xs, ys = task.batch(32, step)
        loss = ((net(torch.from_numpy(xs)) - torch.from_numpy(ys)) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    source = net  # the module itself; net.state_dict() or a saved .pt work the same way
else:
    rng = np.random.default_rng(0)
    k = 1 / np.sqrt(N)
    source = {}
    for l in range(LAYERS):
        d = 2 if l == 0 else N
        source.update({f"lstm.weight_ih_l{l}": rng.uniform(-k, k, (4 * N, d)),
                       f"lstm.weight_hh_l{l}": rng.uniform(-k, k, (4 * N, N)),
                       f"lstm.bias_ih_l{l}": rng.uniform(-k, k, 4 * N),
                       f"lstm.bias_hh_l{l}": rng.uniform(-k, k, 4 * N)})
    source.update({"fc.weight": rng.uniform(-k, k, (1, N)), "fc.bias": np.zeros(1)})

# %% [markdown]
# ## The model object
# The recurrent block is found by its PyTorch names, the `Linear` on its output is the head,
# and anything else is listed as ignored.

# %%
model = gf.from_torch(source, name="adding-lstm")
model

# %% [markdown]
# It reproduces the network's output (PyTorch's forward pass, when torch is here).

# %%
xs, ys = task.held_out(16, 10**6)
predicted = model.readout(xs)[:, 0]
if torch is not None:
    with torch.no_grad():
        print("max |gradflow - torch| =", np.abs(predicted - net(torch.from_numpy(xs)).numpy()).max())
print("test MSE", float(np.mean((predicted - ys) ** 2)), "baseline", task.baseline)

# %% [markdown]
# ## How the gradient of its output flows back, on its own inputs
# One row per layer and state part: the gradient of the output the model reads (`readout`)
# and of a random direction over the whole state; 95% intervals resample the batch's sequences;
# the fit window is chosen from the data.

# %%
rates = model_rates(model, xs)
rates[["layer", "part", "measure", "rate", "ci_low", "ci_high", "horizon", "fit_from", "fit_to"]]

# %% [markdown]
# The same measurement by lag, for the whole state (an LSTM's state is h plus c of every layer).

# %%
flow = gf.gradient_flow(model.cell, xs)
flow

# %%
flow.plot(quantity="l1.c" if LAYERS > 1 else "c");

# %% [markdown]
# ## The report
# `model_report` (what `gradflow analyze model.pt --inputs xs.npy` writes) puts the table above
# on its first page, with spectra, predictors, Lyapunov exponents and fixed points after it.

# %%
if not QUICK:
    result = model_report(model, xs, tempfile.mkdtemp(), predictors=False, exponents=8)
    print(result["verdict"], "->", result["pdf"])
