"""Redraw scheduling for the explorer's widgets: only the newest of the waiting requests runs."""

from __future__ import annotations

from collections.abc import Callable

# A slider event waits this long on the kernel's loop, so events queued behind it can supersede it.
SETTLE_SECONDS = 0.05


class LatestOnly:
    """Runs only the newest of the redraws requested while earlier ones waited.

    Each `request` supersedes those before it: a request that was waiting when a newer one
    arrived is dropped when its turn comes. ``schedule(callback)`` decides when a request runs:
    in a Jupyter kernel, on the kernel's event loop a moment later (so slider events already
    queued behind a slow redraw arrive first and supersede it); without a running loop, at once.
    """

    def __init__(
        self, run: Callable[[dict], None], schedule: Callable[[Callable[[], None]], None] | None = None
    ):
        self.run = run
        self.schedule = schedule or _soon
        self.latest = 0
        self.dropped = 0

    def request(self, values: dict) -> None:
        self.latest += 1
        ticket = self.latest
        self.schedule(lambda: self._fire(ticket, values))

    def _fire(self, ticket: int, values: dict) -> None:
        if ticket != self.latest:  # a newer request is waiting: this one is out of date
            self.dropped += 1
            return
        self.run(values)


def _soon(callback: Callable[[], None]) -> None:
    """On the running event loop (a Jupyter kernel's) after a short pause, else now."""
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        callback()
    else:
        loop.call_later(SETTLE_SECONDS, callback)
