"""The bridge at run time: every bridged entity's device brought online, its state reported, its controls run.

Composed by the runtime as one part (`runtime.bridge`); it uses the engine's public interface only:
`SubDevice(device, None, secret, ota=False)` given to the engine binds the device (signed `bind`) and brings
it online without an OTA topic; `engine.data_templates` gives each device its data-template client.

- Online (the client's down topic subscribed, after every `online`): `get_status` type control (pending
  controls are carried out, then `clear_control`), `report_info`, then a full `report`.
- Then every state change reports the properties that changed (the client coalesces and paces them).
- Unavailable (or deleted) entity: its device goes `offline`, so Tencent's app shows it offline rather than a
  stale value; when the entity is back, `online` again and a full report.
- Removed from the bridge: `offline`, and `unbind` when the subentry says so (else the device stays bound and
  the gateway does not adopt it as a sub-device of its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
import logging
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import __version__ as ha_version
from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.util import dt as dt_util

from custom_components.tencent_iot_gateway.engine import (
    RESULT_NOT_BOUND,
    Control,
    DataTemplateHandlers,
    DeviceId,
    GatewayEngine,
    PropertyRefused,
    StatusType,
    SubDevice,
    SubDeviceStatus,
    TencentIotError,
)

from .bridged_entity import BridgedEntity, usable
from .config import BridgeConfig, bridge_configs
from .controls import ControlRunner
from .issues import BridgeIssues
from .mapping import Refusal, ReplyCode
from .pairings import Pairings, pairings_of

_LOGGER = logging.getLogger(__name__)


class EntityBridge:
    """The bridged entities of one gateway entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        engine: GatewayEngine,
        set_ignored: Callable[[DeviceId, bool], Awaitable[None]],
    ) -> None:
        """`set_ignored(device, ignored)`: keep a device removed from the bridge while still bound out of the
        gateway's adoption of bound sub-devices (or let it back in)."""
        self._hass = hass
        self._entry = entry
        self._engine = engine
        self._set_ignored = set_ignored
        self._pairings: Pairings | None = None
        self._entities: dict[str, BridgedEntity] = {}
        self._by_device: dict[DeviceId, BridgedEntity] = {}
        self._listeners: dict[str, CALLBACK_TYPE] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._issues = BridgeIssues(hass, entry.entry_id, engine.gateway.key)
        self._controls = ControlRunner(hass, self._spawn, self._is_bridged)
        self._stopping = False

    # -- life cycle -------------------------------------------------------------------------------------

    async def async_start(self) -> list[SubDevice]:
        """Load the pairings and follow the bridged entities; returns the devices of those usable now, for the
        engine's start (one announce brings them all online)."""
        self._pairings = await pairings_of(self._hass, self._entry.entry_id)
        subs: list[SubDevice] = []
        for config in bridge_configs(self._entry).values():
            for entity_id in config.entities:
                entity = self._add(entity_id, config)
                if entity is not None and usable(self._hass.states.get(entity_id)):
                    await self._attach(entity)
                    subs.append(self._sub_device(entity))
        return subs

    async def async_stop(self) -> None:
        """Stop following states and running controls (the engine's stop closes the clients)."""
        self._stopping = True
        for unsubscribe in self._listeners.values():
            unsubscribe()
        self._listeners.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def async_sync(self) -> None:
        """Apply the bridge subentries as they are now: entities added, removed, or with new settings."""
        if self._pairings is None or self._stopping:
            return
        wanted: dict[str, BridgeConfig] = {}
        for config in bridge_configs(self._entry).values():
            for entity_id in config.entities:
                wanted[entity_id] = config
        for entity_id, bridged in list(self._entities.items()):
            kept = wanted.get(entity_id)
            if kept is None or kept.product_id != bridged.config.product_id:
                await self._async_remove(bridged, unbind=bridged.config.unbind_on_remove)
        for entity_id, config in wanted.items():
            current = self._entities.get(entity_id)
            if current is not None:
                if current.config != config:
                    self._reconfigure(current, config)
                continue
            added = self._add(entity_id, config)
            if added is not None:
                await self._set_ignored(added.device, False)
                await self._async_presence(added)

    # -- what the runtime asks --------------------------------------------------------------------------

    def owns(self, device: DeviceId) -> bool:
        """Whether the device is a bridged entity's (not a sub-device of the gateway's own)."""
        return device in self._by_device

    @callback
    def on_status(self, event: SubDeviceStatus) -> None:
        """The cloud's answer to a bridged device's `online`: not bound (the bind was refused) is an issue."""
        entity = self._by_device.get(event.device)
        if entity is None:
            return
        if event.online:
            self._issues.not_bound(entity, raised=False)
        elif event.result == RESULT_NOT_BOUND and entity.in_engine:
            entity.error(
                "the cloud did not bind the device to the gateway"
                + (f" (code {event.bind_refused})" if event.bind_refused is not None else "")
            )
            self._issues.not_bound(entity, raised=True, code=event.bind_refused)

    def diagnostics(self) -> list[dict[str, Any]]:
        """Each bridged entity's device, last report, last control and errors (no secret)."""
        return [
            entity.diagnostics() | {"online": self._engine.is_online(entity.device)}
            for entity in sorted(self._entities.values(), key=lambda e: e.entity_id)
        ]

    # -- entities ---------------------------------------------------------------------------------------

    def _add(self, entity_id: str, config: BridgeConfig) -> BridgedEntity | None:
        assert self._pairings is not None
        pairing = self._pairings.get(entity_id, config.product_id)
        if pairing is None:
            # The flow pairs every entity before it saves the subentry; a store lost meanwhile lands here.
            _LOGGER.error(
                "%s is bridged to product %s but has no device there; edit the bridge to pair it again",
                entity_id,
                config.product_id,
            )
            return None
        entity = BridgedEntity(entity_id, config, pairing)
        self._entities[entity_id] = entity
        self._by_device[entity.device] = entity
        self._listeners[entity_id] = async_track_state_change_event(self._hass, entity_id, self._on_state)
        return entity

    def _reconfigure(self, entity: BridgedEntity, config: BridgeConfig) -> None:
        """New identifiers or read-only setting: refused properties may be right now; report everything."""
        identifiers_changed = entity.config.identifiers != config.identifiers
        entity.config = config
        if identifiers_changed:
            self._issues.clear(entity, refused_only=True)
            entity.sent.clear()
            if entity.client is not None:
                entity.client.reset_refused()
            self._report(entity, full=True)

    async def _async_remove(self, entity: BridgedEntity, *, unbind: bool) -> None:
        del self._entities[entity.entity_id]
        self._by_device.pop(entity.device, None)
        if (unsubscribe := self._listeners.pop(entity.entity_id, None)) is not None:
            unsubscribe()
        self._controls.refuse_waiting(entity)
        self._issues.clear(entity)
        async with entity.lock:
            try:
                await self._engine.remove_sub_device(entity.device, unbind=unbind)
            except TencentIotError as err:
                _LOGGER.warning("Could not remove the device of %s: %s", entity.entity_id, err)
            entity.in_engine = False
            entity.client = None
        if not unbind:
            # Still bound: the gateway's list of bound devices must not bring it back as a sub-device.
            await self._set_ignored(entity.device, True)

    def _is_bridged(self, entity: BridgedEntity) -> bool:
        return self._entities.get(entity.entity_id) is entity

    # -- presence ---------------------------------------------------------------------------------------

    @callback
    def _on_state(self, event: Event[EventStateChangedData]) -> None:
        entity = self._entities.get(event.data["entity_id"])
        if entity is None:
            return
        new_state = event.data["new_state"]
        if usable(new_state) != entity.in_engine:
            self._spawn(self._async_presence(entity), f"presence of {entity.entity_id}")
        elif new_state is not None and entity.client is not None:
            self._report(entity, full=False, state=new_state)

    async def _async_presence(self, entity: BridgedEntity) -> None:
        """Bring the device online or offline as the entity is usable or not now (in order, per entity)."""
        async with entity.lock:
            wanted = self._is_bridged(entity) and usable(self._hass.states.get(entity.entity_id))
            if wanted == entity.in_engine:
                return
            try:
                if wanted:
                    await self._attach(entity)
                    await self._engine.add_sub_device(self._sub_device(entity))
                else:
                    _LOGGER.debug("%s is unavailable: its device goes offline", entity.entity_id)
                    entity.in_engine = False
                    await self._engine.remove_sub_device(entity.device)
                    entity.client = None
            except TencentIotError as err:
                entity.error(f"could not bring the device {'online' if wanted else 'offline'}: {err}")
                _LOGGER.warning("Could not change the presence of %s in the cloud: %s", entity.entity_id, err)

    async def _attach(self, entity: BridgedEntity) -> None:
        entity.in_engine = True
        entity.sent.clear()
        entity.client = await self._engine.data_templates.attach(
            entity.device,
            DataTemplateHandlers(
                on_control=self._on_control,
                on_refused=self._on_refused,
                on_subscribed=self._on_subscribed,
            ),
        )

    @staticmethod
    def _sub_device(entity: BridgedEntity) -> SubDevice:
        return SubDevice(entity.device, None, entity.pairing.secret, ota=False)

    # -- data-template traffic --------------------------------------------------------------------------

    @callback
    def _on_subscribed(self, device: DeviceId) -> None:
        entity = self._by_device.get(device)
        if entity is not None:
            self._spawn(self._async_online(entity), f"bring {entity.entity_id} online")

    async def _async_online(self, entity: BridgedEntity) -> None:
        """Pending controls first (the cloud kept them while offline), then the device's info, then all values."""
        client = entity.client
        if client is None:
            return
        try:
            # A control arriving live while this is in flight is also among the pending ones, so it may run
            # twice: every mapped property sets a value (none toggles), so the second run changes nothing.
            status = await client.get_status(StatusType.CONTROL)
            if status.control:
                code, reason = await self._controls.run(entity, status.control, pending=True)
                if code is not ReplyCode.OK:
                    _LOGGER.info("A pending control of %s was not carried out: %s", entity.entity_id, reason)
                await client.clear_control()
            await client.report_info(self._info(entity))
        except TencentIotError as err:
            entity.error(f"online: {err}")
            _LOGGER.warning("Bringing %s online in the cloud was incomplete: %s", entity.entity_id, err)
        entity.sent.clear()
        self._report(entity, full=True)

    def _info(self, entity: BridgedEntity) -> dict[str, Any]:
        return {
            "module_hardinfo": "Home Assistant",
            "module_softinfo": ha_version,
            "fw_ver": ha_version,
            "device_label": {"entity_id": entity.entity_id},
        }

    def _report(self, entity: BridgedEntity, *, full: bool, state: State | None = None) -> None:
        """Hand the entity's values (all, or those that changed) to its client, which coalesces and paces."""
        state = state or self._hass.states.get(entity.entity_id)
        client = entity.client
        if client is None or state is None or not usable(state):
            return
        values = {
            entity.config.identifiers[role]: value
            for role, value in entity.config.mapping.report(state).items()
            if role in entity.config.identifiers
        }
        if not full:
            values = {k: v for k, v in values.items() if entity.sent.get(k) != v}
        values = {k: v for k, v in values.items() if k not in client.refused}
        if not values:
            return
        client.report(values)
        entity.sent.update(values)
        entity.last_report = {"time": dt_util.utcnow().isoformat(), "values": values}

    @callback
    def _on_control(self, device: DeviceId, control: Control) -> None:
        entity = self._by_device.get(device)
        if entity is None:
            # Its client is gone with it, so the engine does not route here; a late one is answered anyway.
            self._spawn(self._refuse_unbridged(device, control), "refuse a control")
            return
        self._controls.take(entity, control)

    async def _refuse_unbridged(self, device: DeviceId, control: Control) -> None:
        client = self._engine.data_templates.get(device)
        if client is None:
            return
        try:
            await client.control_reply(control.client_token, int(ReplyCode.FAILED), str(Refusal.NOT_BRIDGED))
        except TencentIotError as err:
            _LOGGER.debug("Could not answer a control of %s: %s", device, err)

    @callback
    def _on_refused(self, refused: PropertyRefused) -> None:
        entity = self._by_device.get(refused.device)
        if entity is None:
            return
        entity.error(
            f"the product refuses property {refused.property} (code {refused.code}, {refused.status})"
        )
        self._issues.property_refused(entity, refused.property)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = self._entry.async_create_background_task(self._hass, coro, name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
