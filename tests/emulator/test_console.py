"""The console API's own behaviour, dynamic registration (spec §1) and persistence across restarts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
import time

import aiohttp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tencent_iot_emulator.console import encrypt_registration
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import MqttTestClient, console_call, mqtt_client, register_device, sign_mqtt

PRODUCT_SECRET = "ABCDEFGHIJKLMNOPQRSTUVWX"


def sign_registration(host: str, body: bytes, secret: str, timestamp: int, nonce: int) -> str:
    """Spec §1's StringToSign and signature, written here from the spec."""
    lines = [
        "POST",
        host,
        "/device/register",
        "",
        "hmacsha256",
        str(timestamp),
        str(nonce),
        hashlib.sha256(body).hexdigest(),
    ]
    return base64.b64encode(
        hmac.new(secret.encode(), "\n".join(lines).encode(), hashlib.sha256).digest()
    ).decode()


def decrypt(payload: str, secret: str, length: int) -> dict[str, object]:
    """AES-128-CBC, key = first 16 bytes of the product secret, IV = sixteen '0'."""
    decryptor = Cipher(algorithms.AES(secret.encode()[:16]), modes.CBC(b"0" * 16)).decryptor()
    plain = decryptor.update(base64.b64decode(payload)) + decryptor.finalize()
    return dict(json.loads(plain[:length]))


def test_registration_vectors() -> None:
    """The spec's signature and payload vectors (so a registration test failing means the emulator is wrong)."""
    body = b'{"ProductId":"ABCDEFGHIJ","DeviceName":"gw01"}'
    assert (
        hashlib.sha256(body).hexdigest() == "6dcdff03f7c9e3571854e463709f049e3ffefe7dfcb8bf75efc748a2857a5ccb"
    )
    signature = sign_registration(
        "ap-guangzhou.gateway.tencentdevices.com", body, PRODUCT_SECRET, 1700000000, 12345
    )
    assert signature == "6K5TAmky9uxLhjMI2iila9/KTx4jApfH4v3S+HH/nsw="
    plain = b'{"encryptionType":2,"psk":"MTIzNDU2Nzg5MGFiY2RlZg=="}'
    assert encrypt_registration(plain, PRODUCT_SECRET) == (
        "XTv6+/pNsmYOjNuQMIRnuLp56yoWYX8Yat+uo4K8jKFBxvZ8CWg+9bMnn32GActW+KYxv+NsIi9ET/nSUJFXJw=="
    )


async def _register(
    http: aiohttp.ClientSession,
    emu: Emulator,
    body: bytes,
    *,
    secret: str = PRODUCT_SECRET,
    skew: int = 0,
    host: str | None = None,
) -> dict[str, dict[str, object]]:
    timestamp, nonce = int(time.time()) + skew, 4242
    sign_host = host or emu.http_url.removeprefix("http://")
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-TC-Algorithm": "hmacsha256",
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Nonce": str(nonce),
        "X-TC-Signature": sign_registration(sign_host, body, secret, timestamp, nonce),
    }
    async with http.post(emu.http_url + "/device/register", data=body, headers=headers) as response:
        assert response.status == 200
        return dict(await response.json())


async def test_dynamic_registration(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A correctly signed request gets the AES-encrypted device secret, which then logs in over MQTT."""
    answer = await console_call(
        http,
        emulator,
        "POST",
        "/api/products",
        {"product_id": "ABCDEFGHIJ", "product_secret": PRODUCT_SECRET},
        status=201,
    )
    assert answer == {"product_id": "ABCDEFGHIJ", "product_secret": PRODUCT_SECRET}
    body = b'{"ProductId":"ABCDEFGHIJ","DeviceName":"gw01"}'
    reply = (await _register(http, emulator, body))["Response"]
    plain = decrypt(str(reply["Payload"]), PRODUCT_SECRET, int(str(reply["Len"])))
    assert plain["encryptionType"] == 2
    secret = str(plain["psk"])
    async with mqtt_client(emulator, "ABCDEFGHIJ", "gw01", secret):
        pass
    # Registering again returns the same secret; signing the host without its port is accepted too.
    reply = (await _register(http, emulator, body, host="127.0.0.1"))["Response"]
    assert decrypt(str(reply["Payload"]), PRODUCT_SECRET, int(str(reply["Len"])))["psk"] == secret


async def test_dynamic_registration_errors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Errors come in Tencent's {"Response": {"Error": {Code, Message}}} shape."""
    body = b'{"ProductId":"ABCDEFGHIJ","DeviceName":"gw01"}'
    error = (await _register(http, emulator, body))["Response"]["Error"]
    assert isinstance(error, dict)
    assert error["Code"] == "ResourceNotFound.ProductNotExist"
    await console_call(
        http,
        emulator,
        "POST",
        "/api/products",
        {"product_id": "ABCDEFGHIJ", "product_secret": PRODUCT_SECRET},
        status=201,
    )
    cases = [
        (
            await _register(http, emulator, body, secret="WRONGWRONGWRONGWRONGWRON"),
            "AuthFailure.SignatureFailure",
        ),
        (await _register(http, emulator, body, skew=-3600), "AuthFailure.SignatureExpire"),
        (await _register(http, emulator, b'{"ProductId":"ABCDEFGHIJ"}'), "InvalidParameterValue"),
    ]
    for answer, code in cases:
        error = answer["Response"]["Error"]
        assert isinstance(error, dict)
        assert error["Code"] == code
        assert error["Message"]
    async with http.post(
        emulator.http_url + "/device/register", data=body, headers={"X-TC-Algorithm": "hmacsha1"}
    ) as response:
        answer = await response.json()
        assert answer["Response"]["Error"]["Code"] == "InvalidParameterValue.AlgorithmNotSupported"


async def test_devices_and_validation(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Devices get a generated base64 secret when none is given; bad input gets 400 with a JSON message."""
    secret = await register_device(http, emulator, "PRODUCT001", "dev-1.a:b@c")
    assert len(base64.b64decode(secret, validate=True)) == 16
    assert await register_device(http, emulator, "PRODUCT001", "dev-1.a:b@c") == secret
    listing = await console_call(http, emulator, "GET", "/api/devices?product_id=PRODUCT001")
    assert [d["device_name"] for d in listing["devices"]] == ["dev-1.a:b@c"]
    assert (await console_call(http, emulator, "GET", "/api/devices?product_id=OTHER"))["devices"] == []
    await console_call(http, emulator, "GET", "/api/devices/PRODUCT001/nobody", status=404)
    bad_bodies: list[object] = [
        {"product_id": "TOO_LONG_PRODUCT", "device_name": "a"},
        {"product_id": "P1", "device_name": "has/slash"},
        {"product_id": "P1", "device_name": "x" * 49},
        {"product_id": "P1", "device_name": "d", "device_secret": "not base64!"},
        {"device_name": "d"},
        [1],
    ]
    for body in bad_bodies:
        answer = await console_call(http, emulator, "POST", "/api/devices", body, status=400)
        assert answer["error"]
    async with http.post(emulator.http_url + "/api/devices", data=b"{") as response:
        assert response.status == 400
        assert (await response.json())["error"] == "the body must be JSON"
    await console_call(http, emulator, "GET", "/api/messages?client=nobody", status=400)
    assert (await console_call(http, emulator, "GET", "/api/messages?client=PRODUCT001/ghost"))[
        "messages"
    ] == []


async def test_registry_survives_restart(
    socket_enabled: None, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Devices, secrets, bindings and firmware persist in the state dir; the CA too."""
    state = tmp_path / "state"
    async with Emulator(state) as emu:
        secret = await register_device(http, emu, "GWPID00001", "gw01")
        await register_device(http, emu, "SUBPID0001", "lamp01")
        await console_call(
            http,
            emu,
            "POST",
            "/api/bindings",
            {"gateway": "GWPID00001/gw01", "subdevice": "SUBPID0001/lamp01"},
        )
        async with http.post(
            f"{emu.http_url}/api/firmware?product_id=SUBPID0001&version=1.1", data=b"image"
        ) as response:
            assert response.status in (200, 201)
        ca = emu.ca_file.read_bytes()
    async with Emulator(state) as emu:
        assert emu.ca_file.read_bytes() == ca
        status = await console_call(http, emu, "GET", "/api/devices/SUBPID0001/lamp01")
        assert status["gateway"] == "GWPID00001/gw01"
        async with mqtt_client(emu, "GWPID00001", "gw01", secret, tls=True) as gateway:
            assert await gateway.subscribe("$ota/update/SUBPID0001/lamp01") == [1]
        answer = await console_call(
            http,
            emu,
            "POST",
            "/api/tasks",
            {"product_id": "SUBPID0001", "version": "1.1", "mode": "list", "devices": ["lamp01"]},
            status=201,
        )
        assert answer["task_id"] == 1
        refused = MqttTestClient(sign_mqtt("GWPID00001", "gw01", "d3Jvbmc="))
        assert await refused.connect(emu.mqtt_port) == 5
        await refused.disconnect()
