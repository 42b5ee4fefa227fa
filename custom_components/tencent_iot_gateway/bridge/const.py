"""The bridge's keys, names and limits (one place for each)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from custom_components.tencent_iot_gateway.const import DOMAIN

# The subentry type, and its data (flat).
SUBENTRY_BRIDGE: Final = "bridge"
CONF_CATEGORY: Final = "category"
CONF_CREATION: Final = "creation"
CONF_ENTITIES: Final = "entities"
CONF_READ_ONLY: Final = "read_only"
# The identifiers the mapping uses, by role (a form section; stored as one object).
CONF_PROPERTIES: Final = "properties"
# Asked with the product secret; the registration service's base URL (custom deployments only). Not secret.
CONF_BRIDGE_REGISTRATION_URL: Final = "registration_url"

# Fired, with the control's HA `Context`, before the actions a cloud control runs: the logbook names the
# cloud as what changed the entity (logbook.py).
EVENT_CLOUD_CONTROL: Final = f"{DOMAIN}_cloud_control"

# Controls of one entity that may wait while one runs; more are refused (answered at once, not run).
MAX_WAITING_CONTROLS: Final = 8
# Tencent's device names: at most 48 of these characters.
MAX_DEVICE_NAME: Final = 48


class Creation(StrEnum):
    """How the bridge's devices come to exist in the product."""

    REGISTER = "register"
    """Dynamic registration with the product secret (the product's auto-create switch on)."""

    GIVEN = "given"
    """Devices created in the console; the user gives each entity's device name and secret."""
