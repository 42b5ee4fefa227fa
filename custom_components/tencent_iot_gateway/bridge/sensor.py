"""Sensors, by device class: `current_temp` (°C), `current_humidity` (%), `battery_percentage` (%).

Read-only: the cloud cannot set a sensor. A temperature in another unit is converted to °C, the unit of
Tencent's standard categories.
"""

from __future__ import annotations

from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.const import ATTR_DEVICE_CLASS, ATTR_UNIT_OF_MEASUREMENT, UnitOfTemperature
from homeassistant.core import State
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util.unit_conversion import TemperatureConverter

from custom_components.tencent_iot_gateway.engine import PropertyValue

from .mapping import Role, RoleValues, ServiceCall, numeric_state

DEVICE_CLASSES: dict[str, Role] = {
    SensorDeviceClass.TEMPERATURE.value: Role.CURRENT_TEMP,
    SensorDeviceClass.HUMIDITY.value: Role.HUMIDITY,
    SensorDeviceClass.BATTERY.value: Role.BATTERY,
}


def celsius(value: float, unit: object) -> float:
    """A temperature in °C (a value without a known unit is taken as °C)."""
    if not isinstance(unit, str) or unit == UnitOfTemperature.CELSIUS:
        return value
    try:
        return TemperatureConverter.convert(value, unit, UnitOfTemperature.CELSIUS)
    except HomeAssistantError:
        return value


class SensorMapping:
    """A temperature, humidity or battery sensor as Tencent's sensor category."""

    roles = (Role.CURRENT_TEMP, Role.HUMIDITY, Role.BATTERY)
    writable: frozenset[Role] = frozenset()

    def report(self, state: State) -> dict[Role, PropertyValue]:
        """The value under the role of the sensor's device class (nothing for an unknown value)."""
        role = DEVICE_CLASSES.get(str(state.attributes.get(ATTR_DEVICE_CLASS)))
        value = numeric_state(state)
        if role is None or value is None:
            return {}
        if role is Role.CURRENT_TEMP:
            return {role: round(celsius(value, state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)), 1)}
        if role is Role.BATTERY:
            return {role: round(value)}
        return {role: round(value, 1)}

    def control(self, values: RoleValues, state: State) -> list[ServiceCall]:
        """Never reached: nothing is writable."""
        return []
