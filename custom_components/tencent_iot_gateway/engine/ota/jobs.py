"""OTA jobs of the sub-devices: one explicit state machine per device, one scheduler for all of them.

idle → available → queued → downloading → verifying → flashing → done | failed(code, message)

Jobs whose firmware has the same MD5 and size share one download and one verification; at most
`max_downloads` downloads and `max_flashes` flashes run at once, the rest wait in order ("queued"). What must
survive a restart (installed versions, the pending push, whether an install was under way, a flash begun, a
terminal report not yet sent) is saved through a `JobStore`; the download itself resumes through the
downloader's own state.

A flash is the one step that cannot be repeated safely, so its outcome is saved before it is reported and a
report that could not be sent is sent after the next reconnect: a lost report never makes a job flash again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import contextlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
import json
import logging
from pathlib import Path
import time
from typing import Any, Protocol

from custom_components.tencent_iot_gateway.engine.background import BackgroundTasks
from custom_components.tencent_iot_gateway.engine.errors import (
    FlashError,
    HealthCheckError,
    InvalidFirmwareError,
    JobSuspendedError,
    NotConnectedError,
    OperationTimeoutError,
    OtaError,
    OtaResultCode,
    RolloutHaltedError,
    TaskEndedError,
    TencentIotError,
    UrlExpiredError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.topics import ota_report
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import (
    DEFAULT_UPLINK_RATE,
    Publish,
    UplinkPriority,
)
from custom_components.tencent_iot_gateway.engine.ota.download import DownloadProgress
from custom_components.tencent_iot_gateway.engine.ota.firmware import (
    DEFAULT_MAX_FIRMWARE_SIZE,
    FirmwareSpec,
    validate_version,
)
from custom_components.tencent_iot_gateway.engine.ota.flashers.base import Flasher, VersionReader
from custom_components.tencent_iot_gateway.engine.ota.health_check import HealthCheck, wait_healthy
from custom_components.tencent_iot_gateway.engine.ota.preflight import GatePoint, Preflight, wait_until_open
from custom_components.tencent_iot_gateway.engine.ota.progress_fan_out import ProgressFanOut
from custom_components.tencent_iot_gateway.engine.ota.progress_reports import (
    KEEPALIVE_INTERVAL_S,
    REPORT_INTERVAL_S,
    ProgressReporter,
    ReportCadence,
    progress_key,
)
from custom_components.tencent_iot_gateway.engine.ota.protocol import (
    InvalidUpdate,
    ProgressState,
    Unrecognised,
    UpdateFirmware,
    VersionAcknowledged,
    parse_update_topic,
    report_progress,
    report_version,
)
from custom_components.tencent_iot_gateway.engine.ota.rollback_images import RollbackImages
from custom_components.tencent_iot_gateway.engine.ota.rollout_policy import RolloutPolicy
from custom_components.tencent_iot_gateway.engine.stores.job_store import (
    SAVE_DELAY_S,
    DeviceRecord,
    JobStore,
    Outcome,
    OutcomeState,
)
from custom_components.tencent_iot_gateway.engine.stores.storage import StateStore

_LOGGER = logging.getLogger(__name__)

FRESH_URL_TIMEOUT_S = 30.0
MAX_URL_REFRESHES = 2
# One scale for the UI: the download fills the first half of the bar, flashing the second.
DOWNLOAD_SHARE = 50
INTERRUPTED_MESSAGE = "interrupted by shutdown"
# How long the next start asks a flasher whether an interrupted flash did put the new version on.
INTERRUPTED_PROBE_TIMEOUT_S = 10.0
REPORTS_IN_FLIGHT = 32  # version reports awaiting their PUBACK at once after a (re)connect


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
    """Fetches and verifies one image (engine/ota/download.py)."""

    async def fetch(self, spec: FirmwareSpec, on_progress: Callable[[DownloadProgress], None]) -> Path:
        """Return the path of the verified image."""

    async def resume_point(self, spec: FirmwareSpec) -> int:
        """Bytes of the image a `fetch` now would not download again (0: it starts from byte 0)."""


class ImageCache(Protocol):
    """Counts the jobs that need an image and deletes it once none does (engine/ota/firmware_cache.py)."""

    def acquire(self, item: FirmwareSpec) -> None:
        """One more job needs `item`'s image."""

    async def release(self, item: FirmwareSpec, *, discard_partial: bool = False) -> None:
        """One job less; the last one out deletes the image (and the partial file when asked)."""

    async def async_close(self) -> None:
        """The jobs stopped: delete what is kept for later jobs."""


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """Everything the layer above shows of one sub-device's update, at one moment."""

    device: DeviceId
    state: JobState
    installed_version: str | None  # None: unknown (adopted from the cloud; nobody said what it runs)
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
    http_status: int | None = None
    """What the firmware server answered, when that was the last failure."""
    hold_reason: str = ""
    """Why a queued job waits beyond its turn (a pre-flight condition), empty when it does not."""

    @property
    def latest_version(self) -> str | None:
        """The version on offer, or the installed one when nothing is pending."""
        return self.target.version if self.target is not None else self.installed_version


@dataclass
class _Device:
    """Mutable per-device state, owned by the manager."""

    device: DeviceId
    snapshot: JobSnapshot
    job: asyncio.Task[JobSnapshot] | None = None
    install_requested: bool = False
    fresh_url: asyncio.Future[FirmwareSpec] | None = None
    flashing: str | None = None  # the version being flashed, saved before the flasher starts
    outcome: Outcome | None = None  # a terminal report the broker has not acknowledged yet
    interrupted: bool = False  # `outcome` is a flash the last shutdown interrupted; the flasher may know more
    job_started: asyncio.Event = field(default_factory=asyncio.Event)


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
    save_delay_s: float = SAVE_DELAY_S  # ordinary changes are saved together at most this often
    # Progress cadence (engine/ota/progress_reports.py); the rate must be the session's uplink budget (None: no
    # budget), which `GatewayEngine` sets from its own `uplink_rate`.
    report_interval_s: float = REPORT_INTERVAL_S
    keepalive_interval_s: float = KEEPALIVE_INTERVAL_S
    uplink_rate: float | None = DEFAULT_UPLINK_RATE


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
        preflight_for: Callable[[DeviceId], Preflight | None] | None = None,
        rollout: RolloutPolicy | None = None,
        health_for: Callable[[DeviceId], HealthCheck | None] | None = None,
        rollback_images: RollbackImages | None = None,
    ) -> None:
        """Wire the manager; call `async_load` before adding devices.

        `preflight_for`: a device's pre-flight gate (engine/ota/preflight.py), asked before its job downloads and
        again before it flashes; None (or a None gate): jobs never wait for one.
        `rollout`: stages jobs installing the same image (engine/ota/rollout_policy.py); None: no staging.
        `health_for`: a device's check after its flash (engine/ota/health_check.py); `rollback_images` keeps the
        last good image of devices whose check rolls back.
        """
        self._publish = publish
        self._health_for = health_for or (lambda _device: None)
        self._rollback_images = rollback_images
        self._rollout = rollout
        self._preflight_for = preflight_for or (lambda _device: None)
        self._downloader = downloader
        self._cache = cache
        self._flasher_for = flasher_for
        self._on_change = on_change
        self._auto_install = auto_install
        self._settings = settings or OtaSettings()
        self._clock = clock
        self._devices: dict[DeviceId, _Device] = {}
        self._jobs = JobStore(store, save_delay_s=self._settings.save_delay_s)
        self._downloads: dict[tuple[str, int], _SharedDownload] = {}
        self._download_slots = asyncio.Semaphore(self._settings.max_downloads)
        self._flash_slots = asyncio.Semaphore(self._settings.max_flashes)
        self._stopping = False
        self._pushes_without_version = 0
        # Cleared once stopping: a job that reaches its flash slot then waits here until it is cancelled (or
        # the stop is called off).
        self._flashes_allowed = asyncio.Event()
        self._flashes_allowed.set()
        self._background = BackgroundTasks("A progress report was not sent", level=logging.DEBUG)
        self._reports = ProgressReporter(
            publish,
            self._spawn,
            ReportCadence(
                self._settings.report_interval_s,
                self._settings.keepalive_interval_s,
                self._settings.uplink_rate,
            ),
            clock=clock,
        )

    # -- devices ------------------------------------------------------------------------------------------

    async def async_load(self) -> None:
        """Read what the last run saved."""
        await self._jobs.async_load()

    @property
    def settings(self) -> OtaSettings:
        """The tunables in use."""
        return self._settings

    @property
    def keepalive_capacity(self) -> int:
        """How many running jobs the keep-alive share of the uplink budget can keep alive at once."""
        return self._reports.cadence.capacity

    @property
    def pushes_without_version(self) -> int:
        """Pushes ignored because they named no valid version (shown in diagnostics)."""
        return self._pushes_without_version

    @property
    def store_writes(self) -> int:
        """How many times the saved state was written (for tests and benchmarks)."""
        return self._jobs.writes

    def add_device(
        self, device: DeviceId, installed_version: str | None, *, given_wins: bool = False
    ) -> JobSnapshot:
        """Track a sub-device; a saved installed version and pending push from the last run win.

        `installed_version` None: unknown until the user or a flasher says (never reported to the cloud).
        `given_wins`: the caller knows better than the last run (the user set a new version since).
        """
        saved = self._jobs.get(device.key) or DeviceRecord(installed=None)
        given = validate_version(installed_version) if installed_version is not None else None
        installed = (given or saved.installed) if given_wins else (saved.installed or given)
        target: FirmwareSpec | None = None
        if saved.pending is not None:
            with contextlib.suppress(InvalidFirmwareError):
                target = FirmwareSpec.parse(saved.pending, max_size=self._settings.max_firmware_size)
        state = JobState.AVAILABLE if target is not None and target.version != installed else JobState.IDLE
        if state is JobState.IDLE:
            target = None
        entry = _Device(device, JobSnapshot(device, state, installed, target))
        entry.install_requested = saved.install_requested and target is not None
        entry.outcome = saved.outcome
        if saved.flashing is not None:
            # The last run ended while the flasher ran: whether it finished is unknown, so it is not repeated.
            _LOGGER.warning(
                "The flash of %s to %s was interrupted by a shutdown; reporting it as failed",
                device,
                saved.flashing,
            )
            entry.install_requested = False
            entry.interrupted = True
            entry.outcome = Outcome(
                OutcomeState.FAIL,
                saved.flashing,
                int(OtaResultCode.UPGRADE_FAILED),
                INTERRUPTED_MESSAGE,
                target.echo if target is not None and target.version == saved.flashing else (),
            )
            entry.snapshot = replace(
                entry.snapshot,
                state=JobState.FAILED,
                result_code=int(OtaResultCode.UPGRADE_FAILED),
                message=INTERRUPTED_MESSAGE,
            )
        self._devices[device] = entry
        self._persist(entry)
        return entry.snapshot

    async def remove_device(self, device: DeviceId) -> None:
        """Stop tracking a sub-device, cancelling its job; its kept rollback image goes too."""
        entry = self._devices.pop(device, None)
        if entry is not None and entry.job is not None:
            entry.job.cancel()
            await asyncio.gather(entry.job, return_exceptions=True)
        self._jobs.remove(device.key)
        if self._rollback_images is not None:
            await self._rollback_images.remove(device)

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
        outcome = entry.outcome
        if outcome is not None and outcome.state is OutcomeState.FAIL and outcome.version == version:
            # The interrupted (or failed) flash did put this version on: the cloud hears `done` instead.
            entry.outcome = replace(outcome, state=OutcomeState.DONE, code=0, message="")
        state = entry.snapshot.state if entry.snapshot.state.running else self._resting_state(target)
        self._update(entry, state=state, installed_version=version, target=target)
        if entry.outcome is None:
            self._persist(entry)
        else:
            await self._persist_now(entry)  # an outcome is saved before it is reported
            await self._send_outcome(entry, then_version=False)
        await self._report_version(entry)

    async def report_versions(self, devices: list[DeviceId]) -> None:
        """Report these sub-devices' versions, as after each (re)connect; resume their interrupted installs.

        A terminal report that was lost with the last connection goes first (`done` before the new version).
        """
        entries = [self._devices[d] for d in devices if d in self._devices]
        for entry in entries:
            if entry.interrupted:
                await self._settle_interrupted(entry)
        if any(entry.outcome is not None for entry in entries):
            await self._jobs.async_flush()  # outcomes are on disk before the cloud hears them
        await self._report_each(entries)
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
            case InvalidUpdate(error, version) if version:
                _LOGGER.warning("Refusing an invalid firmware push for %s: %s", device, error)
                self._spawn(self._report_failure(entry, version, error))
            case InvalidUpdate(error):
                # A report names its task by the version: without a valid one, any report could land on
                # the task of the firmware the device runs and overwrite its record. Nothing is reported.
                self._pushes_without_version += 1
                _LOGGER.warning(
                    "Ignoring a firmware push for %s without a valid version (%s); nothing is reported to "
                    "the cloud. Check the firmware's version in Tencent's console",
                    device,
                    error,
                )
            case VersionAcknowledged(version, code):
                if code != 0:
                    _LOGGER.warning("The cloud refused version %r of %s (result %d)", version, device, code)
            case Unrecognised(reason):
                _LOGGER.warning("Ignoring a message on the OTA topic of %s: %s", device, reason)

    def _on_update_firmware(self, entry: _Device, firmware: FirmwareSpec) -> None:
        current = entry.snapshot
        if self._stopping:
            return
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
        self._persist(entry)
        if self._auto_install(entry.device):
            self._start_job(entry)

    # -- installing ---------------------------------------------------------------------------------------

    async def install(self, device: DeviceId) -> JobSnapshot:
        """Install the pending firmware (or join the job under way); return when the job has ended.

        Raises the job's `OtaError` when it fails, `JobSuspendedError` when the gateway stopped while the job
        ran (it resumes with the next start: follow it there with `follow`), `CancelledError` when the user
        cancelled it or a newer push replaced it.
        """
        entry = self._entry(device)
        if entry.job is not None and (entry.job.cancelling() or not entry.snapshot.state.running):
            # That job is over (cancelled, or ended and still sending its report): this is a new install, not
            # that job; let it finish so its report goes first and the new job starts from a settled state.
            await asyncio.wait([entry.job])
        if entry.job is None:
            if self._stopping:
                raise JobSuspendedError(f"the gateway is stopping; the update of {device} cannot start now")
            if entry.snapshot.target is None:
                raise InvalidFirmwareError(f"no firmware update is pending for {device}")
            if self._flasher_for(device) is None:
                raise FlashError(f"{device} has no flasher configured")
            self._start_job(entry)
        return await self._await_job(entry)

    async def resume_rollouts(self) -> list[DeviceId]:
        """Let the halted rollouts go on: the devices their halt held back install again (in batches)."""
        if self._rollout is None:
            return []
        started: list[DeviceId] = []
        for device in self._rollout.resume():
            entry = self._devices.get(device)
            if entry is not None and entry.job is not None and entry.snapshot.state is JobState.FAILED:
                # Its halted job is still saying goodbye (its report on the way): let it end first.
                await asyncio.gather(entry.job, return_exceptions=True)
            if entry is None or entry.job is not None or entry.snapshot.target is None or self._stopping:
                continue
            _LOGGER.info("Resuming the rollout of %s to %s", device, entry.snapshot.target.version)
            self._start_job(entry)
            started.append(device)
        return started

    async def follow(self, device: DeviceId, timeout_s: float) -> JobSnapshot:
        """Wait for the job of `device` that a stopped run left to resume; return the snapshot once settled.

        Raises like `install`; a job that does not start within `timeout_s` leaves the snapshot as it is.
        """
        entry = self._entry(device)
        if entry.job is None and entry.install_requested:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await entry.job_started.wait()
        if entry.job is None:
            return entry.snapshot
        return await self._await_job(entry)

    async def _await_job(self, entry: _Device) -> JobSnapshot:
        assert entry.job is not None
        try:
            snapshot = await asyncio.shield(entry.job)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stopping and entry.install_requested and not (task is not None and task.cancelling()):
                raise JobSuspendedError(
                    f"the update of {entry.device} resumes when the gateway starts again"
                ) from None
            raise
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

    async def async_finish_flashes(self, timeout_s: float) -> None:
        """Let the flashes under way end (within `timeout_s`); no new flash starts after this call.

        Killing a flasher mid-flash can leave a sub-device without working firmware, so a reload or a stop
        waits for them first. A flash still running when the time is up is cancelled by `async_stop` and
        reported as interrupted at the next start.
        """
        self._flashes_allowed.clear()
        flashing = {
            entry.device: entry.job
            for entry in self._devices.values()
            if entry.job is not None and entry.snapshot.state is JobState.FLASHING
        }
        if not flashing or timeout_s <= 0:
            return
        names = ", ".join(str(device) for device in flashing)
        _LOGGER.warning("Waiting up to %g s for the flash of %s to finish before stopping", timeout_s, names)
        _done, pending = await asyncio.wait(flashing.values(), timeout=timeout_s)
        if pending:
            late = ", ".join(str(d) for d, job in flashing.items() if job in pending)
            _LOGGER.error(
                "The flash of %s did not finish within %g s; it is stopped and reported as interrupted",
                late,
                timeout_s,
            )

    def allow_flashes(self) -> None:
        """Call off `async_finish_flashes` (the unload it prepared did not happen): waiting flashes start."""
        if not self._stopping:
            self._flashes_allowed.set()

    async def async_stop(self, flash_wait_s: float = 0.0) -> None:
        """Stop every job, keeping what can resume (partial downloads, the install request).

        Flashes under way get up to `flash_wait_s` seconds to end first (see `async_finish_flashes`).
        """
        await self.async_finish_flashes(flash_wait_s)
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
        await self._cache.async_close()
        await self._jobs.async_close()

    def _start_job(self, entry: _Device) -> None:
        target = entry.snapshot.target
        assert target is not None
        entry.install_requested = True
        if self._rollout is not None:
            self._rollout.join(entry.device, target)
        self._cache.acquire(target)
        self._update(entry, state=JobState.QUEUED, percent=None, result_code=None, message="", downloaded=0)
        previous = entry.job  # an ended job still sending its outcome (a push just after a failure)
        entry.job = asyncio.get_running_loop().create_task(
            self._run_job(entry, target, previous), name=f"ota {entry.device} {target.version}"
        )
        entry.job_started.set()
        entry.job_started = asyncio.Event()
        self._persist(entry)

    async def _run_job(
        self, entry: _Device, target: FirmwareSpec, previous: asyncio.Task[JobSnapshot] | None = None
    ) -> JobSnapshot:
        try:
            if previous is not None:
                # Its outcome goes first, and its end must not end this job's reports (same device, maybe
                # the same version).
                await asyncio.wait([previous])
            resumed = await self._downloader.resume_point(target)
            await self._reports.admit(
                entry.device,
                target.version,
                target.report_fields,
                percent=lambda: self._start_percent(target, resumed),
            )
            await self._pass_gate(entry, GatePoint.BEFORE_DOWNLOAD)
            image = await self._download(entry, target)
            target = entry.snapshot.target or target
            version = await self._flash_when_ready(entry, target, image)
            await self._confirm_health(entry, target, image)
        except OtaError as err:
            await self._finish(entry, target, err)
        except asyncio.CancelledError:
            if not self._stopping:
                if entry.job is asyncio.current_task():
                    await self._on_cancelled(entry, target)
                else:
                    await self._on_replaced(entry, target)
            raise
        else:
            await self._finish(entry, target, version)
        finally:
            self._reports.end(entry.device, target.version)
            if entry.job is asyncio.current_task():
                entry.job = None
        return entry.snapshot

    async def _flash_when_ready(self, entry: _Device, target: FirmwareSpec, image: Path) -> str:
        """Flash once the gate is open and a slot is free; a gate that closed while the job waited for the
        slot gives the slot back (a held job must not keep others from flashing)."""
        if self._rollout is not None:
            await self._hold_while(entry, "its rollout turn", self._rollout.wait_turn)
        while True:
            await self._pass_gate(entry, GatePoint.BEFORE_FLASH)
            async with self._flash_slots:
                await self._flashes_allowed.wait()  # stopping: no new flash; `async_stop` cancels this job
                if await self._gate_reason(entry, GatePoint.BEFORE_FLASH) is None:
                    return await self._flash(entry, target, image)

    async def _confirm_health(self, entry: _Device, target: FirmwareSpec, image: Path) -> None:
        """The job is `done` only once the device proves healthy; if not, the last good image goes back on
        when the device's check asks for a rollback, and the job fails either way."""
        health = self._health_for(entry.device)
        if health is None:
            return
        try:
            await wait_healthy(health, entry.device, target, self._flasher_for(entry.device), self._clock)
        except HealthCheckError as err:
            # The device runs the new image (unhealthy) unless a rollback puts the old one back on.
            self._update(entry, installed_version=target.version)
            raise (await self._roll_back(entry, target, err)) if health.rollback else err from None
        if health.rollback and self._rollback_images is not None:
            await self._rollback_images.keep(entry.device, target, image)

    async def _roll_back(
        self, entry: _Device, target: FirmwareSpec, error: HealthCheckError
    ) -> HealthCheckError:
        """Flash the device's last good image back; the error then says what it runs."""
        kept = await self._rollback_images.get(entry.device) if self._rollback_images is not None else None
        flasher = self._flasher_for(entry.device)
        if kept is None or kept.version == target.version or flasher is None:
            return HealthCheckError(f"{error}; no earlier image to roll back to")
        _LOGGER.warning(
            "%s is unhealthy after %s (%s); rolling back to %s",
            entry.device,
            target.version,
            error,
            kept.version,
        )
        try:
            version = await flasher.flash(kept.path, entry.device, kept.spec(), lambda _percent: None)
        except (OSError, TencentIotError) as rollback_error:
            return HealthCheckError(f"{error}; rolling back to {kept.version} failed: {rollback_error}")
        self._update(entry, installed_version=version)
        return HealthCheckError(f"{error}; rolled back to {version}")

    async def _gate_reason(self, entry: _Device, point: GatePoint) -> str | None:
        preflight = self._preflight_for(entry.device)
        return None if preflight is None else await preflight.check(entry.device, point)

    async def _pass_gate(self, entry: _Device, point: GatePoint) -> None:
        """Wait while the device's pre-flight gate says no, showing why (state queued, `hold_reason`)."""
        preflight = self._preflight_for(entry.device)
        if preflight is None:
            return

        async def wait(device: DeviceId, on_hold: Callable[[str], None]) -> None:
            await wait_until_open(preflight, device, point, on_hold, self._clock)

        await self._hold_while(entry, point.value.replace("_", " "), wait)

    async def _hold_while(
        self,
        entry: _Device,
        what: str,
        wait: Callable[[DeviceId, Callable[[str], None]], Coroutine[Any, Any, None]],
    ) -> None:
        """Run a gate's `wait`; while it holds the job, the job is queued with the gate's reason."""
        resume_state = entry.snapshot.state
        held = False

        def on_hold(reason: str) -> None:
            nonlocal held
            if not held:
                _LOGGER.info("The update of %s waits (%s): %s", entry.device, what, reason)
            held = True
            self._update(entry, state=JobState.QUEUED, hold_reason=reason)

        try:
            await wait(entry.device, on_hold)
        except BaseException:
            # The failure or cancel that follows is the next snapshot anyone sees: no reason left on it.
            entry.snapshot = replace(entry.snapshot, hold_reason="")
            raise
        if held:
            _LOGGER.info("The update of %s goes on (%s)", entry.device, what)
            self._update(entry, state=resume_state, hold_reason="")

    async def _finish(self, entry: _Device, target: FirmwareSpec, result: str | OtaError) -> None:
        """Save the outcome, then report it: a report lost now is sent after the next reconnect."""
        entry.install_requested = False
        entry.flashing = None
        if self._rollout is not None:
            failure = str(result) if isinstance(result, OtaError) else None
            self._rollout.ended(entry.device, failure, halted=isinstance(result, RolloutHaltedError))
        if isinstance(result, OtaError):
            # Expected (a bad image, a refusing device): once, as a warning; the UI shows it translated.
            _LOGGER.warning(
                "Updating %s to %s failed: %s (code %d)", entry.device, target.version, result, result.code
            )
            entry.outcome = Outcome(
                OutcomeState.FAIL, target.version, int(result.code), str(result), target.echo
            )
            self._update(
                entry,
                state=JobState.FAILED,
                percent=None,
                result_code=int(result.code),
                message=str(result),
                failure_key=result.translation_key,
                http_status=result.http_status,
            )
        else:
            entry.outcome = Outcome(OutcomeState.DONE, target.version, echo=target.echo)
            self._update(entry, state=JobState.DONE, installed_version=result, target=None, percent=100)
            _LOGGER.info("%s now runs %s", entry.device, result)
        await self._persist_now(entry)
        await self._cache.release(target)
        await self._send_outcome(entry)

    async def _send_outcome(self, entry: _Device, *, then_version: bool = True) -> None:
        """Send the saved terminal report (and, after `done`, the version now running); forget it once sent."""
        outcome = entry.outcome
        if outcome is None:
            return
        echo = dict(outcome.echo)
        if outcome.state is OutcomeState.DONE:
            payload = report_progress(ProgressState.DONE, outcome.version, echo=echo)
        else:
            payload = report_progress(
                ProgressState.FAIL,
                outcome.version,
                code=_result_code(outcome.code),
                message=outcome.message,
                echo=echo,
            )
        try:
            await self._send_report(entry, payload)
        except (NotConnectedError, OperationTimeoutError) as err:
            _LOGGER.warning(
                "The %s report of %s for %s was not sent (%s); it is sent after the reconnect",
                outcome.state.value,
                entry.device,
                outcome.version,
                err,
            )
            return
        if entry.outcome is outcome:
            entry.outcome = None
            self._persist(entry)
        if then_version:
            with contextlib.suppress(NotConnectedError, OperationTimeoutError):
                await self._report_version(entry)  # if lost, the reconnect's announce reports it

    async def _settle_interrupted(self, entry: _Device) -> None:
        """Ask the flasher whether the interrupted flash finished after all: then it is `done`, not failed."""
        outcome, target = entry.outcome, entry.snapshot.target
        flasher: object = self._flasher_for(entry.device)  # any flasher kind may also read versions
        if outcome is None or target is None or target.version != outcome.version:
            entry.interrupted = False
            return
        if not isinstance(flasher, VersionReader):
            entry.interrupted = False
            return
        try:
            async with asyncio.timeout(INTERRUPTED_PROBE_TIMEOUT_S):
                running = await flasher.read_version(entry.device, target)
        except TimeoutError:
            running = None
        # Only now: a probe cut short by a lost connection is asked again after the reconnect.
        entry.interrupted = False
        if running != target.version:
            return
        _LOGGER.info("%s runs %s: its interrupted flash did finish", entry.device, running)
        entry.outcome = replace(outcome, state=OutcomeState.DONE, code=0, message="")
        self._update(
            entry, state=JobState.DONE, installed_version=running, target=None, result_code=None, message=""
        )
        self._persist(entry)

    async def _on_replaced(self, entry: _Device, target: FirmwareSpec) -> None:
        """A push of another version replaced this job: its bytes are not wanted, and its task has ended."""
        if self._rollout is not None:
            self._rollout.leave(entry.device)
        await self._cache.release(target, discard_partial=True)
        offered = entry.snapshot.target
        message = f"replaced by version {offered.version}" if offered is not None else "replaced"
        _LOGGER.info("Update of %s to %s %s", entry.device, target.version, message)
        with contextlib.suppress(TencentIotError):
            await self._send_report(
                entry,
                report_progress(
                    ProgressState.FAIL, target.version, code=OtaResultCode.UPGRADE_FAILED, message=message
                ),
            )

    async def _on_cancelled(self, entry: _Device, target: FirmwareSpec) -> None:
        entry.install_requested = False
        if self._rollout is not None:
            self._rollout.leave(entry.device)
        _LOGGER.info("Update of %s to %s cancelled", entry.device, target.version)
        self._update(entry, state=JobState.AVAILABLE, percent=None, downloaded=0, message="")
        await self._persist_now(entry)
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

    def _start_percent(self, target: FirmwareSpec, resumed: int) -> int:
        """Where a job's download stands as it starts: the shared download's, else what is kept on disk."""
        shared = self._downloads.get(target.image_key)
        if shared is not None and shared.progress is not None and not shared.task.done():
            # Joining a download from byte 0 starts at "0" like the others (`_on_download_progress`).
            return 0 if shared.progress.fresh else shared.progress.percent
        return resumed * 100 // target.size

    async def _download(self, entry: _Device, target: FirmwareSpec) -> Path:
        refreshes = 0
        while True:
            try:
                return await self._join_download(entry, target)
            except UrlExpiredError as expired:
                if refreshes >= MAX_URL_REFRESHES:
                    raise
                refreshes += 1
                try:
                    target = await self._fresh_url(entry, target)
                except UrlExpiredError as err:
                    err.http_status = err.http_status or expired.http_status  # what made a fresh URL needed
                    raise

    async def _fresh_url(self, entry: _Device, target: FirmwareSpec) -> FirmwareSpec:
        """Re-report the running version: the cloud answers by pushing the pending firmware with a new URL."""
        if entry.snapshot.installed_version is None:
            # The cloud re-sends a push after a `report_version`, which needs the version the device runs.
            raise UrlExpiredError(
                "the firmware URL expired; set the installed version of the sub-device to get a fresh one"
            )
        _LOGGER.info("The firmware URL for %s has expired; asking the cloud for a fresh one", entry.device)
        entry.fresh_url = asyncio.get_running_loop().create_future()
        try:
            await self._report_version(entry)
            async with asyncio.timeout(self._settings.fresh_url_timeout_s):
                fresh = await entry.fresh_url
        except TimeoutError:
            # The cloud re-pushes a pending task after a report_version (spec §3): silence means it has none.
            raise TaskEndedError from None
        except NotConnectedError, OperationTimeoutError:
            raise UrlExpiredError("the firmware URL expired and no fresh one could be asked for") from None
        finally:
            entry.fresh_url = None
        if fresh.image_key != target.image_key:
            raise UrlExpiredError("the firmware URL expired and the cloud now offers a different image")
        return fresh

    async def _join_download(self, entry: _Device, target: FirmwareSpec) -> Path:
        while True:
            try:
                return await self._join_download_once(entry, target)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._stopping or (task is not None and task.cancelling()):
                    raise
                # The shared download was stopped by the jobs that left it a moment ago (a cancel just before
                # this install): this job still wants the bytes, so it starts a download of its own.

    async def _join_download_once(self, entry: _Device, target: FirmwareSpec) -> Path:
        shared = self._downloads.get(target.image_key)
        if shared is not None and shared.task.cancelling() and not shared.task.done():
            # Still saving its resume state after a cancel: joining it would end this job as "cancelled".
            await asyncio.gather(shared.task, return_exceptions=True)
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

    def _on_download_progress(self, entry: _Device, target: FirmwareSpec, progress: DownloadProgress) -> None:
        total = progress.total or target.size
        fraction = progress.downloaded / total if total else 0.0
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
        # Spec §3 cadence: "0" at once when a download starts from byte 0 (also for a job that joins a shared
        # download from byte 0 late: its cloud task has not heard it), "100" at once at the end. Each marker is
        # sent once per job (`ProgressReporter`).
        if progress.fresh:
            self._reports.downloading(entry.device, 0, urgent=True)
        self._reports.downloading(entry.device, int(fraction * 100), urgent=finished)

    async def _flash(self, entry: _Device, target: FirmwareSpec, image: Path) -> str:
        flasher = self._flasher_for(entry.device)
        if flasher is None:
            raise FlashError(f"{entry.device} has no flasher configured")
        self._update(entry, state=JobState.FLASHING, percent=DOWNLOAD_SHARE)
        entry.flashing = target.version
        # A stop from here on is reported as an interrupted flash. The record is written at once but not
        # awaited: a flash slot held for a write (writes are MIN_WRITE_GAP_S apart) would cap every push at
        # `max_flashes` devices per write. Only a crash within that write's time loses the mark (the job
        # then runs again from its cached image); the outcome is still written before it is reported.
        self._persist_soon(entry)
        self._reports.burning(entry.device)  # queued behind the job's last report; a lost one is repeated

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

    async def _report_each(self, entries: list[_Device]) -> None:
        """Each device's saved outcome, then its version: devices side by side, `REPORTS_IN_FLIGHT` at a time.

        One after the other, 1,000 devices would wait for 1,000 PUBACK round trips; the session's budget
        still paces what goes out. The first error is raised once every device was tried.
        """
        pending = iter(entries)
        errors: list[BaseException] = []

        async def worker() -> None:
            for entry in pending:
                try:
                    if entry.outcome is not None and entry.job is None:
                        await self._send_outcome(entry, then_version=False)
                    if entry.snapshot.state is not JobState.FLASHING:  # its `done` and new version follow
                        await self._report_version(entry)
                except TencentIotError as err:
                    errors.append(err)

        await asyncio.gather(*(worker() for _ in range(min(REPORTS_IN_FLIGHT, len(entries)))))
        if errors:
            raise errors[0]

    async def _report_version(self, entry: _Device) -> None:
        installed = entry.snapshot.installed_version
        if installed is None:
            return  # unknown: reporting a guess would overwrite the cloud's record of the device
        await self._publish(
            ota_report(entry.device), report_version(installed), 1, priority=UplinkPriority.VERSION
        )

    async def _report_failure(self, entry: _Device, version: str, error: OtaError) -> None:
        with contextlib.suppress(TencentIotError):
            await self._send_report(entry, _fail_report(version, error))

    async def _send_report(self, entry: _Device, payload: str, qos: int = 1) -> None:
        """Send a job's outcome (fail, done) once its markers are handed over; its keep-alives stop first."""
        version = _version_of(payload)
        echo = await self._reports.finish(entry.device, version)
        if echo:
            payload = _with_echo(payload, echo)
        await self._publish(
            ota_report(entry.device),
            payload,
            qos,
            priority=UplinkPriority.TERMINAL,
            coalesce_key=progress_key(entry.device, version),
        )

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

    def _record(self, entry: _Device) -> DeviceRecord:
        target = entry.snapshot.target
        return DeviceRecord(
            installed=entry.snapshot.installed_version,
            pending=target.to_dict() if target is not None else None,
            install_requested=entry.install_requested,
            flashing=entry.flashing,
            outcome=entry.outcome,
        )

    def _persist(self, entry: _Device) -> None:
        """Save the device's record with the next batch."""
        self._jobs.put(entry.device.key, self._record(entry))

    def _persist_soon(self, entry: _Device) -> None:
        """Save the device's record with the next urgent write, without waiting for it."""
        self._jobs.put_urgent(entry.device.key, self._record(entry))

    async def _persist_now(self, entry: _Device) -> None:
        """Save the device's record and return once it is on disk."""
        await self._jobs.async_put_now(entry.device.key, self._record(entry))


def _version_of(report: str) -> str:
    """The target version a `report_progress` we built names."""
    version = json.loads(report)["report"]["version"]
    assert isinstance(version, str)
    return version


def _with_echo(report: str, echo: dict[str, str | int]) -> str:
    """The report with the push's echoed fields (IoT Explorer's fw_type, task_id) beside its version."""
    message = json.loads(report)
    message["report"] |= echo
    return json.dumps(message)


def _fail_report(version: str, error: OtaError) -> str:
    return report_progress(ProgressState.FAIL, version, code=error.code, message=str(error))


def _result_code(code: int) -> OtaResultCode:
    try:
        return OtaResultCode(code)
    except ValueError:
        return OtaResultCode.UPGRADE_FAILED


def _error_for(snapshot: JobSnapshot) -> OtaError:
    """Rebuild the job's error for a caller that awaited it."""
    if snapshot.result_code == TaskEndedError.code and snapshot.message == TaskEndedError.MESSAGE:
        return TaskEndedError()
    error = OtaError(snapshot.message, http_status=snapshot.http_status)
    if snapshot.result_code is not None:
        with contextlib.suppress(ValueError):
            error.code = OtaResultCode(snapshot.result_code)
    return error
