"""Firmware download: streamed to disk, hashed on the way, resumable across cut connections and restarts.

One `Downloader` serves every OTA job of a gateway. The bytes go to the cache's partial file in chunks written
(and MD5-hashed) in the executor, in order, without the loop waiting for each; neither the event loop nor memory
ever holds the image. Progress towards
a resume is persisted through a `StateStore` that belongs to the Downloader alone; the signed URL's query is a
credential and is never stored, logged or put in an exception message.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
import concurrent.futures
import contextlib
from dataclasses import dataclass
import errno
import hashlib
import logging
import os
from pathlib import Path
import random
import re
import threading
import time
from typing import IO, Any, Final

import aiohttp

from custom_components.tencent_iot_gateway.engine.errors import (
    DownloadRefusedError,
    DownloadTimeoutError,
    Failure,
    FailureReason,
    FirmwareNotFoundError,
    InsufficientSpaceError,
    Md5MismatchError,
    OtaError,
    UrlExpiredError,
)
from custom_components.tencent_iot_gateway.engine.net_causes import Endpoint, NetCause, net_cause
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import (
    FirmwareCache,
    ImageKey,
    image_file_stem,
    image_key_of,
)
from custom_components.tencent_iot_gateway.engine.stores.storage import StateStore

_LOGGER = logging.getLogger(__name__)

STATE_KEY: Final = "downloads"
_REHASH_BLOCK = 1024 * 1024
_SPEED_WINDOW_S = 5.0
# Bytes handed to the writer at a time. Each hand-off costs the writer's thread two trips for the GIL (after the
# write, after the hash), each a wait for the loop's thread to let go of it: writing and hashing 512 MiB off
# the loop cost 17 % more CPU than on it at 256 KiB, 12 % at 1 MiB, no less at 4 MiB (this machine, issue 18).
# What arrived is written anyway when the download stops, is cut, or has waited `save_interval_s`
# (`_Run._read_body`), so a chunk's size does not decide what a resume keeps.
CHUNK_SIZE = 1024 * 1024
# Chunks queued to the writer before the loop waits for it to catch up (to half of them: one wake-up every
# `_MAX_QUEUED_CHUNKS // 2` chunks, not one per chunk). With aiohttp's buffer (twice `_READ_BUFSIZE`), this
# bounds the memory a download holds.
_MAX_QUEUED_CHUNKS = 4
_READ_BUFSIZE = 256 * 1024
# Well under any system's IOV_MAX (1024 on Linux): more pieces than that in a chunk are joined first.
_MAX_PIECES_PER_WRITE = 256
# Progress goes to the job at least this often while bytes arrive (HA's bar moves even at 2 KiB/s), and not
# more often: writes commit in 1 MiB chunks, far too rarely on a slow link and far too often on a fast one.
PROGRESS_INTERVAL_S = 0.5
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
# Anything that looks like a query string in a library's message: a signed URL's query is a credential.
_QUERY_RE = re.compile(r"\?[^\s'\"<>)\]]*")
_JITTER = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """Where a download stands; `resumed_from` is 0 when it (re)started from byte 0."""

    downloaded: int
    total: int
    resumed_from: int
    speed_bps: float
    eta_s: float | None

    @property
    def percent(self) -> int:
        """Whole percent done, 0..100."""
        return min(100, self.downloaded * 100 // self.total) if self.total > 0 else 0

    @property
    def fresh(self) -> bool:
        """True when this download started from byte 0 (the caller then reports percent "0")."""
        return self.resumed_from == 0


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What is persisted about a partial download; `url` never holds the query."""

    url: str
    version: str
    md5: str
    size: int
    downloaded: int

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "url": self.url,
            "version": self.version,
            "md5": self.md5,
            "size": self.size,
            "downloaded": self.downloaded,
        }

    @classmethod
    def from_dict(cls, data: object) -> ResumeState | None:
        """Parse a stored entry; anything malformed is None (the download then starts afresh)."""
        if not isinstance(data, dict):
            return None
        url, version, md5 = data.get("url"), data.get("version"), data.get("md5")
        size, downloaded = data.get("size"), data.get("downloaded")
        if not (isinstance(url, str) and isinstance(version, str) and isinstance(md5, str)):
            return None
        if not (isinstance(size, int) and isinstance(downloaded, int)):
            return None
        if isinstance(size, bool) or isinstance(downloaded, bool):
            return None
        return cls(url=url, version=version, md5=md5, size=size, downloaded=downloaded)

    def matches(self, spec: FirmwareSpec) -> bool:
        """Whether a partial file written under this state belongs to `spec`'s download."""
        return (
            self.url == spec.public_url
            and self.md5 == spec.md5.lower()
            and self.size == spec.size
            and self.version == spec.version
            and 0 <= self.downloaded <= spec.size
        )


def redact(text: str) -> str:
    """`text` with anything shaped like a URL query removed, for logs and messages built from library errors."""
    return _QUERY_RE.sub("?<redacted>", text)


_NET_REASONS: Final = {
    NetCause.REFUSED: FailureReason.DOWNLOAD_CONNECTION_REFUSED,
    NetCause.UNREACHABLE: FailureReason.DOWNLOAD_HOST_UNREACHABLE,
    NetCause.TIMEOUT: FailureReason.DOWNLOAD_TIMEOUT,
    NetCause.TLS: FailureReason.DOWNLOAD_TLS,
    NetCause.DISCONNECTED: FailureReason.DOWNLOAD_INTERRUPTED,
}
# What the OS says of a path the gateway may not write (a read-only or foreign directory).
_NOT_WRITABLE: Final = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


class _RetryableError(Exception):
    """One attempt failed in a way another attempt may fix; `failure` is what the job reports if none does."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.english)
        self.failure = failure


class _InOrder:
    """Runs functions one after another, in the order they are given, in the loop's default executor.

    One executor job works through the queue while it is not empty and then returns its thread to the pool:
    no thread is held while nothing is queued, and the loop is neither woken nor awaited per function (a
    caller that needs a result waits on its future).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._queue: deque[tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]] = (
            deque()
        )
        self._serving = False  # an executor job is working through the queue (guarded by `_lock`)

    def submit[T](self, func: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Queue `func(*args)` after everything queued before it."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            self._queue.append((future, func, args))
            if self._serving:
                return future
            self._serving = True
        try:
            self._loop.run_in_executor(None, self._serve).add_done_callback(_mark_seen)
        except BaseException:
            with self._lock:
                self._serving = False
            raise
        return future

    def _serve(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._serving = False
                    return
                future, func, args = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = func(*args)
            except BaseException as err:  # noqa: BLE001 - handed to whoever waits for it, as an executor does
                future.set_exception(err)
            else:
                future.set_result(result)


class _PartialFile:
    """The partial file, its running MD5, and the writes and hashes of its chunks, in order, off the loop.

    Chunks are queued (`submit`) without waiting for the ones before: the loop waits for the writer only when
    `_MAX_QUEUED_CHUNKS` are queued (`room`) and at the end. `downloaded` counts the bytes written and hashed,
    the only ones a resume may keep.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.downloaded = 0
        self.queued = 0  # bytes handed to the writer, not yet counted in `downloaded`
        self._handle: IO[bytes] | None = None
        self._digest = hashlib.md5(usedforsecurity=False)
        self._writer: _InOrder | None = None
        self._writes: deque[tuple[concurrent.futures.Future[int], int]] = deque()
        self._failed = False  # set in the writer's thread: later chunks are then skipped, never written

    async def open(self, offset: int) -> None:
        """Open (creating) the file, keep its first `offset` bytes and hash them."""
        self._writer = _InOrder(asyncio.get_running_loop())
        self._handle, self._digest = await self._in_writer(self._open, offset)
        self.downloaded = offset

    def _open(self, offset: int) -> tuple[IO[bytes], Any]:
        # Unbuffered: the chunks go straight to the file descriptor (`_write_and_hash`), whose position then
        # must be the file object's (a buffered reader would have read ahead while hashing the kept part).
        mode = "r+b" if self.path.exists() else "w+b"
        handle = self.path.open(mode, buffering=0)
        try:
            # Truncating a file (even an empty one) makes ext4 flush all of it to disk on close: only cut a
            # partial file that is really longer than what we keep.
            if os.fstat(handle.fileno()).st_size > offset:
                handle.truncate(offset)
            digest = _hash_prefix(handle, offset)
        except BaseException:
            handle.close()
            raise
        return handle, digest

    async def restart(self) -> None:
        """Throw away what is on disk: the next byte written is byte 0."""
        await self.room(0)
        handle = self._require_handle()
        await self._in_writer(_truncate, handle)
        self._digest = hashlib.md5(usedforsecurity=False)
        self.downloaded = 0

    @property
    def pending_writes(self) -> int:
        """Chunks queued to the writer and not yet counted."""
        return len(self._writes)

    def submit(self, pieces: list[bytes], length: int) -> None:
        """Queue `pieces` (`length` bytes) to be written and hashed after the chunks before; does not wait."""
        writer, handle = self._require_writer(), self._require_handle()
        self._writes.append((writer.submit(self._write, handle, self._digest, pieces), length))
        self.queued += length

    def _write(self, handle: IO[bytes], digest: Any, pieces: list[bytes]) -> int:
        # In the writer's thread. After a failed write the file's end is unknown: nothing more is appended.
        if self._failed:
            return 0
        try:
            return _write_and_hash(handle, digest, pieces)
        except BaseException:
            self._failed = True
            raise

    def collect(self) -> None:
        """Count the chunks the writer has finished, without waiting; a failed write raises here."""
        writes = self._writes
        while writes and writes[0][0].done():
            future, length = writes.popleft()
            self.queued -= length
            self.downloaded += future.result()

    async def room(self, most: int) -> None:
        """Wait until at most `most` chunks are still queued. A cancelled caller does not abandon them."""
        self.collect()
        if len(self._writes) <= most:
            return
        future, _length = self._writes[len(self._writes) - most - 1]
        try:
            # `wait`, unlike awaiting the future, neither raises its error (`collect` does, in order) nor
            # cancels it when this task is cancelled.
            await asyncio.wait([_awaitable(future)])
        except asyncio.CancelledError:
            await self.settle()
            raise
        self.collect()

    async def settle(self) -> None:
        """Wait for every queued chunk even after cancellation, so the file and the count agree."""
        if not self._writes:
            return
        # They are written in order: the last one done means all are.
        await asyncio.wait([_awaitable(self._writes[-1][0])])
        for future, length in self._writes:
            self.queued -= length
            if not future.cancelled() and future.exception() is None:
                self.downloaded += future.result()
        self._writes.clear()

    def hexdigest(self) -> str:
        """The MD5 of everything written so far."""
        return self._digest.hexdigest()

    async def close(self, *, publish_as: Path | None = None) -> None:
        """Finish the queued writes and close the file; then rename it to `publish_as` if given."""
        await self.settle()
        if self._handle is not None:
            handle, self._handle = self._handle, None
            await self._in_writer(self._close, handle, publish_as)

    def _close(self, handle: IO[bytes], publish_as: Path | None) -> None:
        # One executor job for both: each job is a round trip through the loop (this one ends every download).
        handle.close()
        if publish_as is not None:
            self.path.replace(publish_as)

    async def _in_writer[T](self, func: Callable[..., T], *args: Any) -> T:
        """`func(*args)` after the queued writes; its result."""
        return await _awaitable(self._require_writer().submit(func, *args))

    def _require_writer(self) -> _InOrder:
        if self._writer is None:
            raise RuntimeError("partial file is not open")
        return self._writer

    def _require_handle(self) -> IO[bytes]:
        if self._handle is None:
            raise RuntimeError("partial file is not open")
        return self._handle


def _awaitable[T](future: concurrent.futures.Future[T]) -> asyncio.Future[T]:
    """`future` for the loop to wait on. Where its outcome is read from `future` itself (`collect`,
    `settle`), an error is then not logged as never retrieved."""
    waitable = asyncio.wrap_future(future)
    waitable.add_done_callback(_mark_seen)
    return waitable


def _mark_seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _hash_prefix(handle: IO[bytes], length: int) -> Any:
    """MD5 of the file's first `length` bytes (a resume re-hashes what is on disk); leaves the position there."""
    handle.seek(0)
    digest = hashlib.md5(usedforsecurity=False)
    remaining = length
    while remaining > 0:
        block = handle.read(min(_REHASH_BLOCK, remaining))
        if not block:
            raise OSError(errno.EIO, "the partial file is shorter than its recorded length")
        digest.update(block)
        remaining -= len(block)
    return digest


def _write_and_hash(handle: IO[bytes], digest: Any, pieces: list[bytes]) -> int:
    # The pieces as they are, in one system call: joining them first would copy every byte once more (3-4 % of
    # a download's CPU). hashlib releases the GIL on large buffers: hashing runs beside the loop's reads.
    if len(pieces) > _MAX_PIECES_PER_WRITE:
        pieces = [b"".join(pieces)]
    length = sum(len(piece) for piece in pieces)
    written = os.writev(handle.fileno(), pieces)
    if written < length:
        # A regular file takes it all unless the disk fills up: write the rest, to get the error (or finish).
        rest = memoryview(b"".join(pieces))[written:]
        while rest:
            rest = rest[os.write(handle.fileno(), rest) :]
    for piece in pieces:
        digest.update(piece)
    return length


def _truncate(handle: IO[bytes]) -> None:
    handle.truncate(0)
    handle.seek(0)


def _file_length(path: Path) -> int:
    """The file's length, or -1 when it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _unlink_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _run[T](func: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


class _SpeedMeter:
    """Bytes per second over the last few seconds."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._transferred = 0

    def add(self, count: int) -> float:
        """Record `count` new bytes and return the current speed."""
        now = self._clock()
        self._transferred += count
        self._samples.append((now, self._transferred))
        while len(self._samples) > 2 and now - self._samples[0][0] > _SPEED_WINDOW_S:
            self._samples.popleft()
        first_time, first_bytes = self._samples[0]
        elapsed = now - first_time
        return (self._transferred - first_bytes) / elapsed if elapsed > 0 else 0.0


class Downloader:
    """Fetches firmware images into a `FirmwareCache`, resuming where a previous attempt stopped.

    The `store` holds only this Downloader's resume state (`{"downloads": {"<md5>-<size>": {...}}}`): give it a
    store of its own.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        cache: FirmwareCache,
        store: StateStore,
        *,
        chunk_size: int = CHUNK_SIZE,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        read_timeout_s: float = 30.0,
        save_interval_s: float = 1.0,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Download with `session` (its TLS settings decide the trust store) into `cache`."""
        if chunk_size < 1 or max_attempts < 1:
            raise ValueError("chunk_size and max_attempts must be positive")
        self._session = session
        self._cache = cache
        self._store = store
        self._settings = _Settings(
            chunk_size=chunk_size,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=read_timeout_s, sock_read=read_timeout_s),
            read_timeout_s=read_timeout_s,
            save_interval_s=save_interval_s,
            progress_interval_s=progress_interval_s,
            clock=clock,
        )
        self._states: dict[str, dict[str, Any]] | None = None
        self._state_lock = asyncio.Lock()
        self._key_locks: dict[ImageKey, asyncio.Lock] = {}

    async def fetch(self, spec: FirmwareSpec, on_progress: Callable[[DownloadProgress], None]) -> Path:
        """Download and verify `spec`'s image; return the path of the verified file in the cache.

        Raises an `OtaError` subclass carrying the code to report: `DownloadTimeoutError` (-1) after the
        retries, `FirmwareNotFoundError` (-2), `UrlExpiredError` (-3), `Md5MismatchError` (-4, the partial file
        is deleted), `InsufficientSpaceError`; another local write failure is a plain `OtaError` (-5).
        Two fetches of the same image never run at once: the second waits and then finds the verified file.
        """
        key = image_key_of(spec)
        lock = self._key_locks.setdefault(key, asyncio.Lock())
        async with lock:
            return await self._fetch(spec, on_progress)

    async def discard(self, item: FirmwareSpec | ImageKey) -> None:
        """Forget a partial download for good: delete its partial file and its resume state."""
        await _run(_unlink_quietly, self._cache.partial_path_for(item))
        await self._forget(image_file_stem(item))

    async def resume_state(self, item: FirmwareSpec | ImageKey) -> ResumeState | None:
        """The persisted resume state of an image, if any (for diagnostics and tests)."""
        states = await self._load_states()
        return ResumeState.from_dict(states.get(image_file_stem(item)))

    async def resume_point(self, spec: FirmwareSpec) -> int:
        """Bytes of `spec`'s image a `fetch` now would not download again: all of a verified image in the
        cache, the kept part of a matching partial download, else 0 (it would start from byte 0)."""
        if await _run(_file_length, self._cache.path_for(spec)) == spec.size:
            return spec.size
        state = await self.resume_state(spec)
        length = await _run(_file_length, self._cache.partial_path_for(spec))
        return _kept_bytes(spec, state, length) or 0

    async def _fetch(self, spec: FirmwareSpec, on_progress: Callable[[DownloadProgress], None]) -> Path:
        final = self._cache.path_for(spec)
        if await _run(_file_length, final) == spec.size:
            _LOGGER.debug("Firmware %s (md5 %s) is already in the cache", spec.version, spec.md5)
            on_progress(DownloadProgress(spec.size, spec.size, spec.size, 0.0, 0.0))
            return final
        part = _PartialFile(self._cache.partial_path_for(spec), spec.size)
        offset = await self._resume_offset(spec, part.path)
        needed = spec.size - offset
        free = await self._cache.free_space()
        if free < needed:
            raise InsufficientSpaceError(
                Failure.of(FailureReason.INSUFFICIENT_SPACE, path=self._cache.directory, needed=needed - free)
            )
        if offset:
            _LOGGER.info(
                "Resuming download of firmware %s (%d bytes) from %s at byte %d",
                spec.version,
                spec.size,
                spec.public_url,
                offset,
            )
        else:
            _LOGGER.info(
                "Downloading firmware %s (%d bytes, md5 %s) from %s",
                spec.version,
                spec.size,
                spec.md5,
                spec.public_url,
            )
        try:
            await part.open(offset)
        except OSError as err:
            raise _write_error(spec, part, err) from None
        run = _Run(
            self._settings,
            self._session,
            spec=spec,
            part=part,
            on_progress=on_progress,
            remember=self._remember,
            resumed_from=offset,
        )
        started = self._settings.clock()
        verified = False
        try:
            try:
                await run.download()  # returns once every byte is written and hashed
                _check_md5(spec, part.hexdigest())
                await part.close(publish_as=final)
            except OSError as err:
                # Network errors are handled inside the run: what arrives here is the local disk failing.
                raise _write_error(spec, part, err) from None
            verified = True
        except Md5MismatchError:
            await part.close()
            await self.discard(spec)
            # The job that fails on it logs the failure (once, as a warning): this is only its detail.
            _LOGGER.info("Deleted the download of firmware %s: md5 mismatch", spec.version)
            raise
        finally:
            if not verified:
                await part.close()
                if await _run(_file_length, part.path) >= 0:
                    await self._remember(spec, part.downloaded)
        await self._forget(image_file_stem(spec))
        elapsed = max(self._settings.clock() - started, 1e-9)
        _LOGGER.info(
            "Downloaded firmware %s (%d bytes) in %.1f s (%.0f KiB/s), md5 verified",
            spec.version,
            spec.size,
            elapsed,
            (spec.size - offset) / elapsed / 1024,
        )
        return final

    async def _resume_offset(self, spec: FirmwareSpec, path: Path) -> int:
        """Bytes of a matching partial file to keep; anything else on disk is thrown away."""
        stem = image_file_stem(spec)
        states = await self._load_states()
        state = ResumeState.from_dict(states.get(stem))
        length = await _run(_file_length, path)
        kept = _kept_bytes(spec, state, length)
        if kept is not None:
            return kept
        if state is not None and not state.matches(spec):
            _LOGGER.info(
                "Stored download state of %s does not match firmware %s: starting from 0",
                stem,
                spec.version,
            )
        if length >= 0:
            await _run(_unlink_quietly, path)
        if state is not None:
            await self._forget(stem)
        return 0

    async def _load_states(self) -> dict[str, dict[str, Any]]:
        if self._states is None:
            async with self._state_lock:
                if self._states is None:
                    document = await self._store.async_load() or {}
                    raw = document.get(STATE_KEY)
                    self._states = (
                        {k: v for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}
                    )
        return self._states

    async def _remember(self, spec: FirmwareSpec, downloaded: int) -> None:
        state = ResumeState(spec.public_url, spec.version, spec.md5.lower(), spec.size, downloaded)
        states = await self._load_states()
        states[image_file_stem(spec)] = state.to_dict()
        await self._save_states()

    async def _forget(self, stem: str) -> None:
        states = await self._load_states()
        if states.pop(stem, None) is not None:
            await self._save_states()

    async def _save_states(self) -> None:
        async with self._state_lock:
            states = self._states or {}
            await self._store.async_save({STATE_KEY: {k: dict(v) for k, v in states.items()}})


def _kept_bytes(spec: FirmwareSpec, state: ResumeState | None, length: int) -> int | None:
    """Bytes of a partial file of `length` (-1: none) that a resume keeps, by its saved `state`; None when
    the file cannot be resumed."""
    if state is not None and state.matches(spec) and length >= state.downloaded:
        # The file may be longer than the last save (saves are throttled); the excess is cut off.
        return state.downloaded
    return None


def _check_md5(spec: FirmwareSpec, digest: str) -> None:
    if digest != spec.md5.lower():
        raise Md5MismatchError(
            Failure.of(FailureReason.MD5_MISMATCH, expected=spec.md5.lower(), actual=digest)
        )


def _size_mismatch(spec: FirmwareSpec, actual: int) -> Md5MismatchError:
    """The server's image is not of the announced size (reported as Tencent's MD5 failure: a wrong image)."""
    return Md5MismatchError(Failure.of(FailureReason.SIZE_MISMATCH, expected=spec.size, actual=actual))


@dataclass(frozen=True, slots=True)
class _Settings:
    chunk_size: int
    max_attempts: int
    backoff_s: float
    backoff_max_s: float
    timeout: aiohttp.ClientTimeout
    read_timeout_s: float
    save_interval_s: float
    progress_interval_s: float
    clock: Callable[[], float]

    def backoff_delay(self, failures: int) -> float:
        """Capped exponential backoff with jitter, so many gateways do not retry in step."""
        base = min(self.backoff_max_s, self.backoff_s * 2 ** (failures - 1))
        return float(base * _JITTER.uniform(0.5, 1.0))


def _write_error(spec: FirmwareSpec, part: _PartialFile, err: OSError) -> OtaError:
    directory = part.path.parent
    if err.errno == errno.ENOSPC:
        needed = spec.size - part.downloaded
        return InsufficientSpaceError(
            Failure.of(FailureReason.INSUFFICIENT_SPACE, path=directory, needed=needed)
        )
    if err.errno in _NOT_WRITABLE:
        return OtaError(Failure.of(FailureReason.CACHE_NOT_WRITABLE, path=directory))
    # The OS's own words, quoted as received.
    return OtaError(
        Failure.of(FailureReason.CACHE_WRITE_FAILED, path=directory, remote=err.strerror or redact(str(err)))
    )


class _StallWatch:
    """Fails a body's read once no byte arrived for `timeout_s` while the reader waited for one (aiohttp's
    `sock_read`, looked at twice per timeout rather than re-armed for every piece).

    The reader sets `waiting` around each read and counts `pieces`; the time it spends on the writer (its
    queue full) is not the server's silence. A stall is noticed `timeout_s` to 1.5 `timeout_s` after it began.
    """

    def __init__(self, content: aiohttp.StreamReader, timeout_s: float) -> None:
        self.waiting = False
        self.pieces = 0
        self._content = content
        self._timeout_s = timeout_s
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(timeout_s / 2, self._look, 0, self._loop.time())

    def stop(self) -> None:
        """No more looking (the body is read, or the read failed)."""
        self._handle.cancel()

    def _look(self, seen: int, since: float) -> None:
        now = self._loop.time()
        if self.pieces != seen or not self.waiting:
            seen, since = self.pieces, now
        elif now - since >= self._timeout_s:
            # What aiohttp's own read timeout does: the read in progress raises it.
            self._content.set_exception(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))
            return
        self._handle = self._loop.call_at(now + self._timeout_s / 2, self._look, seen, since)


class _Run:
    """One `fetch`: requests, retries and progress for one partial file."""

    def __init__(
        self,
        settings: _Settings,
        session: aiohttp.ClientSession,
        *,
        spec: FirmwareSpec,
        part: _PartialFile,
        on_progress: Callable[[DownloadProgress], None],
        remember: Callable[[FirmwareSpec, int], Awaitable[None]],
        resumed_from: int,
    ) -> None:
        self._settings = settings
        self._session = session
        self._spec = spec
        self._part = part
        self._on_progress = on_progress
        self._remember = remember
        self._resumed_from = resumed_from
        self._speed = _SpeedMeter(settings.clock)
        self._last_save = self._last_write = settings.clock()
        self._last_progress = -float("inf")
        self._counted = resumed_from  # bytes the speed meter has seen

    async def download(self) -> None:
        """Request until the file is complete, retrying what a retry can fix."""
        spec, part = self._spec, self._part
        self._progress(part.downloaded, force=True)
        failures = 0
        while part.downloaded < spec.size:
            before = part.downloaded
            try:
                await self._attempt()
            except _RetryableError as err:
                failure = err.failure
            except (aiohttp.ClientError, TimeoutError) as err:
                failure = self._network_failure(err)
            else:
                self._progress(part.downloaded, force=True)
                break
            await part.room(0)
            failures = 1 if part.downloaded > before else failures + 1
            if failures >= self._settings.max_attempts:
                raise DownloadTimeoutError(failure) from None
            delay = self._settings.backoff_delay(failures)
            _LOGGER.warning(
                "Download of firmware %s from %s stopped at byte %d (%s); retrying in %.1f s",
                spec.version,
                spec.public_url,
                part.downloaded,
                failure.english,
                delay,
            )
            await self._remember(spec, part.downloaded)
            self._last_save = self._settings.clock()
            await asyncio.sleep(delay)

    def _network_failure(self, err: BaseException) -> Failure:
        """What a failed request means, for the user: the server's host and port, never the URL's query."""
        _LOGGER.debug("Download request failed: %s", redact(repr(err)))
        cause = net_cause(err)
        endpoint = Endpoint.of(self._spec.url)
        timeout = self._settings.timeout.sock_read
        return Failure.of(
            _NET_REASONS[cause],
            host=endpoint.host,
            port=endpoint.port if cause is NetCause.REFUSED else None,
            seconds=f"{timeout:g}" if cause is NetCause.TIMEOUT and timeout is not None else None,
        )

    def _failure(self, reason: FailureReason, **values: object) -> Failure:
        return Failure.of(reason, host=Endpoint.of(self._spec.url).host, **values)

    async def _attempt(self) -> None:
        spec, part = self._spec, self._part
        offset = part.downloaded
        headers = {"Accept-Encoding": "identity"}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-{spec.size - 1}"
        async with self._session.get(
            spec.url,
            headers=headers,
            timeout=self._settings.timeout,
            auto_decompress=False,
            read_bufsize=_READ_BUFSIZE,
        ) as response:
            await self._check_status(response, offset)
            connection = response.connection
            if connection is not None and connection.protocol is not None:
                # aiohttp re-arms its `sock_read` timer for every piece of the body, a measurable share of the
                # loop's CPU on a fast link: past the headers, `_StallWatch` does that job with two timers per
                # timeout instead.
                connection.protocol.read_timeout = None
            await self._read_body(response)
        if part.downloaded < spec.size:
            raise _RetryableError(self._failure(FailureReason.DOWNLOAD_INTERRUPTED))

    async def _check_status(self, response: aiohttp.ClientResponse, offset: int) -> None:
        spec, part = self._spec, self._part
        status = response.status
        if status == 404:
            raise FirmwareNotFoundError(self._failure(FailureReason.FIRMWARE_NOT_FOUND, http_status=status))
        if status in {401, 403}:
            # The signature has probably expired: a fresh URL is needed.
            raise UrlExpiredError(Failure.of(FailureReason.URL_EXPIRED, http_status=status))
        if status == 416:
            _LOGGER.info("Server refused the range for firmware %s: starting again from byte 0", spec.version)
            await part.restart()
            self._restarted()
            raise _RetryableError(self._failure(FailureReason.DOWNLOAD_INTERRUPTED))
        if status >= 500 or status in {408, 429}:
            raise _RetryableError(self._failure(FailureReason.DOWNLOAD_SERVER_ERROR, http_status=status))
        if status == 200:
            if response.content_length is not None and response.content_length != spec.size:
                raise _size_mismatch(spec, response.content_length)
            if offset > 0:
                _LOGGER.info(
                    "Server ignored the range for firmware %s: starting again from byte 0", spec.version
                )
                await part.restart()
                self._restarted()
            return
        if status == 206 and offset > 0:
            match = _CONTENT_RANGE_RE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or (
                int(match[1]) != offset
                or int(match[2]) != spec.size - 1
                or match[3] not in {"*", str(spec.size)}
            ):
                _LOGGER.info(
                    "Server answered a range not asked for, firmware %s: starting again from 0", spec.version
                )
                await part.restart()
                self._restarted()
                raise _RetryableError(self._failure(FailureReason.DOWNLOAD_INTERRUPTED))
            return
        raise DownloadRefusedError(self._failure(FailureReason.DOWNLOAD_REFUSED, http_status=status))

    def _restarted(self) -> None:
        self._resumed_from = 0
        self._counted = 0
        self._progress(0, force=True)

    async def _read_body(self, response: aiohttp.ClientResponse) -> None:
        chunk_size, part, content = self._settings.chunk_size, self._part, response.content
        # The pieces as aiohttp hands them over, joined (if at all) by the writer: no copy on the loop.
        pieces: list[bytes] = []
        length = 0
        watch = _StallWatch(content, self._settings.read_timeout_s)
        try:
            while True:
                watch.waiting = True
                piece = await content.readany()
                watch.waiting = False
                if not piece:
                    break
                watch.pieces += 1
                pieces.append(piece)
                length += len(piece)
                now = self._settings.clock()
                self._progress(part.downloaded + part.queued + length, now=now)
                # On a slow link a chunk takes long to fill: what arrived is written at least once per save
                # interval, so the saved resume point keeps up with it.
                if length >= chunk_size or now - self._last_write >= self._settings.save_interval_s:
                    await self._keep_up()
                    self._write(pieces, length)
                    pieces, length = [], 0
        except aiohttp.ClientError, TimeoutError:
            # Keep what arrived before the cut: the retry then asks only for what is missing.
            self._write(pieces, length)
            raise
        except asyncio.CancelledError:
            # Stopped (the job was cancelled, the engine stops): what arrived is kept for the resume too, unless
            # it overruns the image (then the resume finds that out again).
            with contextlib.suppress(Md5MismatchError):
                self._write(pieces, length)
            raise
        finally:
            watch.stop()
        self._write(pieces, length)
        await part.room(0)
        await self._save_when_due()

    def _write(self, pieces: list[bytes], length: int) -> None:
        """Queue `pieces` to the writer (nothing when empty)."""
        spec, part = self._spec, self._part
        if not length:
            return
        if part.downloaded + part.queued + length > spec.size:
            raise _size_mismatch(spec, part.downloaded + part.queued + length)
        part.submit(pieces, length)
        self._last_write = self._settings.clock()

    async def _keep_up(self) -> None:
        """Before queuing a chunk: count what the writer finished, wait for it when its queue is full, and save
        the resume point when due (what the chunks before this one wrote)."""
        part = self._part
        if part.pending_writes >= _MAX_QUEUED_CHUNKS:
            await part.room(_MAX_QUEUED_CHUNKS // 2)
        else:
            part.collect()
        await self._save_when_due()

    async def _save_when_due(self) -> None:
        """Persist the resume point (what is written) when the save interval has passed."""
        now = self._settings.clock()
        if now - self._last_save >= self._settings.save_interval_s:
            self._last_save = now
            await self._remember(self._spec, self._part.downloaded)

    def _progress(self, received: int, *, force: bool = False, now: float | None = None) -> None:
        """Tell the job how many bytes arrived (written or still buffered), at most once per interval."""
        if now is None:
            now = self._settings.clock()
        if not force and now - self._last_progress < self._settings.progress_interval_s:
            return
        self._last_progress = now
        # Never backwards: bytes counted while buffered are not counted again once written.
        received = max(received, self._counted)
        speed = self._speed.add(received - self._counted)
        self._counted = received
        total = self._spec.size
        eta = (total - received) / speed if speed > 0 else None
        if received >= total:
            eta = 0.0
        self._on_progress(DownloadProgress(received, total, self._resumed_from, speed, eta))
