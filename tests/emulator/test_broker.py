"""The emulator's mosquitto with the Tencent auth/ACL plugin: logins and topic permissions."""

from __future__ import annotations

from pathlib import Path
import time
from typing import Any

import aiohttp
import pytest

from tencent_iot_emulator.broker import PLUGIN_ENV, BrokerError
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import (
    Login,
    MqttTestClient,
    console_call,
    eventually,
    mqtt_client,
    register_device,
    sign_mqtt,
)

V1 = ("ABCDEFGHIJ", "gw01", "MTIzNDU2Nzg5MGFiY2RlZg==")
V2 = ("TESTPID001", "gateway_dev", "c2VjcmV0LWtleS1mb3ItdGVzdCE=")
NOT_AUTHORIZED = 5


async def _login(emu: Emulator, client: MqttTestClient, *, tls: bool = False) -> int:
    try:
        return await client.connect(emu.mqtts_port if tls else emu.mqtt_port)
    finally:
        await client.disconnect()


async def _violations(http: aiohttp.ClientSession, emu: Emulator) -> list[dict[str, str]]:
    answer = await console_call(http, emu, "GET", "/api/violations")
    return list(answer["violations"])


@pytest.mark.parametrize(
    ("vector", "method", "sdk_app_id", "conn_id"),
    [(V1, "hmacsha256", "12010126", "a1B2c"), (V2, "hmacsha1", "21010406", "Xy9Zq")],
)
async def test_login_accepted_for_both_vector_shapes(
    emulator: Emulator,
    http: aiohttp.ClientSession,
    vector: tuple[str, str, str],
    method: str,
    sdk_app_id: str,
    conn_id: str,
) -> None:
    """Both signature methods and both username shapes of spec §1 log in, over plain TCP and over TLS."""
    product_id, device_name, secret = vector
    await register_device(http, emulator, product_id, device_name, secret)
    login = sign_mqtt(product_id, device_name, secret, method=method, sdk_app_id=sdk_app_id, conn_id=conn_id)
    assert await _login(emulator, MqttTestClient(login)) == 0
    assert await _login(emulator, MqttTestClient(login, ca_file=emulator.ca_file), tls=True) == 0


async def test_login_with_spec_vector_2_far_expiry(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """The exact V2 username and password of the spec (expiry 2^63-1) are accepted."""
    await register_device(http, emulator, *V2)
    login = Login(
        "TESTPID001gateway_dev",
        "TESTPID001gateway_dev;21010406;Xy9Zq;9223372036854775807",
        "3a5f6cb3a99f8296a139760729d00aabc52d06d4;hmacsha1",
    )
    assert await _login(emulator, MqttTestClient(login)) == 0


@pytest.mark.parametrize(
    "expiry",
    [
        2**31 - 1,  # this integration, and Tencent's C and Java SDKs on 32-bit
        92233720368547758,  # Tencent's Explorer C SDK 3.1.5: LONG_MAX cut to 17 digits by a short buffer
        int(time.time() * 1000),  # Tencent's Python SDK: the current time in milliseconds
    ],
)
async def test_the_expiry_field_is_seconds_and_far_future_values_log_in(
    emulator: Emulator, http: aiohttp.ClientSession, expiry: int
) -> None:
    """Tencent documents the username's fourth field as the signature's expiry in Unix seconds. What its SDKs
    put there reads, as seconds, as a time far ahead, and Tencent's cloud accepts them all: so does the
    emulator (the Python SDK's millisecond clock is tens of thousands of years ahead in seconds)."""
    await register_device(http, emulator, *V1)
    assert await _login(emulator, MqttTestClient(sign_mqtt(*V1, expiry=expiry))) == 0
    assert await _violations(http, emulator) == []


async def test_wrong_secret_refused(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A signature made with another secret is refused, and the refusal is listed with its reason."""
    await register_device(http, emulator, *V1)
    login = sign_mqtt(V1[0], V1[1], V2[2])
    assert await _login(emulator, MqttTestClient(login)) == NOT_AUTHORIZED
    assert await _login(emulator, MqttTestClient(login, ca_file=emulator.ca_file), tls=True) == NOT_AUTHORIZED
    violations = await eventually(lambda: _violations(http, emulator))
    assert violations[0]["kind"] == "auth"
    assert violations[0]["client"] == "ABCDEFGHIJ/gw01"
    assert "wrong signature" in violations[0]["reason"]


async def test_expired_signature_refused(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """The spec's V1 expiry (2023) is in the past: refused even though the HMAC is right."""
    await register_device(http, emulator, *V1)
    login = sign_mqtt(*V1, expiry=1700000000)
    assert login.password.startswith("aec28c749ab9aedaf74ce3dcb8c3af8d467d53afff18accc3c22adc11650a364")
    assert await _login(emulator, MqttTestClient(login)) == NOT_AUTHORIZED
    assert (
        await _login(emulator, MqttTestClient(sign_mqtt(*V1, expiry=int(time.time()) - 1))) == NOT_AUTHORIZED
    )
    violations = await eventually(lambda: _violations(http, emulator))
    assert "signature expired" in violations[0]["reason"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"client_id": "ABCDEFGHIJgw02"}, "unknown client id"),
        ({"client_id": "ABCDEFGHIJgw0"}, "does not start with the client id"),
        ({"conn_id": "abc"}, "connid"),
        ({"sdk_app_id": "x1"}, "sdkappid"),
        ({"method": "hmacmd5"}, "unsupported signature method"),
    ],
)
async def test_malformed_logins_refused(
    emulator: Emulator, http: aiohttp.ClientSession, change: dict[str, Any], reason: str
) -> None:
    """A wrong client id, a malformed username or an unknown method is refused."""
    await register_device(http, emulator, *V1)
    await register_device(http, emulator, "ABCDEFGHIJ", "gw0", "MTIzNDU2Nzg5MGFiY2RlZg==")
    login = sign_mqtt(*V1, **change)
    assert await _login(emulator, MqttTestClient(login)) == NOT_AUTHORIZED
    violations = await eventually(lambda: _violations(http, emulator))
    assert reason in violations[-1]["reason"]


async def test_username_must_start_with_client_id(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Another device's valid login under this device's client id is refused."""
    await register_device(http, emulator, *V1)
    await register_device(http, emulator, *V2)
    login = sign_mqtt(*V2, client_id="ABCDEFGHIJgw01")
    assert await _login(emulator, MqttTestClient(login)) == NOT_AUTHORIZED


async def test_unregistered_device_refused_and_secret_change_applies(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The plugin re-reads the device table: a device works once registered, and a new secret replaces the old."""
    assert await _login(emulator, MqttTestClient(sign_mqtt(*V1))) == NOT_AUTHORIZED
    await register_device(http, emulator, *V1)
    assert await _login(emulator, MqttTestClient(sign_mqtt(*V1))) == 0
    await register_device(http, emulator, V1[0], V1[1], V2[2])
    assert await _login(emulator, MqttTestClient(sign_mqtt(*V1))) == NOT_AUTHORIZED
    assert await _login(emulator, MqttTestClient(sign_mqtt(V1[0], V1[1], V2[2]))) == 0


async def test_acl_own_topics_allowed_foreign_refused(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A device subscribes to its own topics; another device's topic gets SUBACK 0x80 and is listed."""
    await register_device(http, emulator, *V1)
    await register_device(http, emulator, *V2)
    async with mqtt_client(emulator, *V1) as client:
        own = [
            "$ota/update/ABCDEFGHIJ/gw01",
            "$gateway/operation/result/ABCDEFGHIJ/gw01",
            "$thing/down/property/ABCDEFGHIJ/gw01",
            "ABCDEFGHIJ/gw01/control",
            "ABCDEFGHIJ/gw01/#",
        ]
        assert await client.subscribe(*own) == [1] * len(own)
        foreign = [
            "$ota/update/TESTPID001/gateway_dev",
            "$ota/update/+/+",
            "#",
            "$sys/whatever",
            "+/gw01/data",
        ]
        assert await client.subscribe(*foreign) == [0x80] * len(foreign)
    violations = await eventually(lambda: _violations(http, emulator))
    assert [v["topic"] for v in violations] == foreign
    assert all(v["kind"] == "acl" and v["client"] == "ABCDEFGHIJ/gw01" for v in violations)
    assert "subscription refused" in violations[0]["reason"]


async def test_acl_foreign_publish_dropped(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A publish on another device's topic never reaches that device, and is listed as a violation."""
    await register_device(http, emulator, *V1)
    await register_device(http, emulator, *V2)
    async with mqtt_client(emulator, *V1) as attacker, mqtt_client(emulator, *V2) as victim:
        assert await victim.subscribe("TESTPID001/gateway_dev/control") == [1]
        await attacker.publish("TESTPID001/gateway_dev/control", {"on": True})
        await victim.publish("TESTPID001/gateway_dev/control", {"own": True})
        assert await victim.expect("TESTPID001/gateway_dev/control") == {"own": True}
        await victim.expect_none("TESTPID001/gateway_dev/control")
    violations = await eventually(lambda: _violations(http, emulator))
    assert violations[0]["topic"] == "TESTPID001/gateway_dev/control"
    assert violations[0]["client"] == "ABCDEFGHIJ/gw01"
    assert "publish dropped" in violations[0]["reason"]


async def test_acl_follows_bindings_at_once(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A gateway may use a sub-device's topics exactly while the console binding exists."""
    await register_device(http, emulator, *V1)
    await register_device(http, emulator, "SUBPID0001", "lamp01", "c3ViZGV2LXNlY3JldA==")
    binding = {"gateway": "ABCDEFGHIJ/gw01", "subdevice": "SUBPID0001/lamp01"}
    async with mqtt_client(emulator, *V1) as gateway:
        assert await gateway.subscribe("$ota/update/SUBPID0001/lamp01") == [0x80]
        await console_call(http, emulator, "POST", "/api/bindings", binding)
        assert await gateway.subscribe("$ota/update/SUBPID0001/lamp01") == [1]
        await console_call(http, emulator, "DELETE", "/api/bindings", binding)
        assert await gateway.subscribe("$ota/update/SUBPID0001/lamp01") == [0x80]


async def test_no_retained_messages_and_qos2_downgraded(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Retained and QoS 2 publishes are refused (the client is dropped); a QoS 2 subscription gets QoS 1."""
    await register_device(http, emulator, *V1)
    async with mqtt_client(emulator, *V1) as client:
        assert await client.subscribe("ABCDEFGHIJ/gw01/data", qos=2) == [1]
        client._client.publish("ABCDEFGHIJ/gw01/data", "kept?", qos=0, retain=True)
        await eventually(lambda: _async(not client.connected))
    async with mqtt_client(emulator, *V1) as client:
        assert await client.subscribe("ABCDEFGHIJ/gw01/data") == [1]
        await client.expect_none("ABCDEFGHIJ/gw01/data")
        # A QoS 2 publish is refused too: the broker drops the client.
        client._client.publish("ABCDEFGHIJ/gw01/data", "exactly once?", qos=2)
        await eventually(lambda: _async(not client.connected))


async def _async[T](value: T) -> T:
    return value


async def test_missing_plugin_is_a_clear_error(
    socket_enabled: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the compiled plugin the emulator refuses to start and says how to build it."""
    monkeypatch.setenv(PLUGIN_ENV, str(tmp_path / "missing.so"))
    with pytest.raises(BrokerError, match="run scripts/setup"):
        async with Emulator(tmp_path / "state"):
            pass
