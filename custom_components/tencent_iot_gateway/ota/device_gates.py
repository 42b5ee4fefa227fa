"""What each sub-device's job goes through on this side: its flasher, its pre-flight gate and its health
check, built from its subentry and rebuilt together whenever the subentry changes."""

from __future__ import annotations

from collections.abc import Callable
import logging

import aiohttp
from homeassistant.core import HomeAssistant

from custom_components.tencent_iot_gateway.engine import (
    DeviceId,
    Flasher,
    HealthCheck,
    InvalidFieldError,
    Preflight,
)
from custom_components.tencent_iot_gateway.entry_config import SubDeviceConfig

from .flasher_settings import AUTOMATION_KIND, flasher_from_settings
from .health_templates import build_health_check
from .preflight_templates import build_preflight

_LOGGER = logging.getLogger(__name__)


class DeviceGates:
    """The flashers, pre-flight gates and health checks of one entry's devices, for the engine to ask."""

    def __init__(
        self, hass: HomeAssistant, session: aiohttp.ClientSession, unattended: Callable[[DeviceId], bool]
    ) -> None:
        """`unattended(device)`: whether nobody watches the device's install (its pre-flight gate says so)."""
        self._hass = hass
        self._session = session
        self._unattended = unattended
        self._flashers: dict[DeviceId, Flasher] = {}
        self._preflights: dict[DeviceId, Preflight] = {}
        self._health_checks: dict[DeviceId, HealthCheck] = {}

    def flasher_for(self, device: DeviceId) -> Flasher | None:
        """The device's flasher, if it has a usable one."""
        return self._flashers.get(device)

    def preflight_for(self, device: DeviceId) -> Preflight | None:
        """The device's pre-flight gate, if any."""
        return self._preflights.get(device)

    def health_for(self, device: DeviceId) -> HealthCheck | None:
        """The device's health check after a flash, if any."""
        return self._health_checks.get(device)

    def has_flasher(self, device: DeviceId) -> bool:
        """Whether the device can be updated from Home Assistant."""
        return device in self._flashers

    def use_automation_flasher(self, device: DeviceId) -> None:
        """The gateway itself: the user decides what installing means (the host, an add-on), by automation."""
        self._flashers[device] = flasher_from_settings(self._hass, {"kind": AUTOMATION_KIND}, self._session)

    def build(self, config: SubDeviceConfig) -> None:
        """(Re)build the device's gates from its subentry; a flasher that cannot be built is logged and left
        out (the device then cannot be updated from Home Assistant)."""
        preflight = build_preflight(self._hass, config.display_name, config.preflight, self._unattended)
        _put(self._preflights, config.device, preflight)
        _put(
            self._health_checks,
            config.device,
            build_health_check(self._hass, config.display_name, config.health),
        )
        self._flashers.pop(config.device, None)
        if config.flasher is None:
            return
        try:
            self._flashers[config.device] = flasher_from_settings(self._hass, config.flasher, self._session)
        except InvalidFieldError as err:
            _LOGGER.error("The flasher of %s is not usable: %s", config.device, err)

    def remove(self, device: DeviceId) -> None:
        """The device is gone: none of its gates stays."""
        for gates in (self._flashers, self._preflights, self._health_checks):
            gates.pop(device, None)


def _put[T](gates: dict[DeviceId, T], device: DeviceId, gate: T | None) -> None:
    if gate is None:
        gates.pop(device, None)
    else:
        gates[device] = gate
