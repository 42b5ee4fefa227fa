"""The firmware server: uploads, persistence, signed URLs that expire, every Range form, and stats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import logging

import pytest

from tencent_iot_emulator.firmware import FirmwareStore
from tencent_iot_emulator.firmware_server import FirmwareServer, parse_range

from .firmware_support import PRODUCT, TTL_S, Rig, image, md5_hex, rig_fixture, start_rig

__all__ = ["rig_fixture"]

SIZE = 1000


async def test_upload_returns_md5_and_size_and_lists_it(rig: Rig) -> None:
    """POST /api/firmware answers the image's md5 and size; GET /api/firmware lists it."""
    data = image(SIZE)
    async with rig.session.post(
        f"{rig.base_url}/api/firmware", params={"product_id": PRODUCT, "version": "2.0.1"}, data=data
    ) as response:
        assert response.status == 200
        assert await response.json() == {
            "product_id": PRODUCT,
            "version": "2.0.1",
            "md5": md5_hex(data),
            "size": SIZE,
        }
    async with rig.session.get(f"{rig.base_url}/api/firmware") as response:
        listed = await response.json()
    assert listed == {
        "firmware": [{"product_id": PRODUCT, "version": "2.0.1", "md5": md5_hex(data), "size": SIZE}]
    }


@pytest.mark.parametrize(
    ("params", "data", "message"),
    [
        ({"product_id": "bad/../pid", "version": "1.0"}, b"x", "product_id"),
        ({"product_id": PRODUCT, "version": "../1.0"}, b"x", "version"),
        ({"version": "1.0"}, b"x", "product_id"),
        ({"product_id": PRODUCT, "version": "1.0"}, b"", "empty"),
    ],
)
async def test_upload_refuses_bad_input(rig: Rig, params: dict[str, str], data: bytes, message: str) -> None:
    """Unsafe ids or versions and empty images get 400 with a message naming the problem."""
    async with rig.session.post(f"{rig.base_url}/api/firmware", params=params, data=data) as response:
        assert response.status == 400
        assert message in (await response.json())["error"]
    assert rig.store.all() == []
    assert [p.name for p in (rig.directory / "objects").iterdir()] == []


async def test_streamed_upload_of_several_chunks(rig: Rig) -> None:
    """A body larger than one chunk, sent as a stream, is stored byte for byte."""
    data = image(700_000)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    async with rig.session.post(
        f"{rig.base_url}/api/firmware", params={"product_id": PRODUCT, "version": "1.0"}, data=chunks()
    ) as response:
        assert (await response.json())["md5"] == md5_hex(data)
    firmware = rig.store.get(PRODUCT, "1.0")
    assert firmware is not None
    assert firmware.path.read_bytes() == data


async def test_store_survives_a_restart(rig: Rig) -> None:
    """A new store and server on the same directory serve what was uploaded, on the old URL too."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    url = rig.url(firmware)
    reopened = FirmwareStore(rig.directory)
    again = reopened.get(PRODUCT, "1.0")
    assert again == firmware
    assert reopened.by_object(firmware.object_name) == firmware
    # The signing key is persisted: a URL signed before the restart still verifies after it.
    test_server, second = await start_rig(rig.directory)
    try:
        async with second.session.get(url.replace(rig.base_url, second.base_url)) as response:
            assert response.status == 200
            assert await response.read() == data
    finally:
        await second.session.close()
        await test_server.close()


async def test_reupload_replaces_the_version(rig: Rig) -> None:
    """The same product/version uploaded again replaces the image; the old object is gone (404)."""
    first = await rig.upload(image(SIZE, seed=1))
    old_url = rig.url(first)
    second = await rig.upload(image(SIZE + 5, seed=2))
    assert second.md5 != first.md5
    assert second.object_name != first.object_name
    assert rig.store.all() == [second]
    assert not first.path.exists()
    async with rig.session.get(old_url) as response:
        assert response.status == 404


async def test_object_names_hold_no_user_text(rig: Rig) -> None:
    """The on-disk name is a random token, whatever the product and version."""
    firmware = await rig.upload(image(10), version="V1.0+build.7")
    assert PRODUCT not in firmware.object_name
    assert "V1.0" not in firmware.object_name
    assert firmware.path.parent == rig.directory / "objects"


async def test_whole_body_without_range(rig: Rig) -> None:
    """No Range: 200, the whole image, exact Content-Length, Range support advertised."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    async with rig.session.get(rig.url(firmware)) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(SIZE)
        assert response.headers["Accept-Ranges"] == "bytes"
        assert "Content-Range" not in response.headers
        assert await response.read() == data


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        pytest.param("bytes=100-199", 100, 199, id="a-b"),
        pytest.param(f"bytes=100-{SIZE - 1}", 100, SIZE - 1, id="a-last"),
        pytest.param(f"bytes=100-{SIZE}", 100, SIZE - 1, id="a-size clamped"),
        pytest.param("bytes=100-", 100, SIZE - 1, id="a-"),
        pytest.param("bytes=0-0", 0, 0, id="first byte"),
        pytest.param(f"bytes={SIZE - 1}-", SIZE - 1, SIZE - 1, id="last byte"),
        pytest.param("bytes=-10", SIZE - 10, SIZE - 1, id="suffix"),
    ],
)
async def test_range_forms(rig: Rig, header: str, start: int, end: int) -> None:
    """Each Range form of spec §4 gets 206 with the exact Content-Range and Content-Length."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    async with rig.session.get(rig.url(firmware), headers={"Range": header}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
        assert response.headers["Content-Length"] == str(end - start + 1)
        assert await response.read() == data[start : end + 1]


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 9}", "bytes=-0"])
async def test_unsatisfiable_range(rig: Rig, header: str) -> None:
    """A range starting at or past the end: 416 with `Content-Range: bytes */size`."""
    firmware = await rig.upload(image(SIZE))
    async with rig.session.get(rig.url(firmware), headers={"Range": header}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize("header", ["bytes=200-100", "items=0-5", "bytes=0-5,10-15", "bytes=abc"])
async def test_invalid_range_is_ignored(rig: Rig, header: str) -> None:
    """A Range header that does not parse is ignored (RFC 9110): 200 with the whole body."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    async with rig.session.get(rig.url(firmware), headers={"Range": header}) as response:
        assert response.status == 200
        assert await response.read() == data


def test_parse_range_clamps_far_past_the_end() -> None:
    """An end far past the file is clamped like `a-<size>`."""
    span = parse_range("bytes=3-999999", 10)
    assert (span.start, span.end, span.partial) == (3, 9, True)


async def test_url_expires(rig: Rig) -> None:
    """A signed URL works until its expiry and answers 403 from then on."""
    firmware = await rig.upload(image(SIZE))
    url = rig.url(firmware)
    rig.clock.now += TTL_S - 2
    async with rig.session.get(url) as response:
        assert response.status == 200
    rig.clock.now += 3
    async with rig.session.get(url) as response:
        assert response.status == 403
        assert "sign=" not in await response.text()


async def test_url_ttl_knob(rig: Rig) -> None:
    """`url_ttl_s` in PUT /api/faults sets the life of newly signed URLs; a reset restores the default."""
    firmware = await rig.upload(image(SIZE))
    response = await rig.put_faults({"url_ttl_s": 5})
    assert response.status == 200
    assert rig.server.url_ttl_s == 5
    url = rig.url(firmware)
    rig.clock.now += 6
    async with rig.session.get(url) as response:
        assert response.status == 403
    async with rig.session.delete(f"{rig.base_url}/api/faults") as response:
        assert (await response.json())["url_ttl_s"] == TTL_S
    assert rig.server.url_ttl_s == TTL_S


async def test_zero_ttl_expires_at_once(rig: Rig) -> None:
    """TTL 0 signs URLs that are already expired (handy to provoke -3)."""
    firmware = await rig.upload(image(SIZE))
    rig.server.url_ttl_s = 0
    async with rig.session.get(rig.url(firmware)) as response:
        assert response.status == 403


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda url: url.split("?")[0], id="no query"),
        pytest.param(lambda url: url.replace("sign=", "sign=0"), id="bad sign"),
        pytest.param(lambda url: url.split("&sign=")[0], id="no sign"),
        pytest.param(lambda url: url.replace("expires=", "expires=9"), id="extended expiry"),
    ],
)
async def test_bad_signature_is_forbidden(rig: Rig, mangle: Callable[[str], str]) -> None:
    """A missing or wrong signature, or a tampered expiry, gets 403."""
    firmware = await rig.upload(image(SIZE))
    async with rig.session.get(mangle(rig.url(firmware))) as response:
        assert response.status == 403


async def test_signature_is_bound_to_the_object(rig: Rig) -> None:
    """A signature of one object does not open another."""
    first = await rig.upload(image(SIZE), version="1.0")
    second = await rig.upload(image(SIZE, seed=3), version="2.0")
    url = rig.url(first).replace(first.object_name, second.object_name)
    async with rig.session.get(url) as response:
        assert response.status == 403


@pytest.mark.parametrize("name", ["0123456789abcdef0123456789abcdef.bin", "..%2Findex.json", "index.json"])
async def test_unknown_object_is_not_found(rig: Rig, name: str) -> None:
    """Objects that do not exist (or are not objects at all) get 404."""
    await rig.upload(image(SIZE))
    async with rig.session.get(f"{rig.base_url}/ota/{name}?expires=9999999999&sign=00") as response:
        assert response.status == 404
    assert rig.server.stats()["not_found"] == 1


async def test_signing_keys_differ_between_state_dirs(rig: Rig) -> None:
    """A fresh state dir gets a fresh random key: its URLs differ for the same object and expiry."""
    firmware = await rig.upload(image(SIZE))
    other_store = FirmwareStore(rig.directory.parent / "elsewhere")
    other = FirmwareServer(other_store, url_ttl_s=TTL_S, clock=rig.clock)
    assert other.signed_url(firmware, rig.base_url) != rig.url(firmware)
    key_file = rig.directory / "url_signing.key"
    assert key_file.stat().st_mode & 0o077 == 0


async def test_stats_count_requests_and_bytes(rig: Rig) -> None:
    """GET /api/stats: per firmware, every request and every body byte sent."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    other = await rig.upload(image(50), version="2.0")
    url = rig.url(firmware)
    async with rig.session.get(url) as response:
        await response.read()
    async with rig.session.get(url, headers={"Range": "bytes=900-"}) as response:
        await response.read()
    async with rig.session.get(url.split("?")[0]) as response:
        assert response.status == 403
    async with rig.session.get(rig.url(other), headers={"Range": "bytes=0-9"}) as response:
        await response.read()
    async with rig.session.get(f"{rig.base_url}/api/stats") as response:
        stats = await response.json()
    assert stats == {
        "firmware": {
            f"{PRODUCT}/1.0": {"requests": 3, "bytes": SIZE + 100},
            f"{PRODUCT}/2.0": {"requests": 1, "bytes": 10},
        },
        "not_found": 0,
        "forbidden": 1,
    }


async def test_https_style_base_url_is_kept(rig: Rig) -> None:
    """signed_url keeps the scheme and host it is given (the https port for update_firmware)."""
    firmware = await rig.upload(image(SIZE))
    url = rig.server.signed_url(firmware, "https://127.0.0.1:8443/")
    assert url.startswith(f"https://127.0.0.1:8443/ota/{firmware.object_name}?expires=")
    assert "&sign=" in url


async def test_client_disconnect_mid_body_is_quiet(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A client that goes away mid-download leaves no error in the log."""
    # Other tests (Home Assistant's) change logger levels: capture the access log whatever ran before.
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    firmware_bytes = image(2_000_000)
    firmware = await rig.upload(firmware_bytes)
    # aiohttp writes the access-log line after the response has gone out: wait for that line itself (a
    # bounded poll of 2 s failed now and then on a loaded machine).
    logged = asyncio.Event()
    loop = asyncio.get_running_loop()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if firmware.object_name in record.getMessage() and "206" in record.getMessage():
                loop.call_soon_threadsafe(logged.set)

    handler = Seen()
    logging.getLogger("aiohttp.access").addHandler(handler)
    try:
        async with rig.session.get(rig.url(firmware)) as response:
            await response.content.readexactly(1000)
            response.close()
        # `Connection: close`: the server ends the exchange at once (a kept-alive connection may be logged
        # only when it closes, which was the race: the old 2 s poll sometimes saw no line at all).
        headers = {"Range": "bytes=0-9", "Connection": "close"}
        async with rig.session.get(rig.url(firmware), headers=headers) as response:
            assert response.status == 206
            assert await response.read() == firmware_bytes[:10]
        async with asyncio.timeout(30):
            await logged.wait()
    finally:
        logging.getLogger("aiohttp.access").removeHandler(handler)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    # The access log (QuerylessAccessLogger) names the object but never the signed query.
    assert any(firmware.object_name in r.getMessage() for r in caplog.records)
    assert not any("sign=" in r.getMessage() for r in caplog.records)
