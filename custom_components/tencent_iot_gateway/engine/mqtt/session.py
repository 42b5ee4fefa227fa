"""One MQTT 3.1.1 session with the cloud, driven by the asyncio event loop.

paho-mqtt does the protocol; the event loop does the I/O, through `paho_driver.PahoLoopDriver`, so no network
thread is ever started. Only the blocking part of `connect` (DNS, TCP and the TLS handshake) runs in the
executor, as Home Assistant's own MQTT client does. This module keeps the session: credentials, connecting,
acknowledgements, publish and subscribe, and reconnecting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import errno
import logging
import secrets
import socket
import ssl
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from custom_components.tencent_iot_gateway.engine.errors import (
    AuthenticationError,
    CannotConnectError,
    ConnectCause,
    FieldProblem,
    InvalidFieldError,
    NotConnectedError,
    OperationTimeoutError,
    PayloadTooLargeError,
    SubscriptionRefusedError,
    TencentIotError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.auth import SignMethod, mqtt_credentials
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import TENCENT_ROOT_CA_FILE, BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.mqtt.paho_driver import PahoLoopDriver
from custom_components.tencent_iot_gateway.engine.mqtt.rate_budget import UplinkLimiter
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import (
    DEFAULT_UPLINK_RATE,
    Payload,
    UplinkPriority,
)

_LOGGER = logging.getLogger(__name__)

KEEPALIVE_S = 120
# Tencent's limits (spec §1, §3a; the older China page is the strict side of each).
KEEPALIVE_MIN_S = 60
KEEPALIVE_MAX_S = 850
MAX_PUBLISH_BYTES = 16 * 1024
# At most one connect per device in this time, counted from the end of the previous attempt (so the broker,
# which counts from the start, sees at least as much) and across every session of this process: the config
# flow's test login and the entry's first connect are two sessions of one device.
CONNECT_INTERVAL_S = 5.0
# A connection that drops sooner than this after its announce did not prove anything: the reconnect backoff
# keeps growing instead of starting over.
STABLE_CONNECTION_S = 60.0
CONNECT_TIMEOUT_S = 15.0
ACK_TIMEOUT_S = 20.0
# CONNACK codes 4 and 5 of MQTT 3.1.1, as paho maps them to reason codes.
_AUTH_REFUSED = {134, 135}
_REFUSED_ERRNOS = frozenset({errno.ECONNREFUSED})
_UNREACHABLE_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN})


def _connect_cause(err: OSError) -> ConnectCause:
    """What a failed TCP or TLS connect means for the user (ssl.SSLError is an OSError)."""
    if isinstance(err, ssl.SSLError):
        return ConnectCause.TLS
    if isinstance(err, socket.gaierror) or err.errno in _UNREACHABLE_ERRNOS:
        return ConnectCause.UNREACHABLE
    if err.errno in _REFUSED_ERRNOS:
        return ConnectCause.REFUSED
    if isinstance(err, TimeoutError):
        return ConnectCause.NO_ANSWER
    return ConnectCause.CLOSED


_JITTER = secrets.SystemRandom()
_last_connect: dict[str, float] = {}  # client id -> monotonic end of its last connect attempt


async def _connect_slot(client_id: str) -> None:
    """Wait until `client_id` may connect again (see `CONNECT_INTERVAL_S`)."""
    while True:
        last = _last_connect.get(client_id)
        wait = 0.0 if last is None else last + CONNECT_INTERVAL_S - time.monotonic()
        if wait <= 0:
            # Claimed with no await since the check: a concurrent session of the same device waits its turn.
            _last_connect[client_id] = time.monotonic() + CONNECT_TIMEOUT_S
            return
        _LOGGER.debug(
            "Waiting %.1f s before connecting %s again (one connect per %.0f s)",
            wait,
            client_id,
            CONNECT_INTERVAL_S,
        )
        # A claim by a connect still under way lies in the future: look again once it may have ended.
        await asyncio.sleep(min(wait, CONNECT_INTERVAL_S))


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _check_size(topic: str, payload: str) -> str:
    size = len(payload.encode())
    if size > MAX_PUBLISH_BYTES:
        raise PayloadTooLargeError(
            f"a {size}-byte message to {topic} is over Tencent's limit of {MAX_PUBLISH_BYTES} bytes"
        )
    return payload


def _connect_done(client_id: str) -> None:
    _last_connect[client_id] = time.monotonic()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter between reconnect attempts."""

    initial_s: float = 1.0
    maximum_s: float = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (1 is the first retry)."""
        ceiling = min(self.maximum_s, self.initial_s * 2 ** min(attempt - 1, 30))
        return _JITTER.uniform(ceiling / 2, ceiling)


def _load_ssl_context(endpoint: BrokerEndpoint) -> ssl.SSLContext:
    """Build the TLS context; reads certificates, so it runs in the executor."""
    ca_pem = endpoint.ca_pem
    if ca_pem is None:
        ca_pem = TENCENT_ROOT_CA_FILE.read_text(encoding="ascii")
    context = ssl.create_default_context(cadata=ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class MqttSession:
    """Keeps one gateway connected: fresh credentials on every connect, reconnecting forever on network loss.

    `on_connected` runs after every successful CONNACK (the caller resubscribes and re-announces its devices
    there); `on_message` gets every message; `on_connection_lost` and `on_auth_failed` tell the layer above.
    A refused login stops the reconnect loop: retrying cannot fix a wrong secret.
    """

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        device: DeviceId,
        device_secret: str,
        *,
        on_message: Callable[[str, bytes], None],
        on_connected: Callable[[], Awaitable[None]],
        on_connection_lost: Callable[[], None] | None = None,
        on_auth_failed: Callable[[AuthenticationError], None] | None = None,
        sign_method: SignMethod = SignMethod.HMAC_SHA256,
        keepalive_s: int = KEEPALIVE_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        ack_timeout_s: float = ACK_TIMEOUT_S,
        backoff: Backoff | None = None,
        uplink_rate: float | None = DEFAULT_UPLINK_RATE,
        stable_s: float = STABLE_CONNECTION_S,
    ) -> None:
        """Prepare a session; nothing is sent before `start`.

        `uplink_rate`: messages a second for the whole connection (None: no budget; see `rate_budget`).
        """
        if not KEEPALIVE_MIN_S <= keepalive_s <= KEEPALIVE_MAX_S:
            raise InvalidFieldError(
                "keepalive_s", FieldProblem.OUT_OF_RANGE, min=KEEPALIVE_MIN_S, max=KEEPALIVE_MAX_S
            )
        self._endpoint = endpoint
        self._device = device
        self._secret = device_secret
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_connection_lost = on_connection_lost
        self._on_auth_failed = on_auth_failed
        self._sign_method = sign_method
        self._keepalive_s = keepalive_s
        self._connect_timeout_s = connect_timeout_s
        self._ack_timeout_s = ack_timeout_s
        self._backoff = backoff or Backoff()
        self._stable_s = stable_s
        self._announced_at: float | None = None

        self._loop: asyncio.AbstractEventLoop | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._client: mqtt.Client | None = None
        self._driver = PahoLoopDriver()  # the socket I/O and keepalive of `_client`
        self._supervisor: asyncio.Task[None] | None = None
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._acks: dict[int, asyncio.Future[list[ReasonCode] | None]] = {}
        self._subscribing = asyncio.Lock()  # one SUBSCRIBE in flight at a time (see `subscribe`)
        self._written_pending: set[int] = set()  # packet ids of QoS 0 messages not yet written
        self._uplink_rate = uplink_rate
        self._limiter = UplinkLimiter(uplink_rate, self._hand_over)
        self._lost = asyncio.Event()
        self._connected = False
        self._stopping = False

    @property
    def connected(self) -> bool:
        """Whether the broker accepted us and the connection is up."""
        return self._connected

    @property
    def uplink_rate(self) -> float | None:
        """The connection's uplink budget in messages a second (None: unlimited), for schedulers to plan by."""
        return self._uplink_rate

    @property
    def device(self) -> DeviceId:
        """The device this session logs in as."""
        return self._device

    async def start(self) -> None:
        """Connect once, raising `AuthenticationError` or `CannotConnectError`; then stay connected."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        if self._endpoint.tls and self._ssl_context is None:
            try:
                self._ssl_context = await self._loop.run_in_executor(None, _load_ssl_context, self._endpoint)
            except (OSError, ssl.SSLError, ValueError) as err:
                raise CannotConnectError(
                    ConnectCause.CA_UNUSABLE, self._endpoint.host, self._endpoint.port, str(err)
                ) from None
        if not await self._connect_and_announce():
            self._lost.set()  # connected but not announced: the supervisor tries again, with backoff
        self._supervisor = self._loop.create_task(self._supervise(), name=f"mqtt session {self._device}")

    async def stop(self) -> None:
        """Disconnect cleanly and stop reconnecting."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        client = self._client
        if client is not None and self._connected:
            client.disconnect()
        self._driver.detach()
        self._client = None
        self._set_disconnected()
        await self._limiter.close()

    async def publish(
        self,
        topic: str,
        payload: Payload,
        qos: int = 1,
        *,
        priority: UplinkPriority = UplinkPriority.CONTROL,
        coalesce_key: str | None = None,
    ) -> None:
        """Send a message within the rate budget; with QoS 1 return once the broker acknowledged it.

        See `uplink.Publish`; a callable payload is rendered when the budget lets it go (`uplink.Payload`). A
        payload over Tencent's 16 KB raises `PayloadTooLargeError` (the broker would refuse it silently).
        """
        if isinstance(payload, str):
            _check_size(topic, payload)
        else:
            render = payload

            def payload() -> str:
                return _check_size(topic, render())

        self._require_client()
        mid = await self._limiter.submit(topic, payload, qos, priority, coalesce_key)
        if qos and mid is not None:
            await self._await_ack(mid, f"PUBACK for {topic}")

    async def subscribe(self, topics: list[str], qos: int = 1) -> None:
        """Subscribe, one topic per SUBSCRIBE as Tencent requires, each after the previous SUBACK.

        Every topic is tried; refused ones raise `SubscriptionRefusedError` (with `topics`) at the end.
        """
        refused: list[str] = []
        for topic in topics:
            # One SUBSCRIBE in flight per connection, also across callers (two sub-devices brought online at
            # once): back-to-back SUBSCRIBE packets are what a strict broker may take for one request.
            async with self._subscribing:
                client = self._require_client()
                result, mid = client.subscribe(topic, qos)
                if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
                    raise NotConnectedError(f"subscribe failed: {mqtt.error_string(result)}")
                codes = await self._await_ack(mid, "SUBACK")
            if any(code.is_failure for code in codes or []):
                refused.append(topic)
        if refused:
            raise SubscriptionRefusedError(refused)

    def _hand_over(self, topic: str, payload: str, qos: int) -> int | None:
        """Give one message to paho now (the limiter decides when); returns its packet id for QoS 1."""
        info = self._require_client().publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise NotConnectedError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        if not qos:
            if not info.is_published():
                # paho reports a QoS 0 message as "published" once written, under its packet id: that report
                # must not answer a QoS 1 message that got the same id after the 16-bit counter wrapped.
                self._written_pending.add(info.mid)
            return None
        # Registered before any await: the PUBACK is read by the loop, never inside `publish`.
        self._expect_ack(info.mid)
        return info.mid

    # -- connecting -------------------------------------------------------------------------------------

    async def _connect_and_announce(self) -> bool:
        """Connect and announce; False when connected but the announce failed (the connection is dropped).

        `on_connected` raising another `TencentIotError` (e.g. the cloud refusing this device the gateway
        protocol) drops the connection too, and is raised: a logged-in session is never left behind.
        """
        await self._connect_once()
        try:
            await self._on_connected()
        except (NotConnectedError, OperationTimeoutError) as err:
            # Connected but not announced is the worst state to linger in (the cloud thinks every sub-device
            # is offline): the layer above retries single operations itself, so this is a lost connection or
            # an essential answer that never came. Drop it; the supervisor reconnects with backoff.
            _LOGGER.warning("Announcing the gateway failed (%s); reconnecting", err)
            self._drop_connection()
            return False
        except TencentIotError:
            self._drop_connection()
            raise
        self._announced_at = time.monotonic()
        return True

    def _drop_connection(self) -> None:
        """Close the connection now, without telling the supervisor (the caller decides what follows)."""
        client = self._client
        if client is not None and self._connected:
            client.disconnect()
        self._driver.teardown()
        self._set_disconnected()

    async def _connect_once(self) -> None:
        assert self._loop is not None
        self._lost.clear()
        client = self._new_client()
        credentials = mqtt_credentials(self._device, self._secret, method=self._sign_method)
        client.username_pw_set(credentials.username, credentials.password)
        self._client = client
        self._driver.attach(client)  # tears the previous client's socket down
        host, port = self._endpoint.host, self._endpoint.port
        await _connect_slot(self._device.client_id)
        connack = self._connack = self._loop.create_future()
        try:
            try:
                await self._loop.run_in_executor(None, client.connect, host, port, self._keepalive_s)
            except (OSError, ssl.SSLError) as err:
                self._driver.teardown()
                raise CannotConnectError(_connect_cause(err), host, port, err.strerror or str(err)) from None
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    reason = await connack
            except TimeoutError:
                self._driver.teardown()
                raise CannotConnectError(ConnectCause.NO_ANSWER, host, port) from None
            except NotConnectedError as err:
                self._driver.teardown()
                raise CannotConnectError(ConnectCause.CLOSED, host, port, str(err)) from None
        finally:
            # Nobody waits for this CONNACK any more: an exception set on it later would never be retrieved.
            self._connack = None
            _connect_done(self._device.client_id)
        if reason.is_failure:
            self._driver.teardown()
            if reason.value in _AUTH_REFUSED:
                raise AuthenticationError(
                    f"the broker refused the credentials of {self._device} ({reason}): "
                    "check the device secret"
                )
            raise CannotConnectError(ConnectCause.BROKER_REFUSED, host, port, str(reason))
        self._connected = True

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._device.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        client.connect_timeout = self._connect_timeout_s
        if self._ssl_context is not None:
            client.tls_set_context(self._ssl_context)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_publish = self._handle_publish
        client.on_subscribe = self._handle_subscribe
        return client

    async def _supervise(self) -> None:
        """Reconnect after every loss, forever, until stopped or the credentials are refused.

        The backoff starts over only after a real success: a connection that was announced and then stayed
        up for `stable_s`. A connect whose announce failed, or that drops right away, keeps it growing.
        """
        attempt = 0
        while not self._stopping:
            await self._lost.wait()
            self._lost.clear()
            _LOGGER.warning("Lost the connection to %s; reconnecting", self._endpoint.host)
            if self._on_connection_lost is not None:
                self._on_connection_lost()
            announced_at, self._announced_at = self._announced_at, None
            if announced_at is not None and time.monotonic() - announced_at >= self._stable_s:
                attempt = 0
            while not self._stopping:
                attempt += 1
                await asyncio.sleep(self._backoff.delay(attempt))
                try:
                    announced = await self._connect_and_announce()
                except AuthenticationError as err:
                    _LOGGER.error("%s; no further reconnect attempts", err)
                    if self._on_auth_failed is not None:
                        self._on_auth_failed(err)
                    return
                except CannotConnectError as err:
                    _LOGGER.debug("Reconnect attempt %d failed: %s", attempt, err)
                    continue
                except TencentIotError as err:
                    # Refused after login (e.g. not a gateway product): the console can fix that, so keep trying.
                    _LOGGER.warning("Reconnect attempt %d refused: %s", attempt, err)
                    continue
                if announced:
                    _LOGGER.info("Reconnected to %s after %d attempt(s)", self._endpoint.host, attempt)
                    break

    # -- acknowledgements -------------------------------------------------------------------------------

    def _require_client(self) -> mqtt.Client:
        if self._client is None or not self._connected:
            raise NotConnectedError("the MQTT session is not connected")
        return self._client

    def _expect_ack(self, mid: int) -> asyncio.Future[list[ReasonCode] | None]:
        """A fresh future for `mid`: after the 16-bit packet id wraps, an older entry must never answer."""
        assert self._loop is not None
        future: asyncio.Future[list[ReasonCode] | None] = self._loop.create_future()
        # Its waiter may be gone (cancelled between hand-over and await): a failure then has no reader.
        future.add_done_callback(_retrieve)
        stale = self._acks.get(mid)
        if stale is not None and not stale.done():
            stale.set_exception(
                OperationTimeoutError(f"packet id {mid} was reused before its acknowledgement")
            )
        self._acks[mid] = future
        return future

    async def _await_ack(self, mid: int, what: str) -> list[ReasonCode] | None:
        future = self._acks.get(mid)
        if future is None:
            future = self._expect_ack(mid)
        try:
            async with asyncio.timeout(self._ack_timeout_s):
                return await future
        except TimeoutError:
            raise OperationTimeoutError(f"no {what} within {self._ack_timeout_s:.0f} s") from None
        finally:
            if self._acks.get(mid) is future:
                del self._acks[mid]

    def _resolve_ack(self, mid: int, codes: list[ReasonCode] | None) -> None:
        # Acks nobody registered (QoS 0 publishes report their mid too) are ignored: keeping them would leak,
        # and after the packet id wraps they would answer a later message.
        future = self._acks.get(mid)
        if future is not None and not future.done():
            future.set_result(codes)

    def _set_disconnected(self) -> None:
        self._connected = False
        error = NotConnectedError("the connection to the broker was lost")
        for future in self._acks.values():
            if not future.done():
                future.set_exception(error)
        self._acks.clear()
        self._written_pending.clear()
        self._limiter.fail_waiting(error)
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(error)

    # -- paho callbacks (always on the event loop thread; the socket ones are the driver's) -----------------

    def _handle_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if client is self._client and self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)

    def _handle_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if client is not self._client:
            return
        was_connected = self._connected
        self._set_disconnected()
        if was_connected and not self._stopping:
            self._lost.set()

    def _handle_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if client is self._client:
            self._on_message(message.topic, message.payload)

    def _handle_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        if client is not self._client:
            return
        if mid in self._written_pending:
            self._written_pending.discard(mid)  # a QoS 0 message was written: nobody waits for that
            return
        self._resolve_ack(mid, None)

    def _handle_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode], properties: Any
    ) -> None:
        if client is self._client:
            self._resolve_ack(mid, codes)
