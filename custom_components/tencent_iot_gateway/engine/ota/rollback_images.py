"""The last image each sub-device installed successfully, kept to flash it back when a newer one is unhealthy.

Images live in one directory under a disk budget: keeping a new one evicts the oldest others until everything
fits, and an image larger than the budget is not kept (nor is the device's older one: it no longer runs it).
The index is a JSON file beside them; every file operation runs in the executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import json
import logging
from pathlib import Path
import shutil
import time
from typing import Any

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec

_LOGGER = logging.getLogger(__name__)

INDEX_NAME = "index.json"
DEFAULT_ROLLBACK_BUDGET = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class KeptImage:
    """An image a device ran successfully: where it is, and what to tell its flasher about it."""

    path: Path
    version: str
    md5: str
    size: int
    kept_at: float

    def spec(self) -> FirmwareSpec:
        """A firmware description for the flasher (the image is local: the URL names the file)."""
        return FirmwareSpec(url=self.path.as_uri(), md5=self.md5, size=self.size, version=self.version)


class RollbackImages:
    """Per device, the last good image, within `budget_bytes` in total."""

    def __init__(self, directory: Path, budget_bytes: int = DEFAULT_ROLLBACK_BUDGET) -> None:
        """Nothing is read before the first use."""
        self._directory = directory
        self._budget = budget_bytes
        self._kept: dict[str, KeptImage] | None = None
        self._lock = asyncio.Lock()

    async def get(self, device: DeviceId) -> KeptImage | None:
        """The device's last good image, if kept."""
        async with self._lock:
            kept = await self._load()
            return kept.get(device.key)

    async def keep(self, device: DeviceId, firmware: FirmwareSpec, image: Path) -> bool:
        """Keep `image` as the device's last good one; False when it does not fit the budget."""
        async with self._lock:
            kept = await self._load()
            old = kept.pop(device.key, None)
            if old is not None:
                await _run(_unlink, old.path)
            if firmware.size > self._budget:
                _LOGGER.info(
                    "Not keeping %s of %s for a rollback: %d bytes exceed the budget",
                    firmware.version,
                    device,
                    firmware.size,
                )
                await self._save(kept)
                return False
            for key, other in sorted(kept.items(), key=lambda item: item[1].kept_at):
                if sum(k.size for k in kept.values()) + firmware.size <= self._budget:
                    break
                del kept[key]
                await _run(_unlink, other.path)
            path = self._directory / f"{device.product_id}__{device.device_name}.bin"
            await _run(_copy, image, path)
            kept[device.key] = KeptImage(path, firmware.version, firmware.md5, firmware.size, time.time())
            await self._save(kept)
            return True

    async def remove(self, device: DeviceId) -> None:
        """Forget the device's image (it was removed)."""
        async with self._lock:
            kept = await self._load()
            old = kept.pop(device.key, None)
            if old is not None:
                await _run(_unlink, old.path)
                await self._save(kept)

    async def _load(self) -> dict[str, KeptImage]:
        kept = self._kept
        if kept is None:
            kept = self._kept = await _run(_read_index, self._directory / INDEX_NAME)
        return kept

    async def _save(self, kept: dict[str, KeptImage]) -> None:
        self._kept = kept
        await _run(_write_index, self._directory / INDEX_NAME, kept)


async def _run[T](func: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    shutil.copyfile(source, partial)
    partial.replace(target)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _read_index(path: Path) -> dict[str, KeptImage]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError, ValueError:
        return {}
    kept: dict[str, KeptImage] = {}
    for key, item in raw.items() if isinstance(raw, dict) else ():
        try:
            image = KeptImage(
                Path(item["path"]),
                str(item["version"]),
                str(item["md5"]),
                int(item["size"]),
                float(item["kept_at"]),
            )
        except KeyError, TypeError, ValueError:
            continue
        if image.path.is_file():
            kept[key] = image
    return kept


def _write_index(path: Path, kept: dict[str, KeptImage]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        key: {"path": str(k.path), "version": k.version, "md5": k.md5, "size": k.size, "kept_at": k.kept_at}
        for key, k in kept.items()
    }
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(document), encoding="utf-8")
    partial.replace(path)
