"""Fire-and-forget work that is still owned: referenced until done, failures logged, ended on close."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
import logging
from typing import Any

from custom_components.tencent_iot_gateway.engine.errors import NotConnectedError, TencentIotError

_LOGGER = logging.getLogger(__name__)


class BackgroundTasks:
    """Tasks nobody awaits: the loop holds tasks only weakly, and their owner must be able to end them."""

    def __init__(self, failure: str, *, level: int = logging.WARNING) -> None:
        """Log an expected failure as `failure: <error>` at `level`."""
        self._failure = failure
        self._level = level
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background; once closed, nothing new starts."""
        if self._closed:
            coro.close()
            return

        async def guarded() -> None:
            try:
                await coro
            except NotConnectedError as err:
                # The session logs the lost connection once, and the announce after the reconnect redoes
                # what the cloud must hear: one more warning per operation under way would only be noise.
                _LOGGER.debug("%s: %s", self._failure, err)
            except TencentIotError as err:
                _LOGGER.log(self._level, "%s: %s", self._failure, err)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Wait until what runs now has ended (whatever its outcome)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cancel(self) -> None:
        """Cancel what runs now, without waiting; new work may still start (unlike `close`)."""
        for task in self._tasks:
            if not task.cancelling():
                task.cancel()

    async def close(self) -> None:
        """Cancel what runs and wait for it; a task already being cancelled is left to finish its cleanup."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            if not task.cancelling():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
