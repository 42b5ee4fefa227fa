"""One gateway at run time: composes the engine with the entry's parts, and caches state for the entities.

The engine is push-driven (no polling): the latest state it reported goes to `entity_states`, which calls the
listeners of the entities concerned. Sub-devices come from the entry's config subentries; `async_sync_sub_devices`
applies their changes to the running engine without a reload. Entities and actions use its small API
(`async_install`, `async_cancel`, `snapshot`, ...), never the engine itself.

Its parts, each in a module of its own: `entry_config` (the entry's fields, subentries and options),
`entry_storage` (its stores), `device_gates` (each device's flasher, pre-flight gate and health check),
`sub_device_adoption` (bound sub-devices appear on their own), `repair_issues`, `device_entries` (the device
registry), `entity_states` (what the entities show).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
import logging
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .bridge.entity_bridge import EntityBridge
from .const import (
    CONF_DEVICE_SECRET,
    CONF_GATEWAY_UPDATES,
    CONF_GATEWAY_VERSION,
    CONF_INSTALL_POLICY,
    CONF_ROLLBACK_BUDGET_MIB,
    DEFAULT_INSTALL_POLICY,
    DEFAULT_ROLLBACK_BUDGET_MIB,
    DOMAIN,
    GATEWAY_UPDATE_KEY,
    MIB,
    ROLLBACK_DIR,
    UPDATE_KEY,
    InstallPolicy,
)
from .device_entries import update_device_entry, update_sw_version
from .engine import (
    RESULT_NOT_BOUND,
    AllUnbound,
    AuthenticationFailed,
    ConnectionChanged,
    DeviceId,
    Downloader,
    EngineDevices,
    EngineEvent,
    EngineStorage,
    FirmwareCache,
    GatewayEngine,
    GatewayLogin,
    HaltedRollouts,
    JobSnapshot,
    RollbackImages,
    RolloutHalted,
    SubDevice,
    SubDevicesChanged,
    SubDeviceStatus,
    TencentIotError,
    UpdatesBlocked,
)
from .entity_states import EntityStates
from .entry_config import (
    SubDeviceConfig,
    cache_directory,
    device_id_from,
    endpoint_from,
    ota_settings,
    registry_fields,
    rollout_settings,
    sub_device_configs,
)
from .entry_storage import EntryStores, async_own_firmware
from .ota.device_gates import DeviceGates
from .ota.failures import async_track_unattended_failure
from .ota.job_events import (
    CloudAction,
    async_fire_cloud_event,
    async_fire_ota_event,
    async_fire_rollout_halted,
    async_fire_rollouts_resumed,
)
from .repair_issues import RepairIssues, SubDeviceIssue
from .sub_device_adoption import SubDeviceAdoption

_LOGGER = logging.getLogger(__name__)

type TencentIotConfigEntry = ConfigEntry[GatewayRuntime]


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
        self.stores = EntryStores.of(hass, entry.entry_id)
        self.downloader = Downloader(session, self.cache, self.stores.downloads)
        self.adoption = SubDeviceAdoption(hass, entry, self.gateway, self.stores.ignored)
        # Sub-devices whose running install nobody watches (an automation called `update.install`).
        self._unattended_installs: set[DeviceId] = set()
        self.configs = sub_device_configs(entry)
        self.gates = DeviceGates(hass, session, self._unattended)
        for config in self.configs.values():
            self.gates.build(config)
        if self.gateway_updates:
            self.gates.use_automation_flasher(self.gateway)
        self.states = EntityStates(self.gateway, self._configured_version)
        self._new_device_listeners: list[Callable[[SubDeviceConfig], None]] = []
        self.gateway_device_id: str | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._sync_lock = asyncio.Lock()
        self.engine = GatewayEngine(
            GatewayLogin(endpoint_from(entry.data), self.gateway, entry.data[CONF_DEVICE_SECRET]),
            storage=EngineStorage(
                store=self.stores.ota,
                downloader=self.downloader,
                cache=self.cache,
                rollback_images=RollbackImages(
                    Path(hass.config.cache_path(DOMAIN, entry.entry_id, ROLLBACK_DIR)),
                    int(entry.options.get(CONF_ROLLBACK_BUDGET_MIB, DEFAULT_ROLLBACK_BUDGET_MIB)) * MIB,
                ),
                halted_rollouts=HaltedRollouts(self.stores.rollouts),
            ),
            devices=EngineDevices(
                flasher_for=self.gates.flasher_for,
                auto_install=self._auto_install,
                preflight_for=self.gates.preflight_for,
                health_for=self.gates.health_for,
            ),
            on_event=self._on_event,
            settings=ota_settings(entry.options),
            rollout=rollout_settings(entry.options),
        )
        self.issues = RepairIssues(hass, entry, self.gateway, self.display_name)
        self.bridge = EntityBridge(hass, entry, self.engine, self._set_ignored)

    # -- life cycle ---------------------------------------------------------------------------------------

    async def async_start(self) -> None:
        """Connect; raises the engine's `AuthenticationError` / `CannotConnectError`."""
        await self.adoption.async_load()
        subs = [SubDevice(c.device, c.installed_version, c.secret) for c in self.configs.values()]
        subs += await self.bridge.async_start()
        own = await async_own_firmware(self.options, self.stores.gateway) if self.gateway_updates else None
        await self.engine.start(subs, own)

    @property
    def gateway_updates(self) -> bool:
        """Whether the gateway reports its own version and takes firmware pushes to itself."""
        return bool(self.options.get(CONF_GATEWAY_UPDATES, False))

    @property
    def gateway_sw_version(self) -> str | None:
        """The gateway device's firmware: the one its updates know (set in the options, or installed by a flash),
        else the version set in the options, else unknown (never the integration's: that is not firmware)."""
        if self.gateway_updates:
            return self.snapshot(self.gateway).installed_version
        return str(self.options.get(CONF_GATEWAY_VERSION) or "").strip() or None

    async def async_finish_flashes(self, timeout_s: float) -> None:
        """Let the flashes under way end (bounded, logged); no new flash starts afterwards."""
        await self.engine.ota.async_finish_flashes(timeout_s)

    def allow_flashes(self) -> None:
        """An unload that failed: flashes may start again."""
        self.engine.ota.allow_flashes()

    # -- what entities and actions ask ---------------------------------------------------------------------

    @property
    def ota_devices(self) -> list[DeviceId]:
        """Every device whose firmware this gateway handles (its sub-devices, and itself when enabled)."""
        return self.engine.ota.devices

    @property
    def pushes_without_version(self) -> int:
        """Firmware pushes ignored for naming no valid version (diagnostics)."""
        return self.engine.ota.pushes_without_version

    async def async_install(self, device: DeviceId, *, unattended: bool) -> JobSnapshot:
        """Install the device's pending firmware and return once the job ended.

        `unattended`: nobody watches this install (an automation started it), so its failure becomes a
        repair issue. Raises the engine's errors (`JobSuspendedError` when the entry reloads meanwhile).
        """
        if unattended:
            self._unattended_installs.add(device)
        try:
            return await self.engine.ota.install(device)
        finally:
            self._unattended_installs.discard(device)

    async def async_follow(self, device: DeviceId, timeout_s: float) -> JobSnapshot:
        """Wait (up to `timeout_s` for it to start) for the device's job resumed after a reload, to its end."""
        return await self.engine.ota.follow(device, timeout_s)

    async def async_cancel(self, device: DeviceId) -> None:
        """Stop the device's queued or downloading job (`FlashError` while it flashes)."""
        await self.engine.ota.cancel(device)

    async def async_set_installed_version(self, device: DeviceId, version: str) -> None:
        """Record a version flashed by other means, and report it."""
        await self.engine.ota.set_installed_version(device, version)

    @callback
    def async_record_version(self, device: DeviceId, version: str) -> None:
        """The user says (on the sub-device's edit form) that the device runs `version`: record and report it
        in the background, like a sync (a report that fails is logged, the version kept for the reconnect)."""
        self._run_in_background(
            self._engine_call(
                self.engine.ota.set_installed_version(device, version), "report the version of", device
            ),
            "record the installed version",
        )

    async def async_check_for_update(self, device: DeviceId) -> None:
        """Report the device's version again: the cloud answers with the firmware it has pending."""
        await self.engine.ota.report_versions([device])

    @property
    def rollouts_halted(self) -> bool:
        """Whether a halted rollout waits for the user."""
        return bool(self.engine.halted_rollouts)

    async def async_stop(self, flash_wait_s: float = 0.0) -> None:
        """Disconnect, keeping what can resume; flashes under way get up to `flash_wait_s` to end first."""
        await self.engine.ota.async_finish_flashes(flash_wait_s)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self.states.stopping = True
        await self.bridge.async_stop()
        await self.engine.stop()
        self._set_connected(False)
        # The next start raises them again from the saved halts, if rollouts are still on.
        self.issues.clear_rollouts(self.engine.halted_rollouts)

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
            self.install_policy is InstallPolicy.AUTO
            and self.gates.has_flasher(device)
            and device != self.gateway
        )

    def _unattended(self, device: DeviceId) -> bool:
        """Whether the device's install runs without anyone having asked for it just now."""
        return self._auto_install(device) or device in self._unattended_installs

    def has_flasher(self, device: DeviceId) -> bool:
        """Whether a sub-device can be updated from HA."""
        return self.gates.has_flasher(device)

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
            await self.bridge.async_sync()

    async def async_sync_sub_devices(self) -> None:
        """Apply added, edited and removed subentries to the running engine."""
        wanted = sub_device_configs(self.entry)
        for device, old in list(self.configs.items()):
            if device not in wanted:
                if not old.unbind_on_remove:
                    await self.adoption.async_set_ignored(device, ignored=True)
                self.issues.clear_device(device)
                del self.configs[device]
                self.gates.remove(device)
                self.states.forget(device)
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
            self.gates.build(config)
            sub = SubDevice(device, config.installed_version, config.secret)
            if old_config is None:
                await self.adoption.async_set_ignored(device, ignored=False)
                for listener in list(self._new_device_listeners):
                    listener(config)
                await self._engine_call(self.engine.add_sub_device(sub), "add", device)
            else:
                # A version in the subentry is not news: the edit form records the one the user states
                # (`async_record_version`); the subentry's may be older than what a flash installed since.
                if registry_fields(old_config) != registry_fields(config):
                    update_device_entry(self.hass, self.entry.entry_id, config)
                if old_config.secret != config.secret:
                    # A secret given later lets the gateway bind a sub-device the cloud refused as unbound.
                    await self._engine_call(self.engine.update_sub_device(sub), "bind", device)
            self.states.notify(device)

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

    @property
    def connected(self) -> bool:
        """Whether the gateway's MQTT session is up (as the engine last said)."""
        return self.states.connected

    def snapshot(self, device: DeviceId) -> JobSnapshot:
        """The latest job snapshot of a sub-device."""
        return self.states.snapshot(device)

    def display_name(self, device: DeviceId) -> str:
        """What the user calls a sub-device (its subentry's name, else its device name)."""
        if device == self.gateway:
            return self.entry.title
        config = self.configs.get(device)
        return config.display_name if config is not None else device.device_name

    def is_online(self, device: DeviceId) -> bool:
        """Whether the cloud accepted the sub-device's `online` (and the gateway is connected)."""
        return self.states.is_online(device)

    def updates_blocked(self, device: DeviceId) -> bool:
        """Whether the broker refused the sub-device's update topic (no firmware push can reach it)."""
        return self.states.updates_blocked(device)

    def online_result(self, device: DeviceId) -> int | None:
        """The cloud's last answer to the sub-device's `online` (0 accepted, -1 not bound), if any."""
        return self.states.online_result(device)

    @callback
    def async_add_listener(self, device: DeviceId | None, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` when the device's (or, for None, the connection's) state changes."""
        return self.states.async_add_listener(device, listener)

    def _configured_version(self, device: DeviceId) -> str | None:
        config = self.configs.get(device)
        return config.installed_version if config is not None else None

    def _set_connected(self, connected: bool) -> None:
        self.states.set_connected(connected, len(self.configs))

    # -- engine events ------------------------------------------------------------------------------------

    @callback
    def _on_event(self, event: EngineEvent) -> None:
        match event:
            case JobSnapshot():
                state = self.states.state(event.device)
                previous, state.snapshot = state.snapshot, event
                if previous.installed_version != event.installed_version:
                    update_sw_version(self.hass, self.entry.entry_id, event.device, event.installed_version)
                self.states.notify(event.device)
                async_fire_ota_event(
                    self.hass, self.entry.entry_id, previous, event, self.update_entity_id(event.device)
                )
                async_track_unattended_failure(
                    self.hass,
                    self.entry.entry_id,
                    self.display_name(event.device),
                    previous,
                    event,
                    unattended=self._unattended(event.device),
                )
            case ConnectionChanged(connected):
                self._set_connected(connected)
                if connected:
                    self._run_in_background(self._async_adopt_bound_devices(), "describe sub-devices")
            case SubDeviceStatus(device) if self.bridge.owns(device):
                self.bridge.on_status(event)
            case SubDeviceStatus(device, online, result):
                state = self.states.state(device)
                state.online, state.result = online, result
                if online:
                    self.issues.set(SubDeviceIssue.UNBOUND, device, raised=False)
                self.states.notify(device)
            case UpdatesBlocked(device, blocked):
                self.states.state(device).updates_blocked = blocked
                self.issues.set(SubDeviceIssue.UPDATES_BLOCKED, device, raised=blocked)
                self.states.notify(device)
            case RolloutHalted():
                self.issues.rollout_halted(event)
                # A halt restored at start (before the first connection) was told when it happened.
                if self.states.was_connected:
                    async_fire_rollout_halted(self.hass, self.gateway_device_id, self.entry.title, event)
            case AuthenticationFailed():
                self._set_connected(False)
                self.entry.async_start_reauth(self.hass)
            case SubDevicesChanged(bound=True, devices=devices):
                # Bound again in the console on purpose: a device the user had removed comes back (a bridged
                # entity's device is the bridge's, not a sub-device).
                self.adoption.adopt(self._not_bridged(devices), include_ignored=True)
                self._fire_cloud_event(CloudAction.BOUND, devices)
            case SubDevicesChanged(bound=False, devices=devices):
                self._mark_unbound(devices)
                self._fire_cloud_event(CloudAction.UNBOUND, devices)
            case AllUnbound():
                self._mark_unbound(tuple(self.configs))
                self._fire_cloud_event(CloudAction.UNBOUND_ALL, ())

    def _fire_cloud_event(self, action: CloudAction, devices: tuple[DeviceId, ...]) -> None:
        names = [self.display_name(device) for device in devices]
        async_fire_cloud_event(self.hass, self.gateway_device_id, self.entry.title, action, names)

    def update_entity_id(self, device: DeviceId) -> str | None:
        """The entity id of the device's firmware update entity (None before it is registered)."""
        key = GATEWAY_UPDATE_KEY if device == self.gateway else UPDATE_KEY
        return er.async_get(self.hass).async_get_entity_id("update", DOMAIN, f"{device.key}-{key}")

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
        self.adoption.adopt(self._not_bridged(bound))
        listed = set(bound)
        # The announce already bound those it could (with their secret); one online now is bound, whatever
        # the list said a moment ago.
        missing = tuple(d for d in self.configs if d not in listed and not self.engine.is_online(d))
        self._mark_unbound(missing)

    def _not_bridged(self, devices: Iterable[DeviceId]) -> tuple[DeviceId, ...]:
        return tuple(device for device in devices if not self.bridge.owns(device))

    async def _set_ignored(self, device: DeviceId, ignored: bool) -> None:
        await self.adoption.async_set_ignored(device, ignored=ignored)

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
            state = self.states.state(device)
            state.online, state.result = False, RESULT_NOT_BOUND
            self.issues.set(SubDeviceIssue.UNBOUND, device, raised=True)
            self.states.notify(device)

    async def async_resume_rollouts(self) -> list[DeviceId]:
        """Let the halted rollouts go on and clear their repair issues; returns the devices installing again."""
        halted = self.engine.halted_rollouts
        self.issues.clear_rollouts(halted)
        devices = await self.engine.ota.resume_rollouts()
        if halted:
            async_fire_rollouts_resumed(self.hass, self.gateway_device_id, self.entry.title, len(devices))
        return devices
