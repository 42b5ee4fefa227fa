"""The flashers as the integration offers them: the engine's kinds, plus Home Assistant's own `automation`.

Sub-device subentries store a flasher's settings as the engine's `to_dict()` output (with `kind`); they are
parsed again (and so validated) every time the entry is set up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

# Imported for its side effect: the `automation` kind registers itself with the engine's registry.
from . import automation_flasher
from .engine import Flasher, build_flasher, flasher_config_from_dict, flasher_kinds

AUTOMATION_KIND = automation_flasher.KIND


def available_flasher_kinds() -> list[str]:
    """Every kind a sub-device can be given."""
    return flasher_kinds()


def parse_flasher_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validated settings in their stored form; raises `InvalidFieldError` naming the bad field."""
    return flasher_config_from_dict(settings).to_dict()


def flasher_from_settings(settings: Mapping[str, Any], session: aiohttp.ClientSession) -> Flasher:
    """Build the flasher a sub-device's stored settings describe."""
    return build_flasher(flasher_config_from_dict(settings), session)
