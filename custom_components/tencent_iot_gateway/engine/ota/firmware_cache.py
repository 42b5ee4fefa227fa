"""Where verified firmware images wait for their flashes: one file per distinct image, shared by every job.

Images are keyed by `FirmwareSpec.image_key` (md5, size): jobs that announce the same bytes share one download
and one file. File names come only from that key (32 hex digits and an integer), never from a version or a
URL, so nothing the cloud sends can steer a path. A job `acquire`s the key while it needs the image and
`release`s it afterwards; the verified image is deleted when the last holder lets go. With `keep_idle`, the
last image let go is kept (one image at most) until another one is let go or `async_close`: Tencent pushes a
task to many sub-devices over time, and jobs that start after the first ones finished then reuse it instead of
downloading it again.

The partial file of a download in progress lives beside the image; it belongs to `Downloader`, which keeps it
across failures so a later attempt (a fresh URL after a 403, a restart) can resume it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
import logging
from pathlib import Path
import re
import shutil

from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec

_LOGGER = logging.getLogger(__name__)

type ImageKey = tuple[str, int]
"""(lowercase md5 hex, size in bytes): `FirmwareSpec.image_key`."""

IMAGE_SUFFIX = ".bin"
PARTIAL_SUFFIX = ".part"

_MD5_RE = re.compile(r"[0-9a-f]{32}")


def image_key_of(item: FirmwareSpec | ImageKey) -> ImageKey:
    """The validated key of a spec or of a key: it becomes a file name, so it is checked every time."""
    md5, size = item.image_key if isinstance(item, FirmwareSpec) else item
    md5 = md5.lower()
    if not _MD5_RE.fullmatch(md5):
        raise ValueError("an image key's md5 must be 32 hexadecimal digits")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError("an image key's size must be a positive integer")
    return (md5, size)


def image_file_stem(item: FirmwareSpec | ImageKey) -> str:
    """`<md5>-<size>`: the name shared by an image, its partial file and its resume state."""
    md5, size = image_key_of(item)
    return f"{md5}-{size}"


def _default_disk_usage(path: Path) -> int:
    return shutil.disk_usage(path).free


class FirmwareCache:
    """Verified images under one directory, reference counted per image key."""

    def __init__(
        self,
        directory: Path,
        *,
        disk_usage: Callable[[Path], int] | None = None,
        keep_idle: bool = False,
    ) -> None:
        """Keep images in `directory` (created on first use); `disk_usage(path)` gives free bytes (tests).

        `keep_idle`: keep the last verified image nobody holds until another one is let go or `async_close`.
        """
        self._directory = directory
        self._disk_usage = disk_usage or _default_disk_usage
        self._refs: dict[ImageKey, int] = {}
        self._keep_idle = keep_idle
        self._idle: ImageKey | None = None

    @property
    def directory(self) -> Path:
        """The folder that holds the images."""
        return self._directory

    def path_for(self, item: FirmwareSpec | ImageKey) -> Path:
        """Where the verified image lives (it exists only once the download has been verified)."""
        return self._directory / f"{image_file_stem(item)}{IMAGE_SUFFIX}"

    def partial_path_for(self, item: FirmwareSpec | ImageKey) -> Path:
        """Where a download in progress writes its bytes."""
        return self._directory / f"{image_file_stem(item)}{PARTIAL_SUFFIX}"

    async def ensure_directory(self) -> None:
        """Create the directory if needed (in the executor)."""
        await asyncio.get_running_loop().run_in_executor(None, self._mkdir)

    async def free_space(self) -> int:
        """Free bytes on the file system of the cache directory (which this creates if needed)."""
        return await asyncio.get_running_loop().run_in_executor(None, self._free_space)

    def acquire(self, item: FirmwareSpec | ImageKey) -> None:
        """Note that one more job needs this image."""
        key = image_key_of(item)
        self._refs[key] = self._refs.get(key, 0) + 1
        if self._idle == key:
            self._idle = None

    async def release(self, item: FirmwareSpec | ImageKey, *, discard_partial: bool = False) -> None:
        """Note that a job no longer needs this image; the last release deletes the verified file.

        Releasing an image nobody acquired deletes it at once (for callers that track their jobs themselves).
        The partial file is kept unless `discard_partial`: it is the Downloader's resume point, used when the
        cloud pushes the same image again (`Downloader.discard` also forgets the resume state).
        """
        key = image_key_of(item)
        count = self._refs.get(key, 0)
        if count > 1:
            self._refs[key] = count - 1
            return
        self._refs.pop(key, None)
        if self._keep_idle and not discard_partial and count == 1:
            # Kept for the jobs of the same push that have not started yet; the one kept before goes.
            previous, self._idle = self._idle, key
            if previous is not None and previous != key:
                await self._delete(previous, discard_partial=False)
            return
        if self._idle == key:
            self._idle = None
        await self._delete(key, discard_partial=discard_partial)

    async def async_close(self) -> None:
        """Delete the image kept idle, if any (the jobs are stopping)."""
        idle, self._idle = self._idle, None
        if idle is not None and idle not in self._refs:
            await self._delete(idle, discard_partial=False)

    async def _delete(self, key: ImageKey, *, discard_partial: bool) -> None:
        doomed = [self.path_for(key)]
        if discard_partial:
            doomed.append(self.partial_path_for(key))
        for path in doomed:
            await asyncio.get_running_loop().run_in_executor(None, _unlink_quietly, path)
        _LOGGER.debug("Deleted cached image %s: no job needs it any more", image_file_stem(key))

    def refcount(self, item: FirmwareSpec | ImageKey) -> int:
        """How many holders the image has now."""
        return self._refs.get(image_key_of(item), 0)

    @asynccontextmanager
    async def hold(self, item: FirmwareSpec | ImageKey) -> AsyncIterator[Path]:
        """`acquire` for the duration of a block; yields the verified image's path."""
        self.acquire(item)
        try:
            yield self.path_for(item)
        finally:
            await self.release(item)

    async def remove_all(self) -> None:
        """Delete the whole cache directory (the integration is being removed)."""
        self._refs.clear()
        self._idle = None
        await asyncio.get_running_loop().run_in_executor(None, self._rmtree)

    def _mkdir(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)

    def _free_space(self) -> int:
        # One executor job: a download asks this before its first byte, and every job is a round trip.
        self._mkdir()
        return self._disk_usage(self._directory)

    def _rmtree(self) -> None:
        shutil.rmtree(self._directory, ignore_errors=True)


def _unlink_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)
