"""OTA jobs of the sub-devices: one explicit state machine per device, one scheduler for all of them.

idle → available → queued → downloading → verifying → flashing → done | failed(code, message)

Jobs whose firmware has the same MD5 and size share one download and one verification; at most
`max_downloads` downloads and `max_flashes` flashes run at once, the rest wait in order ("queued"). What must
survive a restart (installed versions, the pending push, whether an install was under way) is saved
through a `StateStore`; the download itself resumes through the downloader's own state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import contextlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
import logging
from pathlib import Path
import time
from typing import Any, Protocol

from .background import BackgroundTasks
from .download import DownloadProgress
from .errors import (
    FlashError,
    InvalidFirmwareError,
    NotConnectedError,
    OperationTimeoutError,
    OtaError,
    OtaResultCode,
    TencentIotError,
    UrlExpiredError,
)
from .firmware import DEFAULT_MAX_FIRMWARE_SIZE, FirmwareSpec, validate_version
from .flashers.base import Flasher
from .identity import DeviceId
from .ota_protocol import (
    InvalidUpdate,
    ProgressState,
    Unrecognised,
    UpdateFirmware,
    VersionAcknowledged,
    parse_update_topic,
    report_progress,
    report_version,
)
from .storage import StateStore
from .topics import ota_report
from .uplink import Publish

_LOGGER = logging.getLogger(__name__)

REPORT_INTERVAL_S = 1.0
FRESH_URL_TIMEOUT_S = 30.0
MAX_URL_REFRESHES = 2
# One scale for the UI: the download fills the first half of the bar, flashing the second.
DOWNLOAD_SHARE = 50
_STORE_VERSION = 1


class JobState(StrEnum):
    """Where a sub-device's firmware update stands."""

    IDLE = "idle"
    AVAILABLE = "available"
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    FLASHING = "flashing"
    DONE = "done"
    FAILED = "failed"

    @property
    def running(self) -> bool:
        """Whether a job is under way in this state."""
        return self in _RUNNING


_RUNNING = frozenset({JobState.QUEUED, JobState.DOWNLOADING, JobState.VERIFYING, JobState.FLASHING})


class Downloader(Protocol):
    """Fetches and verifies one image (engine/download.py)."""

    async def fetch(self, spec: FirmwareSpec, on_progress: Callable[[DownloadProgress], None]) -> Path:
        """Return the path of the verified image."""


class ImageCache(Protocol):
    """Counts the jobs that need an image and deletes it once none does (engine/firmware_cache.py)."""

    def acquire(self, item: FirmwareSpec) -> None:
        """One more job needs `item`'s image."""

    async def release(self, item: FirmwareSpec, *, discard_partial: bool = False) -> None:
        """One job less; the last one out deletes the image (and the partial file when asked)."""


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """Everything the layer above shows of one sub-device's update, at one moment."""

    device: DeviceId
    state: JobState
    installed_version: str
    target: FirmwareSpec | None = None
    percent: int | None = None
    downloaded: int = 0
    total: int = 0
    speed_bps: float = 0.0
    eta_s: float | None = None
    result_code: int | None = None
    message: str = ""
    failure_key: str | None = None
    """The `translation_key` of the last failure (meaningful while `state` is failed)."""

    @property
    def latest_version(self) -> str:
        """The version on offer, or the installed one when nothing is pending."""
        return self.target.version if self.target is not None else self.installed_version


@dataclass
class _Device:
    """Mutable per-device state, owned by the manager."""

    device: DeviceId
    snapshot: JobSnapshot
    job: asyncio.Task[JobSnapshot] | None = None
    install_requested: bool = False
    last_report: float = -REPORT_INTERVAL_S
    fresh_url: asyncio.Future[FirmwareSpec] | None = None


@dataclass
class _SharedDownload:
    """One download serving every job that wants the same bytes."""

    task: asyncio.Task[Path]
    listeners: dict[DeviceId, Callable[[DownloadProgress], None]] = field(default_factory=dict)
    progress: DownloadProgress | None = None


@dataclass(frozen=True, slots=True)
class OtaSettings:
    """Tunables of the scheduler."""

    max_downloads: int = 2
    max_flashes: int = 2
    max_firmware_size: int = DEFAULT_MAX_FIRMWARE_SIZE
    fresh_url_timeout_s: float = FRESH_URL_TIMEOUT_S


class OtaManager:
    """Runs the OTA jobs of every sub-device of one gateway."""

    def __init__(
        self,
        *,
        publish: Publish,
        downloader: Downloader,
        cache: ImageCache,
        flasher_for: Callable[[DeviceId], Flasher | None],
        store: StateStore,
        on_change: Callable[[JobSnapshot], None],
        auto_install: Callable[[DeviceId], bool],
        settings: OtaSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wire the manager; call `async_load` before adding devices."""
        self._publish = publish
        self._downloader = downloader
        self._cache = cache
        self._flasher_for = flasher_for
        self._store = store
        self._on_change = on_change
        self._auto_install = auto_install
        self._settings = settings or OtaSettings()
        self._clock = clock
        self._devices: dict[DeviceId, _Device] = {}
        self._saved: dict[str, dict[str, Any]] = {}
        self._downloads: dict[tuple[str, int], _SharedDownload] = {}
        self._download_slots = asyncio.Semaphore(self._settings.max_downloads)
        self._flash_slots = asyncio.Semaphore(self._settings.max_flashes)
        self._stopping = False
        self._background = BackgroundTasks("A progress report was not sent", level=logging.DEBUG)

    # -- devices ------------------------------------------------------------------------------------------

    async def async_load(self) -> None:
        """Read what the last run saved."""
        document = await self._store.async_load() or {}
        devices = document.get("devices") if document.get("version") == _STORE_VERSION else None
        self._saved = devices if isinstance(devices, dict) else {}

    def add_device(self, device: DeviceId, installed_version: str) -> JobSnapshot:
        """Track a sub-device; a saved installed version and pending push from the last run win."""
        saved = self._saved.get(device.key, {})
        installed = saved.get("installed")
        installed = (
            installed if isinstance(installed, str) and installed else validate_version(installed_version)
        )
        target: FirmwareSpec | None = None
        if isinstance(saved.get("pending"), dict):
            with contextlib.suppress(InvalidFirmwareError):
                target = FirmwareSpec.parse(saved["pending"], max_size=self._settings.max_firmware_size)
        state = JobState.AVAILABLE if target is not None and target.version != installed else JobState.IDLE
        if state is JobState.IDLE:
            target = None
        entry = _Device(device, JobSnapshot(device, state, installed, target))
        entry.install_requested = bool(saved.get("install_requested")) and target is not None
        self._devices[device] = entry
        return entry.snapshot

    async def remove_device(self, device: DeviceId) -> None:
        """Stop tracking a sub-device, cancelling its job."""
        entry = self._devices.pop(device, None)
        if entry is not None and entry.job is not None:
            entry.job.cancel()
            await asyncio.gather(entry.job, return_exceptions=True)
        self._saved.pop(device.key, None)
        await self._save()

    def snapshot(self, device: DeviceId) -> JobSnapshot:
        """The current state of a sub-device's update."""
        return self._entry(device).snapshot

    @property
    def devices(self) -> list[DeviceId]:
        """The tracked sub-devices."""
        return list(self._devices)

    async def set_installed_version(self, device: DeviceId, version: str) -> None:
        """Record a version flashed by other means, and tell the cloud."""
        entry = self._entry(device)
        validate_version(version)
        target = entry.snapshot.target
        if target is not None and target.version == version:
            target = None
        state = entry.snapshot.state if entry.snapshot.state.running else self._resting_state(target)
        self._update(entry, state=state, installed_version=version, target=target)
        await self._save()
        await self._report_version(entry)

    async def report_versions(self, devices: list[DeviceId]) -> None:
        """Report these sub-devices' versions, as after each (re)connect; resume their interrupted installs."""
        entries = [self._devices[d] for d in devices if d in self._devices]
        for entry in entries:
            await self._report_version(entry)
        for entry in entries:
            if entry.install_requested and entry.job is None and entry.snapshot.target is not None:
                _LOGGER.info(
                    "Resuming the interrupted update of %s to %s", entry.device, entry.snapshot.target.version
                )
                self._start_job(entry)

    # -- messages from the cloud --------------------------------------------------------------------------

    def handle_update_message(self, device: DeviceId, payload: bytes) -> None:
        """Act on one message of `$ota/update/{device}`."""
        entry = self._devices.get(device)
        if entry is None:
            _LOGGER.debug("Ignoring an OTA message for unknown sub-device %s", device)
            return
        message = parse_update_topic(payload, max_size=self._settings.max_firmware_size)
        match message:
            case UpdateFirmware(firmware):
                self._on_update_firmware(entry, firmware)
            case InvalidUpdate(error, version):
                _LOGGER.warning("Refusing an invalid firmware push for %s: %s", device, error)
                self._spawn(self._report_failure(entry, version or entry.snapshot.installed_version, error))
            case VersionAcknowledged(version, code):
                if code != 0:
                    _LOGGER.warning("The cloud refused version %r of %s (result %d)", version, device, code)
            case Unrecognised(reason):
                _LOGGER.warning("Ignoring a message on the OTA topic of %s: %s", device, reason)

    def _on_update_firmware(self, entry: _Device, firmware: FirmwareSpec) -> None:
        current = entry.snapshot
        if entry.fresh_url is not None and not entry.fresh_url.done():
            entry.fresh_url.set_result(firmware)
        if current.state.running and current.target is not None:
            if current.target.version == firmware.version and current.target.image_key == firmware.image_key:
                _LOGGER.debug("%s is already updating to %s; push ignored", entry.device, firmware.version)
                self._update(entry, target=firmware)  # keep the freshest URL
                return
            if current.state is JobState.FLASHING:
                _LOGGER.warning(
                    "%s is flashing %s; the push of %s waits for the next report",
                    entry.device,
                    current.target.version,
                    firmware.version,
                )
                return
            _LOGGER.info(
                "%s: %s replaces the queued update to %s",
                entry.device,
                firmware.version,
                current.target.version,
            )
            assert entry.job is not None
            entry.job.cancel()
            entry.job = None
        if firmware.version == current.installed_version:
            _LOGGER.info("%s already runs %s; nothing to install", entry.device, firmware.version)
            return
        _LOGGER.info("Firmware %s is available for %s", firmware.version, entry.device)
        self._update(
            entry, state=JobState.AVAILABLE, target=firmware, percent=None, result_code=None, message=""
        )
        self._spawn_save()
        if self._auto_install(entry.device):
            self._start_job(entry)

    # -- installing ---------------------------------------------------------------------------------------

    async def install(self, device: DeviceId) -> JobSnapshot:
        """Install the pending firmware (or join the job under way); return when the job has ended.

        Raises the job's `OtaError` when it fails.
        """
        entry = self._entry(device)
        if entry.job is None:
            if entry.snapshot.target is None:
                raise InvalidFirmwareError(f"no firmware update is pending for {device}")
            if self._flasher_for(device) is None:
                raise FlashError(f"{device} has no flasher configured")
            self._start_job(entry)
        assert entry.job is not None
        snapshot = await asyncio.shield(entry.job)
        if snapshot.state is JobState.FAILED:
            raise _error_for(snapshot)
        return snapshot

    async def cancel(self, device: DeviceId) -> None:
        """Stop a queued or downloading job (flashing cannot be interrupted safely)."""
        entry = self._entry(device)
        if entry.job is None:
            return
        if entry.snapshot.state is JobState.FLASHING:
            raise FlashError(f"{device} is flashing; it cannot be cancelled now")
        entry.job.cancel()
        await asyncio.gather(entry.job, return_exceptions=True)

    async def async_stop(self) -> None:
        """Stop every job, keeping what can resume (partial downloads, the install request)."""
        self._stopping = True
        jobs = [entry.job for entry in self._devices.values() if entry.job is not None]
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        downloads = [shared.task for shared in self._downloads.values()]
        for task in downloads:
            # A download cancelled once is saving its resume state: a second cancel would interrupt that.
            if not task.cancelling():
                task.cancel()
        await asyncio.gather(*downloads, return_exceptions=True)
        await self._background.close()
        self._downloads.clear()
        await self._save()

    def _start_job(self, entry: _Device) -> None:
        target = entry.snapshot.target
        assert target is not None
        entry.install_requested = True
        self._cache.acquire(target)
        self._update(entry, state=JobState.QUEUED, percent=None, result_code=None, message="", downloaded=0)
        entry.job = asyncio.get_running_loop().create_task(
            self._run_job(entry, target), name=f"ota {entry.device} {target.version}"
        )
        self._spawn_save()

    async def _run_job(self, entry: _Device, target: FirmwareSpec) -> JobSnapshot:
        try:
            image = await self._download(entry, target)
            target = entry.snapshot.target or target
            async with self._flash_slots:
                version = await self._flash(entry, target, image)
            await self._send_report(entry, report_progress(ProgressState.DONE, target.version))
            entry.install_requested = False
            self._update(entry, state=JobState.DONE, installed_version=version, target=None, percent=100)
            await self._save()
            await self._cache.release(target)
            _LOGGER.info("%s now runs %s", entry.device, version)
            with contextlib.suppress(TencentIotError):
                await self._report_version(entry)
        except OtaError as err:
            entry.install_requested = False
            # Expected (a bad image, a refusing device): once, as a warning; the UI shows it translated.
            _LOGGER.warning(
                "Updating %s to %s failed: %s (code %d)", entry.device, target.version, err, err.code
            )
            self._update(
                entry,
                state=JobState.FAILED,
                percent=None,
                result_code=int(err.code),
                message=str(err),
                failure_key=err.translation_key,
            )
            await self._save()
            await self._cache.release(target)
            with contextlib.suppress(TencentIotError):
                await self._send_report(entry, _fail_report(target.version, err))
        except asyncio.CancelledError:
            if not self._stopping:
                if entry.job is asyncio.current_task():
                    await self._on_cancelled(entry, target)
                else:  # replaced by a push of another version: its bytes are not wanted any more
                    await self._cache.release(target, discard_partial=True)
            raise
        finally:
            if entry.job is asyncio.current_task():
                entry.job = None
        return entry.snapshot

    async def _on_cancelled(self, entry: _Device, target: FirmwareSpec) -> None:
        entry.install_requested = False
        _LOGGER.info("Update of %s to %s cancelled", entry.device, target.version)
        self._update(entry, state=JobState.AVAILABLE, percent=None, downloaded=0, message="")
        await self._save()
        await self._cache.release(target, discard_partial=True)
        with contextlib.suppress(TencentIotError):
            await self._send_report(
                entry,
                report_progress(
                    ProgressState.FAIL,
                    target.version,
                    code=OtaResultCode.UPGRADE_FAILED,
                    message="cancelled by the user",
                ),
            )

    async def _download(self, entry: _Device, target: FirmwareSpec) -> Path:
        refreshes = 0
        while True:
            try:
                return await self._join_download(entry, target)
            except UrlExpiredError:
                if refreshes >= MAX_URL_REFRESHES:
                    raise
                refreshes += 1
                target = await self._fresh_url(entry, target)

    async def _fresh_url(self, entry: _Device, target: FirmwareSpec) -> FirmwareSpec:
        """Re-report the running version: the cloud answers by pushing the pending firmware with a new URL."""
        _LOGGER.info("The firmware URL for %s has expired; asking the cloud for a fresh one", entry.device)
        entry.fresh_url = asyncio.get_running_loop().create_future()
        try:
            await self._report_version(entry)
            async with asyncio.timeout(self._settings.fresh_url_timeout_s):
                fresh = await entry.fresh_url
        except TimeoutError, NotConnectedError, OperationTimeoutError:
            raise UrlExpiredError("the firmware URL expired and the cloud sent no fresh one") from None
        finally:
            entry.fresh_url = None
        if fresh.image_key != target.image_key:
            raise UrlExpiredError("the firmware URL expired and the cloud now offers a different image")
        return fresh

    async def _join_download(self, entry: _Device, target: FirmwareSpec) -> Path:
        shared = self._downloads.get(target.image_key)
        if shared is None or shared.task.done():
            shared = _SharedDownload(
                asyncio.get_running_loop().create_task(
                    self._shared_download(target), name=f"download {target.md5}"
                )
            )
            self._downloads[target.image_key] = shared
        shared.listeners[entry.device] = lambda progress: self._on_download_progress(entry, target, progress)
        if shared.progress is not None:
            self._on_download_progress(entry, target, shared.progress)
        try:
            return await asyncio.shield(shared.task)
        finally:
            shared.listeners.pop(entry.device, None)
            if not shared.listeners and not shared.task.done():
                # Nobody needs these bytes any more; what is on disk stays for a later resume.
                shared.task.cancel()
            if shared.task.done() and self._downloads.get(target.image_key) is shared:
                del self._downloads[target.image_key]

    async def _shared_download(self, target: FirmwareSpec) -> Path:
        async with self._download_slots:
            shared = self._downloads[target.image_key]

            def fan_out(progress: DownloadProgress) -> None:
                shared.progress = progress
                for listener in list(shared.listeners.values()):
                    listener(progress)

            return await self._downloader.fetch(target, fan_out)

    def _on_download_progress(self, entry: _Device, target: FirmwareSpec, progress: DownloadProgress) -> None:
        total = progress.total or target.size
        fraction = progress.downloaded / total if total else 0.0
        first = entry.snapshot.state is JobState.QUEUED
        finished = progress.downloaded >= total
        state = JobState.VERIFYING if finished else JobState.DOWNLOADING
        self._update(
            entry,
            state=state,
            percent=int(fraction * DOWNLOAD_SHARE),
            downloaded=progress.downloaded,
            total=total,
            speed_bps=progress.speed_bps,
            eta_s=progress.eta_s,
        )
        now = self._clock()
        report_percent: int | None = None
        if first and progress.resumed_from == 0 and progress.downloaded == 0:
            report_percent = 0
        elif finished or now - entry.last_report >= REPORT_INTERVAL_S:
            report_percent = int(fraction * 100)
        if report_percent is not None:
            entry.last_report = now
            payload = report_progress(ProgressState.DOWNLOADING, target.version, percent=report_percent)
            self._spawn(self._send_report(entry, payload, qos=0))

    async def _flash(self, entry: _Device, target: FirmwareSpec, image: Path) -> str:
        flasher = self._flasher_for(entry.device)
        if flasher is None:
            raise FlashError(f"{entry.device} has no flasher configured")
        self._update(entry, state=JobState.FLASHING, percent=DOWNLOAD_SHARE)
        await self._send_report(entry, report_progress(ProgressState.BURNING, target.version))

        def on_flash_progress(percent: int) -> None:
            # Only a flasher's own progress moves the bar past the download's half, and never to 100 before
            # the flash has returned (a device may still be rebooting into the image).
            bounded = max(0, min(99, percent))
            self._update(entry, percent=DOWNLOAD_SHARE + bounded * (100 - DOWNLOAD_SHARE) // 100)

        try:
            version = await flasher.flash(image, entry.device, target, on_flash_progress)
        except OtaError:
            raise
        except (OSError, TencentIotError) as err:
            raise FlashError(f"flashing failed: {err}") from err
        if version != target.version:
            raise FlashError(f"the sub-device runs {version!r} after flashing, not {target.version!r}")
        return version

    # -- reports ------------------------------------------------------------------------------------------

    async def _report_version(self, entry: _Device) -> None:
        await self._publish(ota_report(entry.device), report_version(entry.snapshot.installed_version), 1)

    async def _report_failure(self, entry: _Device, version: str, error: OtaError) -> None:
        with contextlib.suppress(TencentIotError):
            await self._send_report(entry, _fail_report(version, error))

    async def _send_report(self, entry: _Device, payload: str, qos: int = 1) -> None:
        await self._publish(ota_report(entry.device), payload, qos)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._background.spawn(coro)

    # -- state --------------------------------------------------------------------------------------------

    def _entry(self, device: DeviceId) -> _Device:
        entry = self._devices.get(device)
        if entry is None:
            raise InvalidFirmwareError(f"{device} is not a sub-device of this gateway")
        return entry

    @staticmethod
    def _resting_state(target: FirmwareSpec | None) -> JobState:
        return JobState.AVAILABLE if target is not None else JobState.IDLE

    def _update(self, entry: _Device, **changes: Any) -> None:
        entry.snapshot = replace(entry.snapshot, **changes)
        self._on_change(entry.snapshot)

    def _spawn_save(self) -> None:
        self._spawn(self._save())

    async def _save(self) -> None:
        devices = dict(self._saved)
        for device, entry in self._devices.items():
            target = entry.snapshot.target
            devices[device.key] = {
                "installed": entry.snapshot.installed_version,
                "pending": target.to_dict() if target is not None else None,
                "install_requested": entry.install_requested,
            }
        self._saved = devices
        await self._store.async_save({"version": _STORE_VERSION, "devices": devices})


def _fail_report(version: str, error: OtaError) -> str:
    return report_progress(ProgressState.FAIL, version, code=error.code, message=str(error))


def _error_for(snapshot: JobSnapshot) -> OtaError:
    """Rebuild the job's error for a caller that awaited it."""
    error = OtaError(snapshot.message)
    if snapshot.result_code is not None:
        with contextlib.suppress(ValueError):
            error.code = OtaResultCode(snapshot.result_code)
    return error
