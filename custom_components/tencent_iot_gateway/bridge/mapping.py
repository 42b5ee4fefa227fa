"""What every domain's mapping is made of: the roles of Tencent properties, the actions a control becomes,
why a control is refused, and the checks of a control's values.

A role is what a property means to Home Assistant (the power, the brightness, ...); the subentry maps each
role to the identifier of the product's data template (Tencent's standard identifier by default, since names
differ between a category's versions). Mappings see roles only; `entity_bridge.py` translates identifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
import math
from typing import Any, Protocol

from homeassistant.core import State

from custom_components.tencent_iot_gateway.engine import CODE_FAILED, PropertyValue


class Role(StrEnum):
    """What a mapped property means (the value is the form field and the key of the stored identifiers)."""

    POWER = "power"
    BRIGHTNESS = "brightness"
    COLOR_TEMP = "color_temp"
    CURRENT_TEMP = "current_temp"
    HUMIDITY = "humidity"
    BATTERY = "battery"
    CONTACT = "contact"
    MOTION = "motion"
    COVER_CONTROL = "cover_control"
    POSITION_SET = "position_set"
    POSITION = "position"
    MODE = "mode"
    TARGET_TEMP = "target_temp"


class Refusal(StrEnum):
    """Why a control was not carried out; the value is the `control_reply` status (Tencent allows 64 bytes)."""

    READ_ONLY = "read-only: the entity is bridged without control"
    UNAVAILABLE = "the entity is unavailable"
    NOT_BRIDGED = "the entity is no longer bridged"
    UNKNOWN_PROPERTY = "unknown property"
    NOT_WRITABLE = "property is read-only"
    WRONG_TYPE = "wrong type"
    OUT_OF_RANGE = "out of range"
    BUSY = "too many controls waiting; try again"
    FAILED = "the action failed"


class ReplyCode(IntEnum):
    """`control_reply` codes: 0 done; anything refused is Tencent's failure code (the C SDK's -1), the
    status says why."""

    OK = 0
    FAILED = CODE_FAILED


class ControlRefusedError(Exception):
    """A control that is not carried out: the reason (the reply's status) and what it concerns."""

    def __init__(self, refusal: Refusal, detail: str = "") -> None:
        """`detail`: the property or the action's error, appended to the status."""
        super().__init__(f"{refusal}: {detail}" if detail else str(refusal))
        self.refusal = refusal
        self.detail = detail

    @property
    def status(self) -> str:
        """The `control_reply` status."""
        return str(self)


@dataclass(frozen=True, slots=True)
class ServiceCall:
    """One Home Assistant action a control becomes (the target entity is added by the bridge)."""

    domain: str
    service: str
    data: Mapping[str, Any] = field(default_factory=dict)


type RoleValues = Mapping[Role, PropertyValue]


class DomainMapping(Protocol):
    """A category's mapping: the roles it reports, those the cloud may set, and the translations."""

    @property
    def roles(self) -> tuple[Role, ...]:
        """Every role, in the form's order."""
        ...

    @property
    def writable(self) -> frozenset[Role]:
        """The roles a control may set."""
        ...

    def report(self, state: State) -> dict[Role, PropertyValue]:
        """The values of an available entity's state (a role without a value now is left out)."""
        ...

    def control(self, values: RoleValues, state: State) -> list[ServiceCall]:
        """The actions for a control of writable roles; raises `ControlRefusedError` (wrong type, out of range)."""
        ...


def as_switch(role: Role, value: PropertyValue) -> bool:
    """Tencent's bool: the integer 0 or 1 (a JSON true/false is not what its SDKs send)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlRefusedError(Refusal.WRONG_TYPE, role.value)
    if value not in (0, 1):
        raise ControlRefusedError(Refusal.OUT_OF_RANGE, role.value)
    return value == 1


def as_int(role: Role, value: PropertyValue, low: float | None, high: float | None) -> int:
    """An integer property within [low, high] (either bound may be unknown)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlRefusedError(Refusal.WRONG_TYPE, role.value)
    _check_range(role, value, low, high)
    return value


def as_number(role: Role, value: PropertyValue, low: float | None, high: float | None) -> float:
    """A number (int or float) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ControlRefusedError(Refusal.WRONG_TYPE, role.value)
    _check_range(role, value, low, high)
    return float(value)


def _check_range(role: Role, value: float, low: float | None, high: float | None) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        raise ControlRefusedError(Refusal.OUT_OF_RANGE, role.value)


def number_attribute(state: State, name: str) -> float | None:
    """A finite numeric attribute of a state, else None."""
    value = state.attributes.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def numeric_state(state: State) -> float | None:
    """The state as a finite number (a sensor's value), else None (unknown, not numeric)."""
    try:
        value = float(state.state)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
