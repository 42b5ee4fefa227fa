"""The gateway's data-template clients, one per bridged sub-device, and the routing of their downlinks."""

from __future__ import annotations

from collections.abc import Callable
import logging

from custom_components.tencent_iot_gateway.engine.errors import (
    OperationTimeoutError,
    SubscriptionRefusedError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.topics import parse_thing_property_down
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import Subscribe

from .client import REQUEST_TIMEOUT_S, DataPublish, DataTemplateClient, DataTemplateHandlers

_LOGGER = logging.getLogger(__name__)


class DataTemplates:
    """Clients by device; the gateway engine subscribes them when their device is online."""

    def __init__(
        self,
        publish: DataPublish,
        subscribe: Subscribe,
        *,
        online: Callable[[DeviceId], bool],
        retry: Callable[[set[DeviceId]], None],
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        """Every client publishes and subscribes through the gateway's one session.

        `online`: whether the device is online on a live connection now. `retry`: devices whose subscription
        got no answer, for the gateway's retries (`AnnounceRetries`).
        """
        self._publish = publish
        self._subscribe = subscribe
        self._online = online
        self._retry = retry
        self._timeout_s = timeout_s
        self._clients: dict[DeviceId, DataTemplateClient] = {}

    def get(self, device: DeviceId) -> DataTemplateClient | None:
        """The device's client, if it is bridged."""
        return self._clients.get(device)

    async def attach(self, device: DeviceId, handlers: DataTemplateHandlers) -> DataTemplateClient:
        """Bridge a configured sub-device's data template: its client (a new one replaces the handlers of an
        earlier one), subscribed now if the device is online and again after every (re)connect that brings it
        online."""
        client = DataTemplateClient(
            device, self._publish, self._subscribe, handlers, timeout_s=self._timeout_s
        )
        old = self._clients.get(device)
        if old is not None:
            _LOGGER.debug("Replacing the data-template client of %s", device)
        self._clients[device] = client
        if self._online(device):
            self._retry(await self.subscribe([device]))
        return client

    async def detach(self, device: DeviceId) -> None:
        """Stop the device's client (nothing is unsubscribed: the unbind or `offline` ends the topic)."""
        client = self._clients.pop(device, None)
        if client is not None:
            await client.close()

    def handle(self, topic: str, payload: bytes) -> bool:
        """Route a `$thing/down/property/...` message; False for any other topic."""
        device = parse_thing_property_down(topic)
        if device is None:
            return False
        client = self._clients.get(device)
        if client is None:
            _LOGGER.debug("A data-template message for %s, which is not bridged; ignored", device)
        else:
            client.handle_message(payload)
        return True

    async def subscribe(self, devices: list[DeviceId]) -> set[DeviceId]:
        """Subscribe the bridged ones among `devices` (now online); returns those to try again."""
        retry: set[DeviceId] = set()
        for device in devices:
            client = self._clients.get(device)
            if client is None:
                continue
            try:
                await client.subscribe()
            except SubscriptionRefusedError:
                _LOGGER.warning(
                    "The broker refused the data-template topic of %s: the cloud cannot control it", device
                )
            except OperationTimeoutError:
                retry.add(device)
        return retry

    def connection_lost(self) -> None:
        """Every client's waiting requests fail; their recorded values wait for the next subscribe."""
        for client in self._clients.values():
            client.connection_lost()

    async def close(self) -> None:
        """Stop every client."""
        for device in list(self._clients):
            await self.detach(device)
