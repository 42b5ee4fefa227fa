"""The integration's events: what automations follow, and what the logbook tells (`logbook.py` words them).

`tencent_iot_gateway_ota`: one per job state transition of a sub-device (not per percent), per step of a job
within a state (`phase`: waiting for a flash slot, the health check, a rollback), and one when a job starts
or stops waiting at a gate (`reason` says why it waits, `hold_ended` marks the end of a wait). Its data is the
sub-device's Home Assistant device id and update entity, its Tencent ids, the new state and phase, the
version concerned (the target, or the installed one when nothing is pending), the installed version, the
percent, the offered image's size and URL (without its signed query), and the failure (Tencent's result code
and message, the failure's kind and the HTTP status) when the job failed.

`tencent_iot_gateway_rollout`: a staged rollout halted (`action` halted: the version, how many failed, were
stopped, out of how many) or the user resumed the halted ones (`action` resumed: how many install again).

`tencent_iot_gateway_cloud`: the Tencent Cloud console bound or unbound sub-devices of the gateway (`action`
bound, unbound or unbound_all; `devices`: their names).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from custom_components.tencent_iot_gateway.const import DOMAIN, EVENT_CLOUD, EVENT_OTA, EVENT_ROLLOUT
from custom_components.tencent_iot_gateway.engine import JobSnapshot, RolloutHalted

ATTR_DEVICE_ID: Final = "device_id"
ATTR_PRODUCT_ID: Final = "product_id"
ATTR_DEVICE_NAME: Final = "device_name"
ATTR_STATE: Final = "state"
ATTR_PHASE: Final = "phase"
ATTR_VERSION: Final = "version"
ATTR_INSTALLED_VERSION: Final = "installed_version"
ATTR_PERCENT: Final = "percent"
ATTR_RESULT_CODE: Final = "result_code"
ATTR_MESSAGE: Final = "message"
ATTR_REASON: Final = "reason"
ATTR_HOLD: Final = "hold"
ATTR_HOLD_ENDED: Final = "hold_ended"
ATTR_FAILURE_KEY: Final = "failure_key"
ATTR_FAILURE_VALUES: Final = "failure_values"
ATTR_SIZE: Final = "size"
ATTR_URL: Final = "url"
ATTR_ACTION: Final = "action"
ATTR_DEVICES: Final = "devices"
ATTR_FAILED: Final = "failed"
ATTR_HALTED: Final = "halted"
ATTR_TOTAL: Final = "total"
ATTR_GATEWAY: Final = "gateway"


class RolloutAction(StrEnum):
    """What happened to staged rollouts."""

    HALTED = "halted"
    RESUMED = "resumed"


class CloudAction(StrEnum):
    """What the Tencent Cloud console did to the gateway's sub-devices."""

    BOUND = "bound"
    UNBOUND = "unbound"
    UNBOUND_ALL = "unbound_all"


def is_transition(previous: JobSnapshot, current: JobSnapshot) -> bool:
    """A new state, step or hold, or a new firmware offered in the same state (a push replacing another)."""
    if (
        previous.state is not current.state
        or previous.phase is not current.phase
        or previous.hold != current.hold
    ):
        return True
    return (
        previous.target is not None
        and current.target is not None
        and (previous.target.version != current.target.version)
    )


def ota_event_data(
    snapshot: JobSnapshot, device_id: str | None, entity_id: str | None = None, *, hold_ended: bool = False
) -> dict[str, Any]:
    """The event data for one snapshot."""
    hold, target = snapshot.hold, snapshot.target
    return {
        ATTR_DEVICE_ID: device_id,
        ATTR_ENTITY_ID: entity_id,
        ATTR_PRODUCT_ID: snapshot.device.product_id,
        ATTR_DEVICE_NAME: snapshot.device.device_name,
        ATTR_STATE: snapshot.state.value,
        ATTR_PHASE: snapshot.phase.value if snapshot.phase is not None else None,
        ATTR_VERSION: snapshot.latest_version,
        ATTR_INSTALLED_VERSION: snapshot.installed_version,
        ATTR_PERCENT: snapshot.percent,
        ATTR_RESULT_CODE: snapshot.result_code,
        ATTR_MESSAGE: snapshot.message,
        # The failure as values (its reason and placeholders), so the logbook can word it in the user's language.
        ATTR_FAILURE_KEY: snapshot.failure.reason.value if snapshot.failure is not None else None,
        ATTR_FAILURE_VALUES: snapshot.failure.placeholders if snapshot.failure is not None else None,
        # The offered image's size and URL without its signed query (a credential): a failure's text names them.
        ATTR_SIZE: target.size if target is not None else None,
        ATTR_URL: target.public_url if target is not None else None,
        ATTR_REASON: snapshot.hold_reason,
        # The hold as values, so the logbook can word it in the user's language.
        ATTR_HOLD: (
            {"kind": hold.kind.value, "done": hold.done, "total": hold.total, "seconds": hold.seconds}
            if hold is not None
            else None
        ),
        ATTR_HOLD_ENDED: hold_ended,
    }


@callback
def async_fire_ota_event(
    hass: HomeAssistant,
    entry_id: str,
    previous: JobSnapshot,
    current: JobSnapshot,
    entity_id: str | None = None,
) -> None:
    """Fire the event when `current` is a transition from `previous`."""
    if not is_transition(previous, current):
        return
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, current.device.key), entry_id)
    hold_ended = previous.hold is not None and current.hold is None and current.state.running
    hass.bus.async_fire(
        EVENT_OTA,
        ota_event_data(current, device.id if device is not None else None, entity_id, hold_ended=hold_ended),
    )


@callback
def async_fire_rollout_halted(
    hass: HomeAssistant, gateway_device_id: str | None, gateway: str, halt: RolloutHalted
) -> None:
    """A rollout halted after its failures."""
    hass.bus.async_fire(
        EVENT_ROLLOUT,
        {
            ATTR_DEVICE_ID: gateway_device_id,
            ATTR_GATEWAY: gateway,
            ATTR_ACTION: RolloutAction.HALTED.value,
            ATTR_VERSION: halt.version,
            ATTR_FAILED: len(halt.failed),
            ATTR_HALTED: len(halt.halted),
            ATTR_TOTAL: halt.total,
        },
    )


@callback
def async_fire_rollouts_resumed(
    hass: HomeAssistant, gateway_device_id: str | None, gateway: str, devices: int
) -> None:
    """The user let the halted rollouts go on; `devices` install again."""
    hass.bus.async_fire(
        EVENT_ROLLOUT,
        {
            ATTR_DEVICE_ID: gateway_device_id,
            ATTR_GATEWAY: gateway,
            ATTR_ACTION: RolloutAction.RESUMED.value,
            ATTR_DEVICES: devices,
        },
    )


@callback
def async_fire_cloud_event(
    hass: HomeAssistant,
    gateway_device_id: str | None,
    gateway: str,
    action: CloudAction,
    devices: list[str],
) -> None:
    """The console bound or unbound sub-devices (`devices`: what the user calls them)."""
    hass.bus.async_fire(
        EVENT_CLOUD,
        {
            ATTR_DEVICE_ID: gateway_device_id,
            ATTR_GATEWAY: gateway,
            ATTR_ACTION: action.value,
            ATTR_DEVICES: devices,
        },
    )
