"""Fixtures and helpers for tests that run against the local Tencent IoT emulator.

- `emulator`: a fresh `Emulator` per test (state dir in tmp_path, all ports free ones). Its floor for a task's
  timeout_s is lowered to 0.1 s (`emulator.min_task_timeout_s`) so a test can watch a task time out.
- `http`: an aiohttp session for the console.
- `sign_mqtt`, `bind_signature`: Tencent signatures written here from the spec (never imported from the
  integration), for bare test clients.
- `MqttTestClient`: a paho client driven by the test's event loop (no thread), as Home Assistant's MQTT
  client does it: add_reader/add_writer call loop_read/loop_write, a timer calls loop_misc.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass
import hashlib
import hmac
import json
from pathlib import Path
import socket
import time
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
import pytest

from tencent_iot_emulator.emulator import Emulator

TEST_MIN_TASK_TIMEOUT_S = 0.1


@pytest.fixture
async def emulator(socket_enabled: None, tmp_path: Path) -> AsyncIterator[Emulator]:
    """A running emulator with an empty registry."""
    async with Emulator(tmp_path / "emulator", min_task_timeout_s=TEST_MIN_TASK_TIMEOUT_S) as emu:
        yield emu


def on_the_same_ports(emulator: Emulator) -> Emulator:
    """A new emulator with the state and ports of `emulator` (stopped first): the broker restarting."""
    return Emulator(
        emulator.state_dir,
        mqtt_port=emulator.mqtt_port,
        mqtts_port=emulator.mqtts_port,
        http_port=int(emulator.http_url.rsplit(":", 1)[1]),
        https_port=int(emulator.https_url.rsplit(":", 1)[1]),
    )


@pytest.fixture
async def http(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session for console calls."""
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass(frozen=True, slots=True)
class Login:
    """What a device's CONNECT carries."""

    client_id: str
    username: str
    password: str


def sign_mqtt(
    product_id: str,
    device_name: str,
    secret: str,
    *,
    method: str = "hmacsha256",
    expiry: int | None = None,
    conn_id: str = "a1B2c",
    sdk_app_id: str = "12010126",
    client_id: str | None = None,
) -> Login:
    """Spec §1: username `{pid}{dn};{sdkappid};{connid};{expiry}`, password `{hex hmac};{method}`."""
    if expiry is None:
        expiry = int(time.time()) + 3600
    username = f"{product_id}{device_name};{sdk_app_id};{conn_id};{expiry}"
    digest = hashlib.sha256 if method == "hmacsha256" else hashlib.sha1
    signature = hmac.new(base64.b64decode(secret), username.encode(), digest).hexdigest()
    return Login(client_id or f"{product_id}{device_name}", username, f"{signature};{method}")


def bind_signature(
    product_id: str, device_name: str, secret: str, random: int, timestamp: int, method: str = "hmacsha256"
) -> str:
    """Spec §2: base64 HMAC of `{pid}{dn};{random};{timestamp}` keyed with the secret's base64 TEXT."""
    digest = hashlib.sha256 if method == "hmacsha256" else hashlib.sha1
    text = f"{product_id}{device_name};{random};{timestamp}".encode()
    return base64.b64encode(hmac.new(secret.encode(), text, digest).digest()).decode()


async def eventually[T](probe: Callable[[], Awaitable[T | None]], within: float = 10.0) -> T:
    """Poll `probe` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


@dataclass(frozen=True, slots=True)
class Received:
    """A message a test client got: payload parsed as JSON when it is JSON."""

    topic: str
    payload: Any
    raw: bytes


class MqttTestClient:
    """A bare MQTT 3.1.1 paho client for tests, on the running event loop."""

    def __init__(self, login: Login, *, ca_file: Path | None = None) -> None:
        """Prepare (TLS when `ca_file` is given)."""
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=login.client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
        )
        self._client.username_pw_set(login.username, login.password)
        if ca_file is not None:
            self._client.tls_set(ca_certs=str(ca_file))
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish
        self._client.on_disconnect = self._on_disconnect
        self._loop = asyncio.get_running_loop()
        self._connack: asyncio.Future[int] = self._loop.create_future()
        self._pending: dict[int, asyncio.Future[list[int]]] = {}
        self._sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.received: list[Received] = []
        self._arrived = asyncio.Event()
        self.connected = False

    async def connect(
        self, port: int, host: str = "127.0.0.1", within: float = 5.0, *, keepalive: int = 60
    ) -> int:
        """Connect; returns the CONNACK return code (0 accepted, 5 not authorized, ...)."""
        # paho's connect (TCP + TLS handshake) blocks: run it in the executor, then drive the socket here.
        await self._loop.run_in_executor(None, self._client.connect, host, port, keepalive)
        sock = self._client.socket()
        assert isinstance(sock, socket.socket)
        self._sock = sock
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_register_write
        self._client.on_socket_unregister_write = self._on_unregister_write
        self._loop.add_reader(sock, self._read)
        if self._client.want_write():
            self._loop.add_writer(sock, self._write)
        self._timer = self._loop.call_later(1.0, self._misc)
        return await asyncio.wait_for(self._connack, within)

    async def subscribe(self, *topics: str, qos: int = 1) -> list[int]:
        """Subscribe one topic per SUBSCRIBE, as Tencent requires; returns the codes (QoS, or 0x80 refused)."""
        codes: list[int] = []
        for topic in topics:
            codes += await self.subscribe_in_one_request(topic, qos=qos)
        return codes

    async def subscribe_in_one_request(self, *topics: str, qos: int = 1) -> list[int]:
        """Subscribe every topic in a single SUBSCRIBE (which Tencent's broker refuses past the first)."""
        _, mid = self._client.subscribe([(topic, qos) for topic in topics])
        assert mid is not None
        return await self._wait(mid)

    async def publish(self, topic: str, payload: Any, qos: int = 1) -> None:
        """Publish (dict/list -> JSON, str/bytes as they are); waits for the PUBACK at QoS 1."""
        if isinstance(payload, dict | list):
            payload = json.dumps(payload)
        info = self._client.publish(topic, payload, qos=qos)
        if qos:
            await self._wait(info.mid)

    async def expect(
        self, topic: str, match: Callable[[Any], bool] | None = None, within: float = 3.0
    ) -> Any:
        """Consume and return the payload of the first message on `topic` (matching `match`)."""
        deadline = time.monotonic() + within
        while True:
            for index, message in enumerate(self.received):
                if message.topic == topic and (match is None or match(message.payload)):
                    del self.received[index]
                    return message.payload
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = [(m.topic, m.payload) for m in self.received]
                pytest.fail(f"no message on {topic} within {within} s; got {got}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def expect_none(self, topic: str, wait: float = 0.3) -> None:
        """Assert that nothing arrives on `topic` for `wait` seconds."""
        await asyncio.sleep(wait)
        assert [m.payload for m in self.received if m.topic == topic] == []

    async def disconnect(self) -> None:
        """Send DISCONNECT and release the socket."""
        if self.connected:
            self._client.disconnect()
            self._client.loop_write()
        self._release()
        await asyncio.sleep(0)

    # -- paho plumbing -----------------------------------------------------------------------------------

    async def _wait(self, mid: int, within: float = 3.0) -> list[int]:
        future = self._pending.setdefault(mid, self._loop.create_future())
        return await asyncio.wait_for(future, within)

    def _resolve(self, mid: int, value: list[int]) -> None:
        future = self._pending.setdefault(mid, self._loop.create_future())
        if not future.done():
            future.set_result(value)

    def _read(self) -> None:
        self._client.loop_read()

    def _write(self) -> None:
        self._client.loop_write()

    def _misc(self) -> None:
        self._client.loop_misc()
        self._timer = self._loop.call_later(1.0, self._misc)

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._sock)
                self._loop.remove_writer(self._sock)
            self._sock = None
        with contextlib.suppress(OSError):
            self._client.disconnect()
        sock = self._client.socket()
        if sock is not None:
            sock.close()

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._loop.add_writer(sock, self._write)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        code = _connack_code(reason)
        self.connected = code == 0
        if not self._connack.done():
            self._connack.set_result(code)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        self.connected = False
        if not self._connack.done():
            self._connack.set_exception(ConnectionError(f"connection closed before CONNACK: {reason}"))

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Properties | None
    ) -> None:
        self._resolve(mid, [code.value for code in codes])

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties | None
    ) -> None:
        self._resolve(mid, [])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            payload: Any = json.loads(message.payload)
        except ValueError:
            payload = message.payload.decode("utf-8", errors="replace")
        self.received.append(Received(message.topic, payload, message.payload))
        self._arrived.set()


def _connack_code(reason: ReasonCode) -> int:
    """The MQTT 3.1.1 CONNACK return code behind paho's MQTT 5 style reason code."""
    return {0: 0, 132: 1, 133: 2, 136: 3, 134: 4, 135: 5}.get(reason.value, reason.value)


@contextlib.asynccontextmanager
async def mqtt_client(
    emu: Emulator, product_id: str, device_name: str, secret: str, *, tls: bool = False, **sign: Any
) -> AsyncIterator[MqttTestClient]:
    """A connected test client for a device (asserts the login is accepted)."""
    client = MqttTestClient(
        sign_mqtt(product_id, device_name, secret, **sign), ca_file=emu.ca_file if tls else None
    )
    try:
        code = await client.connect(emu.mqtts_port if tls else emu.mqtt_port)
        assert code == 0, f"login refused with CONNACK {code}"
        yield client
    finally:
        await client.disconnect()


async def console_call(
    session: aiohttp.ClientSession,
    emu: Emulator,
    method: str,
    path: str,
    body: Any = None,
    *,
    status: int = 200,
) -> Any:
    """Call the console, assert the HTTP status, return the JSON answer."""
    async with session.request(method, emu.http_url + path, json=body) as response:
        answer = await response.json()
        assert response.status == status, answer
        return answer


async def register_device(
    session: aiohttp.ClientSession,
    emu: Emulator,
    product_id: str,
    device_name: str,
    secret: str | None = None,
) -> str:
    """Register a device through the console; returns its secret."""
    body: dict[str, Any] = {"product_id": product_id, "device_name": device_name}
    if secret is not None:
        body["device_secret"] = secret
    answer = await console_call(session, emu, "POST", "/api/devices", body, status=201)
    return str(answer["device_secret"])
