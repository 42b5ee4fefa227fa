"""Covers: `control` (enum 0 open, 1 close, 2 stop), `percent_control` (0-100, set), `percent_state` (0-100,
reported). Percent is Home Assistant's position: 100 is fully open."""

from __future__ import annotations

from enum import IntEnum

from homeassistant.components.cover import ATTR_CURRENT_POSITION, ATTR_POSITION, DOMAIN as COVER_DOMAIN
from homeassistant.const import (
    SERVICE_CLOSE_COVER,
    SERVICE_OPEN_COVER,
    SERVICE_SET_COVER_POSITION,
    SERVICE_STOP_COVER,
)
from homeassistant.core import State

from custom_components.tencent_iot_gateway.engine import PropertyValue

from .mapping import ControlRefusedError, Refusal, Role, RoleValues, ServiceCall, as_int, number_attribute


class CoverCommand(IntEnum):
    """The values of Tencent's `control` enum."""

    OPEN = 0
    CLOSE = 1
    STOP = 2


_SERVICES = {
    CoverCommand.OPEN: SERVICE_OPEN_COVER,
    CoverCommand.CLOSE: SERVICE_CLOSE_COVER,
    CoverCommand.STOP: SERVICE_STOP_COVER,
}


class CoverMapping:
    """A cover as Tencent's curtain category."""

    roles = (Role.COVER_CONTROL, Role.POSITION_SET, Role.POSITION)
    writable = frozenset({Role.COVER_CONTROL, Role.POSITION_SET})

    def report(self, state: State) -> dict[Role, PropertyValue]:
        """The position, when the cover has one."""
        position = number_attribute(state, ATTR_CURRENT_POSITION)
        return {} if position is None else {Role.POSITION: round(position)}

    def control(self, values: RoleValues, state: State) -> list[ServiceCall]:
        """A position wins over a command sent with it (the app sends one or the other)."""
        if Role.POSITION_SET in values:
            position = as_int(Role.POSITION_SET, values[Role.POSITION_SET], 0, 100)
            return [ServiceCall(COVER_DOMAIN, SERVICE_SET_COVER_POSITION, {ATTR_POSITION: position})]
        raw = as_int(Role.COVER_CONTROL, values[Role.COVER_CONTROL], None, None)
        try:
            command = CoverCommand(raw)
        except ValueError:
            raise ControlRefusedError(Refusal.OUT_OF_RANGE, Role.COVER_CONTROL.value) from None
        return [ServiceCall(COVER_DOMAIN, _SERVICES[command])]
