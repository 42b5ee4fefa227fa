"""The cloud's controls carried out as Home Assistant actions, each answered with `control_reply`.

Only a bridged entity's own mapped actions can run (the target is always that entity). A control is checked
whole before anything runs: read-only bridge, unavailable entity, unknown or read-only property, wrong type,
out of range: answered with the reason, nothing executed. Each entity runs its controls one at a time; a few
may wait, more are answered at once as refused (a flood neither piles up nor goes unanswered).

Every control gets its own `Context`, first used by the `tencent_iot_gateway_cloud_control` event: the
logbook then names Tencent Cloud as what changed the entity (logbook.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import logging
from typing import Any

from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import Context, HomeAssistant
from homeassistant.util import dt as dt_util

from custom_components.tencent_iot_gateway.const import CONF_DEVICE_NAME, CONF_PRODUCT_ID
from custom_components.tencent_iot_gateway.engine import Control, Properties, PropertyValue, TencentIotError

from .bridged_entity import BridgedEntity, usable
from .const import EVENT_CLOUD_CONTROL, MAX_WAITING_CONTROLS
from .mapping import ControlRefusedError, Refusal, ReplyCode, Role, ServiceCall

_LOGGER = logging.getLogger(__name__)

ATTR_PARAMS = "params"
ATTR_PENDING = "pending"

type Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]


class ControlRunner:
    """Runs the controls of the bridged entities."""

    def __init__(
        self, hass: HomeAssistant, spawn: Spawn, is_bridged: Callable[[BridgedEntity], bool]
    ) -> None:
        """`spawn` runs a coroutine in the entry's background; `is_bridged` says whether an entity still is."""
        self._hass = hass
        self._spawn = spawn
        self._is_bridged = is_bridged

    def take(self, entity: BridgedEntity, control: Control) -> None:
        """A control arrived: queue it behind the entity's running one, or refuse it if too many wait."""
        if len(entity.waiting) >= MAX_WAITING_CONTROLS:
            _LOGGER.warning(
                "Refusing a control of %s: %d controls wait already", entity.entity_id, len(entity.waiting)
            )
            self._record(entity, control.params, ReplyCode.FAILED, str(Refusal.BUSY))
            self._spawn(self._reply(entity, control, ReplyCode.FAILED, str(Refusal.BUSY)), "refuse a control")
            return
        entity.waiting.append(control)
        if entity.worker is None or entity.worker.done():
            entity.worker = self._spawn(self._work(entity), f"controls of {entity.entity_id}")

    async def _work(self, entity: BridgedEntity) -> None:
        while entity.waiting:
            control = entity.waiting.popleft()
            code, status = await self.run(entity, control.params)
            await self._reply(entity, control, code, status)

    def refuse_waiting(self, entity: BridgedEntity) -> None:
        """The entity leaves the bridge: the controls still waiting are answered, not run."""
        while entity.waiting:
            control = entity.waiting.popleft()
            self._spawn(
                self._reply(entity, control, ReplyCode.FAILED, str(Refusal.NOT_BRIDGED)), "refuse a control"
            )

    async def run(
        self, entity: BridgedEntity, params: Properties, *, pending: bool = False
    ) -> tuple[ReplyCode, str]:
        """Check, then carry out a control's params; returns the reply's code and status.

        `pending`: a control the cloud kept while the device was offline (from `get_status`), not answered.
        """
        try:
            calls = self._plan(entity, params)
        except ControlRefusedError as err:
            status = self._status(entity, err)
            _LOGGER.info("Refused a control of %s from Tencent Cloud: %s", entity.entity_id, status)
            self._record(entity, params, ReplyCode.FAILED, status)
            return ReplyCode.FAILED, status
        context = Context()
        # First with this context, so the logbook attributes the entity's changes to the cloud.
        self._hass.bus.async_fire(
            EVENT_CLOUD_CONTROL,
            {
                ATTR_ENTITY_ID: entity.entity_id,
                CONF_PRODUCT_ID: entity.device.product_id,
                CONF_DEVICE_NAME: entity.device.device_name,
                ATTR_PARAMS: dict(params),
                ATTR_PENDING: pending,
            },
            context=context,
        )
        for call in calls:
            try:
                await self._hass.services.async_call(
                    call.domain,
                    call.service,
                    {**call.data, ATTR_ENTITY_ID: entity.entity_id},
                    blocking=True,
                    context=context,
                )
            except Exception as err:  # noqa: BLE001
                # Any integration's action may raise anything; the cloud gets an answer whatever it is.
                status = f"{Refusal.FAILED}: {err}"
                _LOGGER.warning(
                    "A control of %s from Tencent Cloud failed in %s.%s: %s",
                    entity.entity_id,
                    call.domain,
                    call.service,
                    err,
                )
                entity.error(status)
                self._record(entity, params, ReplyCode.FAILED, status)
                return ReplyCode.FAILED, status
        self._record(entity, params, ReplyCode.OK, "")
        return ReplyCode.OK, ""

    def _plan(self, entity: BridgedEntity, params: Properties) -> list[ServiceCall]:
        config = entity.config
        if not self._is_bridged(entity):
            raise ControlRefusedError(Refusal.NOT_BRIDGED)
        if config.read_only:
            raise ControlRefusedError(Refusal.READ_ONLY)
        state = self._hass.states.get(entity.entity_id)
        if state is None or not usable(state):
            raise ControlRefusedError(Refusal.UNAVAILABLE)
        values: dict[Role, PropertyValue] = {}
        for identifier, value in params.items():
            role = config.role_of(identifier)
            if role is None:
                raise ControlRefusedError(Refusal.UNKNOWN_PROPERTY, identifier)
            if role not in config.mapping.writable:
                raise ControlRefusedError(Refusal.NOT_WRITABLE, identifier)
            values[role] = value
        return config.mapping.control(values, state)

    @staticmethod
    def _status(entity: BridgedEntity, err: ControlRefusedError) -> str:
        """The reply's status, naming the product's identifier rather than the role."""
        try:
            identifier = entity.config.identifiers[Role(err.detail)]
        except ValueError, KeyError:
            return err.status
        return f"{err.refusal}: {identifier}"

    @staticmethod
    def _record(entity: BridgedEntity, params: Properties, code: ReplyCode, status: str) -> None:
        entity.last_control = {
            "time": dt_util.utcnow().isoformat(),
            "params": dict(params),
            "code": int(code),
            "status": status,
        }

    async def _reply(self, entity: BridgedEntity, control: Control, code: ReplyCode, status: str) -> None:
        client = entity.client
        if client is None:
            return
        try:
            await client.control_reply(control.client_token, int(code), status)
        except TencentIotError as err:
            # The cloud keeps an unanswered control pending: `get_status` at the next online returns it.
            _LOGGER.warning("Could not answer a control of %s: %s", entity.entity_id, err)
