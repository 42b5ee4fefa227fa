"""What the entities show of one gateway: the connection, and per sub-device its job snapshot, its online
result and whether its update topic was refused; and who listens to each.

The engine is push-driven (no polling), so instead of a `DataUpdateCoordinator` the runtime hands every state
the engine reports to this cache, and the listeners of the entities concerned are called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import logging

from homeassistant.core import CALLBACK_TYPE, callback

from .engine import DeviceId, JobSnapshot, JobState

_LOGGER = logging.getLogger(__name__)


@dataclass
class DeviceState:
    """What the entities of one sub-device show."""

    snapshot: JobSnapshot
    online: bool = False
    result: int | None = None
    listeners: list[CALLBACK_TYPE] = field(default_factory=list)
    was_available: bool | None = None
    updates_blocked: bool = False


class EntityStates:
    """The latest state of the gateway's connection and sub-devices, and their listeners."""

    def __init__(self, gateway: DeviceId, installed_version: Callable[[DeviceId], str | None]) -> None:
        """`installed_version`: the configured version of a device nothing was reported for yet."""
        self._gateway = gateway
        self._installed_version = installed_version
        self._devices: dict[DeviceId, DeviceState] = {}
        self._connection_listeners: list[CALLBACK_TYPE] = []
        self.connected = False
        self.stopping = False  # the sub-devices go unavailable because we stop: nothing to log for them
        self.was_connected = False

    def snapshot(self, device: DeviceId) -> JobSnapshot:
        """The latest job snapshot of a sub-device."""
        state = self._devices.get(device)
        if state is not None:
            return state.snapshot
        return JobSnapshot(device, JobState.IDLE, self._installed_version(device))

    def is_online(self, device: DeviceId) -> bool:
        """Whether the cloud accepted the sub-device's `online` (and the gateway is connected)."""
        state = self._devices.get(device)
        return self.connected and state is not None and state.online

    def updates_blocked(self, device: DeviceId) -> bool:
        """Whether the broker refused the sub-device's update topic (no firmware push can reach it)."""
        state = self._devices.get(device)
        return state is not None and state.updates_blocked

    def online_result(self, device: DeviceId) -> int | None:
        """The cloud's last answer to the sub-device's `online` (0 accepted, -1 not bound), if any."""
        state = self._devices.get(device)
        return state.result if state is not None else None

    @callback
    def async_add_listener(self, device: DeviceId | None, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` when the device's (or, for None, the connection's) state changes."""
        listeners = self._connection_listeners if device is None else self.state(device).listeners
        listeners.append(listener)

        def remove() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return remove

    def state(self, device: DeviceId) -> DeviceState:
        """The device's state, to change (then `notify`)."""
        state = self._devices.get(device)
        if state is None:
            state = self._devices[device] = DeviceState(self.snapshot(device))
        return state

    def forget(self, device: DeviceId) -> None:
        """The sub-device was removed."""
        self._devices.pop(device, None)

    def notify(self, device: DeviceId) -> None:
        """Tell the device's listeners that its state changed."""
        state = self._devices.get(device)
        if state is None:
            return
        self._log_availability(device, state)
        for listener in list(state.listeners):
            listener()

    def set_connected(self, connected: bool, sub_devices: int) -> None:
        """The gateway's connection changed: every entity hears it."""
        if connected == self.connected:
            return
        self.connected = connected
        if not connected and not self.stopping:
            _LOGGER.info(
                "Gateway %s is disconnected: its %d sub-device(s) are unavailable until it reconnects",
                self._gateway,
                sub_devices,
            )
        elif connected and self.was_connected:
            _LOGGER.info("Gateway %s is connected again", self._gateway)
        self.was_connected = self.was_connected or connected
        for listener in list(self._connection_listeners):
            listener()
        for device in list(self._devices):
            self.notify(device)

    def _log_availability(self, device: DeviceId, state: DeviceState) -> None:
        """Log once when a sub-device becomes unavailable for a reason of its own and once when it is back.

        A gateway with 1,000 sub-devices would otherwise log 1,000 lines each time it connects or loses its
        connection: those are logged once for the gateway (`set_connected`), and a sub-device's own state
        is only judged while the gateway is connected. Coming online at start-up is not "back".
        """
        if not self.connected:
            return
        available = self.is_online(device)
        if state.was_available is None and available:
            state.was_available = True
            return
        if available == state.was_available:
            return
        state.was_available = available
        if available:
            _LOGGER.info("Sub-device %s is available again", device)
        else:
            _LOGGER.info(
                "Sub-device %s is unavailable: the cloud answered online with %s", device, state.result
            )
