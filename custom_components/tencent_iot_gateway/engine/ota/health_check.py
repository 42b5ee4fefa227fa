"""Health checks after a flash: the job is `done` only once the sub-device proves healthy.

A flash that returned is not yet a working device: it may boot-loop, drop off the network, or roll itself
back. The layer above supplies a `HealthCheck` per device (a condition, such as Home Assistant's entity of the
device being available again, and/or asking the flasher's `VersionReader` for the version it runs); the engine
polls it after the flash until it passes or `timeout_s` ends, then fails the job with `HealthCheckError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import logging
import time

from custom_components.tencent_iot_gateway.engine.errors import Failure, FailureReason, HealthCheckError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.flashers.base import VersionReader
from custom_components.tencent_iot_gateway.engine.ota.waiting import Changed, wait_until_clear

_LOGGER = logging.getLogger(__name__)

DEFAULT_HEALTH_TIMEOUT_S = 300.0
DEFAULT_HEALTH_POLL_S = 5.0

type HealthCondition = Callable[[DeviceId, FirmwareSpec], Awaitable[str | None]]
"""None: healthy; a text: why not (yet)."""


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One sub-device's check after a flash, and whether to flash the last good image back on failure.

    `changed`: returns when the condition's answer may have changed (Home Assistant follows the template's
    entities); without it, or with `read_version` (a device is asked, not followed), it is asked again every
    `poll_interval_s`.
    """

    condition: HealthCondition | None = None
    read_version: bool = False
    timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S
    poll_interval_s: float = DEFAULT_HEALTH_POLL_S
    rollback: bool = False
    changed: Changed | None = None

    def __post_init__(self) -> None:
        """A zero interval would ask in a loop."""
        if not self.poll_interval_s > 0 or self.timeout_s < 0:
            raise ValueError("need poll_interval_s > 0 and timeout_s >= 0")


async def unhealthy_reason(
    health: HealthCheck, device: DeviceId, firmware: FirmwareSpec, reader: object
) -> Failure | None:
    """Why the device is not healthy now (the failure it is if that lasts), or None when it is."""
    seconds = f"{health.timeout_s:g}"
    if health.read_version:
        if not isinstance(reader, VersionReader):
            return Failure.of(FailureReason.HEALTH_NO_VERSION_READER)
        running = await reader.read_version(device, firmware)
        if running != firmware.version:
            return Failure.of(FailureReason.HEALTH_VERSION, seen=running or "-", seconds=seconds)
    if health.condition is not None and (why := await health.condition(device, firmware)) is not None:
        _LOGGER.debug("%s is not healthy yet: %s", device, why)
        return Failure.of(FailureReason.HEALTH_CHECK_FAILED, seconds=seconds)
    return None


async def wait_healthy(
    health: HealthCheck,
    device: DeviceId,
    firmware: FirmwareSpec,
    reader: object,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return once the device is healthy; raise `HealthCheckError` with the last reason after the timeout."""

    last: Failure | None = None

    async def ask() -> str | None:
        nonlocal last
        last = await unhealthy_reason(health, device, firmware, reader)
        return last.english if last is not None else None

    _held, reason = await wait_until_clear(
        ask,
        timeout_s=health.timeout_s,
        poll_interval_s=health.poll_interval_s,
        changed=None if health.read_version else health.changed,
        clock=clock,
    )
    if reason is not None and last is not None:
        raise HealthCheckError(last)
