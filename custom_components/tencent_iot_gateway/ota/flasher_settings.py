"""The flashers as the integration offers them: the engine's kinds, plus Home Assistant's own `automation`.

Sub-device subentries store a flasher's settings as the `to_dict()` output of its config (with `kind`); they
are parsed again (and so validated) every time the entry is set up. The `automation` kind lives on this side
(it fires events on Home Assistant's bus), so it is handled here rather than registered with the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from homeassistant.core import HomeAssistant

from custom_components.tencent_iot_gateway.engine import (
    FieldProblem,
    Flasher,
    InvalidFieldError,
    build_flasher,
    flasher_config_from_dict,
    flasher_kinds,
)

from .automation_flasher import KIND as AUTOMATION_KIND, AutomationFlasher, AutomationFlasherConfig

__all__ = ["AUTOMATION_KIND", "available_flasher_kinds", "flasher_from_settings", "parse_flasher_settings"]


def available_flasher_kinds() -> list[str]:
    """Every kind a sub-device can be given."""
    return sorted([*flasher_kinds(), AUTOMATION_KIND])


def parse_flasher_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validated settings in their stored form; raises `InvalidFieldError` naming the bad field."""
    if _kind_of(settings) == AUTOMATION_KIND:
        return AutomationFlasherConfig.from_dict(settings).to_dict()
    return flasher_config_from_dict(settings).to_dict()


def flasher_from_settings(
    hass: HomeAssistant, settings: Mapping[str, Any], session: aiohttp.ClientSession
) -> Flasher:
    """Build the flasher a sub-device's stored settings describe (`hass` for the `automation` kind)."""
    if _kind_of(settings) == AUTOMATION_KIND:
        return AutomationFlasher(hass, AutomationFlasherConfig.from_dict(settings))
    return build_flasher(flasher_config_from_dict(settings), session)


def _kind_of(settings: Mapping[str, Any]) -> object:
    if not isinstance(settings, Mapping):
        raise InvalidFieldError("flasher", FieldProblem.INVALID)
    kind = settings.get("kind")
    if kind not in available_flasher_kinds():
        raise InvalidFieldError("kind", FieldProblem.CHOICE, allowed=", ".join(available_flasher_kinds()))
    return kind
