"""Pre-flight gates: conditions a job waits for before it downloads and again before it flashes.

A sub-device that is asleep, flat or in use must not be flashed, and its image is not worth fetching yet
either. The layer above knows what "ready" means (Home Assistant renders a template, checks a maintenance
window) and supplies a `Preflight` per device; the engine only asks it at its two points and waits while it
says no, showing why, until the gate's timeout ends the job with a clear failure. The cloud's task stays alive
meanwhile through the job's progress keep-alives (engine/ota/progress_reports.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
import logging
import time

from custom_components.tencent_iot_gateway.engine.errors import Failure, FailureReason, PreflightTimeoutError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.waiting import Changed, wait_until_clear

_LOGGER = logging.getLogger(__name__)

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
    """One sub-device's gate: how to ask it, when to ask again, and for how long at most.

    `changed`: returns when the answer may have changed (Home Assistant follows the template's entities and
    the window's start); without it, the gate is asked again every `poll_interval_s`.
    """

    check: GateCheck
    timeout_s: float = DEFAULT_PREFLIGHT_TIMEOUT_S
    poll_interval_s: float = DEFAULT_PREFLIGHT_POLL_S
    changed: Changed | None = None

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

    async def ask() -> str | None:
        return await preflight.check(device, point)

    held, reason = await wait_until_clear(
        ask,
        timeout_s=preflight.timeout_s,
        poll_interval_s=preflight.poll_interval_s,
        changed=preflight.changed,
        on_reason=on_hold,
        clock=clock,
    )
    if reason is not None:
        # The last reason was on show while the job waited (and is in the log); the failure needs only the time.
        _LOGGER.info("Pre-flight gate of %s still closed after %g s: %s", device, preflight.timeout_s, reason)
        raise PreflightTimeoutError(
            Failure.of(FailureReason.PREFLIGHT_TIMEOUT, seconds=f"{preflight.timeout_s:g}")
        )
    return held
