"""The firmware a cloud `update_firmware` push announces, validated before anything acts on it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from custom_components.tencent_iot_gateway.engine.errors import (
    Failure,
    FailureReason,
    FieldProblem,
    InvalidFieldError,
    InvalidFirmwareError,
)

VERSION_MAX = 32
DEFAULT_MAX_FIRMWARE_SIZE = 512 * 1024 * 1024

VERSION_MIN = 1
_MD5_RE = re.compile(r"[0-9a-fA-F]{32}")
# IoT Explorer's pushes may name the task and the firmware module; its devices echo both in their progress
# reports (spec notes, OTA 升级协议). Only plausible values are kept; anything else is ignored, never refused.
ECHOED_FIELDS = ("fw_type", "task_id")
_ECHO_TEXT_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def validate_version(value: object) -> str:
    """Return `value` if it can be a firmware version, else raise `InvalidFirmwareError`.

    Tencent's rule, as its device SDKs check it: 1 to 32 characters (its console further limits what it
    accepts to letters, digits, `.`, `-` and `_`, a subset). Anything the cloud may push is accepted; only
    control characters are refused, as they cannot be shown or logged. Where a version becomes part of a
    file name it is encoded there (`flashers.file.image_file_name`), never refused.
    """
    try:
        return check_version(value, "version")
    except InvalidFieldError as err:
        raise InvalidFirmwareError(Failure.of(FailureReason.INVALID_FIRMWARE, remote=str(err))) from None


def check_version(value: object, field: str) -> str:
    """`validate_version` for a value a user entered: raises `InvalidFieldError` naming `field`."""
    if not isinstance(value, str) or not value:
        raise InvalidFieldError(field, FieldProblem.REQUIRED)
    if not VERSION_MIN <= len(value) <= VERSION_MAX:
        raise InvalidFieldError(field, FieldProblem.TOO_LONG, length=len(value), max=VERSION_MAX)
    if not value.isprintable():
        raise InvalidFieldError(field, FieldProblem.CONTROL_CHARACTER)
    return value


def url_without_query(url: str) -> str:
    """The URL as it may be logged or shown: a pre-signed URL's query and any `user:password@` are credentials."""
    parts = urlsplit(url)
    host_and_port = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host_and_port, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class FirmwareSpec:
    """One firmware image as announced: where to get it and how to check it."""

    url: str
    md5: str
    size: int
    version: str
    # Fields of the push that the reports about it repeat (`fw_type`, `task_id`), as (name, value) pairs.
    echo: tuple[tuple[str, str | int], ...] = ()

    def __repr__(self) -> str:
        """Never show the signed query, even in a traceback."""
        return f"FirmwareSpec(url={self.public_url!r}, md5={self.md5!r}, size={self.size}, version={self.version!r})"

    @property
    def public_url(self) -> str:
        """The URL without its signed query."""
        return url_without_query(self.url)

    @property
    def host(self) -> str:
        """Where the image comes from, for release notes."""
        return urlsplit(self.url).hostname or ""

    @property
    def image_key(self) -> tuple[str, int]:
        """Images with the same key are the same bytes: one download serves them all."""
        return (self.md5, self.size)

    @property
    def report_fields(self) -> dict[str, str | int]:
        """What every progress report about this push repeats (empty for IoT Hub's plain pushes)."""
        return dict(self.echo)

    def to_dict(self) -> dict[str, Any]:
        """The push as stored, to survive a restart."""
        stored: dict[str, Any] = {
            "url": self.url,
            "md5sum": self.md5,
            "file_size": self.size,
            "version": self.version,
        }
        return stored | self.report_fields

    @classmethod
    def parse(cls, payload: Mapping[str, Any], *, max_size: int = DEFAULT_MAX_FIRMWARE_SIZE) -> FirmwareSpec:
        """Validate the fields of an `update_firmware` push (or of `to_dict`'s output)."""
        version = validate_version(payload.get("version"))
        url = payload.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidFirmwareError("url is missing or not a string")
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname or any(c.isspace() for c in url):
            raise InvalidFirmwareError(f"url {url_without_query(url)!r} is not an http or https URL")
        md5 = payload.get("md5sum")
        if not isinstance(md5, str) or not _MD5_RE.fullmatch(md5):
            raise InvalidFirmwareError("md5sum is not 32 hexadecimal digits")
        size = payload.get("file_size")
        if isinstance(size, bool) or not isinstance(size, int):
            raise InvalidFirmwareError("file_size is missing or not an integer")
        if size < 1:
            raise InvalidFirmwareError(f"file_size {size} is not positive")
        if size > max_size:
            raise InvalidFirmwareError(f"file_size {size} exceeds the configured maximum of {max_size} bytes")
        return cls(url=url, md5=md5.lower(), size=size, version=version, echo=echoed_fields(payload))


def echoed_fields(payload: Mapping[str, Any]) -> tuple[tuple[str, str | int], ...]:
    """The push's fields to repeat in its reports; unknown fields and odd values are ignored (tolerated)."""
    kept: list[tuple[str, str | int]] = []
    for name in ECHOED_FIELDS:
        value = payload.get(name)
        if (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63) or (
            isinstance(value, str) and _ECHO_TEXT_RE.fullmatch(value)
        ):
            kept.append((name, value))
    return tuple(kept)
