"""The categories a bridge subentry can have: which entities fit, their mapping, and the default identifiers
(Tencent's standard categories; a category's version may name them otherwise, so the form shows them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from homeassistant.helpers.selector import EntityWithDeviceFilterSelectorConfig

from .binary_sensor import CONTACT_CLASSES, MOTION_CLASSES, BinarySensorMapping
from .climate import ClimateMapping
from .cover import CoverMapping
from .light import LightMapping
from .mapping import DomainMapping, Role
from .sensor import DEVICE_CLASSES, SensorMapping
from .switch import SwitchMapping


class Category(StrEnum):
    """A Tencent product category the bridge maps entities to."""

    LIGHT = "light"
    SWITCH = "switch"
    SENSOR = "sensor"
    CONTACT = "contact"
    MOTION = "motion"
    COVER = "cover"
    CLIMATE = "climate"


# Tencent's standard identifiers (docs/data-template-protocol.md); the set point's is the emulator's choice.
DEFAULT_IDENTIFIERS: Final[Mapping[Role, str]] = MappingProxyType(
    {
        Role.POWER: "power_switch",
        Role.BRIGHTNESS: "brightness",
        Role.COLOR_TEMP: "color_temp",
        Role.CURRENT_TEMP: "current_temp",
        Role.HUMIDITY: "current_humidity",
        Role.BATTERY: "battery_percentage",
        Role.CONTACT: "contact_state",
        Role.MOTION: "motionAlarm_state",
        Role.COVER_CONTROL: "control",
        Role.POSITION_SET: "percent_control",
        Role.POSITION: "percent_state",
        Role.MODE: "mode",
        Role.TARGET_TEMP: "target_temp",
    }
)


@dataclass(frozen=True, slots=True)
class CategorySpec:
    """A category: the entities that fit it (for the entity selector and a check) and their mapping."""

    domains: tuple[str, ...]
    mapping: DomainMapping
    device_classes: tuple[str, ...] = ()

    @property
    def entity_filter(self) -> list[EntityWithDeviceFilterSelectorConfig]:
        """The entity selector's filter."""
        if self.device_classes:
            return [
                EntityWithDeviceFilterSelectorConfig(domain=domain, device_class=list(self.device_classes))
                for domain in self.domains
            ]
        return [EntityWithDeviceFilterSelectorConfig(domain=domain) for domain in self.domains]


CATEGORIES: Final[Mapping[Category, CategorySpec]] = MappingProxyType(
    {
        Category.LIGHT: CategorySpec(("light",), LightMapping()),
        Category.SWITCH: CategorySpec(("switch", "input_boolean"), SwitchMapping()),
        Category.SENSOR: CategorySpec(("sensor",), SensorMapping(), tuple(DEVICE_CLASSES)),
        Category.CONTACT: CategorySpec(
            ("binary_sensor",), BinarySensorMapping(Role.CONTACT), CONTACT_CLASSES
        ),
        Category.MOTION: CategorySpec(("binary_sensor",), BinarySensorMapping(Role.MOTION), MOTION_CLASSES),
        Category.COVER: CategorySpec(("cover",), CoverMapping()),
        Category.CLIMATE: CategorySpec(("climate",), ClimateMapping()),
    }
)


def default_identifiers(category: Category) -> dict[Role, str]:
    """The standard identifier of each of the category's roles."""
    return {role: DEFAULT_IDENTIFIERS[role] for role in CATEGORIES[category].mapping.roles}
