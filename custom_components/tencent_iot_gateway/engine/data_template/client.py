"""One sub-device's data-template traffic over the gateway's session: reports, requests, the cloud's controls.

Reports are coalesced: `report` only records the values; one report per device at most waits for the
connection's budget (`UplinkPriority.DATA_REPORT`, below every OTA message), and it is rendered when its turn
comes, with the latest value of every property changed since the last one (latest wins). So N devices
changing all the time cost N reports per round of the budget, and each round carries the newest values.

Tencent refuses a whole report when one property does not fit the product's template (code 406), without
naming it. A refused report of several properties is therefore sent again one property per report; a property
refused on its own is reported to the layer above (`PropertyRefused`) and never sent again by this client.

Requests (`get_status`, `clear_control`, `report_info`) wait for the answer with the same `clientToken`;
`control_reply` answers a `Control`. A downlink that cannot be parsed is logged and counted, and nothing is
done or sent for it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
import itertools
import logging
import secrets
from typing import Protocol

from custom_components.tencent_iot_gateway.engine.errors import (
    DataTemplateRefusedError,
    MalformedDownlinkError,
    NotConnectedError,
    OperationTimeoutError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.topics import thing_property_down, thing_property_up
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import Payload, Subscribe, UplinkPriority

from .protocol import (
    CODE_OK,
    Control,
    Method,
    Properties,
    PropertyValue,
    Reply,
    StatusReply,
    StatusType,
    check_properties,
    clear_control_message,
    control_reply_message,
    get_status_message,
    parse_downlink,
    report_info_message,
    report_message,
)

_LOGGER = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 20.0
_IN_FLIGHT = 64  # reports whose answer is still awaited (a lost answer must not grow this forever)


class DataPublish(Protocol):
    """The session's publish, which may render a payload when its turn comes (`uplink.Payload`)."""

    def __call__(
        self,
        topic: str,
        payload: Payload,
        qos: int = 1,
        *,
        priority: UplinkPriority = UplinkPriority.CONTROL,
        coalesce_key: str | None = None,
    ) -> Awaitable[None]:
        """Send within the connection's budget."""
        ...


@dataclass(frozen=True, slots=True)
class PropertyRefused:
    """The cloud refused a report of this property alone: it is not in the product's template, or its value
    does not fit it. The client no longer sends it."""

    device: DeviceId
    property: str
    code: int
    status: str


@dataclass(frozen=True, slots=True)
class DataTemplateHandlers:
    """What the layer above hears: controls to carry out (then `control_reply`), refused properties, and that
    the device's down topic is subscribed (after every online: the time for `get_status` and a full report)."""

    on_control: Callable[[DeviceId, Control], None]
    on_refused: Callable[[PropertyRefused], None] = lambda _refused: None
    on_subscribed: Callable[[DeviceId], None] = lambda _device: None


class DataTemplateClient:
    """The data-template client of one device; `DataTemplates` routes its downlinks to it."""

    def __init__(
        self,
        device: DeviceId,
        publish: DataPublish,
        subscribe: Subscribe,
        handlers: DataTemplateHandlers,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        """Nothing is sent before `subscribe`, `report` or a request."""
        self._device = device
        self._publish = publish
        self._subscribe = subscribe
        self._handlers = handlers
        self._timeout_s = timeout_s
        self._up = thing_property_up(device)
        # Tokens of this run never match an answer meant for an earlier one.
        self._prefix = f"ha{secrets.token_hex(3)}"
        self._counter = itertools.count(1)
        self._unsent: dict[str, PropertyValue] = {}
        self._isolate: dict[str, PropertyValue] = {}  # properties of a refused report, to send one by one
        self._refused: set[str] = set()
        self._rendering: dict[str, PropertyValue] | None = None
        self._in_flight: OrderedDict[str, dict[str, PropertyValue]] = OrderedDict()
        self._waiting: dict[str, asyncio.Future[Reply | StatusReply]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.malformed = 0
        self.last_malformed: str | None = None

    @property
    def device(self) -> DeviceId:
        """The device this client speaks for."""
        return self._device

    @property
    def down_topic(self) -> str:
        """The topic the cloud talks to this device on."""
        return thing_property_down(self._device)

    @property
    def refused(self) -> frozenset[str]:
        """Properties the cloud refused; they are no longer reported."""
        return frozenset(self._refused)

    @property
    def unsent(self) -> Mapping[str, PropertyValue]:
        """Values recorded and not yet handed to the connection."""
        return dict(self._unsent)

    async def subscribe(self) -> None:
        """Subscribe the down topic through the gateway's session; then send what waited for the connection."""
        await self._subscribe([self.down_topic])
        self._ensure_flusher()
        self._handlers.on_subscribed(self._device)

    # -- reports --------------------------------------------------------------------------------------------

    def report(self, params: Properties) -> None:
        """Record new values; they go up in this device's next report (see the module docstring).

        Raises `InvalidFieldError` for a value no property can have; refused properties are left out.
        """
        check_properties(params)
        self._unsent.update((k, v) for k, v in params.items() if k not in self._refused)
        self._ensure_flusher()

    async def flush(self) -> None:
        """Wait until every value recorded so far was handed to the connection (or the connection dropped)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    def reset_refused(self) -> None:
        """Send refused properties again (the product's template or the mapping was changed)."""
        self._refused.clear()

    def _ensure_flusher(self) -> None:
        if (self._unsent or self._isolate) and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name=f"data-template reports {self._device}"
            )

    async def _flush(self) -> None:
        while self._unsent or self._isolate:
            self._rendering = None
            try:
                await self._publish(self._up, self._render, 0, priority=UplinkPriority.DATA_REPORT)
            except (NotConnectedError, OperationTimeoutError) as err:
                # Values taken for a message that never left go back, behind any newer ones.
                taken: dict[str, PropertyValue] = self._rendering or {}
                for name, value in taken.items():
                    self._unsent.setdefault(name, value)
                _LOGGER.debug("Reports of %s wait for the connection: %s", self._device, err)
                return

    def _render(self) -> str:
        """The next report, built when the budget lets it go: one isolated property, or all changed ones."""
        if self._isolate:
            name, value = next(iter(self._isolate.items()))
            del self._isolate[name]
            params = {name: self._unsent.pop(name, value)}
        else:
            params = {k: v for k, v in self._unsent.items() if k not in self._refused}
            self._unsent.clear()
        self._rendering = params
        token = self._token()
        self._in_flight[token] = params
        while len(self._in_flight) > _IN_FLIGHT:
            self._in_flight.popitem(last=False)
        return report_message(token, params)

    def _on_report_reply(self, reply: Reply) -> None:
        params = self._in_flight.pop(reply.client_token, None)
        if params is None or reply.ok:
            return
        if len(params) > 1:
            _LOGGER.info(
                "The cloud refused a report of %s (code %d, %s); sending its %d properties one by one to find "
                "which one it refuses",
                self._device,
                reply.code,
                reply.status,
                len(params),
            )
            self._isolate.update((k, v) for k, v in params.items() if k not in self._refused)
            self._ensure_flusher()
            return
        [name] = params
        if name in self._refused:
            return
        _LOGGER.warning(
            "The cloud refuses property %r of %s (code %d, %s): it is not in the product's data template, or "
            "its value does not fit it; it is no longer reported",
            name,
            self._device,
            reply.code,
            reply.status,
        )
        self._refused.add(name)
        self._unsent.pop(name, None)
        self._handlers.on_refused(PropertyRefused(self._device, name, reply.code, reply.status))

    # -- requests ---------------------------------------------------------------------------------------------

    async def get_status(self, kind: StatusType) -> StatusReply:
        """The last reported values (`REPORT`) or the pending controls' params (`CONTROL`)."""
        reply = await self._request(Method.GET_STATUS, lambda token: get_status_message(token, kind))
        assert isinstance(reply, StatusReply)
        return reply

    async def clear_control(self) -> Reply:
        """Tell the cloud the pending controls are handled."""
        reply = await self._request(Method.CLEAR_CONTROL, clear_control_message)
        assert isinstance(reply, Reply)
        return reply

    async def report_info(self, info: Mapping[str, object]) -> Reply:
        """Report the device's system information (`module_softinfo`, `fw_ver`, ... and `device_label`)."""
        reply = await self._request(Method.REPORT_INFO, lambda token: report_info_message(token, info))
        assert isinstance(reply, Reply)
        return reply

    async def control_reply(self, client_token: str, code: int = CODE_OK, status: str = "") -> None:
        """Answer a `Control` (code 0 done; else why not, in `status`); QoS 1, as Tencent's Java SDK sends it."""
        await self._publish(
            self._up,
            control_reply_message(client_token, code, status),
            1,
            priority=UplinkPriority.DATA_REPLY,
        )

    async def _request(self, method: Method, build: Callable[[str], str]) -> Reply | StatusReply:
        token = self._token()
        future: asyncio.Future[Reply | StatusReply] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        try:
            await self._publish(self._up, build(token), 0, priority=UplinkPriority.DATA_REPLY)
            try:
                async with asyncio.timeout(self._timeout_s):
                    reply = await future
            except TimeoutError:
                raise OperationTimeoutError(
                    f"no answer to {method} of {self._device} within {self._timeout_s:.0f} s"
                ) from None
        finally:
            self._waiting.pop(token, None)
        if not reply.ok:
            raise DataTemplateRefusedError(str(method), reply.code, reply.status)
        return reply

    def _token(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"

    # -- downlinks --------------------------------------------------------------------------------------------

    def handle_message(self, payload: bytes) -> None:
        """A message on this device's down topic."""
        try:
            downlink = parse_downlink(payload)
        except MalformedDownlinkError as err:
            self.malformed += 1
            self.last_malformed = err.reason
            _LOGGER.warning(
                "Ignoring a message for %s that cannot be understood: %s", self._device, err.reason
            )
            return
        if isinstance(downlink, Control):
            self._handlers.on_control(self._device, downlink)
            return
        if isinstance(downlink, Reply) and downlink.method is Method.REPORT_REPLY:
            self._on_report_reply(downlink)
            return
        future = self._waiting.get(downlink.client_token)
        if future is not None and not future.done():
            future.set_result(downlink)
        else:
            _LOGGER.debug("An answer for %s matches no request of this run; ignored", self._device)

    def connection_lost(self) -> None:
        """Fail the waiting requests; recorded values wait for `subscribe` after the reconnect."""
        error = NotConnectedError("the connection to the broker was lost")
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._in_flight.clear()

    async def close(self) -> None:
        """Stop sending; waiting requests fail."""
        self.connection_lost()
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
