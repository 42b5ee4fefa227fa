"""The integration's actions: targets are the Home Assistant devices of sub-devices.

- `set_installed_version`: a sub-device was flashed by other means; record and report its version.
- `cancel_update`: stop a queued or downloading job (a flash cannot be interrupted safely).
- `check_for_update`: report the sub-device's version again, so the cloud pushes a pending firmware again.
- `complete_flash`: the answer of an automation to a `tencent_iot_gateway_flash_request` event.
- `resume_rollout`: let the halted staged rollouts of a gateway go on.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, service
import probatio as vol

from .const import (
    DOMAIN,
    SERVICE_CANCEL_UPDATE,
    SERVICE_CHECK_FOR_UPDATE,
    SERVICE_COMPLETE_FLASH,
    SERVICE_RESUME_ROLLOUT,
    SERVICE_SET_INSTALLED_VERSION,
)
from .engine import DeviceId, FlashError, InvalidFieldError, NotConnectedError, TencentIotError, check_version
from .ota.automation_flasher import FlashOutcome, flash_requests
from .runtime import GatewayRuntime, TencentIotConfigEntry

ATTR_VERSION = "version"
ATTR_JOB_ID = "job_id"
ATTR_SUCCESS = "success"
ATTR_MESSAGE = "message"

_DEVICE_SCHEMA = vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string})
_SET_INSTALLED_VERSION_SCHEMA = vol.Schema(
    {vol.Required(ATTR_DEVICE_ID): cv.string, vol.Required(ATTR_VERSION): cv.string}
)
_COMPLETE_FLASH_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_JOB_ID): cv.string,
        vol.Required(ATTR_SUCCESS): cv.boolean,
        vol.Optional(ATTR_MESSAGE, default=""): cv.string,
        vol.Optional(ATTR_VERSION): cv.string,
    }
)


@dataclass(frozen=True, slots=True)
class _Target:
    """The sub-device an action is aimed at, and the gateway that runs it."""

    runtime: GatewayRuntime
    device: DeviceId


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, in `async_setup`: they exist even while no entry is loaded)."""
    hass.services.async_register(
        DOMAIN, SERVICE_SET_INSTALLED_VERSION, _async_set_installed_version, _SET_INSTALLED_VERSION_SCHEMA
    )
    hass.services.async_register(DOMAIN, SERVICE_CANCEL_UPDATE, _async_cancel_update, _DEVICE_SCHEMA)
    hass.services.async_register(DOMAIN, SERVICE_CHECK_FOR_UPDATE, _async_check_for_update, _DEVICE_SCHEMA)
    hass.services.async_register(
        DOMAIN, SERVICE_COMPLETE_FLASH, _async_complete_flash, _COMPLETE_FLASH_SCHEMA
    )
    hass.services.async_register(DOMAIN, SERVICE_RESUME_ROLLOUT, _async_resume_rollout, _DEVICE_SCHEMA)


def _target(call: ServiceCall) -> _Target:
    """The sub-device of the call's `device_id`; raises `ServiceValidationError` for anything else."""
    device_id: str = call.data[ATTR_DEVICE_ID]
    # Unknown device, a device of another integration, an entry not loaded: Home Assistant's own errors.
    device, entry = service.async_get_device_and_config_entry(
        call.hass, DOMAIN, device_id, include_child_devices=False
    )
    runtime = _runtime(entry)
    for sub_device in runtime.ota_devices:
        if (DOMAIN, sub_device.key) in device.identifiers:
            return _Target(runtime, sub_device)
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="not_a_sub_device",
        translation_placeholders={"device": device.name_by_user or device.name or device_id},
    )


def _runtime(entry: TencentIotConfigEntry) -> GatewayRuntime:
    return entry.runtime_data


def _version(value: str) -> str:
    """A valid firmware version; raises `ServiceValidationError` saying what is wrong."""
    try:
        return check_version(value, ATTR_VERSION)
    except InvalidFieldError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=f"invalid_version_{err.problem.value}",
            translation_placeholders={"version": value, **err.placeholders},
        ) from None


async def _async_set_installed_version(call: ServiceCall) -> None:
    """Record the version a sub-device runs after a flash by other means, and report it."""
    target = _target(call)
    version = _version(call.data[ATTR_VERSION])
    try:
        await target.runtime.async_set_installed_version(target.device, version)
    except TencentIotError as err:
        # Recorded already; the next connection reports it.
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=_report_failed_key(err),
            translation_placeholders={"device": target.device.key},
        ) from err


async def _async_cancel_update(call: ServiceCall) -> None:
    """Stop the sub-device's queued or downloading job; nothing to do when none runs."""
    target = _target(call)
    try:
        await target.runtime.async_cancel(target.device)
    except FlashError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="cannot_cancel_flashing",
            translation_placeholders={"device": target.device.key},
        ) from err


async def _async_check_for_update(call: ServiceCall) -> None:
    """Report the sub-device's version again: the cloud answers with the firmware it has pending."""
    target = _target(call)
    try:
        await target.runtime.async_check_for_update(target.device)
    except TencentIotError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=_report_failed_key(err),
            translation_placeholders={"device": target.device.key},
        ) from err


async def _async_resume_rollout(call: ServiceCall) -> None:
    """Let the gateway's halted rollouts go on (the devices their halt held back install again)."""
    device_id: str = call.data[ATTR_DEVICE_ID]
    device, entry = service.async_get_device_and_config_entry(
        call.hass, DOMAIN, device_id, include_child_devices=False
    )
    runtime = _runtime(entry)
    if (DOMAIN, runtime.gateway.key) not in device.identifiers or not runtime.rollouts_halted:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="no_halted_rollout",
            translation_placeholders={"device": device.name_by_user or device.name or device_id},
        )
    await runtime.async_resume_rollouts()


async def _async_complete_flash(call: ServiceCall) -> None:
    """Hand an automation's result to the flash request waiting for it."""
    job_id: str = call.data[ATTR_JOB_ID]
    version = call.data.get(ATTR_VERSION)
    outcome = FlashOutcome(
        success=call.data[ATTR_SUCCESS],
        message=call.data[ATTR_MESSAGE],
        version=_version(version) if version is not None else None,
    )
    if not flash_requests(call.hass).complete(job_id, outcome):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_job",
            translation_placeholders={"job_id": job_id},
        )


def _report_failed_key(err: TencentIotError) -> str:
    """Why a version report failed, as its translation key: the gateway is offline, or the cloud was silent."""
    return "report_failed_offline" if isinstance(err, NotConnectedError) else "report_failed_no_answer"
