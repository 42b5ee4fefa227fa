"""The job of one sub-device, as an explicit state machine; one runner for the jobs of every device.

idle → available → queued → downloading → verifying → flashing → done | failed(code, message)

A job waits for the keep-alive budget of its cloud task, for its pre-flight gate, for its download (shared
with the jobs that want the same image), for its rollout turn and a flash slot (at most `max_flashes` flash
at once), then flashes and, when the device has a health check, waits for the device to prove healthy (or
rolls it back). Its end is saved before it is reported (`OutcomeReports`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import logging
from pathlib import Path
import time

from custom_components.tencent_iot_gateway.engine.errors import (
    Failure,
    FailureReason,
    FlashError,
    InvalidFirmwareError,
    JobSuspendedError,
    OtaError,
    RolloutHaltedError,
    TencentIotError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.device_states import DeviceEntry, DeviceStates, JobEnd
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.health_rollback import HealthRollback
from custom_components.tencent_iot_gateway.engine.ota.job_gates import JobGates
from custom_components.tencent_iot_gateway.engine.ota.job_model import (
    DOWNLOAD_SHARE,
    DeviceHooks,
    JobSnapshot,
    JobState,
    OtaStorage,
)
from custom_components.tencent_iot_gateway.engine.ota.job_phases import JobPhase
from custom_components.tencent_iot_gateway.engine.ota.outcome_reports import OutcomeReports, TerminalReport
from custom_components.tencent_iot_gateway.engine.ota.preflight import GatePoint
from custom_components.tencent_iot_gateway.engine.ota.rollout_policy import DeviceFailure
from custom_components.tencent_iot_gateway.engine.ota.shared_downloads import SharedDownloads
from custom_components.tencent_iot_gateway.engine.ota.shutdown import Shutdown
from custom_components.tencent_iot_gateway.engine.stores.job_store import Outcome, OutcomeState

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobParts:
    """The parts of the OTA machinery a job moves through, each owning its own state."""

    states: DeviceStates
    downloads: SharedDownloads
    reports: OutcomeReports
    shutdown: Shutdown


class JobRunner:
    """Starts, runs and ends the jobs of one gateway's devices."""

    def __init__(
        self,
        hooks: DeviceHooks,
        storage: OtaStorage,
        parts: JobParts,
        *,
        max_flashes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Run jobs on the devices `hooks` reach, keeping images in `storage`, `max_flashes` flashes at once."""
        self._hooks = hooks
        self._cache = storage.cache
        self._states = parts.states
        self._downloads = parts.downloads
        self._reports = parts.reports
        self._shutdown = parts.shutdown
        self._gates = JobGates(hooks, parts.states, clock=clock)
        self._health = HealthRollback(hooks, storage.rollback_images, parts.states, clock=clock)
        self._flash_slots = asyncio.Semaphore(max_flashes)

    # -- what callers ask -----------------------------------------------------------------------------------

    async def install(self, entry: DeviceEntry) -> JobSnapshot:
        """Install the pending firmware (or join the job under way); return when the job has ended.

        Raises like `wait_for`, and refuses to start a job the device cannot run.
        """
        if entry.job is not None and (entry.job.cancelling() or not entry.snapshot.state.running):
            # That job is over (cancelled, or ended and still sending its report): this is a new install, not
            # that job; let it finish so its report goes first and the new job starts from a settled state.
            await asyncio.wait([entry.job])
        if entry.job is None:
            if self._shutdown.stopping:
                raise JobSuspendedError(
                    f"the gateway is stopping; the update of {entry.device} cannot start now"
                )
            if entry.snapshot.target is None:
                raise InvalidFirmwareError(Failure.of(FailureReason.NO_UPDATE_PENDING))
            if self._hooks.flasher_for(entry.device) is None:
                raise FlashError(Failure.of(FailureReason.NO_FLASHER))
            self.start(entry)
        return await self.wait_for(entry)

    async def follow(self, entry: DeviceEntry, timeout_s: float) -> JobSnapshot:
        """Wait for the job a stopped run left to resume (up to `timeout_s` for it to start); then like
        `wait_for`. A job that does not start in time leaves the snapshot as it is."""
        if entry.job is None and entry.install_requested:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await entry.job_started.wait()
        if entry.job is None:
            return entry.snapshot
        return await self.wait_for(entry)

    async def resume_rollouts(self) -> list[DeviceId]:
        """Let the halted rollouts go on: the devices their halt held back install again (in batches)."""
        if self._hooks.rollout is None:
            return []
        started: list[DeviceId] = []
        for device in self._hooks.rollout.resume():
            entry = self._states.get(device)
            if entry is not None and entry.job is not None and entry.snapshot.state is JobState.FAILED:
                # Its halted job is still saying goodbye (its report on the way): let it end first.
                await asyncio.gather(entry.job, return_exceptions=True)
            if (
                entry is None
                or entry.job is not None
                or entry.snapshot.target is None
                or self._shutdown.stopping
            ):
                continue
            _LOGGER.info("Resuming the rollout of %s to %s", device, entry.snapshot.target.version)
            self.start(entry)
            started.append(device)
        return started

    async def cancel(self, entry: DeviceEntry) -> None:
        """Stop a queued or downloading job (flashing cannot be interrupted safely)."""
        if entry.job is None:
            return
        if entry.snapshot.state is JobState.FLASHING:
            raise FlashError(f"{entry.device} is flashing; it cannot be cancelled now")
        await self.stop(entry)

    async def stop(self, entry: DeviceEntry) -> None:
        """Cancel the device's job, if one runs, and wait for it to settle."""
        if entry.job is not None:
            entry.job.cancel()
            await asyncio.gather(entry.job, return_exceptions=True)

    def start(self, entry: DeviceEntry) -> None:
        """Start a job installing the device's pending firmware."""
        target = entry.snapshot.target
        assert target is not None
        entry.install_requested = True
        if self._hooks.rollout is not None:
            self._hooks.rollout.join(entry.device, target)
        self._cache.acquire(target)
        self._states.update(
            entry,
            state=JobState.QUEUED,
            phase=JobPhase.QUEUED,
            hold=None,
            percent=None,
            result_code=None,
            message="",
            downloaded=0,
        )
        previous = entry.job  # an ended job still sending its outcome (a push just after a failure)
        entry.job = asyncio.get_running_loop().create_task(
            self._run(entry, target, previous), name=f"ota {entry.device} {target.version}"
        )
        entry.job_started.set()
        entry.job_started = asyncio.Event()
        self._states.persist(entry)

    async def wait_for(self, entry: DeviceEntry) -> JobSnapshot:
        """Wait for the device's job to end: its snapshot, or its own error when it failed.

        Raises `JobSuspendedError` when the gateway stopped while the job ran (it resumes with the next start:
        follow it there with `follow`), `CancelledError` when the user cancelled it or a newer push replaced it.
        """
        assert entry.job is not None
        try:
            end = await asyncio.shield(entry.job)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if (
                self._shutdown.stopping
                and entry.install_requested
                and not (task is not None and task.cancelling())
            ):
                raise JobSuspendedError(
                    f"the update of {entry.device} resumes when the gateway starts again"
                ) from None
            raise
        if end.error is not None and end.snapshot.state is JobState.FAILED:
            raise end.error
        return end.snapshot

    # -- the job --------------------------------------------------------------------------------------------

    async def _run(
        self, entry: DeviceEntry, target: FirmwareSpec, previous: asyncio.Task[JobEnd] | None = None
    ) -> JobEnd:
        error: OtaError | None = None
        try:
            if previous is not None:
                # Its outcome goes first, and its end must not end this job's reports (same device, maybe
                # the same version).
                await asyncio.wait([previous])
            resumed = await self._downloads.resume_point(target)
            await self._reports.progress.admit(
                entry.device,
                target.version,
                target.report_fields,
                percent=lambda: self._downloads.start_percent(target, resumed),
            )
            await self._gates.pass_gate(entry, GatePoint.BEFORE_DOWNLOAD)
            image = await self._downloads.download(entry, target)
            target = entry.snapshot.target or target
            version = await self._flash_when_ready(entry, target, image)
            await self._health.confirm(entry, target, image)
        except OtaError as err:
            error = err
            await self._finish(entry, target, err)
        except asyncio.CancelledError:
            if not self._shutdown.stopping:
                if entry.job is asyncio.current_task():
                    await self._on_cancelled(entry, target)
                else:
                    await self._on_replaced(entry, target)
            raise
        else:
            await self._finish(entry, target, version)
        finally:
            self._reports.progress.end(entry.device, target.version)
            if entry.job is asyncio.current_task():
                entry.job = None
        return JobEnd(entry.snapshot, error)

    async def _flash_when_ready(self, entry: DeviceEntry, target: FirmwareSpec, image: Path) -> str:
        """Flash once the gate is open and a slot is free; a gate that closed while the job waited for the
        slot gives the slot back (a held job must not keep others from flashing)."""
        await self._gates.wait_rollout_turn(entry)
        while True:
            await self._gates.pass_gate(entry, GatePoint.BEFORE_FLASH)
            if self._flash_slots.locked():
                # Said only when it waits: a free slot would make it a flicker before "flashing".
                self._states.update(entry, phase=JobPhase.FLASH_SLOT)
            async with self._flash_slots:
                await (
                    self._shutdown.wait_flashes_allowed()
                )  # stopping: no new flash; the stop cancels this job
                if await self._gates.reason_to_hold(entry, GatePoint.BEFORE_FLASH) is None:
                    return await self._flash(entry, target, image)

    async def _flash(self, entry: DeviceEntry, target: FirmwareSpec, image: Path) -> str:
        flasher = self._hooks.flasher_for(entry.device)
        if flasher is None:
            raise FlashError(Failure.of(FailureReason.NO_FLASHER))
        self._states.update(entry, state=JobState.FLASHING, phase=JobPhase.FLASHING, percent=DOWNLOAD_SHARE)
        entry.flashing = target.version
        # A stop from here on is reported as an interrupted flash. The record is written at once but not
        # awaited: a flash slot held for a write (writes are MIN_WRITE_GAP_S apart) would cap every push at
        # `max_flashes` devices per write. Only a crash within that write's time loses the mark (the job
        # then runs again from its cached image); the outcome is still written before it is reported.
        self._states.persist_soon(entry)
        self._reports.progress.burning(
            entry.device
        )  # queued behind the job's last report; a lost one is repeated

        def on_flash_progress(percent: int) -> None:
            # Only a flasher's own progress moves the bar past the download's half, and never to 100 before
            # the flash has returned (a device may still be rebooting into the image).
            bounded = max(0, min(99, percent))
            self._states.update(entry, percent=DOWNLOAD_SHARE + bounded * (100 - DOWNLOAD_SHARE) // 100)

        try:
            version = await flasher.flash(image, entry.device, target, on_flash_progress)
        except OtaError:
            raise
        except (OSError, TencentIotError) as err:
            # A flasher that did not name its failure: what it said is all there is (a plugged-in flasher's
            # words are not ours), quoted.
            _LOGGER.debug("The flasher of %s raised %r", entry.device, err)
            raise FlashError(str(err)) from err
        if version != target.version:
            raise FlashError(Failure.of(FailureReason.VERSION_MISMATCH, seen=version))
        return version

    async def _finish(self, entry: DeviceEntry, target: FirmwareSpec, result: str | OtaError) -> None:
        """Save the outcome, then report it: a report lost now is sent after the next reconnect."""
        entry.install_requested = False
        entry.flashing = None
        if self._hooks.rollout is not None:
            failure = (
                DeviceFailure(entry.device, result.failure, int(result.code))
                if isinstance(result, OtaError)
                else None
            )
            self._hooks.rollout.ended(entry.device, failure, halted=isinstance(result, RolloutHaltedError))
        if isinstance(result, OtaError):
            # Expected (a bad image, a refusing device): once, as a warning; the UI shows it translated.
            _LOGGER.warning(
                "Updating %s to %s failed: %s (code %d)", entry.device, target.version, result, result.code
            )
            entry.outcome = Outcome(
                OutcomeState.FAIL, target.version, int(result.code), str(result), target.echo
            )
            self._states.update(
                entry,
                state=JobState.FAILED,
                percent=None,
                result_code=int(result.code),
                message=str(result),
                failure=result.failure,
            )
        else:
            entry.outcome = Outcome(OutcomeState.DONE, target.version, echo=target.echo)
            self._states.update(
                entry, state=JobState.DONE, installed_version=result, target=None, percent=100
            )
            _LOGGER.info("%s now runs %s", entry.device, result)
        await self._states.persist_now(entry)
        await self._cache.release(target)
        await self._reports.send_outcome(entry)

    async def _on_replaced(self, entry: DeviceEntry, target: FirmwareSpec) -> None:
        """A push of another version replaced this job: its bytes are not wanted, and its task has ended."""
        if self._hooks.rollout is not None:
            self._hooks.rollout.leave(entry.device)
        await self._cache.release(target, discard_partial=True)
        offered = entry.snapshot.target
        message = f"replaced by version {offered.version}" if offered is not None else "replaced"
        _LOGGER.info("Update of %s to %s %s", entry.device, target.version, message)
        await self._reports.report_unsaved(entry, TerminalReport.ended(target.version, message))

    async def _on_cancelled(self, entry: DeviceEntry, target: FirmwareSpec) -> None:
        entry.install_requested = False
        if self._hooks.rollout is not None:
            self._hooks.rollout.leave(entry.device)
        _LOGGER.info("Update of %s to %s cancelled", entry.device, target.version)
        self._states.update(entry, state=JobState.AVAILABLE, percent=None, downloaded=0, message="")
        await self._states.persist_now(entry)
        await self._cache.release(target, discard_partial=True)
        await self._reports.report_unsaved(
            entry, TerminalReport.ended(target.version, "cancelled by the user")
        )
