"""The emulator's firmware store: images uploaded per product and version, kept on disk across restarts.

Images can be hundreds of MiB, so an upload is streamed to disk in chunks (hashing and writing in the
executor) and never held whole in memory. Each image lives under a random object name, so no text from a
request ever becomes part of a path; an index JSON maps (product, version) to it and survives a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import hashlib
import json
import logging
from pathlib import Path
import re
import secrets
from typing import IO, Any

import aiohttp

_LOGGER = logging.getLogger(__name__)

PRODUCT_ID_MAX = 10
VERSION_MAX = 32
CHUNK_SIZE = 256 * 1024
DEFAULT_MAX_IMAGE_SIZE = 1024 * 1024 * 1024
INDEX_FILE = "index.json"
OBJECTS_DIR = "objects"

_PRODUCT_ID_RE = re.compile(r"[A-Za-z0-9]{1,10}")
# Same rule as the integration applies to pushed versions, written again here on purpose: the emulator is an
# independent implementation and must not import the integration.
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]{0,31}")
_OBJECT_NAME_RE = re.compile(r"[0-9a-f]{32}\.bin")
_MD5_RE = re.compile(r"[0-9a-f]{32}")


class FirmwareError(ValueError):
    """An upload that cannot be stored (bad product id or version, empty or too large an image)."""


def validate_product_id(value: object) -> str:
    """Return `value` if it can be a product id, else raise `FirmwareError`."""
    if not isinstance(value, str) or not _PRODUCT_ID_RE.fullmatch(value):
        raise FirmwareError(f"product_id must be 1 to {PRODUCT_ID_MAX} letters or digits")
    return value


def validate_version(value: object) -> str:
    """Return `value` if it can be a firmware version, else raise `FirmwareError`."""
    if not isinstance(value, str) or not _VERSION_RE.fullmatch(value):
        raise FirmwareError(
            f"version must be 1 to {VERSION_MAX} characters of letters, digits and . _ + -, "
            "starting with a letter or digit"
        )
    return value


def is_object_name(value: str) -> bool:
    """Whether `value` has the shape of an object name this store hands out."""
    return _OBJECT_NAME_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Firmware:
    """One stored image of a product's firmware version."""

    product_id: str
    version: str
    md5: str
    size: int
    path: Path
    object_name: str

    @property
    def key(self) -> str:
        """`PID/VERSION`: how the console names this firmware (stats, faults)."""
        return f"{self.product_id}/{self.version}"

    def to_json(self) -> dict[str, Any]:
        """The console's view of this firmware."""
        return {"product_id": self.product_id, "version": self.version, "md5": self.md5, "size": self.size}


class FirmwareStore:
    """Firmware images on disk under `directory`, indexed by product id and version.

    Construction reads the (small) index synchronously: it happens once, while the emulator starts.
    """

    def __init__(self, directory: Path, *, max_size: int = DEFAULT_MAX_IMAGE_SIZE) -> None:
        """Open (and create if needed) the store in `directory`; images above `max_size` bytes are refused."""
        self.directory = directory
        self.max_size = max_size
        self._objects = directory / OBJECTS_DIR
        self._objects.mkdir(parents=True, exist_ok=True)
        self._index_path = directory / INDEX_FILE
        self._by_key: dict[tuple[str, str], Firmware] = {}
        self._by_object: dict[str, Firmware] = {}
        self._lock = asyncio.Lock()
        for firmware in self._read_index():
            self._remember(firmware)

    def get(self, product_id: str, version: str) -> Firmware | None:
        """The firmware uploaded for this product and version, if any."""
        return self._by_key.get((product_id, version))

    def by_object(self, object_name: str) -> Firmware | None:
        """The firmware stored under `object_name`, if any."""
        return self._by_object.get(object_name)

    def all(self) -> list[Firmware]:
        """Every stored firmware, by product then version."""
        return sorted(self._by_key.values(), key=lambda fw: (fw.product_id, fw.version))

    async def add(self, product_id: str, version: str, body: bytes | aiohttp.StreamReader) -> Firmware:
        """Store `body` as this product's `version`, replacing an earlier upload of the same version."""
        validate_product_id(product_id)
        validate_version(version)
        object_name = f"{secrets.token_hex(16)}.bin"
        path = self._objects / object_name
        partial = path.with_suffix(".part")
        try:
            md5, size = await self._write(partial, body)
            await run_blocking(partial.replace, path)
        except BaseException:
            await run_blocking(_unlink_quietly, partial)
            raise
        firmware = Firmware(product_id, version, md5, size, path, object_name)
        async with self._lock:
            previous = self._by_key.get((product_id, version))
            self._remember(firmware)
            if previous is not None:
                del self._by_object[previous.object_name]
            await run_blocking(self._write_index, self.all())
        if previous is not None:
            # A download already streaming the old file keeps its open descriptor: unlinking is safe.
            await run_blocking(_unlink_quietly, previous.path)
        _LOGGER.debug("Stored firmware %s (%d bytes, md5 %s)", firmware.key, size, md5)
        return firmware

    async def _write(self, path: Path, body: bytes | aiohttp.StreamReader) -> tuple[str, int]:
        """Write `body` to `path` chunk by chunk; return its md5 (lowercase hex) and size."""
        digest = hashlib.md5(usedforsecurity=False)
        if isinstance(body, bytes):
            if len(body) > self.max_size:
                raise FirmwareError(f"the image is larger than {self.max_size} bytes")
            if not body:
                raise FirmwareError("the image is empty")
            await run_blocking(_write_all, path, body, digest)
            return digest.hexdigest(), len(body)
        size = 0
        handle = await run_blocking(path.open, "wb")
        try:
            while chunk := await body.read(CHUNK_SIZE):
                size += len(chunk)
                if size > self.max_size:
                    raise FirmwareError(f"the image is larger than {self.max_size} bytes")
                await run_blocking(_write_chunk, handle, chunk, digest)
        finally:
            await run_blocking(handle.close)
        if size == 0:
            raise FirmwareError("the image is empty")
        return digest.hexdigest(), size

    def _remember(self, firmware: Firmware) -> None:
        self._by_key[firmware.product_id, firmware.version] = firmware
        self._by_object[firmware.object_name] = firmware

    def _read_index(self) -> list[Firmware]:
        """The firmware of the index file whose image is still on disk; entries that do not parse are skipped."""
        try:
            raw = json.loads(self._index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            _LOGGER.warning("Ignoring the unreadable firmware index %s: %s", self._index_path, err)
            return []
        entries = raw.get("firmware") if isinstance(raw, dict) else None
        found: list[Firmware] = []
        for entry in entries if isinstance(entries, list) else []:
            firmware = self._parse_entry(entry)
            if firmware is None:
                _LOGGER.warning("Skipping a firmware index entry that does not parse or whose image is gone")
            else:
                found.append(firmware)
        return found

    def _parse_entry(self, entry: object) -> Firmware | None:
        if not isinstance(entry, dict):
            return None
        try:
            product_id = validate_product_id(entry.get("product_id"))
            version = validate_version(entry.get("version"))
        except FirmwareError:
            return None
        md5, size, object_name = entry.get("md5"), entry.get("size"), entry.get("object_name")
        if not (isinstance(md5, str) and _MD5_RE.fullmatch(md5)):
            return None
        if not (isinstance(size, int) and size > 0 and isinstance(object_name, str)):
            return None
        if not is_object_name(object_name):
            return None
        path = self._objects / object_name
        if not path.is_file() or path.stat().st_size != size:
            return None
        return Firmware(product_id, version, md5, size, path, object_name)

    def _write_index(self, firmware: list[Firmware]) -> None:
        """Replace the index atomically, so a crash mid-write leaves the previous one."""
        entries = [fw.to_json() | {"object_name": fw.object_name} for fw in firmware]
        temporary = self._index_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"firmware": entries}, indent=1), encoding="utf-8")
        temporary.replace(self._index_path)


async def run_blocking[T](func: Callable[..., T], *args: Any) -> T:
    """Run `func(*args)` in the default executor: file I/O and big hashing stay off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def _write_chunk(handle: IO[bytes], chunk: bytes, digest: Any) -> None:
    # Hashing here, off the loop, as well: hashlib releases the GIL for large buffers.
    digest.update(chunk)
    handle.write(chunk)


def _write_all(path: Path, body: bytes, digest: Any) -> None:
    with path.open("wb") as handle:
        for start in range(0, len(body), CHUNK_SIZE):
            _write_chunk(handle, body[start : start + CHUNK_SIZE], digest)


def _unlink_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)
