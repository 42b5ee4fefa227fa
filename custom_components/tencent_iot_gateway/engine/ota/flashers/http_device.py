"""The `http` flasher: uploads the image to the sub-device over HTTP, then waits until it runs the new version.

The image is streamed from the file (read in the executor, chunk by chunk), with `X-Firmware-MD5` and
`X-Firmware-Version` headers and an optional bearer token. URL templates take the same placeholders as
command arguments, each value URL-quoted. When a version URL is set, it is polled (GET, JSON with a `version`
field) until the device reports the new version or the timeout passes; errors while it reboots are expected.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
import logging
from pathlib import Path
from typing import IO, Any, ClassVar
from urllib.parse import quote, urlsplit

import aiohttp

from custom_components.tencent_iot_gateway.engine.errors import (
    Failure,
    FailureReason,
    FieldProblem,
    FlashError,
    InvalidFieldError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.net_causes import Endpoint, NetCause, net_cause
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec, url_without_query
from custom_components.tencent_iot_gateway.engine.ota.flashers.base import (
    check_kind,
    check_seconds,
    check_text,
    optional_text,
    render_template,
    template_values,
    validate_template,
)

_LOGGER = logging.getLogger(__name__)

UPLOAD_CHUNK = 256 * 1024
_ERROR_BODY_CHARS = 300
_NET_REASONS = {
    NetCause.REFUSED: FailureReason.DEVICE_CONNECTION_REFUSED,
    NetCause.UNREACHABLE: FailureReason.DEVICE_HOST_UNREACHABLE,
    NetCause.TIMEOUT: FailureReason.DEVICE_TIMEOUT,
    NetCause.TLS: FailureReason.DEVICE_TLS,
    NetCause.DISCONNECTED: FailureReason.DEVICE_DISCONNECTED,
}


class HttpMethod(StrEnum):
    """How the image is sent."""

    PUT = "PUT"
    POST = "POST"


def _check_url_template(value: object, field_name: str) -> str:
    template = validate_template(check_text(value, field_name), field_name)
    parts = urlsplit(template)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InvalidFieldError(field_name, FieldProblem.URL_SCHEME)
    return template


@dataclass(frozen=True, slots=True)
class HttpFlasherConfig:
    """Upload with `method` to `url`; optionally poll `version_url` until the new version runs."""

    kind: ClassVar[str] = "http"

    url: str
    method: HttpMethod = HttpMethod.PUT
    token: str | None = field(default=None, repr=False)
    version_url: str | None = None
    poll_interval_s: float = 2.0
    timeout_s: float = 600.0
    version_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        """Validate every field, naming the bad one."""
        _check_url_template(self.url, "url")
        if not isinstance(self.method, HttpMethod):
            raise InvalidFieldError("method", FieldProblem.CHOICE, allowed="PUT, POST")
        optional_text(self.token, "token")
        if self.version_url is not None:
            _check_url_template(self.version_url, "version_url")
        check_seconds(self.poll_interval_s, "poll_interval_s", maximum=3600.0)
        check_seconds(self.timeout_s, "timeout_s")
        check_seconds(self.version_timeout_s, "version_timeout_s")

    def to_dict(self) -> dict[str, Any]:
        """The stored form (the token included: the config entry is where it lives)."""
        return {
            "kind": self.kind,
            "url": self.url,
            "method": self.method.value,
            "token": self.token,
            "version_url": self.version_url,
            "poll_interval_s": self.poll_interval_s,
            "timeout_s": self.timeout_s,
            "version_timeout_s": self.version_timeout_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HttpFlasherConfig:
        """Parse the stored form (raises `InvalidFieldError`)."""
        check_kind(data, cls.kind)
        method = data.get("method", "PUT")
        if not isinstance(method, str) or method.upper() not in HttpMethod.__members__:
            raise InvalidFieldError("method", FieldProblem.CHOICE, allowed="PUT, POST")
        return cls(
            url=check_text(data.get("url"), "url"),
            method=HttpMethod(method.upper()),
            token=data.get("token") or None,
            version_url=data.get("version_url") or None,
            poll_interval_s=data.get("poll_interval_s", 2.0),
            timeout_s=data.get("timeout_s", 600.0),
            version_timeout_s=data.get("version_timeout_s", 300.0),
        )


def _quote_value(value: str) -> str:
    return quote(value, safe="")


class HttpFlasher:
    """Flashes by uploading the image to the sub-device's HTTP endpoint."""

    def __init__(self, config: HttpFlasherConfig, session: aiohttp.ClientSession) -> None:
        """Use `session` (its TLS settings decide what is trusted)."""
        self._config = config
        self._session = session

    def __repr__(self) -> str:
        """Never show the token."""
        return f"HttpFlasher({self._config!r})"

    async def flash(
        self, image: Path, target: DeviceId, firmware: FirmwareSpec, progress: Callable[[int], None]
    ) -> str:
        """Upload `image` to `target`, then wait for the new version if a version URL is configured."""
        config = self._config
        values = template_values(image, target, firmware)
        url = render_template(config.url, values, quote=_quote_value)
        shown = url_without_query(url)
        _LOGGER.info(
            "Flashing %s over HTTP (%s %s) to version %s", target, config.method, shown, firmware.version
        )
        if config.version_url is None:
            await self._upload(url, shown, image, firmware, progress)
            return firmware.version
        # The upload is only the first half of the flash: the device then writes and boots the image, which
        # takes as long again or more and reports no progress. The bar stays at the half until it runs it.
        await self._upload(url, shown, image, firmware, lambda percent: progress(percent // 2))
        version_url = render_template(config.version_url, values, quote=_quote_value)
        return await self._await_version(version_url, firmware.version, target)

    async def read_version(self, target: DeviceId, firmware: FirmwareSpec) -> str | None:
        """Ask `version_url` once (see `VersionReader`); None without one or without an answer."""
        config = self._config
        if config.version_url is None:
            return None
        values = template_values(Path(), target, firmware)
        url = render_template(config.version_url, values, quote=_quote_value)
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        timeout = aiohttp.ClientTimeout(total=min(config.poll_interval_s * 5, 30.0))
        try:
            async with self._session.get(url, headers=headers, timeout=timeout) as response:
                if response.status != 200:
                    return None
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            _LOGGER.debug("Could not read the version of %s: %s", target, type(err).__name__)
            return None
        version = body.get("version") if isinstance(body, dict) else None
        return version if isinstance(version, str) else None

    def _headers(self, firmware: FirmwareSpec, size: int) -> dict[str, str]:
        headers = {
            "Content-Type": "application/octet-stream",
            # A declared length: small device web servers rarely accept chunked uploads.
            "Content-Length": str(size),
            "X-Firmware-MD5": firmware.md5.lower(),
            "X-Firmware-Version": firmware.version,
        }
        if self._config.token:
            headers["Authorization"] = f"Bearer {self._config.token}"
        return headers

    async def _upload(
        self,
        url: str,
        shown: str,
        image: Path,
        firmware: FirmwareSpec,
        progress: Callable[[int], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            handle = await loop.run_in_executor(None, image.open, "rb")
        except OSError:
            raise FlashError(Failure.of(FailureReason.IMAGE_UNREADABLE, path=image)) from None
        try:
            size = await loop.run_in_executor(None, _size_of, handle)
            async with (
                asyncio.timeout(self._config.timeout_s),
                self._session.request(
                    self._config.method.value,
                    url,
                    data=_stream(handle, size, progress),
                    headers=self._headers(firmware, size),
                    timeout=aiohttp.ClientTimeout(total=None),
                ) as response,
            ):
                if response.status >= 300:
                    # The device's own words, quoted as received.
                    detail = (await response.content.read(_ERROR_BODY_CHARS)).decode("utf-8", "replace")
                    raise FlashError(
                        Failure.of(
                            FailureReason.DEVICE_HTTP_STATUS,
                            host=Endpoint.of(url).host,
                            http_status=response.status,
                            remote=" ".join(detail.split()),
                        )
                    )
        except (aiohttp.ClientError, TimeoutError) as err:
            _LOGGER.debug("Uploading to %s failed: %r", shown, err)
            cause = net_cause(err)
            endpoint = Endpoint.of(url)
            raise FlashError(
                Failure.of(
                    _NET_REASONS[cause],
                    host=endpoint.host,
                    port=endpoint.port if cause is NetCause.REFUSED else None,
                    seconds=f"{self._config.timeout_s:g}" if cause is NetCause.TIMEOUT else None,
                )
            ) from None
        finally:
            await loop.run_in_executor(None, handle.close)
        progress(100)

    async def _await_version(self, url: str, wanted: str, target: DeviceId) -> str:
        """Poll `url` until it reports `wanted`; the device may refuse connections while it reboots."""
        config = self._config
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        request_timeout = aiohttp.ClientTimeout(total=min(config.poll_interval_s * 5, 30.0))
        last: object = None
        try:
            async with asyncio.timeout(config.version_timeout_s):
                while True:
                    try:
                        async with self._session.get(
                            url, headers=headers, timeout=request_timeout
                        ) as response:
                            if response.status == 200:
                                body = await response.json(content_type=None)
                                last = body.get("version") if isinstance(body, dict) else None
                    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                        _LOGGER.debug("Version poll of %s failed (%s); retrying", target, type(err).__name__)
                    if last == wanted:
                        _LOGGER.info("%s now runs version %s", target, wanted)
                        return wanted
                    await asyncio.sleep(config.poll_interval_s)
        except TimeoutError:
            raise FlashError(
                Failure.of(
                    FailureReason.VERSION_NOT_REACHED,
                    seen=last if isinstance(last, str) else "-",
                    seconds=f"{config.version_timeout_s:g}",
                )
            ) from None


def _size_of(handle: IO[bytes]) -> int:
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(0)
    return size


async def _stream(handle: IO[bytes], size: int, progress: Callable[[int], None]) -> AsyncIterator[bytes]:
    """The file's bytes, read in the executor; progress is the share of bytes handed to the connection."""
    loop = asyncio.get_running_loop()
    sent = 0
    last_percent = -1
    while chunk := await loop.run_in_executor(None, handle.read, UPLOAD_CHUNK):
        yield chunk
        sent += len(chunk)
        percent = min(99, sent * 100 // size) if size else 99
        if percent != last_percent:
            last_percent = percent
            progress(percent)
