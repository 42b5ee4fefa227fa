"""The `automation` flasher: Home Assistant itself flashes the sub-device (ESPHome, Zigbee, any action).

The job fires `tencent_iot_gateway_flash_request` with the verified image's path and a job id, then waits for
the action `tencent_iot_gateway.complete_flash` with that job id (or its timeout). An automation listening to
the event does the flashing with whatever action fits the device, and answers with `complete_flash`. The image
is deleted once the job has ended, so the automation must be done with it before it answers.

The kind is Home Assistant's, not the engine's: `flashers.py` offers, parses and builds it beside the engine's
kinds, and the runtime builds it with its own `hass` (nothing is registered at import time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import logging
from pathlib import Path
from typing import Any, ClassVar
import uuid

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.util.hass_dict import HassKey

from custom_components.tencent_iot_gateway.const import DOMAIN, EVENT_FLASH_REQUEST
from custom_components.tencent_iot_gateway.engine import (
    DeviceId,
    Failure,
    FailureReason,
    FirmwareSpec,
    FlashError,
    check_kind,
    check_seconds,
)

_LOGGER = logging.getLogger(__name__)

KIND = "automation"
DEFAULT_TIMEOUT_S = 600.0

ATTR_DEVICE_ID = "device_id"
ATTR_PRODUCT_ID = "product_id"
ATTR_DEVICE_NAME = "device_name"
ATTR_IMAGE_PATH = "image_path"
ATTR_VERSION = "version"
ATTR_MD5 = "md5"
ATTR_SIZE = "size"
ATTR_JOB_ID = "job_id"


@dataclass(frozen=True, slots=True)
class AutomationFlasherConfig:
    """Wait at most `timeout_s` seconds for the automation's `complete_flash`."""

    kind: ClassVar[str] = KIND

    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        """Validate the timeout, naming the field."""
        check_seconds(self.timeout_s, "timeout_s")

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {"kind": self.kind, "timeout_s": self.timeout_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AutomationFlasherConfig:
        """Parse the stored form (raises `InvalidFieldError`)."""
        check_kind(data, cls.kind)
        return cls(timeout_s=data.get("timeout_s", DEFAULT_TIMEOUT_S))


@dataclass(frozen=True, slots=True)
class FlashOutcome:
    """What `complete_flash` reported for one job."""

    success: bool
    message: str = ""
    version: str | None = None


@dataclass
class FlashRequests:
    """The flash requests waiting for `complete_flash`, by job id (one registry per Home Assistant)."""

    pending: dict[str, asyncio.Future[FlashOutcome]] = field(default_factory=dict)

    def complete(self, job_id: str, outcome: FlashOutcome) -> bool:
        """Resolve a waiting job; False when no job with that id is waiting."""
        future = self.pending.get(job_id)
        if future is None or future.done():
            return False
        future.set_result(outcome)
        return True


DATA_FLASH_REQUESTS: HassKey[FlashRequests] = HassKey(f"{DOMAIN}_flash_requests")


def flash_requests(hass: HomeAssistant) -> FlashRequests:
    """The registry of waiting flash requests of this Home Assistant."""
    requests = hass.data.get(DATA_FLASH_REQUESTS)
    if requests is None:
        requests = hass.data[DATA_FLASH_REQUESTS] = FlashRequests()
    return requests


class AutomationFlasher:
    """Flashes by asking Home Assistant automations to do it."""

    def __init__(self, hass: HomeAssistant, config: AutomationFlasherConfig) -> None:
        """Fire events on `hass`'s bus; wait `config.timeout_s` for the answer."""
        self._hass = hass
        self._config = config

    async def flash(
        self, image: Path, target: DeviceId, firmware: FirmwareSpec, progress: Callable[[int], None]
    ) -> str:
        """Fire the flash request and wait for `complete_flash`; return the version the device now runs."""
        hass = self._hass
        requests = flash_requests(hass)
        job_id = uuid.uuid4().hex
        future: asyncio.Future[FlashOutcome] = hass.loop.create_future()
        requests.pending[job_id] = future
        # A sub-device belongs to one gateway entry; the flasher does not know which, so any match will do.
        devices = dr.async_get(hass).async_get_devices(identifiers={(DOMAIN, target.key)})
        device = devices[0] if devices else None
        _LOGGER.info("Asking automations to flash %s to %s (job %s)", target, firmware.version, job_id)
        try:
            hass.bus.async_fire(
                EVENT_FLASH_REQUEST,
                {
                    ATTR_DEVICE_ID: device.id if device is not None else None,
                    ATTR_PRODUCT_ID: target.product_id,
                    ATTR_DEVICE_NAME: target.device_name,
                    ATTR_IMAGE_PATH: str(image),
                    ATTR_VERSION: firmware.version,
                    ATTR_MD5: firmware.md5.lower(),
                    ATTR_SIZE: firmware.size,
                    ATTR_JOB_ID: job_id,
                },
            )
            async with asyncio.timeout(self._config.timeout_s):
                outcome = await future
        except TimeoutError:
            _LOGGER.warning("No complete_flash for job %s of %s in time", job_id, target)
            raise FlashError(
                Failure.of(FailureReason.AUTOMATION_TIMEOUT, seconds=f"{self._config.timeout_s:g}")
            ) from None
        finally:
            requests.pending.pop(job_id, None)
        if not outcome.success:
            # The automation's own words (the user's), quoted as they were sent.
            raise FlashError(Failure.of(FailureReason.AUTOMATION_FAILED, remote=outcome.message or "-"))
        progress(100)
        return outcome.version or firmware.version
