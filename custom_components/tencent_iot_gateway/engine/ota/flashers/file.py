"""The `file` flasher: drops the image into a directory (a share a device or a script picks it up from).

The file is named `{product_id}_{device_name}_{version}.bin`, each part checked again here (a version must
never become a path), and written atomically: a temporary file in the same directory, flushed, then renamed
over the final name, so a reader never sees half an image.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
import errno
import logging
import os
from pathlib import Path
import re
import secrets
from typing import IO, Any, ClassVar
from urllib.parse import quote

from custom_components.tencent_iot_gateway.engine.errors import (
    Failure,
    FailureReason,
    FieldProblem,
    FlashError,
    InvalidFieldError,
    InvalidFirmwareError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec, validate_version
from custom_components.tencent_iot_gateway.engine.ota.flashers.base import check_kind, check_text

_LOGGER = logging.getLogger(__name__)

COPY_CHUNK = 1024 * 1024
# Device names may hold `:` and `@`, which some file systems and shares refuse: they become `_`.
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._\-]")


@dataclass(frozen=True, slots=True)
class FileFlasherConfig:
    """Write images into `directory` (an absolute path)."""

    kind: ClassVar[str] = "file"

    directory: str

    def __post_init__(self) -> None:
        """Validate the directory, naming the field."""
        check_text(self.directory, "directory")
        if not Path(self.directory).is_absolute():
            raise InvalidFieldError("directory", FieldProblem.ABSOLUTE_PATH)

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {"kind": self.kind, "directory": self.directory}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileFlasherConfig:
        """Parse the stored form (raises `InvalidFieldError`)."""
        check_kind(data, cls.kind)
        return cls(directory=check_text(data.get("directory"), "directory"))


def image_file_name(target: DeviceId, version: str) -> str:
    """`{product_id}_{device_name}_{version}.bin`, with every part checked; raises `FlashError` otherwise.

    A version may hold any character Tencent allows (`validate_version`): what is not safe in a file name
    (a `/`, a space, `%`...) is percent-encoded, so two versions never share a name and none is refused.
    """
    try:
        validate_version(version)
    except InvalidFirmwareError:
        raise FlashError(Failure.of(FailureReason.UNSAFE_FILE_NAME, path=repr(version))) from None
    device_part = _UNSAFE_NAME_CHARS.sub("_", target.device_name)
    product_part = _UNSAFE_NAME_CHARS.sub("_", target.product_id)
    name = f"{product_part}_{device_part}_{quote(version, safe='+')}.bin"
    if name.startswith(".") or "/" in name or "\\" in name:
        raise FlashError(Failure.of(FailureReason.UNSAFE_FILE_NAME, path=name))
    return name


class FileFlasher:
    """Flashes by writing the image into a directory."""

    def __init__(self, config: FileFlasherConfig) -> None:
        """Write into `config.directory`."""
        self._directory = Path(config.directory)

    async def flash(
        self, image: Path, target: DeviceId, firmware: FirmwareSpec, progress: Callable[[int], None]
    ) -> str:
        """Copy `image` to the directory atomically; return `firmware.version`."""
        name = image_file_name(target, firmware.version)
        final = self._directory / name
        if final.parent != self._directory:
            raise FlashError(Failure.of(FailureReason.UNSAFE_FILE_NAME, path=name))
        temporary = self._directory / f".{name}.{secrets.token_hex(4)}.tmp"
        loop = asyncio.get_running_loop()
        try:
            source, sink = await loop.run_in_executor(None, _open_pair, image, temporary)
        except _ImageUnreadableError:
            raise FlashError(Failure.of(FailureReason.IMAGE_UNREADABLE, path=image)) from None
        except FileExistsError, NotADirectoryError:
            blocker = await loop.run_in_executor(None, _first_non_directory, self._directory)
            raise FlashError(Failure.of(FailureReason.FILE_NOT_A_DIRECTORY, path=blocker)) from None
        except OSError as err:
            raise FlashError(_write_failure(self._directory, err)) from None
        try:
            total = await loop.run_in_executor(None, _size_of, source)
            copied = 0
            while chunk := await loop.run_in_executor(None, source.read, COPY_CHUNK):
                await loop.run_in_executor(None, sink.write, chunk)
                copied += len(chunk)
                progress(min(99, copied * 100 // total) if total else 99)
            await loop.run_in_executor(None, _finish, sink, temporary, final)
        except OSError as err:
            await loop.run_in_executor(None, _discard, sink, temporary)
            raise FlashError(_write_failure(self._directory, err)) from None
        except BaseException:
            await loop.run_in_executor(None, _discard, sink, temporary)
            raise
        finally:
            await loop.run_in_executor(None, source.close)
        progress(100)
        _LOGGER.info("Wrote firmware %s for %s to %s", firmware.version, target, final)
        return firmware.version


def _write_failure(directory: Path, err: OSError) -> Failure:
    """What a failed write into `directory` means for the user (the OS's words only when none fits)."""
    if err.errno == errno.ENOSPC:
        return Failure.of(FailureReason.FILE_DISK_FULL, path=directory)
    if err.errno in {errno.EACCES, errno.EPERM, errno.EROFS}:
        return Failure.of(FailureReason.FILE_NOT_WRITABLE, path=directory)
    if err.errno == errno.ENOENT:
        return Failure.of(FailureReason.FILE_PATH_MISSING, path=directory)
    return Failure.of(FailureReason.FILE_WRITE_FAILED, path=directory, remote=err.strerror or str(err))


class _ImageUnreadableError(Exception):
    """The downloaded image (the source) cannot be opened: not a problem of the target directory."""


def _open_pair(image: Path, temporary: Path) -> tuple[IO[bytes], IO[bytes]]:
    temporary.parent.mkdir(parents=True, exist_ok=True)
    try:
        source = image.open("rb")
    except OSError as err:
        raise _ImageUnreadableError from err
    try:
        sink = temporary.open("xb")
    except BaseException:
        source.close()
        raise
    return source, sink


def _first_non_directory(directory: Path) -> Path:
    """The part of `directory`'s path that exists but is not a directory (`directory` itself if none is)."""
    for part in (*reversed(directory.parents), directory):
        if part.exists() and not part.is_dir():
            return part
    return directory


def _size_of(handle: IO[bytes]) -> int:
    return os.fstat(handle.fileno()).st_size


def _finish(sink: IO[bytes], temporary: Path, final: Path) -> None:
    """Flush to disk, then rename: readers see the old file or the whole new one, never a part."""
    sink.flush()
    os.fsync(sink.fileno())
    sink.close()
    temporary.replace(final)


def _discard(sink: IO[bytes], temporary: Path) -> None:
    sink.close()
    temporary.unlink(missing_ok=True)
