"""The sub-devices' OTA topics (`$ota/update/{pid}/{dn}`): subscribed one per SUBSCRIBE (spec §3a), and which
devices the broker refused one, so that a device that cannot hear pushes is said, not left silent."""

from __future__ import annotations

from collections.abc import Callable
import logging

from custom_components.tencent_iot_gateway.engine.errors import (
    OperationTimeoutError,
    SubscriptionRefusedError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.topics import ota_update
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import Subscribe

_LOGGER = logging.getLogger(__name__)


class UpdateTopics:
    """Subscribes the update topics and tells each change of a device's "updates blocked" state."""

    def __init__(self, subscribe: Subscribe, on_blocked: Callable[[DeviceId, bool], None]) -> None:
        """`on_blocked(device, blocked)`: a refusal, or a topic granted again after one."""
        self._subscribe = subscribe
        self._on_blocked = on_blocked
        self._blocked: set[DeviceId] = set()

    def blocked(self, device: DeviceId) -> bool:
        """Whether the broker refused the device's update topic the last time it was asked."""
        return device in self._blocked

    def forget(self, device: DeviceId) -> None:
        """The device is no longer handled."""
        self._blocked.discard(device)

    async def subscribe(self, devices: list[DeviceId]) -> set[DeviceId]:
        """Subscribe each device's update topic; returns those to try again (no answer came).

        A refusal is not retried: the device cannot hear pushes, and that is said (event, log line) rather
        than left silent. The `change` push that usually follows says whether it was just unbound.
        """
        retry: set[DeviceId] = set()
        for device in devices:
            try:
                await self._subscribe([ota_update(device)])
            except SubscriptionRefusedError:
                if device not in self._blocked:
                    _LOGGER.warning(
                        "The broker refused the update topic of %s: it cannot receive firmware updates "
                        "(unbound a moment ago, or over the broker's subscription limit)",
                        device,
                    )
                    self._blocked.add(device)
                    self._on_blocked(device, True)
                continue
            except OperationTimeoutError:
                retry.add(device)
                continue
            if device in self._blocked:
                self._blocked.discard(device)
                self._on_blocked(device, False)
        return retry
