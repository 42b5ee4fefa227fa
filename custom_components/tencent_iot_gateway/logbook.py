"""The logbook's lines for the integration's events: each install's start, waits (and why), steps, failure (and
why) or end, rollbacks, halted and resumed rollouts, and what the Tencent Cloud console did.

A describe callback returns text, not a translation key, so (as HA's own integrations do) the backend words
it: in the server's language, from the same translations as every other backend-made text
(`exceptions.logbook_*`, through `failures.text`; HA caches them at setup and again when the language
changes). The events carry values, not sentences, so a line is worded when the logbook is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.components.logbook.models import LazyEventPartialState
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant, callback

from .bridge.const import EVENT_CLOUD_CONTROL
from .bridge.controls import ATTR_PARAMS, ATTR_PENDING
from .const import DOMAIN, EVENT_CLOUD, EVENT_OTA, EVENT_ROLLOUT
from .engine import (
    DeviceId,
    Failure,
    FailureReason,
    FirmwareSpec,
    HoldKind,
    JobHold,
    JobPhase,
    JobSnapshot,
    JobState,
)
from .ota import failures, phase_texts
from .ota.job_events import (
    ATTR_ACTION,
    ATTR_DEVICE_NAME,
    ATTR_DEVICES,
    ATTR_FAILED,
    ATTR_FAILURE_KEY,
    ATTR_FAILURE_VALUES,
    ATTR_GATEWAY,
    ATTR_HALTED,
    ATTR_HOLD,
    ATTR_HOLD_ENDED,
    ATTR_INSTALLED_VERSION,
    ATTR_MESSAGE,
    ATTR_PHASE,
    ATTR_PRODUCT_ID,
    ATTR_REASON,
    ATTR_RESULT_CODE,
    ATTR_SIZE,
    ATTR_STATE,
    ATTR_TOTAL,
    ATTR_URL,
    ATTR_VERSION,
    CloudAction,
    RolloutAction,
)

type Describe = Callable[[str, str, Callable[[LazyEventPartialState], dict[str, Any]]], None]

# The states whose line does not depend on the job's step.
_RESTING = {
    JobState.DONE.value: "logbook_done",
    JobState.AVAILABLE.value: "logbook_available",
    JobState.IDLE.value: "logbook_idle",
}


@callback
def async_describe_events(hass: HomeAssistant, async_describe_event: Describe) -> None:
    """Describe the integration's events to the logbook."""

    @callback
    def describe_ota(event: LazyEventPartialState) -> dict[str, Any]:
        data = event.data
        entity_id = data.get(ATTR_ENTITY_ID)
        described = {
            LOGBOOK_ENTRY_NAME: _entity_name(hass, entity_id, data),
            LOGBOOK_ENTRY_MESSAGE: ota_message(hass, data),
        }
        if entity_id:
            described[LOGBOOK_ENTRY_ENTITY_ID] = entity_id
        return described

    @callback
    def describe_rollout(event: LazyEventPartialState) -> dict[str, Any]:
        return {
            LOGBOOK_ENTRY_NAME: event.data.get(ATTR_GATEWAY) or DOMAIN,
            LOGBOOK_ENTRY_MESSAGE: rollout_message(hass, event.data),
        }

    @callback
    def describe_cloud(event: LazyEventPartialState) -> dict[str, Any]:
        return {
            LOGBOOK_ENTRY_NAME: event.data.get(ATTR_GATEWAY) or DOMAIN,
            LOGBOOK_ENTRY_MESSAGE: cloud_message(hass, event.data),
        }

    @callback
    def describe_cloud_control(event: LazyEventPartialState) -> dict[str, Any]:
        # The cloud's control is the context of the entity's changes: the logbook shows them "triggered by"
        # this line, named Tencent Cloud.
        described = {
            LOGBOOK_ENTRY_NAME: failures.text(hass, "logbook_cloud_name", {}),
            LOGBOOK_ENTRY_MESSAGE: cloud_control_message(hass, event.data),
        }
        if entity_id := event.data.get(ATTR_ENTITY_ID):
            described[LOGBOOK_ENTRY_ENTITY_ID] = entity_id
        return described

    async_describe_event(DOMAIN, EVENT_OTA, describe_ota)
    async_describe_event(DOMAIN, EVENT_CLOUD_CONTROL, describe_cloud_control)
    async_describe_event(DOMAIN, EVENT_ROLLOUT, describe_rollout)
    async_describe_event(DOMAIN, EVENT_CLOUD, describe_cloud)


def _entity_name(hass: HomeAssistant, entity_id: str | None, data: Mapping[str, Any]) -> str:
    """The update entity's name as the user sees it; its device's name once the entity is gone."""
    state = hass.states.get(entity_id) if entity_id else None
    return state.name if state is not None else str(data.get(ATTR_DEVICE_NAME) or DOMAIN)


@callback
def ota_message(hass: HomeAssistant, data: Mapping[str, Any]) -> str:
    """One job event in words: a start, a wait and why, a step, the end or the failure and why."""
    version = str(data.get(ATTR_VERSION) or "?")
    placeholders = {"version": version, "installed": str(data.get(ATTR_INSTALLED_VERSION) or "?")}
    state = data.get(ATTR_STATE)
    if state == JobState.FAILED.value:
        return failures.text(hass, "logbook_failed", {**placeholders, "failure": _failure(hass, data)})
    if state in _RESTING:
        return failures.text(hass, _RESTING[state], placeholders)
    hold = _hold(data)
    if hold is not None:
        return failures.text(
            hass, "logbook_held", {**placeholders, "reason": phase_texts.hold_text(hass, hold)}
        )
    if data.get(ATTR_HOLD_ENDED):
        return failures.text(hass, "logbook_hold_ended", placeholders)
    phase = str(data.get(ATTR_PHASE) or state)
    if phase == JobPhase.QUEUED.value:
        return failures.text(hass, "logbook_started", placeholders)
    if phase in set(JobPhase):
        return failures.text(hass, f"logbook_{phase}", placeholders)
    return f"{state} {version}"  # a state this version does not know (an event recorded by a newer one)


def _hold(data: Mapping[str, Any]) -> JobHold | None:
    raw = data.get(ATTR_HOLD)
    if not isinstance(raw, Mapping):
        return None
    try:
        kind = HoldKind(str(raw.get("kind")))
    except ValueError:
        return None
    return JobHold(
        kind,
        str(data.get(ATTR_REASON) or ""),
        int(raw.get("done") or 0),
        int(raw.get("total") or 0),
        int(raw.get("seconds") or 0),
    )


def _failure(hass: HomeAssistant, data: Mapping[str, Any]) -> str:
    """The failure's own text, worded as the update dialog words it (`failures.py`)."""
    version = str(data.get(ATTR_VERSION) or "?")
    url, size = data.get(ATTR_URL), data.get(ATTR_SIZE)
    target = FirmwareSpec(str(url), "", int(size), version) if url and isinstance(size, int) else None
    snapshot = JobSnapshot(
        DeviceId(str(data.get(ATTR_PRODUCT_ID) or ""), str(data.get(ATTR_DEVICE_NAME) or "")),
        JobState.FAILED,
        data.get(ATTR_INSTALLED_VERSION),
        target,
        result_code=data.get(ATTR_RESULT_CODE),
        message=str(data.get(ATTR_MESSAGE) or ""),
        failure=_failure_of(data),
    )
    name = str(data.get(ATTR_DEVICE_NAME) or "?")
    return failures.text(
        hass,
        f"failure_{failures.failure_key(snapshot)}",
        failures.failure_placeholders(name, snapshot, version),
    )


@callback
def rollout_message(hass: HomeAssistant, data: Mapping[str, Any]) -> str:
    """A rollout halted by its failures, or the halted ones resumed by the user."""
    if data.get(ATTR_ACTION) == RolloutAction.RESUMED.value:
        return failures.text(hass, "logbook_rollout_resumed", {"devices": str(data.get(ATTR_DEVICES, 0))})
    return failures.text(
        hass,
        "logbook_rollout_halted",
        {
            "version": str(data.get(ATTR_VERSION) or "?"),
            "failed": str(data.get(ATTR_FAILED, 0)),
            "halted": str(data.get(ATTR_HALTED, 0)),
            "total": str(data.get(ATTR_TOTAL, 0)),
        },
    )


@callback
def cloud_message(hass: HomeAssistant, data: Mapping[str, Any]) -> str:
    """What the Tencent Cloud console did to the gateway's sub-devices."""
    action = data.get(ATTR_ACTION)
    if action == CloudAction.UNBOUND_ALL.value:
        return failures.text(hass, "logbook_cloud_unbound_all", {})
    devices = ", ".join(str(name) for name in data.get(ATTR_DEVICES) or ())
    key = "logbook_cloud_bound" if action == CloudAction.BOUND.value else "logbook_cloud_unbound"
    return failures.text(hass, key, {"devices": devices})


def _failure_of(data: Mapping[str, Any]) -> Failure | None:
    """The failure an event carries as values, or None (an event from before failures had values)."""
    try:
        reason = FailureReason(str(data.get(ATTR_FAILURE_KEY)))
    except ValueError:
        return None
    values = data.get(ATTR_FAILURE_VALUES)
    return Failure.of(reason, **values) if isinstance(values, dict) else Failure.of(reason)


@callback
def cloud_control_message(hass: HomeAssistant, data: Mapping[str, Any]) -> str:
    """What a control from Tencent Cloud set (kept while offline, or sent now)."""
    params = data.get(ATTR_PARAMS)
    values = ", ".join(f"{k} = {v}" for k, v in params.items()) if isinstance(params, Mapping) else ""
    key = "logbook_cloud_control_pending" if data.get(ATTR_PENDING) else "logbook_cloud_control"
    return failures.text(hass, key, {"values": values})
