"""Lights: `power_switch` (0/1), `brightness` (0-100 %), `color_temp` (kelvin)."""

from __future__ import annotations

from homeassistant.components.light.const import (
    ATTR_BRIGHTNESS,
    ATTR_BRIGHTNESS_PCT,
    ATTR_COLOR_TEMP_KELVIN,
    ATTR_MAX_COLOR_TEMP_KELVIN,
    ATTR_MIN_COLOR_TEMP_KELVIN,
    DOMAIN as LIGHT_DOMAIN,
)
from homeassistant.const import SERVICE_TURN_OFF, SERVICE_TURN_ON, STATE_ON
from homeassistant.core import State

from custom_components.tencent_iot_gateway.engine import PropertyValue

from .mapping import (
    ControlRefusedError,
    Refusal,
    Role,
    RoleValues,
    ServiceCall,
    as_int,
    as_switch,
    number_attribute,
)

_FULL = 255  # Home Assistant's brightness scale


class LightMapping:
    """A light as Tencent's light category."""

    roles = (Role.POWER, Role.BRIGHTNESS, Role.COLOR_TEMP)
    writable = frozenset(roles)

    def report(self, state: State) -> dict[Role, PropertyValue]:
        """Power always; brightness and colour temperature while on (an off light has none)."""
        values: dict[Role, PropertyValue] = {Role.POWER: int(state.state == STATE_ON)}
        brightness = number_attribute(state, ATTR_BRIGHTNESS)
        if brightness is not None:
            values[Role.BRIGHTNESS] = round(brightness * 100 / _FULL)
        kelvin = number_attribute(state, ATTR_COLOR_TEMP_KELVIN)
        if kelvin is not None:
            values[Role.COLOR_TEMP] = round(kelvin)
        return values

    def control(self, values: RoleValues, state: State) -> list[ServiceCall]:
        """Off is `light.turn_off` (whatever else came with it); anything else is one `light.turn_on`."""
        power = as_switch(Role.POWER, values[Role.POWER]) if Role.POWER in values else None
        data: dict[str, int] = {}
        if Role.BRIGHTNESS in values:
            data[ATTR_BRIGHTNESS_PCT] = as_int(Role.BRIGHTNESS, values[Role.BRIGHTNESS], 0, 100)
        if Role.COLOR_TEMP in values:
            low = number_attribute(state, ATTR_MIN_COLOR_TEMP_KELVIN)
            high = number_attribute(state, ATTR_MAX_COLOR_TEMP_KELVIN)
            if low is None or high is None:
                # The light has no colour temperature: the property means nothing for it.
                raise ControlRefusedError(Refusal.UNKNOWN_PROPERTY, Role.COLOR_TEMP.value)
            data[ATTR_COLOR_TEMP_KELVIN] = as_int(Role.COLOR_TEMP, values[Role.COLOR_TEMP], low, high)
        if power is False:
            return [ServiceCall(LIGHT_DOMAIN, SERVICE_TURN_OFF)]
        return [ServiceCall(LIGHT_DOMAIN, SERVICE_TURN_ON, data)]
