"""The downloads of the OTA jobs: one per image, shared by every job that wants the same bytes.

Jobs whose firmware has the same MD5 and size share one download and one verification; at most
`max_downloads` downloads run at once, the others wait for a slot. The download's progress is handed to each
job that shares it (`ProgressFanOut`), which shows it and reports it with the cadence of spec §3. A URL that
has expired is replaced by asking the cloud again (a version report makes it re-send the pending push).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
import logging
from pathlib import Path

from custom_components.tencent_iot_gateway.engine.errors import (
    Failure,
    FailureReason,
    FailureValue,
    NotConnectedError,
    OperationTimeoutError,
    TaskEndedError,
    UrlExpiredError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.device_states import DeviceEntry, DeviceStates
from custom_components.tencent_iot_gateway.engine.ota.download import DownloadProgress
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.job_model import (
    DOWNLOAD_SHARE,
    ImageFetcher,
    JobState,
    OtaSettings,
)
from custom_components.tencent_iot_gateway.engine.ota.job_phases import JobPhase
from custom_components.tencent_iot_gateway.engine.ota.outcome_reports import OutcomeReports
from custom_components.tencent_iot_gateway.engine.ota.progress_fan_out import ProgressFanOut
from custom_components.tencent_iot_gateway.engine.ota.shutdown import Shutdown

_LOGGER = logging.getLogger(__name__)

MAX_URL_REFRESHES = 2


@dataclass
class _SharedDownload:
    """One download serving every job that wants the same bytes."""

    task: asyncio.Task[Path]
    listeners: dict[DeviceId, Callable[[DownloadProgress], None]] = field(default_factory=dict)
    progress: DownloadProgress | None = None


class SharedDownloads:
    """Runs the downloads of one gateway's jobs, one per image, `max_downloads` at a time."""

    def __init__(
        self,
        downloader: ImageFetcher,
        settings: OtaSettings,
        states: DeviceStates,
        reports: OutcomeReports,
        shutdown: Shutdown,
    ) -> None:
        """Fetch through `downloader`; show progress in `states`, report it through `reports`."""
        self._downloader = downloader
        self._fresh_url_timeout_s = settings.fresh_url_timeout_s
        self._states = states
        self._reports = reports
        self._shutdown = shutdown
        self._slots = asyncio.Semaphore(settings.max_downloads)
        self._downloads: dict[tuple[str, int], _SharedDownload] = {}
        self._fresh_urls: dict[DeviceId, asyncio.Future[FirmwareSpec]] = {}

    async def resume_point(self, target: FirmwareSpec) -> int:
        """Bytes of the image already on disk that a download now would not fetch again."""
        return await self._downloader.resume_point(target)

    def start_percent(self, target: FirmwareSpec, resumed: int) -> int:
        """Where a job's download stands as it starts: the shared download's, else what is kept on disk."""
        shared = self._downloads.get(target.image_key)
        if shared is not None and shared.progress is not None and not shared.task.done():
            # Joining a download from byte 0 starts at "0" like the others (`_on_progress`).
            return 0 if shared.progress.fresh else shared.progress.percent
        return resumed * 100 // target.size

    def offer(self, device: DeviceId, firmware: FirmwareSpec) -> None:
        """A push for `device` arrived: it answers the device's wait for a fresh URL, if one waits."""
        waiting = self._fresh_urls.get(device)
        if waiting is not None and not waiting.done():
            waiting.set_result(firmware)

    async def download(self, entry: DeviceEntry, target: FirmwareSpec) -> Path:
        """The verified image of `target`, asking the cloud for a fresh URL when the one it has expired."""
        refreshes = 0
        while True:
            try:
                return await self._join(entry, target)
            except UrlExpiredError as expired:
                if refreshes >= MAX_URL_REFRESHES:
                    raise
                refreshes += 1
                try:
                    target = await self._fresh_url(entry, target)
                except UrlExpiredError as err:
                    raise type(err)(_with_status(err.failure, expired.http_status)) from None

    async def async_stop(self) -> None:
        """Stop every download (the jobs have stopped); what is on disk stays for a later resume."""
        downloads = [shared.task for shared in self._downloads.values()]
        for task in downloads:
            # A download cancelled once is saving its resume state: a second cancel would interrupt that.
            if not task.cancelling():
                task.cancel()
        await asyncio.gather(*downloads, return_exceptions=True)
        self._downloads.clear()

    async def _fresh_url(self, entry: DeviceEntry, target: FirmwareSpec) -> FirmwareSpec:
        """Re-report the running version: the cloud answers by pushing the pending firmware with a new URL."""
        if entry.snapshot.installed_version is None:
            # The cloud re-sends a push after a `report_version`, which needs the version the device runs.
            raise UrlExpiredError(Failure.of(FailureReason.URL_EXPIRED_VERSION_UNKNOWN))
        _LOGGER.info("The firmware URL for %s has expired; asking the cloud for a fresh one", entry.device)
        waiting: asyncio.Future[FirmwareSpec] = asyncio.get_running_loop().create_future()
        self._fresh_urls[entry.device] = waiting
        try:
            await self._reports.report_version(entry)
            async with asyncio.timeout(self._fresh_url_timeout_s):
                fresh = await waiting
        except TimeoutError:
            # The cloud re-pushes a pending task after a report_version (spec §3): silence means it has none.
            raise TaskEndedError from None
        except NotConnectedError, OperationTimeoutError:
            raise UrlExpiredError(Failure.of(FailureReason.URL_EXPIRED_OFFLINE)) from None
        finally:
            if self._fresh_urls.get(entry.device) is waiting:
                del self._fresh_urls[entry.device]
        if fresh.image_key != target.image_key:
            raise UrlExpiredError(Failure.of(FailureReason.URL_EXPIRED_OTHER_IMAGE))
        return fresh

    async def _join(self, entry: DeviceEntry, target: FirmwareSpec) -> Path:
        while True:
            try:
                return await self._join_once(entry, target)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._shutdown.stopping or (task is not None and task.cancelling()):
                    raise
                # The shared download was stopped by the jobs that left it a moment ago (a cancel just before
                # this install): this job still wants the bytes, so it starts a download of its own.

    async def _join_once(self, entry: DeviceEntry, target: FirmwareSpec) -> Path:
        shared = self._downloads.get(target.image_key)
        if shared is not None and shared.task.cancelling() and not shared.task.done():
            # Still saving its resume state after a cancel: joining it would end this job as "cancelled".
            await asyncio.gather(shared.task, return_exceptions=True)
        if shared is None or shared.task.done():
            shared = _SharedDownload(
                asyncio.get_running_loop().create_task(self._run(target), name=f"download {target.md5}")
            )
            self._downloads[target.image_key] = shared
        shared.listeners[entry.device] = lambda progress: self._on_progress(entry, target, progress)
        if shared.progress is not None:
            self._on_progress(entry, target, shared.progress)
        try:
            return await asyncio.shield(shared.task)
        finally:
            shared.listeners.pop(entry.device, None)
            if not shared.listeners and not shared.task.done():
                # Nobody needs these bytes any more; what is on disk stays for a later resume.
                shared.task.cancel()
            if shared.task.done() and self._downloads.get(target.image_key) is shared:
                del self._downloads[target.image_key]

    async def _run(self, target: FirmwareSpec) -> Path:
        """The one download of an image, once a slot is free; every job sharing it hears its progress."""
        async with self._slots:
            shared = self._downloads[target.image_key]
            fan_out = ProgressFanOut(shared.listeners)

            def on_progress(progress: DownloadProgress) -> None:
                shared.progress = progress
                fan_out.deliver(progress)

            try:
                path = await self._downloader.fetch(target, on_progress)
                await fan_out.drain()  # every job heard "100" before any of them flashes
            finally:
                fan_out.cancel()
            return path

    def _on_progress(self, entry: DeviceEntry, target: FirmwareSpec, progress: DownloadProgress) -> None:
        total = progress.total or target.size
        fraction = progress.downloaded / total if total else 0.0
        finished = progress.downloaded >= total
        state = JobState.VERIFYING if finished else JobState.DOWNLOADING
        self._states.update(
            entry,
            state=state,
            phase=JobPhase.VERIFYING if finished else JobPhase.DOWNLOADING,
            percent=int(fraction * DOWNLOAD_SHARE),
            downloaded=progress.downloaded,
            total=total,
            speed_bps=progress.speed_bps,
            eta_s=progress.eta_s,
        )
        # Spec §3 cadence: "0" at once when a download starts from byte 0 (also for a job that joins a shared
        # download from byte 0 late: its cloud task has not heard it), "100" at once at the end. Each marker is
        # sent once per job (`ProgressReporter`).
        if progress.fresh:
            self._reports.progress.downloading(entry.device, 0, urgent=True)
        self._reports.progress.downloading(entry.device, int(fraction * 100), urgent=finished)


def _with_status(failure: Failure, status: int | None) -> Failure:
    """`failure` with the HTTP status that made a fresh URL needed, unless it names one already."""
    if status is None or failure.get(FailureValue.HTTP_STATUS) is not None:
        return failure
    return Failure.of(failure.reason, **failure.placeholders, http_status=status)
