"""How the OTA jobs of a gateway stop: flashes under way may end first, no new flash starts, and every other
job is cancelled keeping what can resume (its install request, its partial download)."""

from __future__ import annotations

import asyncio
import logging

from custom_components.tencent_iot_gateway.engine.ota.device_states import DeviceStates
from custom_components.tencent_iot_gateway.engine.ota.job_model import JobState

_LOGGER = logging.getLogger(__name__)


class Shutdown:
    """Whether the jobs are stopping, and whether a job that holds a flash slot may start its flash."""

    def __init__(self, states: DeviceStates) -> None:
        """Settle the jobs of the devices in `states`."""
        self._states = states
        self._stopping = False
        # Cleared once stopping: a job that reaches its flash slot then waits here until it is cancelled (or
        # the stop is called off).
        self._flashes_allowed = asyncio.Event()
        self._flashes_allowed.set()

    @property
    def stopping(self) -> bool:
        """Whether the jobs are being stopped: nothing new starts, and a cancelled job is suspended."""
        return self._stopping

    async def wait_flashes_allowed(self) -> None:
        """Return once a flash may start (at once, unless `finish_flashes` was called)."""
        await self._flashes_allowed.wait()

    async def finish_flashes(self, timeout_s: float) -> None:
        """Let the flashes under way end (within `timeout_s`); no new flash starts after this call.

        Killing a flasher mid-flash can leave a sub-device without working firmware, so a reload or a stop
        waits for them first. A flash still running when the time is up is cancelled by `stop_jobs` and
        reported as interrupted at the next start.
        """
        self._flashes_allowed.clear()
        flashing = {
            entry.device: entry.job
            for entry in self._states.entries()
            if entry.job is not None and entry.snapshot.state is JobState.FLASHING
        }
        if not flashing or timeout_s <= 0:
            return
        names = ", ".join(str(device) for device in flashing)
        _LOGGER.warning("Waiting up to %g s for the flash of %s to finish before stopping", timeout_s, names)
        _done, pending = await asyncio.wait(flashing.values(), timeout=timeout_s)
        if pending:
            late = ", ".join(str(d) for d, job in flashing.items() if job in pending)
            _LOGGER.error(
                "The flash of %s did not finish within %g s; it is stopped and reported as interrupted",
                late,
                timeout_s,
            )

    def allow_flashes(self) -> None:
        """Call off `finish_flashes` (the unload it prepared did not happen): waiting flashes start."""
        if not self._stopping:
            self._flashes_allowed.set()

    async def stop_jobs(self) -> None:
        """From now on the jobs are stopping: cancel every job and wait for each to settle."""
        self._stopping = True
        jobs = [entry.job for entry in self._states.entries() if entry.job is not None]
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
