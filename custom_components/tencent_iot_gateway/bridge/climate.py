"""Climate devices: `power_switch` (0/1), `mode` (enum 0 auto, 1 cool, 2 heat, 3 dry, 4 fan), the set point
`target_temp` and `current_temp` (°C)."""

from __future__ import annotations

from homeassistant.components.climate.const import (
    ATTR_CURRENT_TEMPERATURE,
    ATTR_HVAC_MODE,
    ATTR_HVAC_MODES,
    ATTR_MAX_TEMP,
    ATTR_MIN_TEMP,
    DOMAIN as CLIMATE_DOMAIN,
    SERVICE_SET_HVAC_MODE,
    SERVICE_SET_TEMPERATURE,
    HVACMode,
)
from homeassistant.const import ATTR_TEMPERATURE, SERVICE_TURN_OFF, SERVICE_TURN_ON
from homeassistant.core import State

from custom_components.tencent_iot_gateway.engine import PropertyValue

from .mapping import (
    ControlRefusedError,
    Refusal,
    Role,
    RoleValues,
    ServiceCall,
    as_int,
    as_number,
    as_switch,
    number_attribute,
)

# Tencent's air-conditioner modes, and the HA modes that report as each (the first one is what a control sets
# when the entity offers it, else the next).
MODES: dict[int, tuple[HVACMode, ...]] = {
    0: (HVACMode.AUTO, HVACMode.HEAT_COOL),
    1: (HVACMode.COOL,),
    2: (HVACMode.HEAT,),
    3: (HVACMode.DRY,),
    4: (HVACMode.FAN_ONLY,),
}
_MODE_OF = {mode.value: code for code, modes in MODES.items() for mode in modes}


class ClimateMapping:
    """A climate entity as Tencent's air conditioner / thermostat."""

    roles = (Role.POWER, Role.MODE, Role.TARGET_TEMP, Role.CURRENT_TEMP)
    writable = frozenset({Role.POWER, Role.MODE, Role.TARGET_TEMP})

    def report(self, state: State) -> dict[Role, PropertyValue]:
        """Power (off is HVAC mode off), the mode while on, the set point and the room's temperature."""
        values: dict[Role, PropertyValue] = {Role.POWER: int(state.state != HVACMode.OFF)}
        if state.state in _MODE_OF:
            values[Role.MODE] = _MODE_OF[state.state]
        target = number_attribute(state, ATTR_TEMPERATURE)
        if target is not None:
            values[Role.TARGET_TEMP] = round(target, 1)
        current = number_attribute(state, ATTR_CURRENT_TEMPERATURE)
        if current is not None:
            values[Role.CURRENT_TEMP] = round(current, 1)
        return values

    def control(self, values: RoleValues, state: State) -> list[ServiceCall]:
        """Off first (nothing else then); else power on, the mode, the set point, in that order."""
        calls: list[ServiceCall] = []
        power = as_switch(Role.POWER, values[Role.POWER]) if Role.POWER in values else None
        mode = self._mode(values, state) if Role.MODE in values else None
        target = None
        if Role.TARGET_TEMP in values:
            low, high = number_attribute(state, ATTR_MIN_TEMP), number_attribute(state, ATTR_MAX_TEMP)
            target = as_number(Role.TARGET_TEMP, values[Role.TARGET_TEMP], low, high)
        if power is False:
            return [ServiceCall(CLIMATE_DOMAIN, SERVICE_TURN_OFF)]
        if power is True and mode is None:
            calls.append(ServiceCall(CLIMATE_DOMAIN, SERVICE_TURN_ON))
        if mode is not None:
            calls.append(ServiceCall(CLIMATE_DOMAIN, SERVICE_SET_HVAC_MODE, {ATTR_HVAC_MODE: mode.value}))
        if target is not None:
            calls.append(ServiceCall(CLIMATE_DOMAIN, SERVICE_SET_TEMPERATURE, {ATTR_TEMPERATURE: target}))
        return calls

    @staticmethod
    def _mode(values: RoleValues, state: State) -> HVACMode:
        code = as_int(Role.MODE, values[Role.MODE], None, None)
        offered = set(state.attributes.get(ATTR_HVAC_MODES) or ())
        for mode in MODES.get(code, ()):
            if mode.value in offered:
                return mode
        # Not one of Tencent's modes, or one this entity does not have.
        raise ControlRefusedError(Refusal.OUT_OF_RANGE, Role.MODE.value)
