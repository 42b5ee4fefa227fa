"""One gateway at run time: the engine, its parts, and the bridge from engine events to entities.

The engine is push-driven (no polling), so instead of a `DataUpdateCoordinator` this object keeps the latest
state the engine reported (connection, per-device online result and job snapshot) and calls the listeners of
the entities concerned. Sub-devices come from the entry's config subentries; `async_sync_sub_devices`
applies their changes to the running engine without a reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
import logging
from pathlib import Path
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.storage import Store
from homeassistant.loader import async_get_integration

from .const import (
    CONF_CANARY_COUNT,
    CONF_CANARY_PERCENT,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_FLASHER,
    CONF_GATEWAY_UPDATES,
    CONF_GATEWAY_VERSION,
    CONF_INSTALL_POLICY,
    CONF_INSTALLED_VERSION,
    CONF_MANUFACTURER,
    CONF_MAX_DOWNLOADS,
    CONF_MAX_FAILURES,
    CONF_MAX_FIRMWARE_SIZE_MIB,
    CONF_MAX_FLASHES,
    CONF_MODEL,
    CONF_NAME,
    CONF_PRODUCT_ID,
    CONF_ROLLBACK_BUDGET_MIB,
    CONF_ROLLOUT,
    CONF_SOAK_MIN,
    CONF_UNBIND_ON_REMOVE,
    DEFAULT_CANARY_COUNT,
    DEFAULT_INSTALL_POLICY,
    DEFAULT_MAX_DOWNLOADS,
    DEFAULT_MAX_FAILURES,
    DEFAULT_MAX_FIRMWARE_SIZE_MIB,
    DEFAULT_MAX_FLASHES,
    DEFAULT_ROLLBACK_BUDGET_MIB,
    DEFAULT_SOAK_MIN,
    DOMAIN,
    FIRMWARE_CACHE_DIR,
    MIB,
    ROLLBACK_DIR,
    STORAGE_VERSION,
    SUBENTRY_SUB_DEVICE,
    InstallPolicy,
)
from .engine import (
    AllUnbound,
    AuthenticationFailed,
    ConnectionChanged,
    DeviceId,
    Downloader,
    EngineEvent,
    FirmwareCache,
    Flasher,
    GatewayEngine,
    HaltedRollouts,
    HealthCheck,
    InvalidFieldError,
    JobSnapshot,
    JobState,
    OtaSettings,
    OwnFirmware,
    Preflight,
    RollbackImages,
    RolloutHalted,
    RolloutSettings,
    SubDevice,
    SubDevicesChanged,
    SubDeviceStatus,
    TencentIotError,
    UpdatesBlocked,
)
from .events import async_fire_ota_event
from .failures import async_track_unattended_failure
from .flashers import AUTOMATION_KIND, flasher_from_settings
from .health_checks import NO_HEALTH_CHECK, HealthConfig, build_health_check
from .preflight_conditions import NO_PREFLIGHT, PreflightConfig, build_preflight
from .validation import device_id_from, endpoint_from

_LOGGER = logging.getLogger(__name__)

type TencentIotConfigEntry = ConfigEntry[GatewayRuntime]

ROLLOUT_HALTED_ISSUE = "rollout_halted_"
ATTR_ENTRY_ID = "entry_id"


@dataclass(frozen=True, slots=True)
class SubDeviceConfig:
    """A sub-device as its subentry describes it."""

    subentry_id: str
    device: DeviceId
    installed_version: str | None  # None: unknown (adopted from the cloud; the user has not said)
    secret: str | None
    flasher: Mapping[str, Any] | None
    unbind_on_remove: bool
    name: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    preflight: PreflightConfig = NO_PREFLIGHT
    health: HealthConfig = NO_HEALTH_CHECK

    def __repr__(self) -> str:
        """The secret stays out of logs."""
        return f"SubDeviceConfig({self.device}, subentry={self.subentry_id})"

    @property
    def display_name(self) -> str:
        """What the user calls it; its device name otherwise."""
        return self.name or self.device.device_name

    @property
    def device_model(self) -> tuple[str, str | None]:
        """(model, model_id) for the device registry: the product id is shown once, as the model id of a
        named model or as the model itself."""
        if self.model:
            return self.model, self.device.product_id
        return self.device.product_id, None

    @classmethod
    def from_subentry(cls, subentry_id: str, data: Mapping[str, Any]) -> SubDeviceConfig:
        """Parse a subentry's data (raises `InvalidFieldError`)."""
        flasher = data.get(CONF_FLASHER)
        return cls(
            subentry_id=subentry_id,
            device=device_id_from(data),
            installed_version=str(data.get(CONF_INSTALLED_VERSION) or "") or None,
            secret=data.get(CONF_DEVICE_SECRET) or None,
            flasher=flasher if isinstance(flasher, Mapping) else None,
            unbind_on_remove=bool(data.get(CONF_UNBIND_ON_REMOVE, False)),
            name=_optional_text(data.get(CONF_NAME)),
            model=_optional_text(data.get(CONF_MODEL)),
            manufacturer=_optional_text(data.get(CONF_MANUFACTURER)),
            preflight=PreflightConfig.from_data(data),
            health=HealthConfig.from_data(data),
        )


def _optional_text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _registry_fields(config: SubDeviceConfig) -> tuple[str, tuple[str, str | None], str | None]:
    return config.display_name, config.device_model, config.manufacturer


def sub_device_configs(entry: ConfigEntry) -> dict[DeviceId, SubDeviceConfig]:
    """Every valid sub-device subentry of an entry (an invalid one is logged and skipped)."""
    configs: dict[DeviceId, SubDeviceConfig] = {}
    for subentry_id, subentry in entry.subentries.items():
        if subentry.subentry_type != SUBENTRY_SUB_DEVICE:
            continue
        try:
            config = SubDeviceConfig.from_subentry(subentry_id, subentry.data)
        except InvalidFieldError as err:
            _LOGGER.error("Ignoring sub-device %s: %s", subentry.title, err)
            continue
        configs[config.device] = config
    return configs


def ota_settings(options: Mapping[str, Any]) -> OtaSettings:
    """The scheduler settings the options ask for."""
    return OtaSettings(
        max_downloads=int(options.get(CONF_MAX_DOWNLOADS, DEFAULT_MAX_DOWNLOADS)),
        max_flashes=int(options.get(CONF_MAX_FLASHES, DEFAULT_MAX_FLASHES)),
        max_firmware_size=int(options.get(CONF_MAX_FIRMWARE_SIZE_MIB, DEFAULT_MAX_FIRMWARE_SIZE_MIB)) * MIB,
    )


def rollout_settings(options: Mapping[str, Any]) -> RolloutSettings | None:
    """The staged rollout the options ask for, or None when it is off; its batches are `max_flashes` big."""
    if not options.get(CONF_ROLLOUT):
        return None
    return RolloutSettings(
        canary_count=int(options.get(CONF_CANARY_COUNT, DEFAULT_CANARY_COUNT)),
        canary_percent=int(options.get(CONF_CANARY_PERCENT, 0)),
        soak_s=float(options.get(CONF_SOAK_MIN, DEFAULT_SOAK_MIN)) * 60,
        max_failures=int(options.get(CONF_MAX_FAILURES, DEFAULT_MAX_FAILURES)),
        batch_size=int(options.get(CONF_MAX_FLASHES, DEFAULT_MAX_FLASHES)),
    )


def store_key(entry_id: str, what: str) -> str:
    """The HA storage key of one of an entry's stores."""
    return f"{DOMAIN}.{entry_id}.{what}"


def cache_directory(hass: HomeAssistant, entry_id: str) -> Path:
    """Where an entry's firmware images are kept (HA's cache folder: not backed up, can be rebuilt)."""
    return Path(hass.config.cache_path(DOMAIN, entry_id, FIRMWARE_CACHE_DIR))


@dataclass
class _DeviceState:
    """What the entities of one sub-device show."""

    snapshot: JobSnapshot
    online: bool = False
    result: int | None = None
    listeners: list[CALLBACK_TYPE] = field(default_factory=list)
    was_available: bool | None = None
    updates_blocked: bool = False


class GatewayRuntime:
    """The running gateway of one config entry (its `runtime_data`)."""

    def __init__(self, hass: HomeAssistant, entry: TencentIotConfigEntry) -> None:
        """Build the engine and its parts; nothing connects before `async_start`."""
        self.hass = hass
        self.entry = entry
        self.gateway = device_id_from(entry.data)
        self.options = dict(entry.options)
        self.data = dict(entry.data)
        session = async_get_clientsession(hass)
        self._session = session
        self.cache = FirmwareCache(cache_directory(hass, entry.entry_id), keep_idle=True)
        # The engine coalesces its writes and hands over documents it does not change afterwards, so HA may
        # build the JSON in the executor instead of on the event loop (large with many sub-devices).
        self.ota_store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, store_key(entry.entry_id, "ota"), serialize_in_event_loop=False
        )
        self.download_store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, store_key(entry.entry_id, "downloads"), serialize_in_event_loop=False
        )
        self.downloader = Downloader(session, self.cache, self.download_store)
        # Sub-devices the user removed while they stay bound in the cloud: not adopted again from
        # `describe_sub_devices` (as HA ignores a dismissed discovery), until re-bound or added by hand.
        self.ignored_store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, store_key(entry.entry_id, "ignored")
        )
        self._ignored: set[str] = set()
        # The gateway's own version as the options set it at the last start: a change since then wins over a
        # version a flash of the gateway left in the OTA store.
        self.gateway_store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, store_key(entry.entry_id, "gateway")
        )
        # Halted rollouts wait for the user across a restart or a reload (an option changed after the halt).
        self.rollout_store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, store_key(entry.entry_id, "rollouts")
        )
        # Sub-devices whose running install nobody watches (an automation called `update.install`).
        self.unattended_installs: set[DeviceId] = set()
        self.configs = sub_device_configs(entry)
        self._flashers: dict[DeviceId, Flasher] = {}
        self._preflights: dict[DeviceId, Preflight] = {}
        self._health_checks: dict[DeviceId, HealthCheck] = {}
        for config in self.configs.values():
            self._build_flasher(config)
        if self.gateway_updates:
            # The user decides what installing means for the gateway (the host, an add-on): an automation.
            self._flashers[self.gateway] = flasher_from_settings(
                self.hass, {"kind": AUTOMATION_KIND}, session
            )
        self._devices: dict[DeviceId, _DeviceState] = {}
        self._connection_listeners: list[CALLBACK_TYPE] = []
        self._new_device_listeners: list[Callable[[SubDeviceConfig], None]] = []
        self.connected = False
        self._stopping = False
        self._was_connected = False
        self.gateway_device_id: str | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._sync_lock = asyncio.Lock()
        self.engine = GatewayEngine(
            endpoint=endpoint_from(entry.data),
            gateway=self.gateway,
            device_secret=entry.data[CONF_DEVICE_SECRET],
            downloader=self.downloader,
            cache=self.cache,
            store=self.ota_store,
            flasher_for=self._flashers.get,
            auto_install=self._auto_install,
            on_event=self._on_event,
            settings=ota_settings(entry.options),
            preflight_for=self._preflights.get,
            rollout=rollout_settings(entry.options),
            health_for=self._health_checks.get,
            rollback_images=RollbackImages(
                Path(hass.config.cache_path(DOMAIN, entry.entry_id, ROLLBACK_DIR)),
                int(entry.options.get(CONF_ROLLBACK_BUDGET_MIB, DEFAULT_ROLLBACK_BUDGET_MIB)) * MIB,
            ),
            halted_rollouts=HaltedRollouts(self.rollout_store),
        )
        self.halted_rollouts: dict[str, RolloutHalted] = {}  # by repair issue id

    # -- life cycle ---------------------------------------------------------------------------------------

    async def async_start(self) -> None:
        """Connect; raises the engine's `AuthenticationError` / `CannotConnectError`."""
        saved = await self.ignored_store.async_load() or {}
        self._ignored = {key for key in saved.get("devices", []) if isinstance(key, str)}
        subs = [SubDevice(c.device, c.installed_version, c.secret) for c in self.configs.values()]
        await self.engine.start(subs, await self._async_own_firmware())

    @property
    def gateway_updates(self) -> bool:
        """Whether the gateway reports its own version and takes firmware pushes to itself."""
        return bool(self.options.get(CONF_GATEWAY_UPDATES, False))

    async def _async_own_firmware(self) -> OwnFirmware | None:
        if not self.gateway_updates:
            return None
        configured = str(self.options.get(CONF_GATEWAY_VERSION) or "").strip()
        version = configured or str((await async_get_integration(self.hass, DOMAIN)).version)
        saved = await self.gateway_store.async_load() or {}
        changed = saved.get("configured_version") != version
        if changed:
            await self.gateway_store.async_save({"configured_version": version})
        return OwnFirmware(version, version_wins=changed)

    @property
    def gateway_sw_version(self) -> str | None:
        """The gateway device's software version: its own firmware's when handled, else the integration's."""
        if not self.gateway_updates:
            return None
        return self.snapshot(self.gateway).installed_version

    async def async_finish_flashes(self, timeout_s: float) -> None:
        """Let the flashes under way end (bounded, logged); no new flash starts afterwards."""
        await self.engine.ota.async_finish_flashes(timeout_s)

    async def async_stop(self, flash_wait_s: float = 0.0) -> None:
        """Disconnect, keeping what can resume; flashes under way get up to `flash_wait_s` to end first."""
        await self.engine.ota.async_finish_flashes(flash_wait_s)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._stopping = True  # the sub-devices go unavailable because we stop: nothing to log for them
        await self.engine.stop()
        self._set_connected(False)
        # The next start raises them again from the saved halts, if rollouts are still on.
        for issue_id in self.halted_rollouts:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)

    def _run_in_background(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = self.entry.async_create_background_task(self.hass, coro, name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def install_policy(self) -> InstallPolicy:
        """The options' install policy."""
        return InstallPolicy(self.options.get(CONF_INSTALL_POLICY, DEFAULT_INSTALL_POLICY))

    def _auto_install(self, device: DeviceId) -> bool:
        # The gateway's own firmware is installed when someone asks for it, never on a push alone.
        return (
            self.install_policy is InstallPolicy.AUTO and device in self._flashers and device != self.gateway
        )

    def _unattended(self, device: DeviceId) -> bool:
        """Whether the device's install runs without anyone having asked for it just now."""
        return self._auto_install(device) or device in self.unattended_installs

    def _build_flasher(self, config: SubDeviceConfig) -> None:
        # The pre-flight gate changes with the same subentry edit as the flasher.
        preflight = build_preflight(self.hass, config.display_name, config.preflight, self._unattended)
        if preflight is None:
            self._preflights.pop(config.device, None)
        else:
            self._preflights[config.device] = preflight
        health = build_health_check(self.hass, config.display_name, config.health)
        if health is None:
            self._health_checks.pop(config.device, None)
        else:
            self._health_checks[config.device] = health
        self._flashers.pop(config.device, None)
        if config.flasher is None:
            return
        try:
            self._flashers[config.device] = flasher_from_settings(self.hass, config.flasher, self._session)
        except InvalidFieldError as err:
            _LOGGER.error("The flasher of %s is not usable: %s", config.device, err)

    def has_flasher(self, device: DeviceId) -> bool:
        """Whether a sub-device can be updated from HA."""
        return device in self._flashers

    # -- sub-devices --------------------------------------------------------------------------------------

    @callback
    def async_schedule_sync(self) -> None:
        """Apply the subentries in the background: the engine's part talks to the cloud and can take a while.

        The task is the runtime's (cancelled by `async_stop`), so an unload in the middle of it leaves nothing
        running; a lock keeps two quick edits in order.
        """
        self._run_in_background(self._async_sync_in_order(), "sync sub-devices")

    async def _async_sync_in_order(self) -> None:
        async with self._sync_lock:
            await self.async_sync_sub_devices()

    async def async_sync_sub_devices(self) -> None:
        """Apply added, edited and removed subentries to the running engine."""
        wanted = sub_device_configs(self.entry)
        for device, old in list(self.configs.items()):
            if device not in wanted:
                if not old.unbind_on_remove:
                    await self._set_ignored(device.key, ignored=True)
                self._delete_issues(device)
                del self.configs[device]
                self._flashers.pop(device, None)
                self._preflights.pop(device, None)
                self._health_checks.pop(device, None)
                self._devices.pop(device, None)
                await self._engine_call(
                    self.engine.remove_sub_device(device, unbind=old.unbind_on_remove), "remove", device
                )
        for device, config in wanted.items():
            old_config = self.configs.get(device)
            if old_config == config:
                # Unchanged: with a thousand sub-devices, rebuilding every flasher and notifying every entity
                # for each subentry added would make each change cost O(N).
                continue
            self.configs[device] = config
            self._build_flasher(config)
            sub = SubDevice(device, config.installed_version, config.secret)
            if old_config is None:
                await self._set_ignored(device.key, ignored=False)
                for listener in list(self._new_device_listeners):
                    listener(config)
                await self._engine_call(self.engine.add_sub_device(sub), "add", device)
            else:
                if (
                    config.installed_version is not None
                    and old_config.installed_version != config.installed_version
                ):
                    await self._engine_call(
                        self.engine.ota.set_installed_version(device, config.installed_version),
                        "report the version of",
                        device,
                    )
                if _registry_fields(old_config) != _registry_fields(config):
                    self._update_device_entry(config)
                if old_config.secret != config.secret:
                    # A secret given later lets the gateway bind a sub-device the cloud refused as unbound.
                    await self._engine_call(self.engine.update_sub_device(sub), "bind", device)
            self._notify(device)

    async def _engine_call(self, call: Coroutine[Any, Any, None], what: str, device: DeviceId) -> None:
        """One engine operation of a sync; a failure is logged and the sync goes on with the next device."""
        try:
            await call
        except TencentIotError as err:
            _LOGGER.warning("Could not %s sub-device %s: %s", what, device, err)

    @callback
    def async_on_new_device(self, listener: Callable[[SubDeviceConfig], None]) -> CALLBACK_TYPE:
        """Call `listener` for every sub-device added while running (platforms add its entities)."""
        self._new_device_listeners.append(listener)
        return lambda: self._new_device_listeners.remove(listener)

    # -- state for entities -------------------------------------------------------------------------------

    def snapshot(self, device: DeviceId) -> JobSnapshot:
        """The latest job snapshot of a sub-device."""
        state = self._devices.get(device)
        if state is not None:
            return state.snapshot
        config = self.configs.get(device)
        installed = config.installed_version if config is not None else None
        return JobSnapshot(device, JobState.IDLE, installed)

    def display_name(self, device: DeviceId) -> str:
        """What the user calls a sub-device (its subentry's name, else its device name)."""
        if device == self.gateway:
            return self.entry.title
        config = self.configs.get(device)
        return config.display_name if config is not None else device.device_name

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
        listeners = self._connection_listeners if device is None else self._device_state(device).listeners
        listeners.append(listener)

        def remove() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return remove

    def _device_state(self, device: DeviceId) -> _DeviceState:
        state = self._devices.get(device)
        if state is None:
            state = self._devices[device] = _DeviceState(self.snapshot(device))
        return state

    def _notify(self, device: DeviceId) -> None:
        state = self._devices.get(device)
        if state is None:
            return
        self._log_availability(device, state)
        for listener in list(state.listeners):
            listener()

    def _log_availability(self, device: DeviceId, state: _DeviceState) -> None:
        """Log once when a sub-device becomes unavailable for a reason of its own and once when it is back.

        A gateway with 1,000 sub-devices would otherwise log 1,000 lines each time it connects or loses its
        connection: those are logged once for the gateway (`_set_connected`), and a sub-device's own state
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

    def _update_sw_version(self, device: DeviceId, version: str | None) -> None:
        registry = dr.async_get(self.hass)
        entry = registry.async_get_device_by_identifier((DOMAIN, device.key), self.entry.entry_id)
        if entry is not None and entry.sw_version != version:
            registry.async_update_device(entry.id, sw_version=version)

    def _update_device_entry(self, config: SubDeviceConfig) -> None:
        """A renamed sub-device (or a new model or maker) shows at once, without a reload."""
        registry = dr.async_get(self.hass)
        entry = registry.async_get_device_by_identifier((DOMAIN, config.device.key), self.entry.entry_id)
        if entry is not None:
            model, model_id = config.device_model
            registry.async_update_device(
                entry.id,
                name=config.display_name,
                model=model,
                model_id=model_id,
                manufacturer=config.manufacturer,
            )

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if not connected and not self._stopping:
            _LOGGER.info(
                "Gateway %s is disconnected: its %d sub-device(s) are unavailable until it reconnects",
                self.gateway,
                len(self.configs),
            )
        elif connected and self._was_connected:
            _LOGGER.info("Gateway %s is connected again", self.gateway)
        self._was_connected = self._was_connected or connected
        for listener in list(self._connection_listeners):
            listener()
        for device in list(self._devices):
            self._notify(device)

    # -- engine events ------------------------------------------------------------------------------------

    @callback
    def _on_event(self, event: EngineEvent) -> None:
        match event:
            case JobSnapshot():
                state = self._device_state(event.device)
                previous, state.snapshot = state.snapshot, event
                if previous.installed_version != event.installed_version:
                    self._update_sw_version(event.device, event.installed_version)
                self._notify(event.device)
                async_fire_ota_event(self.hass, self.entry.entry_id, previous, event)
                async_track_unattended_failure(
                    self.hass,
                    self.entry.entry_id,
                    self.display_name(event.device),
                    previous,
                    event,
                    unattended=self._auto_install(event.device) or event.device in self.unattended_installs,
                )
            case ConnectionChanged(connected):
                self._set_connected(connected)
                if connected:
                    self._run_in_background(self._async_adopt_bound_devices(), "describe sub-devices")
            case SubDeviceStatus(device, online, result):
                state = self._device_state(device)
                state.online, state.result = online, result
                if online:
                    ir.async_delete_issue(self.hass, DOMAIN, self._issue_id("unbound", device))
                self._notify(device)
            case UpdatesBlocked(device, blocked):
                self._device_state(device).updates_blocked = blocked
                self._set_issue("updates_blocked", device, raised=blocked)
                self._notify(device)
            case RolloutHalted():
                self._raise_rollout_issue(event)
            case AuthenticationFailed():
                self._set_connected(False)
                self.entry.async_start_reauth(self.hass)
            case SubDevicesChanged(bound=True, devices=devices):
                # Bound again in the console on purpose: a device the user had removed comes back.
                self._adopt(devices, include_ignored=True)
            case SubDevicesChanged(bound=False, devices=devices):
                self._mark_unbound(devices)
            case AllUnbound():
                self._mark_unbound(tuple(self.configs))

    # -- dynamic and stale sub-devices --------------------------------------------------------------------

    async def _async_adopt_bound_devices(self) -> None:
        """Reconcile with the cloud's bound list on every connect, both ways.

        Newly bound sub-devices appear; configured ones the cloud no longer lists (unbound while Home
        Assistant was offline, when no `change` push could reach it) are marked unbound, as a push would.
        """
        try:
            bound = await self.engine.operations.describe_sub_devices()
        except TencentIotError as err:
            _LOGGER.warning("Could not list the sub-devices bound to %s: %s", self.gateway, err)
            return
        self._adopt(tuple(bound))
        listed = set(bound)
        # The announce already bound those it could (with their secret); one online now is bound, whatever
        # the list said a moment ago.
        missing = tuple(d for d in self.configs if d not in listed and not self.engine.is_online(d))
        self._mark_unbound(missing)

    async def _set_ignored(self, key: str, *, ignored: bool) -> None:
        if (key in self._ignored) == ignored:
            return
        if ignored:
            self._ignored.add(key)
        else:
            self._ignored.discard(key)
        await self.ignored_store.async_save({"devices": sorted(self._ignored)})

    @callback
    def _adopt(self, devices: tuple[DeviceId, ...], *, include_ignored: bool = False) -> None:
        known = {subentry.unique_id for subentry in self.entry.subentries.values()}
        for device in devices:
            if device.key in known or device == self.gateway:
                continue
            if device.key in self._ignored and not include_ignored:
                _LOGGER.debug("Not adding %s again: it was removed while still bound", device)
                continue
            _LOGGER.info("Adding sub-device %s, bound to %s in the cloud", device, self.gateway)
            self.hass.config_entries.async_add_subentry(
                self.entry,
                ConfigSubentry(
                    data=MappingProxyType(
                        # No installed version: unknown until the user or a flasher says, so the gateway
                        # does not overwrite the cloud's record of the device with a guess.
                        {CONF_PRODUCT_ID: device.product_id, CONF_DEVICE_NAME: device.device_name}
                    ),
                    subentry_type=SUBENTRY_SUB_DEVICE,
                    title=device.device_name,
                    unique_id=device.key,
                ),
            )

    @callback
    def _mark_unbound(self, devices: tuple[DeviceId, ...]) -> None:
        """Sub-devices unbound in the cloud stay configured (flasher settings, tokens): unavailable, with a
        repair issue that says how to bind them again or remove them."""
        for device in devices:
            if device not in self.configs:
                continue
            _LOGGER.warning(
                "Sub-device %s is no longer bound to %s in the cloud; it stays configured but unavailable",
                device,
                self.gateway,
            )
            state = self._device_state(device)
            state.online, state.result = False, -1
            self._set_issue("unbound", device, raised=True)
            self._notify(device)

    def _raise_rollout_issue(self, halted: RolloutHalted) -> None:
        """What happened, with the failing devices and their reasons, and how to go on."""
        issue_id = f"{ROLLOUT_HALTED_ISSUE}{self.entry.entry_id}_{halted.version}"
        self.halted_rollouts[issue_id] = halted
        failures = "\n".join(f"- {self.display_name(device)}: {reason}" for device, reason in halted.failed)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=True,  # its fix flow resumes the rollout (repairs.py)
            is_persistent=False,
            data={ATTR_ENTRY_ID: self.entry.entry_id},
            severity=ir.IssueSeverity.ERROR,
            translation_key="rollout_halted",
            translation_placeholders={
                "gateway": self.entry.title,
                "version": halted.version,
                "failed": str(len(halted.failed)),
                "total": str(halted.total),
                "halted": str(len(halted.halted)),
                "failures": failures,
            },
        )

    async def async_resume_rollouts(self) -> list[DeviceId]:
        """Let the halted rollouts go on and clear their repair issues; returns the devices installing again."""
        for issue_id in list(self.halted_rollouts):
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
        self.halted_rollouts.clear()
        return await self.engine.ota.resume_rollouts()

    def _issue_id(self, kind: str, device: DeviceId) -> str:
        return f"{kind}_{self.entry.entry_id}_{device.key}"

    def _set_issue(self, kind: str, device: DeviceId, *, raised: bool) -> None:
        issue_id = self._issue_id(kind, device)
        if not raised:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
            return
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="sub_device_unbound" if kind == "unbound" else kind,
            translation_placeholders={"device": device.key, "gateway": self.gateway.key},
        )

    def _delete_issues(self, device: DeviceId) -> None:
        for kind in ("unbound", "updates_blocked"):
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(kind, device))
