"""The gateway as a whole: one MQTT session, its sub-devices, and their OTA jobs.

This is the engine's one entry point for the layer above. It announces the gateway again on every
(re)connect (subscriptions, `online` for every sub-device, a version report for each), because the cloud
forgets all of it when a connection drops, and it turns everything that happens into `EngineEvent`s.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
import contextlib
from dataclasses import dataclass, replace
import logging
from typing import Any

from custom_components.tencent_iot_gateway.engine.background import BackgroundTasks
from custom_components.tencent_iot_gateway.engine.data_template.device_clients import DataTemplates
from custom_components.tencent_iot_gateway.engine.engine_config import (
    ConnectionSettings,
    EngineDevices,
    EngineStorage,
    GatewayLogin,
)
from custom_components.tencent_iot_gateway.engine.errors import (
    AuthenticationError,
    GatewayOperationError,
    NotAGatewayError,
    NotConnectedError,
    OperationTimeoutError,
    SubscriptionRefusedError,
    TencentIotError,
)
from custom_components.tencent_iot_gateway.engine.gateway.announce_retries import AnnounceRetries
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway.operations import (
    RESULT_NOT_BOUND,
    AllUnbound,
    GatewayOperations,
    GatewayPush,
    SearchRequested,
    SubDevicesChanged,
)
from custom_components.tencent_iot_gateway.engine.mqtt.session import Backoff, MqttSession
from custom_components.tencent_iot_gateway.engine.mqtt.topics import (
    gateway_operation_result,
    parse_ota_update,
)
from custom_components.tencent_iot_gateway.engine.ota.jobs import (
    DeviceHooks,
    JobSnapshot,
    OtaManager,
    OtaOutputs,
    OtaSettings,
    OtaStorage,
    no_health_check,
    no_preflight,
)
from custom_components.tencent_iot_gateway.engine.ota.rollout_policy import (
    RolloutHalted,
    RolloutPolicy,
    RolloutSettings,
)
from custom_components.tencent_iot_gateway.engine.ota.update_topics import UpdateTopics

_LOGGER = logging.getLogger(__name__)

# Tries of the one subscription the gateway cannot work without, before the connection is given up.
_RESULT_TOPIC_TRIES = 3


@dataclass(frozen=True, slots=True)
class SubDevice:
    """A sub-device as configured: with a secret, the gateway binds it itself when the cloud says unbound."""

    device: DeviceId
    installed_version: str | None  # None: unknown (adopted from the cloud); never reported until known
    secret: str | None = None
    # False: a device without firmware of ours (a bridged entity): no OTA state, no `$ota/update` topic (the
    # broker may limit subscriptions per client), no version report.
    ota: bool = True

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
    """The cloud's answer to `online`/`offline` for one sub-device; `result` -1 means not bound here, and
    `bind_refused` is the cloud's code when the gateway's `bind` of it was refused just before (spec §2)."""

    device: DeviceId
    online: bool
    result: int | None
    bind_refused: int | None = None


@dataclass(frozen=True, slots=True)
class UpdatesBlocked:
    """The broker refused (`blocked`) or granted the sub-device's OTA topic: refused, it hears no pushes."""

    device: DeviceId
    blocked: bool


@dataclass(frozen=True, slots=True)
class OwnFirmware:
    """The gateway's own firmware, handled like a sub-device's on the gateway's own OTA topics.

    `version`: what the gateway reports it runs (None: unknown, nothing is reported until a flash installs one);
    `version_wins`: it replaces the version the last run saved (the user set a new one since), else a version
    installed by a flash since then is kept.
    """

    version: str | None
    version_wins: bool = False


type EngineEvent = (
    ConnectionChanged
    | AuthenticationFailed
    | SubDeviceStatus
    | SubDevicesChanged
    | AllUnbound
    | JobSnapshot
    | UpdatesBlocked
    | RolloutHalted
)


class GatewayEngine:
    """Runs one gateway."""

    def __init__(
        self,
        login: GatewayLogin,
        *,
        storage: EngineStorage,
        devices: EngineDevices,
        on_event: Callable[[EngineEvent], None],
        settings: OtaSettings | None = None,
        rollout: RolloutSettings | None = None,
        connection: ConnectionSettings | None = None,
    ) -> None:
        """Wire the parts; nothing is sent before `start`.

        `rollout`: stage the sub-devices' installs of one image (engine/ota/rollout_policy.py); None: no staging.
        """
        connection = connection or ConnectionSettings()
        gateway = login.gateway
        uplink_rate, operation_timeout_s = connection.uplink_rate, connection.operation_timeout_s
        halted_rollouts = storage.halted_rollouts
        self._gateway = gateway
        self._own_firmware: OwnFirmware | None = None
        self._on_event = on_event
        self._sub_devices: dict[DeviceId, SubDevice] = {}
        self._online: dict[DeviceId, bool] = {}
        self._session = MqttSession(
            login.endpoint,
            gateway,
            login.device_secret,
            on_message=self._on_message,
            on_connected=self._announce,
            on_connection_lost=self._on_connection_lost,
            on_auth_failed=self._on_auth_failed,
            sign_method=login.sign_method,
            backoff=connection.backoff,
            uplink_rate=uplink_rate,
            ack_timeout_s=operation_timeout_s,
        )
        self._operations = GatewayOperations(
            gateway, self._session.publish, self._on_push, timeout_s=operation_timeout_s
        )
        self._update_topics = UpdateTopics(
            self._session.subscribe, lambda device, blocked: on_event(UpdatesBlocked(device, blocked=blocked))
        )
        self._halted_rollouts = halted_rollouts
        self._rollout = (
            RolloutPolicy(
                rollout,
                on_halted=on_event,
                applies=lambda device: device != gateway,
                on_halts_changed=halted_rollouts.save if halted_rollouts is not None else None,
            )
            if rollout is not None
            else None
        )
        self._ota = OtaManager(
            outputs=OtaOutputs(publish=self._session.publish, on_change=on_event),
            hooks=DeviceHooks(
                flasher_for=devices.flasher_for,
                auto_install=devices.auto_install,
                preflight_for=devices.preflight_for or no_preflight,
                health_for=devices.health_for or no_health_check,
                rollout=self._rollout,
            ),
            storage=OtaStorage(
                store=storage.store,
                downloader=storage.downloader,
                cache=storage.cache,
                rollback_images=storage.rollback_images,
            ),
            # The keep-alives' share is a share of the session's budget: one rate for both, whatever the
            # settings said.
            settings=replace(settings or OtaSettings(), uplink_rate=uplink_rate),
        )
        self._background = BackgroundTasks("A gateway operation failed")
        # The announce's version reports (see `_bring_online`): a lost connection cancels them, and the
        # announce after the reconnect reports every version again.
        self._version_reports = BackgroundTasks("Reporting versions failed")
        self._retries = AnnounceRetries(
            self._bring_online,
            wanted=lambda device: device in self._sub_devices,
            may_run=lambda: not self._stopped and self._session.connected,
            spawn=self._run_in_background,
            backoff=connection.backoff or Backoff(initial_s=operation_timeout_s, maximum_s=300.0),
        )
        self._data_templates = DataTemplates(
            self._session.publish,
            self._session.subscribe,
            online=lambda device: self._session.connected and self.is_online(device),
            retry=self._retries.schedule,
            timeout_s=operation_timeout_s,
        )
        # Unbound by the cloud (console `change`/`unbind_all`, or missing from the bound list): not bound
        # again automatically with their secret until the user or the console says so.
        self._unbound: set[DeviceId] = set()
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

    @property
    def halted_rollouts(self) -> tuple[RolloutHalted, ...]:
        """The staged rollouts halted now, waiting for the user (the one record of them: saved, restored and
        resumed here; the HA layer's repair issues follow it)."""
        return tuple(self._rollout.halted) if self._rollout is not None else ()

    @property
    def data_templates(self) -> DataTemplates:
        """The bridged sub-devices' data-template clients: attach, detach, get."""
        return self._data_templates

    def is_online(self, device: DeviceId) -> bool:
        """Whether the cloud accepted the sub-device's last `online`."""
        return self._online.get(device, False)

    @property
    def sub_devices(self) -> list[SubDevice]:
        """The configured sub-devices."""
        return list(self._sub_devices.values())

    async def start(self, sub_devices: Sequence[SubDevice], own_firmware: OwnFirmware | None = None) -> None:
        """Load saved state, connect and announce; raises `AuthenticationError` or `CannotConnectError`.

        `own_firmware`: also report the gateway's own version and take pushes to it (None: sub-devices only).
        """
        await self._ota.async_load()
        if self._halted_rollouts is not None:
            saved = await self._halted_rollouts.async_load()
            if self._rollout is not None:
                self._rollout.restore(saved)
            elif saved:
                self._halted_rollouts.save([])  # staging was turned off: its halts are over
        self._own_firmware = own_firmware
        if own_firmware is not None:
            self._on_event(
                self._ota.add_device(
                    self._gateway, own_firmware.version, given_wins=own_firmware.version_wins
                )
            )
        for sub in sub_devices:
            self._sub_devices[sub.device] = sub
            if sub.ota:
                self._on_event(self._ota.add_device(sub.device, sub.installed_version))
        await self._session.start()

    async def wait_versions_reported(self) -> None:
        """Wait for the version reports under way: a push right after `start` would race them.

        That includes the sub-devices whose `online` the announce must try again (the cloud did not answer):
        their versions are reported once they are online, by the retry loop, which this waits for too.
        """
        while True:
            await self._version_reports.wait()
            if not self._retries.running or self._stopped:
                return
            await self._retries.wait()

    async def stop(self) -> None:
        """Stop jobs (keeping what can resume), then disconnect. Safe to call twice."""
        self._stopped = True
        # First: the version reports end by resuming interrupted installs, which must not start while stopping.
        await self._version_reports.close()
        await self._ota.async_stop()
        await self._background.close()
        await self._data_templates.close()
        if self._halted_rollouts is not None:
            await self._halted_rollouts.async_close()
        await self._session.stop()

    async def update_sub_device(self, sub: SubDevice) -> None:
        """Take new settings of a known sub-device (its secret); bind and bring it online if it is not yet.

        Its OTA state (installed version, pending push, a job under way) is left as it is.
        """
        if sub.device not in self._sub_devices:
            await self.add_sub_device(sub)
            return
        self._sub_devices[sub.device] = sub
        self._unbound.discard(sub.device)  # the user acted: bind it again if it has a secret
        if self._session.connected and not self.is_online(sub.device):
            self._retries.schedule(await self._bring_online([sub.device]))

    async def add_sub_device(self, sub: SubDevice) -> None:
        """Start handling a sub-device now (bound if needed, online, version reported)."""
        self._sub_devices[sub.device] = sub
        if sub.ota:
            self._on_event(self._ota.add_device(sub.device, sub.installed_version))
        if self._session.connected:
            self._retries.schedule(await self._bring_online([sub.device]))

    async def remove_sub_device(self, device: DeviceId, *, unbind: bool = False) -> None:
        """Stop handling a sub-device: `offline`, and `unbind` when asked."""
        self._sub_devices.pop(device, None)
        await self._ota.remove_device(device)
        await self._data_templates.detach(device)
        self._online.pop(device, None)
        self._unbound.discard(device)
        self._update_topics.forget(device)
        if self._session.connected:
            with contextlib.suppress(OperationTimeoutError):
                await self._operations.offline([device])
            if unbind:
                await self._operations.unbind(device)

    def mark_unbound(self, devices: Sequence[DeviceId]) -> None:
        """The cloud no longer has these sub-devices bound here (e.g. missing from `describe_sub_devices`).

        They stay configured but offline, and are not bound again with their secret on the next connect: the
        console's decision stands until the user acts (`update_sub_device`) or the console binds them again.
        """
        for device in devices:
            if device in self._sub_devices:
                self._unbound.add(device)
                self._set_online(device, False, RESULT_NOT_BOUND)

    # -- connection -----------------------------------------------------------------------------------------

    async def _announce(self) -> None:
        """Everything the cloud forgets on a reconnect, again.

        A lost answer for one sub-device is retried on its own with backoff (`AnnounceRetries`), never by
        dropping the connection; only the gateway's own result topic is essential.
        """
        await self._subscribe_results()
        if self._own_firmware is not None:
            await self._announce_own_firmware()
        pending = await self._bring_online(list(self._sub_devices), versions_later=True)
        if not self._session.connected:
            raise NotConnectedError("the connection dropped while announcing the gateway")
        self._on_event(ConnectionChanged(connected=True))
        self._retries.schedule(pending)
        _LOGGER.debug("Announced %s with %d sub-device(s)", self._gateway, len(self._sub_devices))

    async def _subscribe_results(self) -> None:
        topic = gateway_operation_result(self._gateway)
        for attempt in range(1, _RESULT_TOPIC_TRIES + 1):
            try:
                await self._session.subscribe([topic])
            except SubscriptionRefusedError:
                raise NotAGatewayError(
                    f"{self._gateway} logs in, but the cloud refuses it the gateway topics: "
                    "its product is not a gateway product"
                ) from None
            except OperationTimeoutError:
                if attempt == _RESULT_TOPIC_TRIES:
                    raise
                _LOGGER.debug("No SUBACK for %s (try %d); asking again", topic, attempt)
            else:
                return

    async def _announce_own_firmware(self) -> None:
        """The gateway's own OTA topic and version: no `online` is needed, the connection is its presence.

        A lost SUBACK or acknowledgement is not worth a reconnect (the sub-devices still work): it is logged,
        and the next connect tries again.
        """
        if await self._update_topics.subscribe([self._gateway]):
            _LOGGER.warning(
                "No SUBACK for the gateway's own update topic; it is asked again on the next connect"
            )
            return
        if self._update_topics.blocked(self._gateway):
            return
        try:
            await self._ota.report_versions([self._gateway])
        except OperationTimeoutError as err:
            _LOGGER.warning("Reporting the gateway's own version got no acknowledgement (%s)", err)

    async def _bring_online(self, devices: list[DeviceId], *, versions_later: bool = False) -> set[DeviceId]:
        """`online` (binding first where we can), then the OTA topics and versions of those now online.

        The broker only lets a gateway subscribe to topics of sub-devices bound to it, hence this order.
        `versions_later`: report the versions in the background (the announce: HA's setup and the entities'
        availability wait for `online` only, and 1,000 reports take half a minute at 30 msg/s).
        Returns the devices to try again: an answer that never came is not a reason to reconnect.
        """
        if not devices or self._stopped:
            return set()
        retry: set[DeviceId] = set()
        try:
            outcome = await self._operations.online(devices)
        except OperationTimeoutError as err:
            _LOGGER.warning("Bringing %d sub-device(s) online failed (%s); trying again", len(devices), err)
            return set(devices)
        unbound = [d for d, code in outcome.results.items() if code == RESULT_NOT_BOUND]
        bindable = [
            d
            for d in unbound
            if d in self._sub_devices and self._sub_devices[d].secret and d not in self._unbound
        ]
        bound_now: list[DeviceId] = []
        refused: dict[DeviceId, int] = {}
        for device in bindable:
            secret = self._sub_devices[device].secret
            assert secret is not None
            try:
                await self._operations.bind(device, secret)
                bound_now.append(device)
            except GatewayOperationError as err:
                _LOGGER.error("Could not bind %s to the gateway: %s", device, err)
                refused[device] = err.code
            except OperationTimeoutError as err:
                _LOGGER.warning("Binding %s got no answer (%s); trying again", device, err)
                retry.add(device)
        if bound_now:
            try:
                again = await self._operations.online(bound_now)
            except OperationTimeoutError:
                retry.update(bound_now)
            else:
                outcome.results.update(again.results)
                retry.update(again.unanswered)
        for device, code in outcome.results.items():
            self._set_online(device, code == 0, code, bind_refused=refused.get(device))
        for device in outcome.unanswered:
            self._set_online(device, False, None)
        retry.update(outcome.unanswered)
        online = [d for d, code in outcome.results.items() if code == 0 and d in self._sub_devices]
        with_ota = [d for d in online if self._sub_devices[d].ota]
        retry.update(await self._update_topics.subscribe(with_ota))
        retry.update(await self._data_templates.subscribe([d for d in online if d not in retry]))
        reportable = [d for d in with_ota if d not in retry]
        if versions_later:
            self._version_reports.spawn(self._report_versions_later(reportable))
        else:
            retry.update(await self._report_versions(reportable))
        return retry

    async def _report_versions(self, devices: list[DeviceId]) -> set[DeviceId]:
        """Versions (and outcomes lost with the last connection); returns the devices to try again."""
        if not devices:
            return set()
        try:
            await self._ota.report_versions(devices)
        except OperationTimeoutError as err:
            _LOGGER.warning("Reporting versions got no acknowledgement (%s); trying again", err)
            return set(devices)
        return set()

    async def _report_versions_later(self, devices: list[DeviceId]) -> None:
        try:
            retry = await self._report_versions(devices)
        except NotConnectedError:
            _LOGGER.debug("The connection dropped while reporting versions; the next announce reports them")
            return
        if self._session.connected:
            self._retries.schedule(retry)

    def _set_online(
        self, device: DeviceId, online: bool, result: int | None, *, bind_refused: int | None = None
    ) -> None:
        if not online and result == RESULT_NOT_BOUND:
            _LOGGER.warning(
                "%s is not bound to gateway %s; give it a secret or bind it in the console",
                device,
                self._gateway,
            )
        self._online[device] = online
        self._on_event(SubDeviceStatus(device, online, result, bind_refused))

    def _on_connection_lost(self) -> None:
        self._version_reports.cancel()
        self._data_templates.connection_lost()
        self._online.clear()
        self._retries.clear()
        self._on_event(ConnectionChanged(connected=False))

    def _on_auth_failed(self, error: AuthenticationError) -> None:
        self._on_event(AuthenticationFailed(str(error)))

    # -- messages -------------------------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == gateway_operation_result(self._gateway):
            self._operations.handle_message(payload)
            return
        if self._data_templates.handle(topic, payload):
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
        # Acknowledged at once, as Tencent's topology docs show (README, "Protocol decisions").
        self._run_in_background(self._operations.acknowledge(push))
        match push:
            case SearchRequested(searching=True):
                # This gateway has no radio of its own to search with: its sub-devices are added in Home
                # Assistant, or bound in the console. The request is answered and otherwise has no effect.
                _LOGGER.info(
                    "The console asks %s to search for new sub-devices: add them in Home Assistant "
                    "(Add sub-device) or bind them in Tencent's console",
                    self._gateway,
                )
                return
            case SearchRequested():
                return
            case AllUnbound():
                self._on_event(push)
                self.mark_unbound(list(self._sub_devices))
            case SubDevicesChanged(bound=True):
                self._on_event(push)
                known = [d for d in push.devices if d in self._sub_devices]
                self._unbound.difference_update(known)
                if known:
                    self._run_in_background(self._bring_online_later(known))
            case SubDevicesChanged():
                self._on_event(push)
                self.mark_unbound(push.devices)

    async def _bring_online_later(self, devices: list[DeviceId]) -> None:
        self._retries.schedule(await self._bring_online(devices))

    def _run_in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        self._background.spawn(coro)
