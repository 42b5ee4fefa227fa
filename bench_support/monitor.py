"""What every benchmark measures in the process it runs in: the event loop's longest stall and the RSS growth.

`scripts/bench`, `scripts/bench --scale` and `scripts/bench --bridge` (whose Home Assistant runs in a child
pytest, `tests/integration/bridge_bench.py`) share it, so their stall and RSS figures mean the same thing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import gc
import os
from pathlib import Path
import time
from types import TracebackType
from typing import Self

MIB = 1024 * 1024
STALL_TICK_S = 0.005
RSS_TICK_S = 0.010
# Stalls at least this long are kept with when they happened and the CPU the loop's thread used meanwhile:
# a stall the thread spent computing is our code's; one it spent descheduled (a loaded machine) or waiting
# for the GIL (an executor thread) is not, and the figure alone cannot tell them apart.
STALL_KEPT_MS = 50.0


@dataclass(frozen=True, slots=True)
class Stall:
    """One long lateness of the loop: when it ended (`time.time()`), how long, the loop thread's CPU in it."""

    at: float
    late_ms: float
    cpu_ms: float


def _rss_bytes() -> int:
    """This process's resident set size now (the second field of /proc/self/statm is in pages)."""
    with Path("/proc/self/statm").open(encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _full_collection_ms() -> float:
    """How long one full garbage collection of this process's heap takes now, in ms."""
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000


class Monitor:
    """While active: the event loop's longest lateness (a 5 ms sleeper) and the peak RSS (sampled every 10 ms).

    The heap as it is before the run is frozen for the run (`gc.freeze`): importing the engine imports its
    package, and so Home Assistant, whose ~140,000 objects cost every full collection 40-90 ms here,
    whichever code's allocations trigger it (every HA process pays that). What the run allocates is still
    collected, so the engine's own garbage collection counts. `baseline_gc_ms` is that frozen heap's full
    collection, timed just before.
    """

    def __init__(self) -> None:
        """Nothing is sampled before `async with`."""
        self.baseline_gc_ms = 0.0
        self.max_stall_ms = 0.0
        self.stalls: list[Stall] = []
        self.rss_before = 0
        self.rss_peak = 0
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def rss_growth_mib(self) -> float:
        """Peak RSS over the RSS at the start, in MiB."""
        return max(0, self.rss_peak - self.rss_before) / MIB

    async def __aenter__(self) -> Self:
        """Freeze the heap, take the starting RSS and start both samplers."""
        self.baseline_gc_ms = _full_collection_ms()
        gc.freeze()
        self.rss_before = self.rss_peak = _rss_bytes()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch_loop()), loop.create_task(self._watch_rss())]
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Stop the samplers after a last RSS sample; unfreeze the heap."""
        self.rss_peak = max(self.rss_peak, _rss_bytes())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        gc.unfreeze()

    async def _watch_loop(self) -> None:
        while True:
            started, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(STALL_TICK_S)
            late_ms = (time.perf_counter() - started - STALL_TICK_S) * 1000
            self.max_stall_ms = max(self.max_stall_ms, late_ms)
            if late_ms >= STALL_KEPT_MS:
                self.stalls.append(Stall(time.time(), late_ms, (time.thread_time() - cpu) * 1000))

    async def _watch_rss(self) -> None:
        while True:
            self.rss_peak = max(self.rss_peak, _rss_bytes())
            await asyncio.sleep(RSS_TICK_S)
