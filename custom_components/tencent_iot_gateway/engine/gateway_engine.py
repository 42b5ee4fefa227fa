"""The gateway as a whole: one MQTT session, its sub-devices, and their OTA jobs.

This is the engine's one entry point for the layer above. It announces the gateway again on every
(re)connect (subscriptions, `online` for every sub-device, a version report for each), because the cloud
forgets all of it when a connection drops, and it turns everything that happens into `EngineEvent`s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
import contextlib
from dataclasses import dataclass
import logging
from typing import Any

from .auth import SignMethod
from .background import BackgroundTasks
from .endpoints import BrokerEndpoint
from .errors import (
    AuthenticationError,
    GatewayOperationError,
    NotConnectedError,
    OperationTimeoutError,
    SubscriptionRefusedError,
    TencentIotError,
)
from .flashers.base import Flasher
from .gateway import AllUnbound, GatewayOperations, GatewayPush, SubDevicesChanged
from .identity import DeviceId
from .ota_jobs import Downloader, ImageCache, JobSnapshot, OtaManager, OtaSettings
from .session import Backoff, MqttSession
from .storage import StateStore
from .topics import gateway_operation_result, ota_update, parse_ota_update

_LOGGER = logging.getLogger(__name__)

SUBSCRIBE_BATCH = 50
_NOT_BOUND = -1


@dataclass(frozen=True, slots=True)
class SubDevice:
    """A sub-device as configured: with a secret, the gateway binds it itself when the cloud says unbound."""

    device: DeviceId
    installed_version: str | None  # None: unknown (adopted from the cloud); never reported until known
    secret: str | None = None

    def __repr__(self) -> str:
        """The secret stays out of logs."""
        return f"SubDevice({self.device}, installed_version={self.installed_version!r})"


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    """The gateway's MQTT session went up or down."""

    connected: bool


@dataclass(frozen=True, slots=True)
class AuthenticationFailed:
    """The broker refused the gateway's credentials; nothing more is tried until they change."""

    message: str


@dataclass(frozen=True, slots=True)
class SubDeviceStatus:
    """The cloud's answer to `online`/`offline` for one sub-device; `result` -1 means not bound here."""

    device: DeviceId
    online: bool
    result: int | None


type EngineEvent = (
    ConnectionChanged | AuthenticationFailed | SubDeviceStatus | SubDevicesChanged | AllUnbound | JobSnapshot
)


class GatewayEngine:
    """Runs one gateway."""

    def __init__(
        self,
        *,
        endpoint: BrokerEndpoint,
        gateway: DeviceId,
        device_secret: str,
        downloader: Downloader,
        cache: ImageCache,
        store: StateStore,
        flasher_for: Callable[[DeviceId], Flasher | None],
        auto_install: Callable[[DeviceId], bool],
        on_event: Callable[[EngineEvent], None],
        settings: OtaSettings | None = None,
        sign_method: SignMethod = SignMethod.HMAC_SHA256,
        backoff: Backoff | None = None,
        operation_timeout_s: float = 20.0,
    ) -> None:
        """Wire the parts; nothing is sent before `start`."""
        self._gateway = gateway
        self._on_event = on_event
        self._sub_devices: dict[DeviceId, SubDevice] = {}
        self._online: dict[DeviceId, bool] = {}
        self._session = MqttSession(
            endpoint,
            gateway,
            device_secret,
            on_message=self._on_message,
            on_connected=self._announce,
            on_connection_lost=self._on_connection_lost,
            on_auth_failed=self._on_auth_failed,
            sign_method=sign_method,
            backoff=backoff,
        )
        self._operations = GatewayOperations(
            gateway, self._session.publish, self._on_push, timeout_s=operation_timeout_s
        )
        self._ota = OtaManager(
            publish=self._session.publish,
            downloader=downloader,
            cache=cache,
            flasher_for=flasher_for,
            store=store,
            on_change=on_event,
            auto_install=auto_install,
            settings=settings,
        )
        self._background = BackgroundTasks("A gateway operation failed")
        self._online_retry_s = operation_timeout_s
        self._stopped = False

    @property
    def gateway(self) -> DeviceId:
        """The gateway device."""
        return self._gateway

    @property
    def connected(self) -> bool:
        """Whether the MQTT session is up."""
        return self._session.connected

    @property
    def ota(self) -> OtaManager:
        """The OTA jobs: install, cancel, snapshots."""
        return self._ota

    @property
    def operations(self) -> GatewayOperations:
        """Raw gateway operations (bind, unbind, describe)."""
        return self._operations

    def is_online(self, device: DeviceId) -> bool:
        """Whether the cloud accepted the sub-device's last `online`."""
        return self._online.get(device, False)

    @property
    def sub_devices(self) -> list[SubDevice]:
        """The configured sub-devices."""
        return list(self._sub_devices.values())

    async def start(self, sub_devices: Sequence[SubDevice]) -> None:
        """Load saved state, connect and announce; raises `AuthenticationError` or `CannotConnectError`."""
        await self._ota.async_load()
        for sub in sub_devices:
            self._sub_devices[sub.device] = sub
            self._on_event(self._ota.add_device(sub.device, sub.installed_version))
        await self._session.start()

    async def stop(self) -> None:
        """Stop jobs (keeping what can resume), then disconnect. Safe to call twice."""
        self._stopped = True
        await self._ota.async_stop()
        await self._background.close()
        await self._session.stop()

    async def update_sub_device(self, sub: SubDevice) -> None:
        """Take new settings of a known sub-device (its secret); bind and bring it online if it is not yet.

        Its OTA state (installed version, pending push, a job under way) is left as it is.
        """
        if sub.device not in self._sub_devices:
            await self.add_sub_device(sub)
            return
        self._sub_devices[sub.device] = sub
        if self._session.connected and not self.is_online(sub.device):
            await self._bring_online([sub.device])

    async def add_sub_device(self, sub: SubDevice) -> None:
        """Start handling a sub-device now (bound if needed, online, version reported)."""
        self._sub_devices[sub.device] = sub
        self._on_event(self._ota.add_device(sub.device, sub.installed_version))
        if self._session.connected:
            await self._bring_online([sub.device])

    async def remove_sub_device(self, device: DeviceId, *, unbind: bool = False) -> None:
        """Stop handling a sub-device: `offline`, and `unbind` when asked."""
        self._sub_devices.pop(device, None)
        await self._ota.remove_device(device)
        self._online.pop(device, None)
        if self._session.connected:
            with contextlib.suppress(OperationTimeoutError):
                await self._operations.offline([device])
            if unbind:
                await self._operations.unbind(device)

    # -- connection -----------------------------------------------------------------------------------------

    async def _announce(self) -> None:
        """Everything the cloud forgets on a reconnect, again."""
        await self._session.subscribe([gateway_operation_result(self._gateway)])
        await self._bring_online(list(self._sub_devices))
        if not self._session.connected:
            raise NotConnectedError("the connection dropped while announcing the gateway")
        self._on_event(ConnectionChanged(connected=True))
        _LOGGER.debug("Announced %s with %d sub-device(s)", self._gateway, len(self._sub_devices))

    async def _bring_online(self, devices: list[DeviceId]) -> None:
        """`online` (binding first where we can), then the OTA topics and versions of those now online.

        The broker only lets a gateway subscribe to topics of sub-devices bound to it, hence this order.
        """
        if not devices or self._stopped:
            return
        outcome = await self._operations.online(devices)
        unbound = [d for d, code in outcome.results.items() if code == _NOT_BOUND]
        bindable = [d for d in unbound if d in self._sub_devices and self._sub_devices[d].secret]
        for device in bindable:
            secret = self._sub_devices[device].secret
            assert secret is not None
            try:
                await self._operations.bind(device, secret)
            except GatewayOperationError as err:
                _LOGGER.error("Could not bind %s to the gateway: %s", device, err)
        if bindable:
            retry = await self._operations.online(bindable)
            outcome.results.update(retry.results)
        for device, code in outcome.results.items():
            self._set_online(device, code == 0, code)
        for device in outcome.unanswered:
            self._set_online(device, False, None)
        online = [d for d, code in outcome.results.items() if code == 0 and d in self._sub_devices]
        await self._subscribe([ota_update(d) for d in online])
        await self._ota.report_versions(online)
        if outcome.unanswered:
            # The cloud lost the request (or is not listening yet): ask again while we stay connected.
            self._run_in_background(self._retry_online(list(outcome.unanswered)))

    async def _subscribe(self, topics: list[str]) -> None:
        for start in range(0, len(topics), SUBSCRIBE_BATCH):
            try:
                await self._session.subscribe(topics[start : start + SUBSCRIBE_BATCH])
            except SubscriptionRefusedError as err:
                # Unbound in the console a moment ago: the `change` push that follows says so.
                _LOGGER.warning("%s", err)

    async def _retry_online(self, devices: list[DeviceId]) -> None:
        await asyncio.sleep(self._online_retry_s)
        pending = [d for d in devices if d in self._sub_devices and not self._online.get(d)]
        if pending and self._session.connected:
            await self._bring_online(pending)

    def _set_online(self, device: DeviceId, online: bool, result: int | None) -> None:
        if not online and result == _NOT_BOUND:
            _LOGGER.warning(
                "%s is not bound to gateway %s; give it a secret or bind it in the console",
                device,
                self._gateway,
            )
        self._online[device] = online
        self._on_event(SubDeviceStatus(device, online, result))

    def _on_connection_lost(self) -> None:
        self._online.clear()
        self._on_event(ConnectionChanged(connected=False))

    def _on_auth_failed(self, error: AuthenticationError) -> None:
        self._on_event(AuthenticationFailed(str(error)))

    # -- messages -------------------------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == gateway_operation_result(self._gateway):
            self._operations.handle_message(payload)
            return
        try:
            device = parse_ota_update(topic)
        except TencentIotError:
            device = None
        if device is not None:
            self._ota.handle_update_message(device, payload)
        else:
            _LOGGER.debug("Ignoring a message on %s", topic)

    def _on_push(self, push: GatewayPush) -> None:
        self._on_event(push)
        if isinstance(push, AllUnbound):
            self._run_in_background(self._operations.acknowledge_unbind_all())
        elif push.bound:
            known = [d for d in push.devices if d in self._sub_devices]
            if known:
                self._run_in_background(self._bring_online(known))

    def _run_in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        self._background.spawn(coro)
