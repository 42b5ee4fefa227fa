"""Contact and motion sensors: `contact_state` and `motionAlarm_state` (0/1), read-only.

1 is Home Assistant's on: open for a door or window, motion detected.
"""

from __future__ import annotations

from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import STATE_ON, STATE_UNKNOWN
from homeassistant.core import State

from custom_components.tencent_iot_gateway.engine import PropertyValue

from .mapping import Role, RoleValues, ServiceCall

CONTACT_CLASSES = tuple(
    c.value
    for c in (
        BinarySensorDeviceClass.DOOR,
        BinarySensorDeviceClass.WINDOW,
        BinarySensorDeviceClass.OPENING,
        BinarySensorDeviceClass.GARAGE_DOOR,
    )
)
MOTION_CLASSES = tuple(
    c.value
    for c in (
        BinarySensorDeviceClass.MOTION,
        BinarySensorDeviceClass.OCCUPANCY,
        BinarySensorDeviceClass.PRESENCE,
    )
)


class BinarySensorMapping:
    """One on/off property under `role`."""

    writable: frozenset[Role] = frozenset()

    def __init__(self, role: Role) -> None:
        """Contact or motion."""
        self.roles = (role,)
        self._role = role

    def report(self, state: State) -> dict[Role, PropertyValue]:
        """On is 1; an unknown state reports nothing."""
        if state.state == STATE_UNKNOWN:
            return {}
        return {self._role: int(state.state == STATE_ON)}

    def control(self, values: RoleValues, state: State) -> list[ServiceCall]:
        """Never reached: nothing is writable."""
        return []
