"""Sub-devices the announce could not finish (no answer to `online`, `bind`, a SUBACK or a version report):
tried again in one background loop with bounded backoff, never by dropping the connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.session import Backoff


class AnnounceRetries:
    """One retry loop at a time for all the sub-devices waiting to be tried again."""

    def __init__(
        self,
        bring_online: Callable[[list[DeviceId]], Awaitable[set[DeviceId]]],
        *,
        wanted: Callable[[DeviceId], bool],
        may_run: Callable[[], bool],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        backoff: Backoff,
    ) -> None:
        """`bring_online(devices)` tries them and returns those to try again; `wanted(device)`: still
        configured; `may_run()`: connected and not stopping; `spawn` runs the loop as owned background work."""
        self._bring_online = bring_online
        self._wanted = wanted
        self._may_run = may_run
        self._spawn = spawn
        self._backoff = backoff
        self._pending: set[DeviceId] = set()
        self._running = False
        self._idle = asyncio.Event()  # set while no loop runs
        self._idle.set()

    @property
    def running(self) -> bool:
        """Whether a retry loop is under way."""
        return self._running

    def schedule(self, devices: set[DeviceId]) -> None:
        """Try these sub-devices again later (with the others already waiting)."""
        self._pending |= devices
        if self._pending and not self._running:
            self._running = True
            self._idle.clear()
            self._spawn(self._loop())

    def clear(self) -> None:
        """The connection is gone: the announce after the reconnect covers every sub-device again."""
        self._pending.clear()

    async def wait(self) -> None:
        """Until no retry loop runs (it ends once all are online, or the connection drops)."""
        await self._idle.wait()

    async def _loop(self) -> None:
        attempt = 0
        try:
            while self._pending and self._may_run():
                attempt += 1
                await asyncio.sleep(self._backoff.delay(attempt))
                batch = [d for d in self._pending if self._wanted(d)]
                self._pending.clear()
                if batch and self._may_run():
                    self._pending |= await self._bring_online(batch)
        finally:
            self._running = False
            self._idle.set()
