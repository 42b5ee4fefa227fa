"""Each domain's mapping between Home Assistant states and Tencent's standard properties, and the actions a
control becomes (or why it is refused)."""

from __future__ import annotations

from typing import Any

from homeassistant.core import State
import pytest

from custom_components.tencent_iot_gateway.bridge.binary_sensor import BinarySensorMapping
from custom_components.tencent_iot_gateway.bridge.categories import Category, default_identifiers
from custom_components.tencent_iot_gateway.bridge.climate import ClimateMapping
from custom_components.tencent_iot_gateway.bridge.config import device_name_for
from custom_components.tencent_iot_gateway.bridge.cover import CoverMapping
from custom_components.tencent_iot_gateway.bridge.mapping import (
    ControlRefusedError,
    Refusal,
    Role,
    ServiceCall,
)
from custom_components.tencent_iot_gateway.bridge.sensor import SensorMapping
from custom_components.tencent_iot_gateway.bridge.switch import SwitchMapping

CLIMATE = State(
    "climate.hall",
    "cool",
    {
        "hvac_modes": ["off", "cool", "heat", "heat_cool"],
        "temperature": 24,
        "current_temperature": 26.5,
        "min_temp": 16,
        "max_temp": 30,
    },
)


def test_default_identifiers_are_tencents_standard_ones() -> None:
    """Shown on the form, changeable."""
    assert default_identifiers(Category.COVER) == {
        Role.COVER_CONTROL: "control",
        Role.POSITION_SET: "percent_control",
        Role.POSITION: "percent_state",
    }
    assert default_identifiers(Category.CLIMATE)[Role.MODE] == "mode"


def test_switch_and_input_boolean() -> None:
    """On is 1; the action is the entity's own domain's."""
    mapping = SwitchMapping()
    assert mapping.report(State("switch.plug", "on")) == {Role.POWER: 1}
    assert mapping.control({Role.POWER: 0}, State("input_boolean.away", "on")) == [
        ServiceCall("input_boolean", "turn_off")
    ]


@pytest.mark.parametrize(
    ("attributes", "value", "expected"),
    [
        ({"device_class": "temperature", "unit_of_measurement": "°C"}, "21.46", {Role.CURRENT_TEMP: 21.5}),
        ({"device_class": "temperature", "unit_of_measurement": "°F"}, "212", {Role.CURRENT_TEMP: 100.0}),
        ({"device_class": "humidity"}, "55.04", {Role.HUMIDITY: 55.0}),
        ({"device_class": "battery"}, "87.6", {Role.BATTERY: 88}),
        ({"device_class": "battery"}, "unknown", {}),
        ({"device_class": "power"}, "10", {}),
    ],
)
def test_sensors_by_device_class(attributes: dict[str, Any], value: str, expected: dict[Role, Any]) -> None:
    """°C always; unknown values and other device classes report nothing."""
    assert SensorMapping().report(State("sensor.x", value, attributes)) == expected


def test_contact_and_motion() -> None:
    """On is 1; unknown reports nothing."""
    assert BinarySensorMapping(Role.CONTACT).report(State("binary_sensor.door", "on")) == {Role.CONTACT: 1}
    assert BinarySensorMapping(Role.MOTION).report(State("binary_sensor.hall", "off")) == {Role.MOTION: 0}
    assert BinarySensorMapping(Role.MOTION).report(State("binary_sensor.hall", "unknown")) == {}


def test_cover() -> None:
    """Position up; the enum and the position down."""
    mapping = CoverMapping()
    cover = State("cover.blind", "open", {"current_position": 40})
    assert mapping.report(cover) == {Role.POSITION: 40}
    assert mapping.control({Role.COVER_CONTROL: 2}, cover) == [ServiceCall("cover", "stop_cover")]
    assert mapping.control({Role.POSITION_SET: 75}, cover) == [
        ServiceCall("cover", "set_cover_position", {"position": 75})
    ]
    for values, refusal in (
        ({Role.COVER_CONTROL: 3}, Refusal.OUT_OF_RANGE),
        ({Role.POSITION_SET: 101}, Refusal.OUT_OF_RANGE),
        ({Role.POSITION_SET: "50"}, Refusal.WRONG_TYPE),
    ):
        with pytest.raises(ControlRefusedError) as err:
            mapping.control(values, cover)
        assert err.value.refusal is refusal


def test_climate() -> None:
    """Power, mode, set point and room temperature up; off, mode (auto falls back to heat_cool) and set point
    down; a mode the entity lacks or a set point out of its range is refused."""
    mapping = ClimateMapping()
    assert mapping.report(CLIMATE) == {
        Role.POWER: 1,
        Role.MODE: 1,
        Role.TARGET_TEMP: 24.0,
        Role.CURRENT_TEMP: 26.5,
    }
    assert mapping.control({Role.POWER: 0, Role.MODE: 2}, CLIMATE) == [ServiceCall("climate", "turn_off")]
    assert mapping.control({Role.MODE: 0, Role.TARGET_TEMP: 22.5}, CLIMATE) == [
        ServiceCall("climate", "set_hvac_mode", {"hvac_mode": "heat_cool"}),
        ServiceCall("climate", "set_temperature", {"temperature": 22.5}),
    ]
    assert mapping.control({Role.POWER: 1}, CLIMATE) == [ServiceCall("climate", "turn_on")]
    for values in ({Role.MODE: 3}, {Role.TARGET_TEMP: 35}):
        with pytest.raises(ControlRefusedError) as err:
            mapping.control(values, CLIMATE)
        assert err.value.refusal is Refusal.OUT_OF_RANGE


def test_device_names_fit_tencent() -> None:
    """The entity id with `_` for the dot; a long one cut with a hash, at most 48 characters, still unique."""
    assert device_name_for("light.desk") == "light_desk"
    long_a = device_name_for("sensor." + "a" * 60)
    long_b = device_name_for("sensor." + "a" * 61)
    assert len(long_a) == 48
    assert long_a != long_b
