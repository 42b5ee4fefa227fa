"""After a flash: the job is `done` only once the device proves healthy (engine/ota/health_check.py). An
unhealthy device gets its last good image back when its check asks for a rollback, and the job fails either
way; a healthy one's image is kept as the image to roll back to next time."""

from __future__ import annotations

from collections.abc import Callable
import logging
from pathlib import Path
import time

from custom_components.tencent_iot_gateway.engine.errors import (
    Failure,
    FailureReason,
    FailureValue,
    HealthCheckError,
    TencentIotError,
)
from custom_components.tencent_iot_gateway.engine.ota.device_states import DeviceEntry, DeviceStates
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.health_check import wait_healthy
from custom_components.tencent_iot_gateway.engine.ota.job_model import DeviceHooks
from custom_components.tencent_iot_gateway.engine.ota.job_phases import JobPhase
from custom_components.tencent_iot_gateway.engine.ota.rollback_images import RollbackImages

_LOGGER = logging.getLogger(__name__)


class HealthRollback:
    """Confirms the health of flashed devices, and rolls back those whose check says so."""

    def __init__(
        self,
        hooks: DeviceHooks,
        images: RollbackImages | None,
        states: DeviceStates,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Check the devices `hooks` names a health check for; `images` keeps their last good image."""
        self._hooks = hooks
        self._images = images
        self._states = states
        self._clock = clock

    async def confirm(self, entry: DeviceEntry, target: FirmwareSpec, image: Path) -> None:
        """Return once the device runs `target` healthy; raise `HealthCheckError` (after any rollback) if not."""
        health = self._hooks.health_for(entry.device)
        if health is None:
            return
        self._states.update(entry, phase=JobPhase.HEALTH_CHECK)
        try:
            await wait_healthy(
                health, entry.device, target, self._hooks.flasher_for(entry.device), self._clock
            )
        except HealthCheckError as err:
            # The device runs the new image (unhealthy) unless a rollback puts the old one back on.
            self._states.update(entry, installed_version=target.version)
            raise (await self._roll_back(entry, target, err)) if health.rollback else err from None
        if health.rollback and self._images is not None:
            await self._images.keep(entry.device, target, image)

    async def _roll_back(
        self, entry: DeviceEntry, target: FirmwareSpec, error: HealthCheckError
    ) -> HealthCheckError:
        """Flash the device's last good image back; the error then says what it runs."""
        kept = await self._images.get(entry.device) if self._images is not None else None
        flasher = self._hooks.flasher_for(entry.device)
        seconds = error.failure.get(FailureValue.SECONDS)
        if kept is None or kept.version == target.version or flasher is None:
            return HealthCheckError(Failure.of(FailureReason.HEALTH_NO_ROLLBACK_IMAGE, seconds=seconds))
        _LOGGER.warning(
            "%s is unhealthy after %s (%s); rolling back to %s",
            entry.device,
            target.version,
            error,
            kept.version,
        )
        self._states.update(entry, phase=JobPhase.ROLLING_BACK)
        try:
            version = await flasher.flash(kept.path, entry.device, kept.spec(), lambda _percent: None)
        except (OSError, TencentIotError) as rollback_error:
            # Why the rollback failed is the log's detail; the user reads that the device is left unhealthy.
            _LOGGER.warning("Rolling %s back to %s failed: %s", entry.device, kept.version, rollback_error)
            return HealthCheckError(
                Failure.of(FailureReason.HEALTH_ROLLBACK_FAILED, seen=kept.version, seconds=seconds)
            )
        self._states.update(entry, installed_version=version, phase=JobPhase.ROLLED_BACK)
        return HealthCheckError(Failure.of(FailureReason.HEALTH_ROLLED_BACK, actual=version, seconds=seconds))
