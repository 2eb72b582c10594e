"""Module-level tasks for tests/test_sweep.py: worker processes import them by name."""

import os
import time

import numpy as np

calls: list[dict] = []  # the points this process has run, in order
interrupt_after: int | None = None  # a Ctrl-C (KeyboardInterrupt) instead of this call number


def expected_value(point):
    """What `counting_task` returns: a deterministic function of the point."""
    return float(point["x"] * np.random.default_rng(point["seed"]).standard_normal())


def counting_task(point):
    """Records each call (here, and in the file $GRADFLOW_TEST_CALLS), sleeps ``sleep`` s; with
    ``gate`` (a path), points from ``x = gated_from`` on wait until that file exists."""
    if interrupt_after is not None and len(calls) >= interrupt_after:
        raise KeyboardInterrupt
    calls.append(dict(point))
    log = os.environ.get("GRADFLOW_TEST_CALLS")
    if log:
        with open(log, "a") as fh:  # appends of one short line do not interleave
            fh.write(f"{point['x']},{point['seed']}\n")
    time.sleep(point.get("sleep", 0.0))
    if "gate" in point and point["x"] >= point["gated_from"]:
        deadline = time.monotonic() + 60
        while not os.path.exists(point["gate"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gate {point['gate']} never opened")
            time.sleep(0.01)
    if point["x"] < 0:
        raise ValueError(f"x must be >= 0; got {point['x']}")
    return {"value": expected_value(point)}


def dying_task(point):
    """Kills its worker process the first time it runs point x = 0 (``marker`` says it has)."""
    if point["x"] == 0 and not os.path.exists(point["marker"]):
        open(point["marker"], "w").close()
        os._exit(3)
    return {"value": expected_value(point)}
