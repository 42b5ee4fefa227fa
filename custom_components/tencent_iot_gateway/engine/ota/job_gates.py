"""The gates a job waits at: the device's pre-flight conditions (before its download and again before its
flash) and its rollout turn. While a gate holds a job, the job shows as queued with the gate's `JobHold`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import replace
import logging
import time
from typing import Any

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.device_states import DeviceEntry, DeviceStates
from custom_components.tencent_iot_gateway.engine.ota.job_model import DeviceHooks, JobState
from custom_components.tencent_iot_gateway.engine.ota.job_phases import JobHold
from custom_components.tencent_iot_gateway.engine.ota.preflight import GatePoint, wait_until_open

_LOGGER = logging.getLogger(__name__)

type GateWait = Callable[[DeviceId, Callable[[JobHold], None]], Coroutine[Any, Any, None]]
"""Waits until a gate lets the device's job on, calling its argument with the hold each time it holds."""


class JobGates:
    """Holds jobs at the gates of their devices, showing why in their snapshots."""

    def __init__(
        self, hooks: DeviceHooks, states: DeviceStates, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Ask the gates `hooks` names; show a held job in `states`."""
        self._hooks = hooks
        self._states = states
        self._clock = clock

    async def pass_gate(self, entry: DeviceEntry, point: GatePoint) -> None:
        """Wait while the device's pre-flight gate says no, showing why (state queued, `hold`)."""
        preflight = self._hooks.preflight_for(entry.device)
        if preflight is None:
            return

        async def wait(device: DeviceId, on_hold: Callable[[JobHold], None]) -> None:
            await wait_until_open(
                preflight, device, point, lambda reason: on_hold(JobHold.preflight(reason)), self._clock
            )

        await self._hold_while(entry, point.value.replace("_", " "), wait)

    async def reason_to_hold(self, entry: DeviceEntry, point: GatePoint) -> str | None:
        """Why the device's pre-flight gate holds its job now, None when it is open (asked once)."""
        preflight = self._hooks.preflight_for(entry.device)
        return None if preflight is None else await preflight.check(entry.device, point)

    async def wait_rollout_turn(self, entry: DeviceEntry) -> None:
        """Wait until the rollout lets this device flash (at once without a rollout)."""
        if self._hooks.rollout is not None:
            await self._hold_while(entry, "its rollout turn", self._hooks.rollout.wait_turn)

    async def _hold_while(self, entry: DeviceEntry, what: str, wait: GateWait) -> None:
        """Run a gate's `wait`; while it holds the job, the job is queued with the gate's hold."""
        resume_state = entry.snapshot.state
        held = False

        def on_hold(hold: JobHold) -> None:
            nonlocal held
            if not held:
                _LOGGER.info("The update of %s waits (%s): %s", entry.device, what, hold.reason)
            held = True
            self._states.update(entry, state=JobState.QUEUED, hold=hold)

        try:
            await wait(entry.device, on_hold)
        except BaseException:
            # The failure or cancel that follows is the next snapshot anyone sees: no hold left on it.
            entry.snapshot = replace(entry.snapshot, hold=None)
            raise
        if held:
            _LOGGER.info("The update of %s goes on (%s)", entry.device, what)
            self._states.update(entry, state=resume_state, hold=None)
