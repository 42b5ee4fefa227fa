"""Downloader edges against the emulator's firmware server: unusual statuses, leftovers, and bad settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
import json
from pathlib import Path

import pytest

from custom_components.tencent_iot_gateway.engine.errors import DownloadTimeoutError, FailureReason
from custom_components.tencent_iot_gateway.engine.ota.download import DownloadProgress, ResumeState
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import FirmwareCache, image_file_stem

from .firmware_rig import FirmwareRig, image, start_rig

SIZE = 100 * 1024


@pytest.fixture(name="rig")
async def rig_fixture(socket_enabled: None, tmp_path: Path) -> AsyncIterator[FirmwareRig]:
    """The emulator's firmware server on plain HTTP."""
    server, running = await start_rig(tmp_path)
    try:
        yield running
    finally:
        await running.session.close()
        await server.close()


def _ignore(_progress: DownloadProgress) -> None:
    return None


async def test_unexpected_client_error_status_fails_at_once(rig: FirmwareRig) -> None:
    """HTTP 400 is neither retryable nor an expired URL: one request, an error quoting the status."""
    firmware = await rig.upload(image(1000))
    rig.set_faults({"status": 400})
    with pytest.raises(DownloadTimeoutError, match="refused the download with HTTP 400") as failure:
        await rig.downloader(max_attempts=3).fetch(rig.spec(firmware), _ignore)
    assert failure.value.code == -1
    assert failure.value.failure.reason is FailureReason.DOWNLOAD_REFUSED
    assert failure.value.http_status == 400
    assert len(rig.downloads()) == 1
    assert "sign=" not in str(failure.value)


async def test_refused_range_starts_again_from_zero(rig: FirmwareRig) -> None:
    """HTTP 416 on a resume throws the partial away: the next attempt asks for the whole file."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    rig.set_faults({"cut_after_bytes": 30_000})
    with pytest.raises(DownloadTimeoutError):
        await rig.downloader(max_attempts=1, chunk_size=8192).fetch(spec, _ignore)
    rig.set_faults({"status": 416})
    progress: list[DownloadProgress] = []

    with pytest.raises(DownloadTimeoutError) as failure:
        await rig.downloader(max_attempts=2).fetch(spec, progress.append)
    assert failure.value.failure.reason is FailureReason.DOWNLOAD_INTERRUPTED

    ranges = [seen.headers.get("Range") for seen in rig.downloads()[1:]]
    assert ranges == [f"bytes=30000-{SIZE - 1}", None]
    assert progress[0].resumed_from == 30_000
    assert (progress[1].downloaded, progress[1].resumed_from) == (0, 0)


async def test_stale_partial_without_state_is_overwritten(rig: FirmwareRig) -> None:
    """A leftover partial file nobody recorded is cut back, not appended to: the image comes out exact."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    cache = FirmwareCache(rig.cache_dir)
    await cache.ensure_directory()
    cache.partial_path_for(spec).write_bytes(b"\xff" * (SIZE + 500))

    path = await rig.downloader(cache=cache).fetch(spec, _ignore)

    assert path.read_bytes() == data
    assert "Range" not in rig.downloads()[0].headers


def test_downloader_refuses_settings_that_cannot_work(rig: FirmwareRig) -> None:
    """A zero chunk size or attempt count is a programming error, caught when the downloader is built."""
    with pytest.raises(ValueError, match="chunk_size and max_attempts must be positive"):
        rig.downloader(chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size and max_attempts must be positive"):
        rig.downloader(max_attempts=0)


def test_resume_state_needs_text_fields() -> None:
    """A stored state whose URL, version or md5 is not text is ignored (the download starts afresh)."""
    good = ResumeState("http://h/a", "1.0", "0" * 32, 10, 5)
    for field in ("url", "version", "md5"):
        assert ResumeState.from_dict({**good.to_dict(), field: 7}) is None


async def test_partial_longer_than_its_saved_state_is_cut_back(rig: FirmwareRig) -> None:
    """Saves are throttled, so the partial may hold more than the state says: the excess is cut, then resumed."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    cache = FirmwareCache(rig.cache_dir)
    await cache.ensure_directory()
    cache.partial_path_for(spec).write_bytes(data[:5000] + b"\xee" * 1000)
    state = ResumeState(spec.public_url, spec.version, spec.md5, SIZE, 5000).to_dict()
    rig.state_path.write_text(json.dumps({"downloads": {image_file_stem(spec): state}}))

    path = await rig.downloader(cache=cache).fetch(spec, _ignore)

    assert path.read_bytes() == data
    assert rig.downloads()[0].headers["Range"] == f"bytes=5000-{SIZE - 1}"
