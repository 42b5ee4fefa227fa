"""Serves stored firmware the way Tencent's object storage does: pre-signed expiring URLs, Range, and faults.

Download route: `GET /ota/{object_name}?expires=<unix s>&sign=<hex HMAC-SHA256>`.
Console routes: `POST /api/firmware?product_id=P&version=V` (body = image), `GET /api/firmware`,
`PUT|GET|DELETE /api/faults` (see `faults.py` for the JSON), `GET /api/stats`.

The URL signing key is 32 random bytes kept in the store's directory (created on first use, mode 0600): URLs
pushed before an emulator restart stay valid after it, like real pre-signed links, so restart-and-resume tests
work; a fresh state dir still gets a fresh key, so nothing predictable ever signs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import hashlib
import hmac
import logging
import os
from pathlib import Path
import re
import secrets
import time
from typing import IO, Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from .faults import NO_FAULTS, DownloadFaults, FaultConfig, FaultError
from .firmware import (
    CHUNK_SIZE,
    Firmware,
    FirmwareError,
    FirmwareStore,
    is_object_name,
    run_blocking as _in_executor,
)

_LOGGER = logging.getLogger(__name__)

KEY_FILE = "url_signing.key"
OTA_PREFIX = "/ota/"
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
# Throttled bodies go out in slices of about a tenth of a second's worth, so the rate is smooth.
_THROTTLE_SLICES_PER_S = 10


@dataclass(slots=True)
class FirmwareStats:
    """What one firmware's downloads did: requests seen and body bytes sent."""

    requests: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class _Span:
    """The byte range a response carries: `start`..`end` inclusive; `partial` for a 206."""

    start: int
    end: int
    partial: bool

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class _UnsatisfiableRangeError(Exception):
    """The Range starts at or beyond the end of the file."""


def parse_range(header: str | None, size: int) -> _Span:
    """The span a `Range` header asks for in a file of `size` bytes (spec §4).

    `bytes=a-b` with b at or past the end is clamped to the last byte (older SDKs send `a-<size>`), `bytes=a-`
    runs to the end, `bytes=-n` is the last n bytes. A header that does not parse (or asks for several ranges)
    is ignored, as RFC 9110 says: the whole body, 200. A start at or past the end raises `_UnsatisfiableRangeError`.
    """
    whole = _Span(0, size - 1, partial=False)
    match = _RANGE_RE.fullmatch(header.strip()) if header is not None else None
    if match is None:
        return whole
    first, last = match.groups()
    if not first:
        if not last:
            return whole
        if int(last) == 0:
            raise _UnsatisfiableRangeError
        return _Span(max(0, size - int(last)), size - 1, partial=True)
    start = int(first)
    if last and int(last) < start:
        return whole
    if start >= size:
        raise _UnsatisfiableRangeError
    end = int(last) if last else size - 1
    return _Span(start, min(end, size - 1), partial=True)


class QuerylessAccessLogger(AbstractAccessLogger):
    """An access log line without the query string: a signed URL's query is a credential.

    Pass it to the runner: `web.AppRunner(app, access_log_class=QuerylessAccessLogger)`.
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Log remote address, method, path, status, body size and duration."""
        self.logger.info(
            '%s "%s %s" %d %d %.3fs',
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time,
        )


class FirmwareServer:
    """Download routes for stored firmware plus the console routes for uploads, faults and stats."""

    def __init__(
        self,
        store: FirmwareStore,
        *,
        url_ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Serve `store`; newly signed URLs live `url_ttl_s` seconds (`clock` gives Unix time, for tests)."""
        self.store = store
        self.url_ttl_s = url_ttl_s
        self._initial_ttl_s = url_ttl_s
        self._clock = clock
        self._key = _load_or_create_key(store.directory / KEY_FILE)
        self._faults = FaultConfig()
        self._fired: set[tuple[str, str]] = set()
        self._stats: dict[str, FirmwareStats] = {}
        self._not_found = 0
        self._forbidden = 0

    # --- public API -------------------------------------------------------------------------------------

    def register_routes(self, app: web.Application) -> None:
        """Add the download and console routes to `app`."""
        app.router.add_get(OTA_PREFIX + "{object_name}", self._download)
        app.router.add_post("/api/firmware", self._upload)
        app.router.add_get("/api/firmware", self._list_firmware)
        app.router.add_put("/api/faults", self._put_faults)
        app.router.add_get("/api/faults", self._get_faults)
        app.router.add_delete("/api/faults", self._delete_faults)
        app.router.add_get("/api/stats", self._get_stats)

    def signed_url(self, firmware: Firmware, base_url: str) -> str:
        """A URL for `firmware` under `base_url` that expires `url_ttl_s` seconds from now."""
        expires = int(self._clock() + self.url_ttl_s)
        query = urlencode({"expires": expires, "sign": self._sign(firmware.object_name, expires)})
        return f"{base_url.rstrip('/')}{OTA_PREFIX}{firmware.object_name}?{query}"

    @property
    def faults(self) -> FaultConfig:
        """The fault set in force."""
        return self._faults

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault set (re-arming one-shot cuts and stalls); `url_ttl_s` follows it."""
        self._faults = faults
        self._fired.clear()
        self.url_ttl_s = faults.url_ttl_s if faults.url_ttl_s is not None else self._initial_ttl_s

    def stats(self) -> dict[str, Any]:
        """`GET /api/stats`: per firmware `PID/VERSION`, requests and body bytes; refused requests overall."""
        return {
            "firmware": {
                key: {"requests": entry.requests, "bytes": entry.bytes}
                for key, entry in sorted(self._stats.items())
            },
            "not_found": self._not_found,
            "forbidden": self._forbidden,
        }

    # --- download ---------------------------------------------------------------------------------------

    def _sign(self, object_name: str, expires: int) -> str:
        message = f"{object_name}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _signature_ok(self, object_name: str, query: Any) -> bool:
        expires_text, sign = query.get("expires", ""), query.get("sign", "")
        if not expires_text.isdigit() or not sign:
            return False
        expires = int(expires_text)
        if not hmac.compare_digest(self._sign(object_name, expires), sign):
            return False
        return self._clock() < expires

    async def _download(self, request: web.Request) -> web.StreamResponse:
        object_name = request.match_info["object_name"]
        firmware = self.store.by_object(object_name) if is_object_name(object_name) else None
        if firmware is None:
            self._not_found += 1
            raise web.HTTPNotFound(text="no such object")
        stats = self._stats.setdefault(firmware.key, FirmwareStats())
        stats.requests += 1
        if not self._signature_ok(object_name, request.query):
            # Never echo the query: it is a credential.
            self._forbidden += 1
            raise web.HTTPForbidden(text="the signature is missing, wrong or expired")
        scope, faults = self._faults.for_firmware(firmware.key)
        if faults.header_delay_s:
            await asyncio.sleep(faults.header_delay_s)
        if faults.status is not None:
            return web.Response(status=faults.status, text=f"fault knob: answering {faults.status}")
        range_header = None if faults.ignore_range else request.headers.get("Range")
        try:
            span = parse_range(range_header, firmware.size)
        except _UnsatisfiableRangeError:
            raise web.HTTPRequestRangeNotSatisfiable(
                headers={"Content-Range": f"bytes */{firmware.size}"}
            ) from None
        response = web.StreamResponse(status=206 if span.partial else 200)
        response.content_type = "application/octet-stream"
        response.content_length = span.length
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["ETag"] = f'"{firmware.md5}"'
        if span.partial:
            response.headers["Content-Range"] = f"bytes {span.start}-{span.end}/{firmware.size}"
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        handle = await _in_executor(_open_for_reading, firmware.path)
        try:
            await _in_executor(handle.seek, span.start)
            if faults is NO_FAULTS or faults.streams_plainly:
                await _stream(response, handle, span, stats)
            else:
                await self._stream_with_faults(
                    request, response, handle, span=span, stats=stats, scope=scope, faults=faults
                )
        except ConnectionError:
            # The client went away (or a cut fault closed the connection): nothing left to answer.
            _LOGGER.debug("Download of %s ended early", firmware.key)
        finally:
            await _in_executor(handle.close)
        return response

    def _armed(self, scope: str, event: str, repeat: bool) -> bool:
        return repeat or (scope, event) not in self._fired

    async def _stream_with_faults(
        self,
        request: web.Request,
        response: web.StreamResponse,
        handle: IO[bytes],
        *,
        span: _Span,
        stats: FirmwareStats,
        scope: str,
        faults: DownloadFaults,
    ) -> None:
        """The slow path: the body slice by slice, with cuts, stalls, a flipped byte and throttling."""
        loop = asyncio.get_running_loop()
        slice_size = CHUNK_SIZE
        if faults.throttle_bps is not None:
            slice_size = max(1, min(CHUNK_SIZE, faults.throttle_bps // _THROTTLE_SLICES_PER_S))
        cut_at = faults.cut_after_bytes
        if cut_at is not None and not self._armed(scope, "cut", faults.cut_repeat):
            cut_at = None
        stall_at = faults.stall_at_byte
        if stall_at is not None and not (
            span.start <= stall_at <= span.end and self._armed(scope, "stall", faults.stall_repeat)
        ):
            stall_at = None
        position, sent, began = span.start, 0, loop.time()
        while position <= span.end:
            if cut_at is not None and sent >= cut_at:
                self._fired.add((scope, "cut"))
                await response.write(b"")  # sends headers still buffered when cutting at byte 0
                if request.transport is not None:
                    # close() (not abort()) flushes what was written, so the client gets exactly N bytes.
                    request.transport.close()
                return
            if stall_at is not None and position == stall_at:
                self._fired.add((scope, "stall"))
                stall_at = None
                await response.write(b"")  # headers still buffered go out before the pause
                await asyncio.sleep(faults.stall_s)
            count = min(slice_size, span.end + 1 - position)
            if cut_at is not None:
                count = min(count, cut_at - sent)
            if stall_at is not None and stall_at > position:
                count = min(count, stall_at - position)
            chunk = await _in_executor(handle.read, count)
            if not chunk:
                return
            if faults.flip_byte_at is not None and position <= faults.flip_byte_at < position + len(chunk):
                index = faults.flip_byte_at - position
                chunk = chunk[:index] + bytes([chunk[index] ^ 0xFF]) + chunk[index + 1 :]
            await response.write(chunk)
            position += len(chunk)
            sent += len(chunk)
            stats.bytes += len(chunk)
            if faults.throttle_bps is not None:
                ahead = sent / faults.throttle_bps - (loop.time() - began)
                if ahead > 0:
                    await asyncio.sleep(ahead)

    # --- console ----------------------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        product_id = request.query.get("product_id", "")
        version = request.query.get("version", "")
        try:
            firmware = await self.store.add(product_id, version, request.content)
        except FirmwareError as err:
            return _error(400, str(err))
        return web.json_response(firmware.to_json())

    async def _list_firmware(self, request: web.Request) -> web.Response:
        return web.json_response({"firmware": [fw.to_json() for fw in self.store.all()]})

    async def _put_faults(self, request: web.Request) -> web.Response:
        try:
            raw = await request.json()
        except ValueError:
            return _error(400, "the body must be JSON")
        try:
            faults = FaultConfig.parse(raw)
        except FaultError as err:
            return _error(400, str(err))
        self.set_faults(faults)
        return web.json_response(self._faults_json())

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._faults_json())

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self.set_faults(FaultConfig())
        return web.json_response(self._faults_json())

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def _faults_json(self) -> dict[str, Any]:
        return self._faults.to_json() | {"url_ttl_s": self.url_ttl_s}


async def _stream(response: web.StreamResponse, handle: IO[bytes], span: _Span, stats: FirmwareStats) -> None:
    """The fast path: large chunks straight from disk, nothing evaluated per chunk but the count."""
    remaining = span.length
    while remaining > 0:
        chunk = await _in_executor(handle.read, min(CHUNK_SIZE, remaining))
        if not chunk:
            return
        await response.write(chunk)
        remaining -= len(chunk)
        stats.bytes += len(chunk)


def _open_for_reading(path: Path) -> IO[bytes]:
    return path.open("rb")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _load_or_create_key(path: Path) -> bytes:
    """The signing key in `path`, created (32 random bytes, owner-only) when missing or malformed."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    if len(key) == 32:
        return key
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key
