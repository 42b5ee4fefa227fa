"""Virtual sub-devices: flashing over HTTP, the reboot into the new version, refusals and faults."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
import pytest

from tencent_iot_emulator.virtual_devices import DeviceFault, DeviceState, VirtualDevices

from .firmware_support import PRODUCT, Rig, image, md5_hex, rig_fixture

__all__ = ["rig_fixture"]

DEVICE = "lamp01"
DATA = image(5000)


async def flash(
    rig: Rig, data: bytes = DATA, *, md5: str | None = None, version: str = "2.0", device: str = DEVICE
) -> tuple[int, dict[str, object]]:
    """PUT the image to the device; (status, JSON answer)."""
    headers = {"X-Firmware-MD5": md5 or md5_hex(data), "X-Firmware-Version": version}
    async with rig.session.put(
        f"{rig.base_url}/devices/{PRODUCT}/{device}/firmware", data=data, headers=headers
    ) as response:
        return response.status, await response.json()


async def device_json(rig: Rig, device: str = DEVICE) -> dict[str, object]:
    """GET /devices/{pid}/{dn}."""
    async with rig.session.get(f"{rig.base_url}/devices/{PRODUCT}/{device}") as response:
        assert response.status == 200
        answer: dict[str, object] = await response.json()
        return answer


async def wait_for_state(rig: Rig, state: DeviceState) -> None:
    """Poll the device (for up to 2 s) until it reaches `state`."""
    for _ in range(200):
        if (await device_json(rig))["state"] == state.value:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"the device never reached {state}")


async def test_good_image_runs_after_the_reboot_delay(rig: Rig) -> None:
    """A correct image: 202 and `rebooting`, then the new version `running`."""
    rig.devices.ensure(PRODUCT, DEVICE, "1.0")
    status, answer = await flash(rig)
    assert status == 202
    assert answer["state"] == "rebooting"
    assert answer["version"] == "1.0"
    assert answer["pending_version"] == "2.0"
    await wait_for_state(rig, DeviceState.RUNNING)
    assert await device_json(rig) == {
        "product_id": PRODUCT,
        "device_name": DEVICE,
        "version": "2.0",
        "state": "running",
        "pending_version": None,
        "fault": "none",
        "last_error": None,
    }


async def test_large_streamed_image(rig: Rig) -> None:
    """An image of several chunks is hashed as it streams and accepted."""
    rig.devices.ensure(PRODUCT, DEVICE, "1.0")
    data = image(1_000_000)
    status, _ = await flash(rig, data, md5=md5_hex(data).upper())
    assert status == 202


async def test_wrong_md5_is_rejected(rig: Rig) -> None:
    """An image whose MD5 differs from the header: 422, state `rejected`, old version still running."""
    rig.devices.ensure(PRODUCT, DEVICE, "1.0")
    status, answer = await flash(rig, md5="0" * 32)
    assert status == 422
    assert "md5 mismatch" in str(answer["error"])
    device = rig.devices.get(PRODUCT, DEVICE)
    assert device is not None
    assert (device.state, device.version) == (DeviceState.REJECTED, "1.0")
    # A rejected device takes the next, correct image.
    assert (await flash(rig))[0] == 202


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Firmware-Version": "2.0"}, "X-Firmware-MD5"),
        ({"X-Firmware-MD5": "xyz", "X-Firmware-Version": "2.0"}, "X-Firmware-MD5"),
        ({"X-Firmware-MD5": "a" * 32}, "X-Firmware-Version"),
        ({"X-Firmware-MD5": "a" * 32, "X-Firmware-Version": "../x"}, "X-Firmware-Version"),
    ],
)
async def test_bad_headers(rig: Rig, headers: dict[str, str], message: str) -> None:
    """Missing or malformed headers: 400 naming the header."""
    rig.devices.ensure(PRODUCT, DEVICE, "1.0")
    async with rig.session.put(
        f"{rig.base_url}/devices/{PRODUCT}/{DEVICE}/firmware", data=DATA, headers=headers
    ) as response:
        assert response.status == 400
        assert message in (await response.json())["error"]


async def test_unknown_device(rig: Rig) -> None:
    """Flashing or reading a device that does not exist: 404."""
    assert (await flash(rig, device="nobody"))[0] == 404
    async with rig.session.get(f"{rig.base_url}/devices/{PRODUCT}/nobody") as response:
        assert response.status == 404


async def test_flash_while_rebooting_conflicts(rig: Rig) -> None:
    """A second image during the reboot: 409."""
    rig.devices.ensure(PRODUCT, DEVICE, "1.0")
    rig.devices.set_fault(PRODUCT, DEVICE, DeviceFault.NONE, reboot_delay_s=10)
    assert (await flash(rig))[0] == 202
    status, answer = await flash(rig, version="3.0")
    assert status == 409
    assert "rebooting" in str(answer["error"])


async def test_reject_fault(rig: Rig) -> None:
    """The reject fault: a correct image still gets 422 and the version stays."""
    rig.devices.ensure(PRODUCT, DEVICE, "1.0")
    async with rig.session.put(
        f"{rig.base_url}/devices/{PRODUCT}/{DEVICE}/fault", json={"fault": "reject"}
    ) as response:
        assert (await response.json())["fault"] == "reject"
    status, answer = await flash(rig)
    assert status == 422
    assert "reject" in str(answer["error"])
    assert (await device_json(rig))["version"] == "1.0"


async def test_hang_fault_never_answers(rig: Rig) -> None:
    """The hang fault: the image is read, the answer never comes (the client times out)."""
    rig.devices.ensure(PRODUCT, DEVICE, "1.0")
    rig.devices.set_fault(PRODUCT, DEVICE, DeviceFault.HANG)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await flash(rig)
    device = rig.devices.get(PRODUCT, DEVICE)
    assert device is not None
    assert (device.state, device.version) == (DeviceState.RECEIVING, "1.0")


async def test_no_reboot_fault(rig: Rig) -> None:
    """The no_reboot fault: 202, then `rebooting` forever on the old version."""
    rig.devices.ensure(PRODUCT, DEVICE, "1.0")
    rig.devices.set_fault(PRODUCT, DEVICE, DeviceFault.NO_REBOOT)
    assert (await flash(rig))[0] == 202
    await asyncio.sleep(0.2)
    answer = await device_json(rig)
    assert (answer["state"], answer["version"]) == ("rebooting", "1.0")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"fault": "explode"}, "fault must be one of"),
        ({"fault": "none", "extra": 1}, "unknown field"),
        ({"reboot_delay_s": -1}, "reboot_delay_s"),
    ],
)
async def test_bad_fault_body(rig: Rig, body: dict[str, object], message: str) -> None:
    """Bad fault JSON: 400 with a clear message."""
    rig.devices.ensure(PRODUCT, DEVICE, "1.0")
    async with rig.session.put(f"{rig.base_url}/devices/{PRODUCT}/{DEVICE}/fault", json=body) as response:
        assert response.status == 400
        assert message in (await response.json())["error"]


async def test_create_and_reset_over_http(rig: Rig) -> None:
    """PUT /devices/{pid}/{dn} creates or resets a device; ensure() keeps an existing one."""
    async with rig.session.put(f"{rig.base_url}/devices/{PRODUCT}/{DEVICE}", json={"version": "0.9"}) as r:
        assert r.status == 200
    rig.devices.ensure(PRODUCT, DEVICE, "5.0")
    assert (await device_json(rig))["version"] == "0.9"
    async with rig.session.put(f"{rig.base_url}/devices/{PRODUCT}/{DEVICE}", json={"version": 1}) as r:
        assert r.status == 400


async def test_bearer_token(socket_enabled: None, tmp_path: Path) -> None:
    """With a token configured, requests without the right bearer token get 401."""
    devices = VirtualDevices(reboot_delay_s=0, token="s3cret")
    devices.ensure(PRODUCT, DEVICE, "1.0")
    assert "s3cret" not in repr(devices)
    app = web.Application()
    devices.register_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    url = str(server.make_url(f"/devices/{PRODUCT}/{DEVICE}"))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                assert response.status == 401
            async with session.get(url, headers={"Authorization": "Bearer wrong"}) as response:
                assert response.status == 401
            async with session.get(url, headers={"Authorization": "Bearer s3cret"}) as response:
                assert response.status == 200
    finally:
        await server.close()
