"""Switches (and input booleans): `power_switch` (0/1)."""

from __future__ import annotations

from homeassistant.const import SERVICE_TURN_OFF, SERVICE_TURN_ON, STATE_ON
from homeassistant.core import State

from custom_components.tencent_iot_gateway.engine import PropertyValue

from .mapping import Role, RoleValues, ServiceCall, as_switch


class SwitchMapping:
    """A switch as Tencent's switch category; the action is the entity's own domain's."""

    roles = (Role.POWER,)
    writable = frozenset(roles)

    def report(self, state: State) -> dict[Role, PropertyValue]:
        """On is 1."""
        return {Role.POWER: int(state.state == STATE_ON)}

    def control(self, values: RoleValues, state: State) -> list[ServiceCall]:
        """`turn_on` or `turn_off` of the entity's domain."""
        on = as_switch(Role.POWER, values[Role.POWER])
        return [ServiceCall(state.domain, SERVICE_TURN_ON if on else SERVICE_TURN_OFF)]
