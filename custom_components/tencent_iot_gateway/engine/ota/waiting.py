"""One way to wait for a condition the layer above judges: ask, and while it says why not, wait for a change
(or the interval), until it says yes or the deadline passes. Pre-flight gates and health checks use it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import time

type Ask = Callable[[], Awaitable[str | None]]
"""None: the condition holds; a text: why not (yet)."""

type Changed = Callable[[float], Awaitable[None]]
"""Return when the answer may have changed (the layer above follows what it depends on), or after at most the
given seconds; None in its place means asking again every poll interval."""


async def wait_until_clear(
    ask: Ask,
    *,
    timeout_s: float,
    poll_interval_s: float,
    changed: Changed | None = None,
    on_reason: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, str | None]:
    """Wait until `ask` says yes. Returns (whether it said no first, None), or (True, the last reason) once
    `timeout_s` passed with it still saying no; the caller raises its own error. `on_reason` hears each new
    reason as it comes."""
    deadline = clock() + timeout_s
    reason = await ask()
    held = False
    last: str | None = None
    while reason is not None:
        held = True
        if on_reason is not None and reason != last:
            on_reason(reason)
            last = reason
        remaining = deadline - clock()
        if remaining <= 0:
            return held, reason
        if changed is None:
            await asyncio.sleep(min(poll_interval_s, remaining))
        else:
            await changed(remaining)
        reason = await ask()
    return held, None
