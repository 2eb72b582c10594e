"""Module-level tasks for tests/test_hardening.py (worker processes import them by name)."""

import os
import time


def pid_task(point):
    """Writes its worker's pid to $GRADFLOW_TEST_PIDS, then sleeps ``sleep`` seconds."""
    with open(os.environ["GRADFLOW_TEST_PIDS"], "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(point["sleep"])
    return {"value": float(point["x"])}
