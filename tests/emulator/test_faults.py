"""Every fault knob of the firmware server, its scope, its reset, and the validation of the fault JSON."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tencent_iot_emulator.faults import DownloadFaults, FaultConfig, FaultError

from .firmware_support import PRODUCT, Rig, image, md5_hex, rig_fixture

__all__ = ["rig_fixture"]

SIZE = 20_000


async def fetch(rig: Rig, url: str, range_header: str | None = None) -> tuple[int, bytes, bool]:
    """(status, body bytes received, whether the body arrived complete)."""
    headers = {"Range": range_header} if range_header else {}
    async with rig.session.get(url, headers=headers) as response:
        received = bytearray()
        try:
            async for chunk in response.content.iter_any():
                received += chunk
        except aiohttp.ClientPayloadError:
            return response.status, bytes(received), False
        return response.status, bytes(received), True


async def test_cut_once(rig: Rig) -> None:
    """cut_after_bytes: the first response stops after exactly N body bytes; the next one is whole."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    assert (await rig.put_faults({"cut_after_bytes": 1234})).status == 200
    status, body, complete = await fetch(rig, rig.url(firmware))
    assert (status, complete) == (200, False)
    assert body == data[:1234]
    assert await fetch(rig, rig.url(firmware)) == (200, data, True)


async def test_cut_every_time_lets_a_resuming_client_progress(rig: Rig) -> None:
    """cut_repeat: every response is cut after N bytes; resuming with Range gets the whole image."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    await rig.put_faults({"cut_after_bytes": 6000, "cut_repeat": True})
    received = b""
    attempts = 0
    while len(received) < SIZE:
        attempts += 1
        status, body, complete = await fetch(rig, rig.url(firmware), f"bytes={len(received)}-{SIZE - 1}")
        assert status == 206
        assert complete == (len(received) + len(body) == SIZE)
        received += body
    assert attempts == 4
    assert received == data


async def test_cut_at_zero_sends_headers_only(rig: Rig) -> None:
    """cut_after_bytes 0: the headers arrive, then the connection closes."""
    firmware = await rig.upload(image(SIZE))
    await rig.put_faults({"cut_after_bytes": 0})
    assert await fetch(rig, rig.url(firmware)) == (200, b"", False)


async def test_throttle(rig: Rig) -> None:
    """throttle_bps: 20 000 bytes at 50 000 B/s take about 0.4 s (measured loosely)."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    await rig.put_faults({"throttle_bps": 50_000})
    began = time.monotonic()
    assert await fetch(rig, rig.url(firmware)) == (200, data, True)
    elapsed = time.monotonic() - began
    assert 0.3 < elapsed < 2.0


async def test_stall_mid_body(rig: Rig) -> None:
    """stall_at_byte/stall_s: the body pauses at that offset, once; the bytes are still right."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    await rig.put_faults({"stall_at_byte": 5000, "stall_s": 0.5})
    async with rig.session.get(rig.url(firmware)) as response:
        head = await response.content.readexactly(5000)
        began = time.monotonic()
        rest = await response.read()
        waited = time.monotonic() - began
    assert head + rest == data
    assert waited >= 0.4
    began = time.monotonic()
    assert await fetch(rig, rig.url(firmware)) == (200, data, True)
    assert time.monotonic() - began < 0.4


async def test_stall_only_when_the_range_covers_it(rig: Rig) -> None:
    """A response that starts after the stall offset does not stall (nor use up the one stall)."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    await rig.put_faults({"stall_at_byte": 100, "stall_s": 1.0})
    began = time.monotonic()
    assert await fetch(rig, rig.url(firmware), "bytes=200-") == (206, data[200:], True)
    assert time.monotonic() - began < 0.8


async def test_stall_repeat_lets_a_client_time_out(rig: Rig) -> None:
    """stall_repeat: every response crossing the offset stalls; a client with a short read timeout fails."""
    firmware = await rig.upload(image(SIZE))
    await rig.put_faults({"stall_at_byte": 10, "stall_s": 5, "stall_repeat": True})
    for _ in range(2):
        async with rig.session.get(rig.url(firmware)) as response:
            assert await response.content.readexactly(10) == image(SIZE)[:10]
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await response.content.readexactly(1)
            response.close()


async def test_flip_byte_breaks_the_md5(rig: Rig) -> None:
    """flip_byte_at: exactly that byte differs, so the MD5 no longer matches; other ranges are intact."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    await rig.put_faults({"flip_byte_at": 777})
    status, body, complete = await fetch(rig, rig.url(firmware))
    assert (status, complete, len(body)) == (200, True, SIZE)
    assert md5_hex(body) != firmware.md5
    assert [i for i in range(SIZE) if body[i] != data[i]] == [777]
    assert body[777] == data[777] ^ 0xFF
    assert await fetch(rig, rig.url(firmware), "bytes=778-") == (206, data[778:], True)


async def test_ignore_range(rig: Rig) -> None:
    """ignore_range: a ranged request gets 200 and the whole body."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    await rig.put_faults({"ignore_range": True})
    async with rig.session.get(rig.url(firmware), headers={"Range": "bytes=100-"}) as response:
        assert response.status == 200
        assert "Content-Range" not in response.headers
        assert await response.read() == data


@pytest.mark.parametrize("status", [403, 404, 500])
async def test_status_answer(rig: Rig, status: int) -> None:
    """status: the server answers that error instead of the image, even on a valid URL."""
    firmware = await rig.upload(image(SIZE))
    await rig.put_faults({"status": status})
    async with rig.session.get(rig.url(firmware)) as response:
        assert response.status == status


async def test_header_delay(rig: Rig) -> None:
    """header_delay_s: nothing arrives, not even the status line, for that long."""
    firmware = await rig.upload(image(SIZE))
    await rig.put_faults({"header_delay_s": 0.4})
    began = time.monotonic()
    async with rig.session.get(rig.url(firmware)) as response:
        assert time.monotonic() - began >= 0.35
        assert response.status == 200
        await response.read()


async def test_per_firmware_knobs_override_the_global_ones(rig: Rig) -> None:
    """Knobs under "firmware" apply to that PID/VERSION only, replacing the global knobs for it."""
    first = await rig.upload(image(SIZE), version="1.0")
    second_data = image(SIZE, seed=9)
    second = await rig.upload(second_data, version="2.0")
    third = await rig.upload(image(SIZE, seed=5), version="3.0")
    await rig.put_faults({"status": 403, "firmware": {f"{PRODUCT}/2.0": {"ignore_range": True}}})
    assert (await fetch(rig, rig.url(first)))[0] == 403
    assert (await fetch(rig, rig.url(third)))[0] == 403
    assert await fetch(rig, rig.url(second), "bytes=5-") == (200, second_data, True)


async def test_get_put_and_delete(rig: Rig) -> None:
    """GET returns what PUT set (plus the TTL in force); DELETE and PUT {} reset everything."""
    body = {"cut_after_bytes": 10, "url_ttl_s": 30.0, "firmware": {f"{PRODUCT}/1.0": {"throttle_bps": 100}}}
    await rig.put_faults(body)
    async with rig.session.get(f"{rig.base_url}/api/faults") as response:
        assert await response.json() == body
    async with rig.session.delete(f"{rig.base_url}/api/faults") as response:
        assert await response.json() == {"url_ttl_s": 600.0}
    await rig.put_faults(body)
    await rig.put_faults({})
    assert rig.server.faults == FaultConfig()
    data = image(SIZE)
    firmware = await rig.upload(data)
    assert await fetch(rig, rig.url(firmware)) == (200, data, True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"cut_after": 5}, "unknown fault knob 'cut_after'"),
        ({"cut_after_bytes": -1}, "cut_after_bytes must be at least 0"),
        ({"cut_after_bytes": "10"}, "cut_after_bytes must be an integer"),
        ({"cut_after_bytes": True}, "cut_after_bytes must be an integer"),
        ({"throttle_bps": 0}, "throttle_bps must be at least 1"),
        ({"ignore_range": 1}, "ignore_range must be true or false"),
        ({"status": 200}, "status must be at least 400"),
        ({"status": 700}, "status must be an HTTP error status"),
        ({"stall_s": 1}, "stall_at_byte and stall_s go together"),
        ({"header_delay_s": -2}, "header_delay_s must be a finite number"),
        ({"url_ttl_s": "1h"}, "url_ttl_s must be a number"),
        ({"firmware": []}, '"firmware" must be an object'),
        ({"firmware": {"NOSLASH": {}}}, "must be PRODUCT_ID/VERSION"),
        ({"firmware": {"P/1.0": {"bogus": 1}}}, "firmware 'P/1.0': unknown fault knob 'bogus'"),
    ],
)
async def test_bad_fault_json_is_refused(rig: Rig, body: object, message: str) -> None:
    """Bad knobs get 400 with a message naming the field; the previous fault set stays in force."""
    await rig.put_faults({"ignore_range": True})
    async with rig.session.put(f"{rig.base_url}/api/faults", json=body) as response:
        assert response.status == 400
        assert message in (await response.json())["error"]
    assert rig.server.faults.global_faults == DownloadFaults(ignore_range=True)


async def test_non_json_body_is_refused(rig: Rig) -> None:
    """A body that is not JSON gets 400."""
    async with rig.session.put(f"{rig.base_url}/api/faults", data=b"{not json") as response:
        assert response.status == 400
        assert "JSON" in (await response.json())["error"]


def test_fault_json_round_trips() -> None:
    """FaultConfig.parse(to_json()) gives the same configuration."""
    config = FaultConfig.parse(
        {"stall_at_byte": 3, "stall_s": 0.5, "firmware": {"P1/2.0": {"flip_byte_at": 9, "status": 404}}}
    )
    assert FaultConfig.parse(config.to_json()) == config
    with pytest.raises(FaultError):
        FaultConfig.parse({"stall_at_byte": 3})
