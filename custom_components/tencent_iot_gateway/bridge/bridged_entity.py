"""One bridged entity at run time: its device, its data-template client, and what diagnostics show of it."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import State
from homeassistant.util import dt as dt_util

from custom_components.tencent_iot_gateway.engine import Control, DataTemplateClient, DeviceId, PropertyValue

from .config import BridgeConfig
from .pairings import Pairing

_ERRORS_KEPT: Final = 10


def usable(state: State | None) -> bool:
    """Whether the entity can be shown in the cloud as online (it exists and is not unavailable)."""
    return state is not None and state.state != STATE_UNAVAILABLE


@dataclass(slots=True)
class BridgedEntity:
    """An entity of a bridge subentry and its device in the product."""

    entity_id: str
    config: BridgeConfig
    pairing: Pairing
    client: DataTemplateClient | None = None
    # Given to the engine (bound and brought online): while the entity is usable.
    in_engine: bool = False
    # The values last handed to the client, by identifier (a change reports only what differs).
    sent: dict[str, PropertyValue] = field(default_factory=dict)
    last_report: dict[str, Any] | None = None
    last_control: dict[str, Any] | None = None
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=_ERRORS_KEPT))
    waiting: deque[Control] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    # Presence changes (online, offline) of one entity run in order.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def device(self) -> DeviceId:
        """The entity's device."""
        return self.pairing.device

    def error(self, text: str) -> None:
        """Keep an error for diagnostics (the newest ones)."""
        self.errors.append(f"{dt_util.utcnow().isoformat()} {text}")

    def diagnostics(self) -> dict[str, Any]:
        """What the diagnostics show (no secret)."""
        return {
            "entity_id": self.entity_id,
            "device": self.device.key,
            "category": self.config.category.value,
            "read_only": self.config.read_only,
            "online_wanted": self.in_engine,
            "refused_properties": sorted(self.client.refused) if self.client is not None else [],
            "last_report": self.last_report,
            "last_control": self.last_control,
            "errors": list(self.errors),
        }
