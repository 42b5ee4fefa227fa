"""Pre-flight gates: conditions a job waits for before it downloads and again before it flashes.

A sub-device that is asleep, flat or in use must not be flashed, and its image is not worth fetching yet
either. The layer above knows what "ready" means (Home Assistant renders a template, checks a maintenance
window) and supplies a `Preflight` per device; the engine only asks it at its two points and waits while it
says no, showing why, until the gate's timeout ends the job with a clear failure. The cloud's task stays alive
meanwhile through the job's progress keep-alives (engine/ota/progress_reports.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
import time

from custom_components.tencent_iot_gateway.engine.errors import PreflightTimeoutError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId

DEFAULT_PREFLIGHT_TIMEOUT_S = 3600.0
DEFAULT_PREFLIGHT_POLL_S = 15.0


class GatePoint(StrEnum):
    """Where a job asks its gate."""

    BEFORE_DOWNLOAD = "before_download"
    BEFORE_FLASH = "before_flash"


type GateCheck = Callable[[DeviceId, GatePoint], Awaitable[str | None]]
"""None: the job may go on; a text: why it waits (shown to the user)."""


@dataclass(frozen=True, slots=True)
class Preflight:
    """One sub-device's gate: how to ask it, how often, and for how long at most."""

    check: GateCheck
    timeout_s: float = DEFAULT_PREFLIGHT_TIMEOUT_S
    poll_interval_s: float = DEFAULT_PREFLIGHT_POLL_S

    def __post_init__(self) -> None:
        """A zero interval would ask in a loop."""
        if not self.poll_interval_s > 0 or self.timeout_s < 0:
            raise ValueError("need poll_interval_s > 0 and timeout_s >= 0")


async def wait_until_open(
    preflight: Preflight,
    device: DeviceId,
    point: GatePoint,
    on_hold: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Return once the gate says yes (True if the job was held first); raise `PreflightTimeoutError` when it
    still says no after `timeout_s`. `on_hold` hears each new reason."""
    deadline = clock() + preflight.timeout_s
    reason = await preflight.check(device, point)
    held = False
    last: str | None = None
    while reason is not None:
        held = True
        if reason != last:
            on_hold(reason)
            last = reason
        remaining = deadline - clock()
        if remaining <= 0:
            raise PreflightTimeoutError(
                f"pre-flight condition not met within {preflight.timeout_s:g} s: {reason}"
            )
        await asyncio.sleep(min(preflight.poll_interval_s, remaining))
        reason = await preflight.check(device, point)
    return held
