"""OTA jobs of the sub-devices: one explicit state machine per device, one scheduler for all of them.

idle → available → queued → downloading → verifying → flashing → done | failed(code, message)

Jobs whose firmware has the same MD5 and size share one download and one verification; at most
`max_downloads` downloads and `max_flashes` flashes run at once, the rest wait in order ("queued"). What must
survive a restart (installed versions, the pending push, whether an install was under way, a flash begun, a
terminal report not yet sent) is saved through a `JobStore`; the download itself resumes through the
downloader's own state.

A flash is the one step that cannot be repeated safely, so its outcome is saved before it is reported and a
report that could not be sent is sent after the next reconnect: a lost report never makes a job flash again.

`OtaManager` is the face of the jobs to the rest of the engine; the work is done by its parts, each owning
its state: `DeviceStates` (snapshots and saved records), `SharedDownloads` (one download per image, fresh
URLs), `OutcomeReports` (outcomes, versions and the progress cadence), `JobRunner` (the state machine, with
its gates and health check) and `Shutdown` (flashes that finish, jobs that suspend).
"""

from __future__ import annotations

from collections.abc import Callable
import logging
import time

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.device_states import DeviceEntry, DeviceStates
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec, validate_version
from custom_components.tencent_iot_gateway.engine.ota.job_model import (
    DOWNLOAD_SHARE,
    DeviceHooks,
    ImageCache,
    ImageFetcher,
    JobSnapshot,
    JobState,
    OtaOutputs,
    OtaSettings,
    OtaStorage,
    no_health_check,
    no_preflight,
)
from custom_components.tencent_iot_gateway.engine.ota.job_runner import JobParts, JobRunner
from custom_components.tencent_iot_gateway.engine.ota.outcome_reports import OutcomeReports
from custom_components.tencent_iot_gateway.engine.ota.progress_reports import ReportCadence
from custom_components.tencent_iot_gateway.engine.ota.protocol import (
    InvalidUpdate,
    Unrecognised,
    UpdateFirmware,
    VersionAcknowledged,
    parse_update_topic,
)
from custom_components.tencent_iot_gateway.engine.ota.shared_downloads import SharedDownloads
from custom_components.tencent_iot_gateway.engine.ota.shutdown import Shutdown

__all__ = [
    "DOWNLOAD_SHARE",
    "DeviceHooks",
    "ImageCache",
    "ImageFetcher",
    "JobSnapshot",
    "JobState",
    "OtaManager",
    "OtaOutputs",
    "OtaSettings",
    "OtaStorage",
    "no_health_check",
    "no_preflight",
]

_LOGGER = logging.getLogger(__name__)


class OtaManager:
    """Runs the OTA jobs of every sub-device of one gateway."""

    def __init__(
        self,
        *,
        outputs: OtaOutputs,
        hooks: DeviceHooks,
        storage: OtaStorage,
        settings: OtaSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wire the manager; call `async_load` before adding devices.

        `outputs`: where the cloud and the layer above hear of the jobs. `hooks`: how the jobs reach the
        sub-devices (flashers, pre-flight gates, health checks) and what decides when they install (the
        install policy, the rollout). `storage`: the downloader, the image cache and the stores.
        """
        self._settings = settings or OtaSettings()
        self._hooks = hooks
        self._storage = storage
        self._pushes_without_version = 0
        self._states = DeviceStates(storage.store, outputs.on_change, self._settings)
        self._shutdown = Shutdown(self._states)
        cadence = ReportCadence(
            self._settings.report_interval_s, self._settings.keepalive_interval_s, self._settings.uplink_rate
        )
        self._reports = OutcomeReports(outputs.publish, self._states, hooks.flasher_for, cadence, clock=clock)
        self._downloads = SharedDownloads(
            storage.downloader, self._settings, self._states, self._reports, self._shutdown
        )
        parts = JobParts(self._states, self._downloads, self._reports, self._shutdown)
        self._runner = JobRunner(hooks, storage, parts, max_flashes=self._settings.max_flashes, clock=clock)

    # -- devices ------------------------------------------------------------------------------------------

    async def async_load(self) -> None:
        """Read what the last run saved."""
        await self._states.async_load()

    @property
    def settings(self) -> OtaSettings:
        """The tunables in use."""
        return self._settings

    @property
    def keepalive_capacity(self) -> int:
        """How many running jobs the keep-alive share of the uplink budget can keep alive at once."""
        return self._reports.progress.cadence.capacity

    @property
    def pushes_without_version(self) -> int:
        """Pushes ignored because they named no valid version (shown in diagnostics)."""
        return self._pushes_without_version

    def add_device(
        self, device: DeviceId, installed_version: str | None, *, given_wins: bool = False
    ) -> JobSnapshot:
        """Track a sub-device; a saved installed version and pending push from the last run win.

        `installed_version` None: unknown until the user or a flasher says (never reported to the cloud).
        `given_wins`: the caller knows better than the last run (the user set a new version since).
        """
        return self._states.add(device, installed_version, given_wins=given_wins).snapshot

    async def remove_device(self, device: DeviceId) -> None:
        """Stop tracking a sub-device, cancelling its job; its kept rollback image goes too."""
        entry = self._states.pop(device)
        if entry is not None:
            await self._runner.stop(entry)
        # Only now: the cancelled job saves its end, which must not bring the record back.
        self._states.forget(device)
        if self._storage.rollback_images is not None:
            await self._storage.rollback_images.remove(device)

    def snapshot(self, device: DeviceId) -> JobSnapshot:
        """The current state of a sub-device's update."""
        return self._states.entry(device).snapshot

    @property
    def devices(self) -> list[DeviceId]:
        """The tracked sub-devices."""
        return self._states.devices

    async def set_installed_version(self, device: DeviceId, version: str) -> None:
        """Record a version flashed by other means, and tell the cloud."""
        entry = self._states.entry(device)
        validate_version(version)
        self._states.set_installed(entry, version)
        if entry.outcome is None:
            self._states.persist(entry)
        else:
            await self._states.persist_now(entry)  # an outcome is saved before it is reported
            await self._reports.send_outcome(entry, then_version=False)
        await self._reports.report_version(entry)

    async def report_versions(self, devices: list[DeviceId]) -> None:
        """Report these sub-devices' versions, as after each (re)connect; resume their interrupted installs.

        A terminal report that was lost with the last connection goes first (`done` before the new version).
        """
        entries = self._states.known(devices)
        await self._reports.announce(entries)
        for entry in entries:
            if entry.install_requested and entry.job is None and entry.snapshot.target is not None:
                _LOGGER.info(
                    "Resuming the interrupted update of %s to %s", entry.device, entry.snapshot.target.version
                )
                self._runner.start(entry)

    # -- messages from the cloud --------------------------------------------------------------------------

    def handle_update_message(self, device: DeviceId, payload: bytes) -> None:
        """Act on one message of `$ota/update/{device}`."""
        entry = self._states.get(device)
        if entry is None:
            _LOGGER.debug("Ignoring an OTA message for unknown sub-device %s", device)
            return
        message = parse_update_topic(payload, max_size=self._settings.max_firmware_size)
        match message:
            case UpdateFirmware(firmware):
                self._on_update_firmware(entry, firmware)
            case InvalidUpdate(error, version) if version:
                _LOGGER.warning("Refusing an invalid firmware push for %s: %s", device, error)
                self._reports.spawn_failure_report(entry, version, error)
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

    def _on_update_firmware(self, entry: DeviceEntry, firmware: FirmwareSpec) -> None:
        current = entry.snapshot
        if self._shutdown.stopping:
            return
        self._downloads.offer(entry.device, firmware)
        if current.state.running and current.target is not None:
            if current.target.version == firmware.version and current.target.image_key == firmware.image_key:
                _LOGGER.debug("%s is already updating to %s; push ignored", entry.device, firmware.version)
                self._states.update(entry, target=firmware)  # keep the freshest URL
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
        self._states.update(
            entry, state=JobState.AVAILABLE, target=firmware, percent=None, result_code=None, message=""
        )
        self._states.persist(entry)
        if self._hooks.auto_install(entry.device):
            self._runner.start(entry)

    # -- installing ---------------------------------------------------------------------------------------

    async def install(self, device: DeviceId) -> JobSnapshot:
        """Install the pending firmware (or join the job under way); return when the job has ended.

        Raises the job's `OtaError` when it fails, `JobSuspendedError` when the gateway stopped while the job
        ran (it resumes with the next start: follow it there with `follow`), `CancelledError` when the user
        cancelled it or a newer push replaced it.
        """
        return await self._runner.install(self._states.entry(device))

    async def resume_rollouts(self) -> list[DeviceId]:
        """Let the halted rollouts go on: the devices their halt held back install again (in batches)."""
        return await self._runner.resume_rollouts()

    async def follow(self, device: DeviceId, timeout_s: float) -> JobSnapshot:
        """Wait for the job of `device` that a stopped run left to resume; return the snapshot once settled.

        Raises like `install`; a job that does not start within `timeout_s` leaves the snapshot as it is.
        """
        return await self._runner.follow(self._states.entry(device), timeout_s)

    async def cancel(self, device: DeviceId) -> None:
        """Stop a queued or downloading job (flashing cannot be interrupted safely)."""
        await self._runner.cancel(self._states.entry(device))

    # -- stopping -----------------------------------------------------------------------------------------

    async def async_finish_flashes(self, timeout_s: float) -> None:
        """Let the flashes under way end (within `timeout_s`); no new flash starts after this call.

        Killing a flasher mid-flash can leave a sub-device without working firmware, so a reload or a stop
        waits for them first. A flash still running when the time is up is cancelled by `async_stop` and
        reported as interrupted at the next start.
        """
        await self._shutdown.finish_flashes(timeout_s)

    def allow_flashes(self) -> None:
        """Call off `async_finish_flashes` (the unload it prepared did not happen): waiting flashes start."""
        self._shutdown.allow_flashes()

    async def async_stop(self, flash_wait_s: float = 0.0) -> None:
        """Stop every job, keeping what can resume (partial downloads, the install request).

        Flashes under way get up to `flash_wait_s` seconds to end first (see `async_finish_flashes`).
        """
        await self._shutdown.finish_flashes(flash_wait_s)
        await self._shutdown.stop_jobs()
        await self._downloads.async_stop()
        await self._reports.async_close()
        await self._storage.cache.async_close()
        await self._states.async_close()
