"""The firmware Downloader against the emulator's real firmware server (Range, signed URLs, fault knobs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import errno
import hashlib
import itertools
import json
import logging
import os
from pathlib import Path
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import (
    DownloadRefusedError,
    DownloadTimeoutError,
    FailureReason,
    FirmwareNotFoundError,
    InsufficientSpaceError,
    Md5MismatchError,
    OtaError,
    OtaResultCode,
    UrlExpiredError,
)
from custom_components.tencent_iot_gateway.engine.ota import download as download_module
from custom_components.tencent_iot_gateway.engine.ota.download import DownloadProgress, ResumeState
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import FirmwareCache, image_file_stem
from custom_components.tencent_iot_gateway.engine.stores.storage import JsonFileStore
from tencent_iot_emulator.emulator import Emulator
from tests.engine.firmware_rig import PRODUCT, FirmwareRig, image, md5_hex, start_rig

CHUNK = 16 * 1024
SIZE = 200 * 1024 + 123


@pytest.fixture(name="rig")
async def rig_fixture(socket_enabled: None, tmp_path: Path) -> AsyncIterator[FirmwareRig]:
    """The emulator's firmware server on plain HTTP."""
    server, running = await start_rig(tmp_path)
    try:
        yield running
    finally:
        await running.session.close()
        await server.close()


@pytest.fixture(name="tls_rig")
async def tls_rig_fixture(socket_enabled: None, tmp_path: Path) -> AsyncIterator[FirmwareRig]:
    """The emulator's firmware server on HTTPS with its private CA (the client session trusts that CA)."""
    server, running = await start_rig(tmp_path, tls=True)
    try:
        yield running
    finally:
        await running.session.close()
        await server.close()


class Recorder:
    """Collects progress callbacks."""

    def __init__(self, *, signal_at: int | None = None) -> None:
        """Nothing seen yet; `reached` is set once `signal_at` bytes are downloaded."""
        self.events: list[DownloadProgress] = []
        self.signal_at = signal_at
        self.reached = asyncio.Event()

    def __call__(self, progress: DownloadProgress) -> None:
        """Record one callback."""
        self.events.append(progress)
        if self.signal_at is not None and progress.downloaded >= self.signal_at:
            self.reached.set()


class CountingStore(JsonFileStore):
    """A JsonFileStore that notes the (fake) time of every save and what was saved."""

    def __init__(self, path: Path, clock: FakeClock) -> None:
        """Save to `path`, time saves with `clock`."""
        super().__init__(path)
        self._clock = clock
        self.saves: list[tuple[float, dict[str, Any]]] = []

    async def async_save(self, data: dict[str, Any]) -> None:
        """Record, then save."""
        self.saves.append((self._clock.now, json.loads(json.dumps(data))))
        await super().async_save(data)


class FakeClock:
    """Monotonic time that moves `step` seconds every time it is read."""

    def __init__(self, step: float) -> None:
        """Start at 1000 s."""
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        """Advance, then tell the time."""
        self.now += self.step
        return self.now


def stored_states(rig: FirmwareRig) -> dict[str, Any]:
    """The downloader's persisted resume states."""
    if not rig.state_path.exists():
        return {}
    states: dict[str, Any] = json.loads(rig.state_path.read_text())["downloads"]
    return states


async def test_fresh_download_verifies_md5_and_reports_progress(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    progress = Recorder()

    path = await rig.downloader(chunk_size=CHUNK, progress_interval_s=0).fetch(spec, progress)

    assert path == FirmwareCache(rig.cache_dir).path_for(spec)
    assert path.read_bytes() == data
    assert path.name == f"{md5_hex(data)}-{SIZE}.bin"
    assert not FirmwareCache(rig.cache_dir).partial_path_for(spec).exists()
    first, last = progress.events[0], progress.events[-1]
    assert (first.downloaded, first.resumed_from, first.total) == (0, 0, SIZE)
    assert first.fresh
    assert (last.downloaded, last.total, last.percent, last.eta_s) == (SIZE, SIZE, 100, 0.0)
    counts = [event.downloaded for event in progress.events]
    assert counts == sorted(counts)
    assert len(progress.events) >= 3
    assert all(event.resumed_from == 0 for event in progress.events)
    (seen,) = rig.downloads()
    assert seen.headers["Accept-Encoding"] == "identity"
    assert "Range" not in seen.headers
    assert stored_states(rig) == {}
    assert rig.served(firmware) == (1, SIZE)


async def test_resume_after_cut_connection_fetches_at_most_one_chunk_twice(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    cut = 70_001
    rig.set_faults({"cut_after_bytes": cut})
    progress = Recorder()

    path = await rig.downloader(chunk_size=CHUNK).fetch(rig.spec(firmware), progress)

    assert path.read_bytes() == data
    requests, sent = rig.served(firmware)
    assert requests == 2
    assert sent - SIZE <= CHUNK
    first, second = rig.downloads()
    assert "Range" not in first.headers
    resumed_at = int(second.headers["Range"].removeprefix("bytes=").split("-")[0])
    assert second.headers["Range"] == f"bytes={resumed_at}-{SIZE - 1}"
    assert cut - CHUNK <= resumed_at <= cut
    assert second.headers["Accept-Encoding"] == "identity"
    # One fetch that started from 0: the caller's percent "0" is not repeated on the resume.
    assert all(event.resumed_from == 0 for event in progress.events)
    assert progress.events[-1].downloaded == SIZE


async def test_restart_resumes_from_persisted_state(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    cut = 90_000
    rig.set_faults({"cut_after_bytes": cut})

    with pytest.raises(DownloadTimeoutError) as failure:
        await rig.downloader(chunk_size=CHUNK, max_attempts=1).fetch(spec, Recorder())
    assert failure.value.code is OtaResultCode.DOWNLOAD_TIMEOUT
    state = stored_states(rig)[image_file_stem(spec)]
    assert state == {
        "url": spec.public_url,
        "version": spec.version,
        "md5": spec.md5,
        "size": SIZE,
        "downloaded": cut,
    }
    assert FirmwareCache(rig.cache_dir).partial_path_for(spec).stat().st_size == cut

    # A new process: new Downloader, new store object over the same file; the cloud re-sends a fresh URL.
    rig.clock.now += 1
    progress = Recorder()
    restarted = rig.downloader(chunk_size=CHUNK)
    path = await restarted.fetch(rig.spec(firmware), progress)

    assert path.read_bytes() == data
    assert progress.events[0].resumed_from == cut
    assert not progress.events[0].fresh
    assert progress.events[-1].downloaded == SIZE
    assert rig.downloads()[-1].headers["Range"] == f"bytes={cut}-{SIZE - 1}"
    assert rig.served(firmware) == (2, SIZE)
    assert stored_states(rig) == {}


async def test_cancelled_download_resumes_in_a_new_downloader(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    rig.set_faults({"throttle_bps": 400_000})
    progress = Recorder(signal_at=3 * CHUNK)
    downloader = rig.downloader(chunk_size=CHUNK, progress_interval_s=0)
    task = asyncio.create_task(downloader.fetch(spec, progress))
    await asyncio.wait_for(progress.reached.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    saved = stored_states(rig)[image_file_stem(spec)]["downloaded"]
    partial = FirmwareCache(rig.cache_dir).partial_path_for(spec)
    # What arrived before the stop is on disk, and its length is the saved resume point.
    assert saved == partial.stat().st_size >= 2 * CHUNK

    rig.set_faults({})
    resumed = Recorder()
    path = await rig.downloader(chunk_size=CHUNK).fetch(spec, resumed)

    assert path.read_bytes() == data
    assert resumed.events[0].resumed_from == saved
    _requests, sent = rig.served(firmware)
    assert sent - SIZE <= CHUNK


async def test_a_stopped_download_keeps_every_byte_that_arrived(rig: FirmwareRig) -> None:
    """Cancelled before a chunk was full, the download still writes what arrived: the resume fetches none of
    it again (old code: the bytes still buffered below a chunk were dropped, here all of them)."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    rig.set_faults({"throttle_bps": 400_000})
    progress = Recorder(signal_at=SIZE // 3)
    # One chunk is the whole image: nothing would be written before the end but for the stop.
    downloader = rig.downloader(chunk_size=SIZE, progress_interval_s=0)
    task = asyncio.create_task(downloader.fetch(spec, progress))
    await asyncio.wait_for(progress.reached.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    arrived = progress.events[-1].downloaded
    saved = stored_states(rig)[image_file_stem(spec)]["downloaded"]
    assert saved >= arrived >= SIZE // 3
    assert FirmwareCache(rig.cache_dir).partial_path_for(spec).read_bytes() == data[:saved]

    rig.set_faults({})
    path = await rig.downloader(chunk_size=SIZE).fetch(spec, Recorder())

    assert path.read_bytes() == data
    assert rig.downloads()[-1].headers["Range"] == f"bytes={saved}-{SIZE - 1}"


async def test_state_is_saved_at_most_once_per_interval(rig: FirmwareRig) -> None:
    data = image(400_000)
    firmware = await rig.upload(data)
    # About 50 kB every 0.1 s: the body arrives in several pieces, each one a progress step.
    rig.set_faults({"throttle_bps": 500_000})
    clock = FakeClock(step=0.0)
    store = CountingStore(rig.state_path, clock)
    downloader = download_module.Downloader(
        rig.session,
        FirmwareCache(rig.cache_dir),
        store,
        chunk_size=4096,
        save_interval_s=1.0,
        progress_interval_s=0,
        clock=clock,
    )
    progress = Recorder()

    def advance(event: DownloadProgress) -> None:
        # Every progress step takes 0.4 s of the downloader's time.
        progress(event)
        clock.now += 0.4

    await downloader.fetch(rig.spec(firmware), advance)

    steps = len(progress.events) - 1
    progress_saves = [when for when, document in store.saves if document["downloads"]]
    assert steps >= 6
    assert 2 <= len(progress_saves) <= steps // 2
    gaps = [later - earlier for earlier, later in itertools.pairwise(progress_saves)]
    assert min(gaps) >= 1.0
    # The end is saved too: the finished download's state is gone from the store.
    assert store.saves[-1][1] == {"downloads": {}}


async def test_a_slow_link_s_resume_point_keeps_up_without_a_full_chunk(rig: FirmwareRig) -> None:
    """What arrived is written at least once per save interval, so the saved resume point moves on even while
    a chunk is far from full (old code: nothing was written, so nothing saved, until a whole chunk arrived)."""
    data = image(400_000)
    firmware = await rig.upload(data)
    # About 40 kB every 0.1 s: ten pieces or so.
    rig.set_faults({"throttle_bps": 400_000})
    clock = FakeClock(step=0.0)
    store = CountingStore(rig.state_path, clock)
    downloader = download_module.Downloader(
        rig.session,
        FirmwareCache(rig.cache_dir),
        store,
        chunk_size=len(data),  # one chunk: full only at the very end
        save_interval_s=1.0,
        progress_interval_s=0,
        clock=clock,
    )

    def advance(_event: DownloadProgress) -> None:
        # Every piece takes 0.6 s of the downloader's time, as on a slow link: a write (and a save of what the
        # writes before it wrote) every other piece.
        clock.now += 0.6

    path = await downloader.fetch(rig.spec(firmware), advance)

    assert path.read_bytes() == data
    saved = [
        entry["downloaded"] for _when, document in store.saves for entry in document["downloads"].values()
    ]
    assert len({n for n in saved if 0 < n < len(data)}) >= 2
    assert saved == sorted(saved)


async def test_a_writer_slower_than_the_read_timeout_is_not_a_stalled_server(
    rig: FirmwareRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the reader waits for the disk (its queue of chunks full), the server's silence is not counted:
    one request, no retry (a guard on the body's stall watch, which replaced aiohttp's per-piece timer)."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    write_and_hash = download_module._write_and_hash
    slowed = False

    def slow_once(handle: Any, digest: Any, pieces: list[bytes]) -> int:
        nonlocal slowed
        if not slowed:
            slowed = True
            time.sleep(0.8)  # in the writer's thread: the disk is busy for longer than the read timeout
        return write_and_hash(handle, digest, pieces)

    monkeypatch.setattr(download_module, "_write_and_hash", slow_once)

    path = await rig.downloader(chunk_size=4096, read_timeout_s=0.2, max_attempts=1).fetch(
        rig.spec(firmware), Recorder()
    )

    assert path.read_bytes() == data
    assert slowed
    assert rig.served(firmware) == (1, SIZE)


async def test_200_answer_to_a_ranged_request_restarts_from_zero(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    cut = 50_000
    rig.set_faults({"cut_after_bytes": cut})
    with pytest.raises(DownloadTimeoutError):
        await rig.downloader(chunk_size=CHUNK, max_attempts=1).fetch(spec, Recorder())

    rig.set_faults({"ignore_range": True})
    progress = Recorder()
    path = await rig.downloader(chunk_size=CHUNK).fetch(spec, progress)

    assert path.read_bytes() == data
    assert rig.downloads()[-1].headers["Range"] == f"bytes={cut}-{SIZE - 1}"
    assert progress.events[0].resumed_from == cut
    restart = progress.events[1]
    assert (restart.downloaded, restart.resumed_from) == (0, 0)
    assert progress.events[-1].downloaded == SIZE
    assert rig.served(firmware) == (2, cut + SIZE)


async def test_http_416_on_a_resume_throws_the_partial_away(rig: FirmwareRig) -> None:
    """HTTP 416 on a resume throws the partial away: the next attempt asks for the whole file."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    rig.set_faults({"cut_after_bytes": 30_000})
    with pytest.raises(DownloadTimeoutError):
        await rig.downloader(max_attempts=1, chunk_size=8192).fetch(spec, Recorder())
    rig.set_faults({"status": 416})
    progress: list[DownloadProgress] = []

    with pytest.raises(DownloadTimeoutError) as failure:
        await rig.downloader(max_attempts=2).fetch(spec, progress.append)
    assert failure.value.failure.reason is FailureReason.DOWNLOAD_INTERRUPTED

    ranges = [seen.headers.get("Range") for seen in rig.downloads()[1:]]
    assert ranges == [f"bytes=30000-{SIZE - 1}", None]
    assert progress[0].resumed_from == 30_000
    assert (progress[1].downloaded, progress[1].resumed_from) == (0, 0)


async def test_http_404_is_file_not_found(rig: FirmwareRig) -> None:
    firmware = await rig.upload(image(1000))
    spec = rig.spec(firmware, url=rig.spec(firmware).url.replace(firmware.object_name, "0" * 32 + ".bin"))

    with pytest.raises(FirmwareNotFoundError) as failure:
        await rig.downloader().fetch(spec, Recorder())

    assert failure.value.code == -2
    assert "404" in str(failure.value)
    assert len(rig.downloads()) == 1


async def test_http_400_fails_at_once_and_keeps_the_signed_query_out(rig: FirmwareRig) -> None:
    """HTTP 400 is neither retryable nor an expired URL: one request, an error quoting the status."""
    firmware = await rig.upload(image(1000))
    rig.set_faults({"status": 400})
    with pytest.raises(DownloadTimeoutError, match="refused the download with HTTP 400") as failure:
        await rig.downloader(max_attempts=3).fetch(rig.spec(firmware), Recorder())
    assert failure.value.failure.reason is FailureReason.DOWNLOAD_REFUSED
    assert failure.value.http_status == 400
    assert failure.value.code == -1
    assert len(rig.downloads()) == 1
    assert "sign=" not in str(failure.value)


async def test_http_403_expired_url_is_not_retried(rig: FirmwareRig) -> None:
    firmware = await rig.upload(image(1000))
    spec = rig.spec(firmware)
    rig.clock.now += 3600

    with pytest.raises(UrlExpiredError) as failure:
        await rig.downloader().fetch(spec, Recorder())

    assert failure.value.code == -3
    assert rig.server.stats()["forbidden"] == 1
    assert len(rig.downloads()) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, FirmwareNotFoundError),
        (401, UrlExpiredError),
        (403, UrlExpiredError),
        (410, DownloadRefusedError),
    ],
)
async def test_a_refusing_server_s_http_status_travels_with_the_failure(
    rig: FirmwareRig, status: int, expected: type[OtaError]
) -> None:
    """The texts a user reads name the status the server answered (a placeholder); any status no retry or
    fresh URL can help fails at once."""
    firmware = await rig.upload(image(1000))
    rig.set_faults({"status": status})

    with pytest.raises(expected) as failure:
        await rig.downloader().fetch(rig.spec(firmware), Recorder())

    assert failure.value.http_status == status
    assert len(rig.downloads()) == 1


async def test_flipped_byte_is_md5_mismatch_and_file_deleted(rig: FirmwareRig) -> None:
    firmware = await rig.upload(image(SIZE))
    spec = rig.spec(firmware)
    rig.set_faults({"flip_byte_at": 12_345})
    cache = FirmwareCache(rig.cache_dir)

    with pytest.raises(Md5MismatchError) as failure:
        await rig.downloader(chunk_size=CHUNK, cache=cache).fetch(spec, Recorder())

    assert failure.value.code == -4
    assert spec.md5 in str(failure.value)
    assert not cache.partial_path_for(spec).exists()
    assert not cache.path_for(spec).exists()
    assert stored_states(rig) == {}


async def test_body_longer_than_announced_size_is_md5_mismatch(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware, size=SIZE - 10, md5=md5_hex(data[:-10]))
    cache = FirmwareCache(rig.cache_dir)

    with pytest.raises(Md5MismatchError, match=str(SIZE - 10)):
        await rig.downloader(cache=cache).fetch(spec, Recorder())

    assert not cache.partial_path_for(spec).exists()


async def test_server_errors_are_retried_then_timeout(
    rig: FirmwareRig, caplog: pytest.LogCaptureFixture
) -> None:
    firmware = await rig.upload(image(1000))
    rig.set_faults({"status": 503})
    caplog.set_level(logging.WARNING, logger=download_module.__name__)

    with pytest.raises(DownloadTimeoutError) as failure:
        await rig.downloader(max_attempts=3).fetch(rig.spec(firmware), Recorder())

    assert failure.value.code == -1
    assert failure.value.failure.reason is FailureReason.DOWNLOAD_SERVER_ERROR
    assert failure.value.failure.placeholders == {"host": "127.0.0.1", "http_status": "503"}
    assert "503" in str(failure.value)
    assert len(rig.downloads()) == 3
    retries = [r for r in caplog.records if r.levelno == logging.WARNING and "retrying" in r.getMessage()]
    assert len(retries) == 2


async def test_unreachable_server_times_out_after_retries(socket_enabled: None, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = FirmwareSpec(f"http://127.0.0.1:{port}/ota/x.bin?sign=abc", "0" * 32, 10, "1.0")
    async with aiohttp.ClientSession() as session:
        downloader = download_module.Downloader(
            session,
            FirmwareCache(tmp_path / "cache"),
            JsonFileStore(tmp_path / "state.json"),
            max_attempts=3,
            backoff_s=0.001,
        )
        with pytest.raises(DownloadTimeoutError, match="refused the connection") as failure:
            await downloader.fetch(spec, Recorder())
    assert failure.value.failure.reason is FailureReason.DOWNLOAD_CONNECTION_REFUSED
    assert "Error" not in str(failure.value)  # no library class name


def test_downloader_refuses_settings_that_cannot_work(rig: FirmwareRig) -> None:
    """A zero chunk size or attempt count is a programming error, caught when the downloader is built."""
    with pytest.raises(ValueError, match="chunk_size and max_attempts must be positive"):
        rig.downloader(chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size and max_attempts must be positive"):
        rig.downloader(max_attempts=0)


async def test_insufficient_space_fails_before_any_request(rig: FirmwareRig) -> None:
    firmware = await rig.upload(image(SIZE))
    seen_paths: list[Path] = []

    def tiny_disk(path: Path) -> int:
        seen_paths.append(path)
        return SIZE - 1

    cache = FirmwareCache(rig.cache_dir, disk_usage=tiny_disk)

    with pytest.raises(InsufficientSpaceError) as failure:
        await rig.downloader(cache=cache).fetch(rig.spec(firmware), Recorder())

    assert seen_paths == [rig.cache_dir]
    assert failure.value.failure.reason is FailureReason.INSUFFICIENT_SPACE
    assert failure.value.failure.placeholders["path"] == str(rig.cache_dir)
    assert failure.value.failure.placeholders["needed"] == "1"  # one more byte of free space
    assert rig.downloads() == []


async def test_space_check_counts_only_what_is_missing(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    rig.set_faults({"cut_after_bytes": 100_000})
    with pytest.raises(DownloadTimeoutError):
        await rig.downloader(max_attempts=1).fetch(spec, Recorder())
    rig.set_faults({})
    cache = FirmwareCache(rig.cache_dir, disk_usage=lambda _path: SIZE - 100_000)

    path = await rig.downloader(cache=cache).fetch(spec, Recorder())

    assert path.read_bytes() == data


async def test_disk_full_while_writing_is_insufficient_space(
    rig: FirmwareRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    firmware = await rig.upload(image(SIZE))
    spec = rig.spec(firmware)
    cache = FirmwareCache(rig.cache_dir)

    def full_disk(handle: Any, digest: Any, data: bytes) -> int:
        # A really full disk cannot be arranged here: the write fails the way the OS would fail it.
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download_module, "_write_and_hash", full_disk)

    with pytest.raises(InsufficientSpaceError) as failure:
        await rig.downloader(cache=cache).fetch(spec, Recorder())

    assert failure.value.failure.reason is FailureReason.INSUFFICIENT_SPACE
    assert failure.value.failure.placeholders == {
        "path": str(cache.partial_path_for(spec).parent),
        "needed": str(SIZE),
    }


@pytest.mark.parametrize("field", ["md5", "url", "version"])
async def test_mismatched_stored_state_starts_afresh(rig: FirmwareRig, field: str) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    cache = FirmwareCache(rig.cache_dir)
    cache.directory.mkdir(parents=True)
    cache.partial_path_for(spec).write_bytes(b"\x00" * 5000)
    state = ResumeState(spec.public_url, spec.version, spec.md5, SIZE, 5000).to_dict()
    state[field] = {"md5": "f" * 32, "url": "http://127.0.0.1:1/ota/other.bin", "version": "0.9"}[field]
    rig.state_path.write_text(json.dumps({"downloads": {image_file_stem(spec): state}}))
    progress = Recorder()

    path = await rig.downloader(cache=cache).fetch(spec, progress)

    assert path.read_bytes() == data
    assert "Range" not in rig.downloads()[0].headers
    assert progress.events[0].resumed_from == 0


async def _left_on_disk(
    rig: FirmwareRig, spec: FirmwareSpec, partial: bytes, *, saved: int | None
) -> FirmwareCache:
    """What an earlier run left: a partial file, and (unless `saved` is None) a resume state of `saved` bytes."""
    cache = FirmwareCache(rig.cache_dir)
    await cache.ensure_directory()
    cache.partial_path_for(spec).write_bytes(partial)
    if saved is not None:
        state = ResumeState(spec.public_url, spec.version, spec.md5, SIZE, saved).to_dict()
        rig.state_path.write_text(json.dumps({"downloads": {image_file_stem(spec): state}}))
    return cache


async def test_matching_state_with_wrong_partial_length_starts_afresh(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    cache = await _left_on_disk(rig, spec, data[:4000], saved=5000)

    path = await rig.downloader(cache=cache).fetch(spec, Recorder())

    assert path.read_bytes() == data
    assert "Range" not in rig.downloads()[0].headers


async def test_a_stale_partial_without_state_is_overwritten(rig: FirmwareRig) -> None:
    """A leftover partial file nobody recorded is cut back, not appended to: the image comes out exact."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    cache = await _left_on_disk(rig, spec, b"\xff" * (SIZE + 500), saved=None)

    path = await rig.downloader(cache=cache).fetch(spec, Recorder())

    assert path.read_bytes() == data
    assert "Range" not in rig.downloads()[0].headers


async def test_a_partial_longer_than_its_saved_state_is_cut_back(rig: FirmwareRig) -> None:
    """Saves are throttled, so the partial may hold more than the state says: the excess is cut, then resumed."""
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    cache = await _left_on_disk(rig, spec, data[:5000] + b"\xee" * 1000, saved=5000)

    path = await rig.downloader(cache=cache).fetch(spec, Recorder())

    assert path.read_bytes() == data
    assert rig.downloads()[0].headers["Range"] == f"bytes=5000-{SIZE - 1}"


async def test_corrupt_partial_file_is_caught_by_md5_after_resume(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    spec = rig.spec(firmware)
    cache = await _left_on_disk(rig, spec, b"\xff" + data[1:5000], saved=5000)

    with pytest.raises(Md5MismatchError):
        await rig.downloader(cache=cache).fetch(spec, Recorder())

    assert rig.downloads()[0].headers["Range"] == f"bytes=5000-{SIZE - 1}"
    assert not cache.partial_path_for(spec).exists()
    # The next push downloads afresh and succeeds.
    assert (await rig.downloader(cache=cache).fetch(spec, Recorder())).read_bytes() == data


async def test_verified_image_in_cache_is_not_downloaded_again(rig: FirmwareRig) -> None:
    firmware = await rig.upload(image(SIZE))
    spec = rig.spec(firmware)
    downloader = rig.downloader()
    await downloader.fetch(spec, Recorder())
    again = Recorder()

    await downloader.fetch(spec, again)

    assert rig.served(firmware) == (1, SIZE)
    assert [(e.downloaded, e.resumed_from) for e in again.events] == [(SIZE, SIZE)]


async def test_concurrent_fetches_of_one_image_download_once(rig: FirmwareRig) -> None:
    firmware = await rig.upload(image(SIZE))
    downloader = rig.downloader()

    paths = await asyncio.gather(
        downloader.fetch(rig.spec(firmware), Recorder()), downloader.fetch(rig.spec(firmware), Recorder())
    )

    assert paths[0] == paths[1]
    assert rig.served(firmware) == (1, SIZE)


async def test_download_over_https_verified_against_the_ca(tls_rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await tls_rig.upload(data)
    spec = tls_rig.spec(firmware)
    assert spec.url.startswith("https://127.0.0.1:")

    path = await tls_rig.downloader().fetch(spec, Recorder())

    assert path.read_bytes() == data


async def test_https_without_the_ca_is_refused(tls_rig: FirmwareRig) -> None:
    firmware = await tls_rig.upload(image(1000))
    loop = asyncio.get_running_loop()
    handler = loop.get_exception_handler()

    def ignore_refused_handshakes(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # The server side sees the client hang up mid-handshake: expected here, and not what is tested.
        if "transport creation" in context.get("message", ""):
            return
        if handler is not None:
            handler(loop, context)
        else:
            loop.default_exception_handler(context)

    # Left in place to the end of the test (the loop is the test's own): the server may notice late.
    loop.set_exception_handler(ignore_refused_handshakes)
    async with aiohttp.ClientSession() as untrusting:
        with pytest.raises(DownloadTimeoutError, match="certificate") as failure:
            await tls_rig.downloader(session=untrusting, max_attempts=2).fetch(
                tls_rig.spec(firmware), Recorder()
            )
    assert failure.value.failure.reason is FailureReason.DOWNLOAD_TLS
    assert tls_rig.downloads() == []


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({"status": 503}, DownloadTimeoutError),
        ({"cut_after_bytes": 0, "cut_repeat": True}, DownloadTimeoutError),
        ({"status": 404}, FirmwareNotFoundError),
        ({"flip_byte_at": 7}, Md5MismatchError),
        ({"url_ttl_s": 0}, UrlExpiredError),
    ],
)
async def test_signed_query_never_in_messages_or_logs(
    rig: FirmwareRig, caplog: pytest.LogCaptureFixture, faults: dict[str, Any], expected: type[OtaError]
) -> None:
    firmware = await rig.upload(image(SIZE))
    rig.set_faults(faults)
    spec = rig.spec(firmware)
    query = urlsplit(spec.url).query
    signature = query.split("sign=")[1]
    caplog.set_level(logging.DEBUG)

    with pytest.raises(expected) as failure:
        await rig.downloader(max_attempts=2).fetch(spec, Recorder())

    stored = rig.state_path.read_text() if rig.state_path.exists() else ""
    for text in (str(failure.value), repr(failure.value), caplog.text, stored):
        assert signature not in text
        assert query not in text
    assert spec.public_url in caplog.text


def test_chunks_reach_the_file_whole_when_the_system_takes_a_write_in_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer hands a chunk's pieces to one `writev`; when the system writes only part of them (as near a
    full disk), the rest follows, and the MD5 covers every byte once."""
    pieces = [bytes([n % 256]) * 1000 for n in range(300)]  # more pieces than one writev takes
    data = b"".join(pieces)
    writev = os.writev

    def partial_writev(fd: int, buffers: list[bytes]) -> int:
        return writev(fd, [memoryview(buffers[0])[:123]])

    monkeypatch.setattr(os, "writev", partial_writev)
    digest = hashlib.md5(usedforsecurity=False)
    with (tmp_path / "part").open("w+b", buffering=0) as handle:
        assert download_module._write_and_hash(handle, digest, pieces) == len(data)
        assert download_module._write_and_hash(handle, digest, pieces[:3]) == 3000
    assert (tmp_path / "part").read_bytes() == data + data[:3000]
    assert digest.hexdigest() == md5_hex(data + data[:3000])


def test_redact_removes_query_strings() -> None:
    text = "Cannot GET 'http://h/ota/a.bin?expires=1&sign=dead:beef' (boom)"
    assert download_module.redact(text) == "Cannot GET 'http://h/ota/a.bin?<redacted>' (boom)"


def test_resume_state_from_dict_rejects_malformed_entries() -> None:
    good = ResumeState("http://h/a", "1.0", "0" * 32, 10, 5)
    assert ResumeState.from_dict(good.to_dict()) == good
    assert ResumeState.from_dict({**good.to_dict(), "size": "10"}) is None
    assert ResumeState.from_dict({**good.to_dict(), "downloaded": True}) is None
    assert ResumeState.from_dict([1, 2]) is None


def test_resume_state_whose_url_version_or_md5_is_not_text_is_ignored() -> None:
    """A stored state whose URL, version or md5 is not text is ignored (the download starts afresh)."""
    good = ResumeState("http://h/a", "1.0", "0" * 32, 10, 5)
    for field in ("url", "version", "md5"):
        assert ResumeState.from_dict({**good.to_dict(), field: 7}) is None


async def test_expired_url_keeps_the_partial_for_a_fresh_url(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    rig.set_faults({"cut_after_bytes": 60_000})
    with pytest.raises(DownloadTimeoutError):
        await rig.downloader(max_attempts=1).fetch(rig.spec(firmware), Recorder())
    rig.set_faults({})
    expired = rig.spec(firmware)
    rig.clock.now += 3600
    with pytest.raises(UrlExpiredError):
        await rig.downloader().fetch(expired, Recorder())

    # Re-reporting the version gets a fresh URL from the cloud: only its query differs.
    progress = Recorder()
    path = await rig.downloader().fetch(rig.spec(firmware), progress)

    assert path.read_bytes() == data
    assert progress.events[0].resumed_from == 60_000
    assert rig.downloads()[-1].headers["Range"] == f"bytes=60000-{SIZE - 1}"


async def test_stalled_connection_times_out_and_resumes(rig: FirmwareRig) -> None:
    data = image(SIZE)
    firmware = await rig.upload(data)
    rig.set_faults({"stall_at_byte": 100_000, "stall_s": 3.0})

    path = await rig.downloader(read_timeout_s=0.3, chunk_size=CHUNK).fetch(rig.spec(firmware), Recorder())

    assert path.read_bytes() == data
    first, second = rig.downloads()
    assert "Range" not in first.headers
    resumed_at = int(second.headers["Range"].removeprefix("bytes=").split("-")[0])
    assert 100_000 - CHUNK <= resumed_at <= 100_000


async def test_download_from_the_full_emulator_over_https(emulator: Emulator, tmp_path: Path) -> None:
    data = image(SIZE)
    firmware = await emulator.firmware_store.add(PRODUCT, "V100R0001", data)
    url = emulator.firmware_server.signed_url(firmware, emulator.https_url)
    assert url.startswith("https://")
    spec = FirmwareSpec(url, firmware.md5, firmware.size, firmware.version)
    trust = ssl.create_default_context(cafile=str(emulator.ca_file))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
        downloader = download_module.Downloader(
            session, FirmwareCache(tmp_path / "cache"), JsonFileStore(tmp_path / "state.json")
        )
        progress = Recorder()
        path = await downloader.fetch(spec, progress)

    assert path.read_bytes() == data
    assert progress.events[-1].downloaded == SIZE
    assert emulator.firmware_server.stats()["firmware"][firmware.key] == {"requests": 1, "bytes": SIZE}
