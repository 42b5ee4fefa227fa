"""What the cloud hears of a job's end and of a device's version: outcomes, version reports, re-sent reports.

A flash is the one step that cannot be repeated safely, so its outcome is saved before it is reported, and a
report that could not be sent is sent after the next reconnect (the announce): a lost report never makes a
job flash again. A job's outcome goes only once the markers of its progress cadence are handed over
(`ProgressReporter.finish`, spec §3a), and carries the fields the push asked its reports to echo.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
import contextlib
from dataclasses import dataclass, replace
import logging
import time

from custom_components.tencent_iot_gateway.engine.background import BackgroundTasks
from custom_components.tencent_iot_gateway.engine.errors import (
    NotConnectedError,
    OperationTimeoutError,
    OtaError,
    OtaResultCode,
    TencentIotError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.topics import ota_report
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import Publish, UplinkPriority
from custom_components.tencent_iot_gateway.engine.ota.device_states import DeviceEntry, DeviceStates
from custom_components.tencent_iot_gateway.engine.ota.flashers.base import Flasher, VersionReader
from custom_components.tencent_iot_gateway.engine.ota.job_model import JobState
from custom_components.tencent_iot_gateway.engine.ota.progress_reports import (
    ProgressReporter,
    ReportCadence,
    progress_key,
)
from custom_components.tencent_iot_gateway.engine.ota.protocol import (
    ProgressState,
    report_progress,
    report_version,
)
from custom_components.tencent_iot_gateway.engine.stores.job_store import Outcome, OutcomeState

_LOGGER = logging.getLogger(__name__)

REPORTS_IN_FLIGHT = 32  # version reports awaiting their PUBACK at once after a (re)connect
# How long the next start asks a flasher whether an interrupted flash did put the new version on.
INTERRUPTED_PROBE_TIMEOUT_S = 10.0

type Echo = tuple[tuple[str, str | int], ...]


@dataclass(frozen=True, slots=True)
class TerminalReport:
    """The last report of a job (`done` or `fail`), kept as values until it is sent: the fields its reports
    echoed are only known once its cadence has ended, and are added then (`payload`)."""

    state: ProgressState
    version: str
    code: OtaResultCode | None = None
    message: str = ""
    echo: Echo = ()

    @classmethod
    def failed(cls, version: str, error: OtaError) -> TerminalReport:
        """The `fail` of a job that ended with `error`."""
        return cls(ProgressState.FAIL, version, error.code, str(error))

    @classmethod
    def ended(cls, version: str, message: str) -> TerminalReport:
        """The `fail` of a job that ended without a result of its own (cancelled, replaced)."""
        return cls(ProgressState.FAIL, version, OtaResultCode.UPGRADE_FAILED, message)

    @classmethod
    def of(cls, outcome: Outcome) -> TerminalReport:
        """The report of a saved outcome."""
        if outcome.state is OutcomeState.DONE:
            return cls(ProgressState.DONE, outcome.version, echo=outcome.echo)
        return cls(
            ProgressState.FAIL, outcome.version, _result_code(outcome.code), outcome.message, outcome.echo
        )

    def payload(self, echoed: Mapping[str, str | int]) -> str:
        """The `report_progress`, with `echoed` (the fields the job's reports repeated) beside the version."""
        return report_progress(
            self.state,
            self.version,
            code=self.code,
            message=self.message,
            echo=dict(self.echo) | dict(echoed),
        )


class OutcomeReports:
    """Sends the terminal reports and version reports of one gateway's devices, and owns their progress
    cadence (`progress`), whose last marker each outcome waits for."""

    def __init__(
        self,
        publish: Publish,
        states: DeviceStates,
        flasher_for: Callable[[DeviceId], Flasher | None],
        cadence: ReportCadence,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Send through `publish`; `flasher_for` is asked whether an interrupted flash finished after all."""
        self._publish = publish
        self._states = states
        self._flasher_for = flasher_for
        self._background = BackgroundTasks("A progress report was not sent", level=logging.DEBUG)
        self._progress = ProgressReporter(publish, self._background.spawn, cadence, clock=clock)

    @property
    def progress(self) -> ProgressReporter:
        """The cadence of the running jobs' progress reports."""
        return self._progress

    async def announce(self, entries: list[DeviceEntry]) -> None:
        """After a (re)connect: each device's saved outcome (settled first if a flash was interrupted), then
        its version. Outcomes are on disk before the cloud hears them."""
        for entry in entries:
            if entry.interrupted:
                await self._settle_interrupted(entry)
        if any(entry.outcome is not None for entry in entries):
            await self._states.async_flush()
        await self._report_each(entries)

    async def send_outcome(self, entry: DeviceEntry, *, then_version: bool = True) -> None:
        """Send the saved terminal report (and, after `done`, the version now running); forget it once sent."""
        outcome = entry.outcome
        if outcome is None:
            return
        try:
            await self.send_report(entry, TerminalReport.of(outcome))
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
            self._states.persist(entry)
        if then_version:
            with contextlib.suppress(NotConnectedError, OperationTimeoutError):
                await self.report_version(entry)  # if lost, the reconnect's announce reports it

    async def report_version(self, entry: DeviceEntry) -> None:
        """Tell the cloud the version the device runs (nothing while it is unknown)."""
        installed = entry.snapshot.installed_version
        if installed is None:
            return  # unknown: reporting a guess would overwrite the cloud's record of the device
        await self._publish(
            ota_report(entry.device), report_version(installed), 1, priority=UplinkPriority.VERSION
        )

    def spawn_failure_report(self, entry: DeviceEntry, version: str, error: OtaError) -> None:
        """Report, in the background, that a push of `version` could not be acted on."""
        self._background.spawn(self.report_unsaved(entry, TerminalReport.failed(version, error)))

    async def report_unsaved(self, entry: DeviceEntry, report: TerminalReport) -> None:
        """Send a report no outcome was saved for: one lost is not sent again."""
        with contextlib.suppress(TencentIotError):
            await self.send_report(entry, report)

    async def send_report(self, entry: DeviceEntry, report: TerminalReport, qos: int = 1) -> None:
        """Send a job's outcome (fail, done) once its markers are handed over; its keep-alives stop first."""
        echoed = await self._progress.finish(entry.device, report.version)
        await self._publish(
            ota_report(entry.device),
            report.payload(echoed),
            qos,
            priority=UplinkPriority.TERMINAL,
            coalesce_key=progress_key(entry.device, report.version),
        )

    async def async_close(self) -> None:
        """End the reports still being sent in the background."""
        await self._background.close()

    async def _report_each(self, entries: list[DeviceEntry]) -> None:
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
                        await self.send_outcome(entry, then_version=False)
                    if entry.snapshot.state is not JobState.FLASHING:  # its `done` and new version follow
                        await self.report_version(entry)
                except TencentIotError as err:
                    errors.append(err)

        await asyncio.gather(*(worker() for _ in range(min(REPORTS_IN_FLIGHT, len(entries)))))
        if errors:
            raise errors[0]

    async def _settle_interrupted(self, entry: DeviceEntry) -> None:
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
        self._states.update(
            entry, state=JobState.DONE, installed_version=running, target=None, result_code=None, message=""
        )
        self._states.persist(entry)


def _result_code(code: int) -> OtaResultCode:
    try:
        return OtaResultCode(code)
    except ValueError:
        return OtaResultCode.UPGRADE_FAILED
