"""The `tencent_iot_gateway_ota` event: one per job state transition of a sub-device (not per percent), and one
when a queued job starts or stops waiting for a pre-flight condition (`reason` says why it waits).

Automations use it to notify on failures or follow an update; its data is the sub-device's Home Assistant
device id, its Tencent ids, the new state, the version concerned (the target, or the installed one when
nothing is pending), the percent, and Tencent's result code and message (set when the job failed).
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from custom_components.tencent_iot_gateway.const import DOMAIN, EVENT_OTA
from custom_components.tencent_iot_gateway.engine import JobSnapshot

ATTR_DEVICE_ID = "device_id"
ATTR_PRODUCT_ID = "product_id"
ATTR_DEVICE_NAME = "device_name"
ATTR_STATE = "state"
ATTR_VERSION = "version"
ATTR_PERCENT = "percent"
ATTR_RESULT_CODE = "result_code"
ATTR_MESSAGE = "message"
ATTR_REASON = "reason"


def is_transition(previous: JobSnapshot, current: JobSnapshot) -> bool:
    """A new state, or a new firmware offered in the same state (a push replacing an earlier one)."""
    if previous.state is not current.state or previous.hold_reason != current.hold_reason:
        return True
    return (
        previous.target is not None
        and current.target is not None
        and (previous.target.version != current.target.version)
    )


def ota_event_data(snapshot: JobSnapshot, device_id: str | None) -> dict[str, Any]:
    """The event data for one snapshot."""
    return {
        ATTR_DEVICE_ID: device_id,
        ATTR_PRODUCT_ID: snapshot.device.product_id,
        ATTR_DEVICE_NAME: snapshot.device.device_name,
        ATTR_STATE: snapshot.state.value,
        ATTR_VERSION: snapshot.latest_version,
        ATTR_PERCENT: snapshot.percent,
        ATTR_RESULT_CODE: snapshot.result_code,
        ATTR_MESSAGE: snapshot.message,
        ATTR_REASON: snapshot.hold_reason,
    }


@callback
def async_fire_ota_event(
    hass: HomeAssistant, entry_id: str, previous: JobSnapshot, current: JobSnapshot
) -> None:
    """Fire the event when `current` is a transition from `previous`."""
    if not is_transition(previous, current):
        return
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, current.device.key), entry_id)
    hass.bus.async_fire(EVENT_OTA, ota_event_data(current, device.id if device is not None else None))
