"""Time-driven OTA progress: while a job runs, its cloud task never goes `keepalive_interval_s` without a report.

Tencent's upgrade task times out after 120-900 s without progress (spec §3a), but a job can sit queued for a
slot, trickle over a slow link, wait for a retry or flash a Zigbee device for ten minutes without a single new
percent. So progress is driven by the clock as well as by events: every running job has one `_Track` holding
the report that describes it now (`downloading` with the current percent, or `burning`), sent

- at once when it is one of the cadence's markers (spec §3: percent "0" when a download starts from byte 0,
  "100" at the end, `burning` when the flash starts); markers are queued in order and never dropped, replaced
  or overtaken, and `finish` lets the job's outcome go only once they are handed over (spec §3a),
- at most once per `report_interval_s` when the percent changes (the latest percent wins),
- again, unchanged, when `keepalive_interval_s` passed without a report (a keep-alive: also while queued,
  where it says where the download stands, "0" unless it resumes, and while the downloader retries).

Keep-alives share the connection's uplink budget (spec §3a "Rate budget"): they may use at most half of it, one
per job per interval, so at most `capacity` jobs can be kept alive at once. `admit` makes a job wait (without
reports: it shows as queued) until there is room for it; a job the cloud never heard start is not promised
anything.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
import logging
import random
import sys
import time
from typing import Any

from custom_components.tencent_iot_gateway.engine.errors import TencentIotError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.topics import ota_report
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import (
    DEFAULT_UPLINK_RATE,
    Publish,
    UplinkPriority,
)
from custom_components.tencent_iot_gateway.engine.ota.protocol import ProgressState, report_progress

_LOGGER = logging.getLogger(__name__)

KEEPALIVE_INTERVAL_S = 30.0  # longest silence of a running job's task (Tencent's shortest timeout is 120 s)
REPORT_INTERVAL_S = 1.0  # at most one progress report a second per job (spec §3 cadence)
KEEPALIVE_SHARE = 0.5  # part of the uplink budget keep-alives may use (spec §3a)
_JITTER = random.SystemRandom()

type _Report = tuple[str, int, UplinkPriority]  # payload, QoS, priority


@dataclass(frozen=True, slots=True)
class ReportCadence:
    """How often a running job is reported, and the uplink budget the keep-alives must fit in."""

    report_interval_s: float = REPORT_INTERVAL_S
    keepalive_interval_s: float = KEEPALIVE_INTERVAL_S
    uplink_rate: float | None = DEFAULT_UPLINK_RATE  # None: the connection has no budget

    def __post_init__(self) -> None:
        """A keep-alive interval of 0 would report in a loop; a report interval above it would defer changes
        past the keep-alive, which then repeats stale news."""
        if not self.keepalive_interval_s > 0 or not 0 <= self.report_interval_s <= self.keepalive_interval_s:
            raise ValueError(
                "need 0 <= report_interval_s <= keepalive_interval_s and keepalive_interval_s > 0"
            )
        if self.uplink_rate is not None and not self.uplink_rate > 0:
            raise ValueError("uplink_rate must be positive")

    @property
    def capacity(self) -> int:
        """How many jobs the keep-alive share of the budget keeps alive (one report per job per interval)."""
        if self.uplink_rate is None:
            return sys.maxsize
        return max(1, int(self.uplink_rate * KEEPALIVE_SHARE * self.keepalive_interval_s))


def progress_key(device: DeviceId, version: str) -> str:
    """The coalescing key of one job's reports: a newer report replaces an unsent older one of the same job.

    The version is part of it so that the first report of a new job never replaces the outcome of the last.
    """
    return f"ota-progress/{device.key}/{version}"


@dataclass(slots=True)
class _Track:
    """One running job's report: what it says now, what the cloud heard last and when."""

    device: DeviceId
    version: str
    last_sent: float
    state: ProgressState = ProgressState.DOWNLOADING
    percent: int = 0
    sent: tuple[ProgressState, int] | None = None
    timer: asyncio.TimerHandle | None = None
    due: float | None = None  # when the timer fires, on the reporter's clock
    echo: dict[str, str | int] = field(default_factory=dict)
    # The job's reports go out one at a time, in order, through one sender (`ProgressReporter._drain`).
    # Markers ("0", "100", `burning`) wait in `markers` and are never dropped, replaced or overtaken; any other
    # report is only ever the latest state, sent when nothing else of the job is under way.
    markers: deque[tuple[str, int]] = field(default_factory=deque)
    marked: set[tuple[ProgressState, int]] = field(default_factory=set)  # markers queued so far
    latest: _Report | None = None  # a percent or keep-alive for the sender, once the markers went
    sending: bool = False  # the sender runs
    in_flight: asyncio.Future[None] | None = None  # the report the sender awaits now
    in_flight_marker: bool = False
    ended: bool = False  # `end`: no more keep-alives or percents; queued markers still go
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while nothing is queued or under way

    @property
    def current(self) -> tuple[ProgressState, int]:
        """The report as it would be sent now."""
        return self.state, self.percent

    @property
    def dirty(self) -> bool:
        """Whether the cloud has not heard the current report yet."""
        return self.sent != self.current


class ProgressReporter:
    """Owns the report cadence of every running job of one gateway."""

    def __init__(
        self,
        publish: Publish,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        cadence: ReportCadence | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Send through `publish`; unawaited sends run through `spawn` (the owner ends them)."""
        self._publish = publish
        self._spawn = spawn
        self._cadence = cadence or ReportCadence()
        self._clock = clock
        self._tracks: dict[DeviceId, _Track] = {}
        self._ending: dict[DeviceId, _Track] = {}  # ended jobs whose markers are still on their way
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._reserved = 0  # admissions granted to waiters that have not resumed yet

    @property
    def cadence(self) -> ReportCadence:
        """The intervals and the budget in use."""
        return self._cadence

    @property
    def alive(self) -> int:
        """How many jobs are being kept alive now."""
        return len(self._tracks)

    # -- admission ----------------------------------------------------------------------------------------

    async def admit(
        self,
        device: DeviceId,
        version: str,
        echo: Mapping[str, str | int] | None = None,
        *,
        percent: Callable[[], int] | None = None,
    ) -> None:
        """Wait for room in the keep-alive budget, then keep this job's task alive until `end`.

        `echo`: the push's fields every report of the job repeats (`FirmwareSpec.report_fields`).
        `percent`: where the job's download stands once admitted (a resumed download is not at 0: spec §3
        says "0" only for a download from byte 0, and the cloud's progress must not jump back).
        """
        self.end(device)
        if self._waiting or len(self._tracks) + self._reserved >= self._cadence.capacity:
            _LOGGER.debug(
                "%s waits to start: %d jobs already use the keep-alive budget", device, len(self._tracks)
            )
            admitted = asyncio.get_running_loop().create_future()
            self._waiting.append(admitted)
            try:
                await admitted
            except asyncio.CancelledError:
                if admitted in self._waiting:
                    self._waiting.remove(admitted)
                elif admitted.done() and not admitted.cancelled():
                    self._reserved -= 1  # granted but never used: hand it on
                    self._wake()
                raise
            self._reserved -= 1
        now = self._clock()
        # The first keep-alive is due one report interval after the start, unless the download reports first.
        last_sent = now - self._cadence.keepalive_interval_s + self._cadence.report_interval_s
        # Until the download says otherwise, the job stands where its download does: the first report is a
        # keep-alive saying so.
        start = max(0, min(100, percent())) if percent is not None else 0
        track = _Track(
            device,
            version,
            last_sent,
            percent=start,
            sent=(ProgressState.DOWNLOADING, start),
            echo=dict(echo or {}),
        )
        track.idle.set()
        self._tracks[device] = track
        self._schedule(track)

    def end(self, device: DeviceId, version: str | None = None) -> dict[str, str | int]:
        """Stop the keep-alives and percents of the device's job (only if it is for `version`, when given).

        Its markers still queued go out all the same (`finish` waits for them). Idempotent; its room in the
        keep-alive budget goes to the next job waiting (also after `finish`, which keeps it until then, so
        that a job held back never speaks before the outcome of the one it waited for). Returns the fields
        its reports echoed, for the outcome report that follows (empty if none ran).
        """
        track = self._detach(device, version)
        self._wake()
        return track.echo if track is not None else {}

    async def finish(self, device: DeviceId, version: str) -> dict[str, str | int]:
        """End the job, then wait until its markers are handed to the broker: its outcome goes after them.

        Spec §3a: the cadence's markers are never dropped, replaced or reordered, and the outcome comes last.
        A percent or keep-alive still waiting for the budget is dropped instead: the outcome supersedes it.
        The job's room in the keep-alive budget is handed on by the `end` that follows the outcome.
        Returns the fields its reports echoed (empty if no job ran).
        """
        track = self._tracks.get(device) or self._ending.get(device)
        if track is None or track.version != version:
            return {}
        self._detach(device, version)
        self._stop(track)
        await track.idle.wait()
        return track.echo

    def _detach(self, device: DeviceId, version: str | None) -> _Track | None:
        """Take the device's job out of the running ones (only if it is for `version`, when given)."""
        track = self._tracks.get(device)
        if track is None or (version is not None and track.version != version):
            return None
        del self._tracks[device]
        self._stop(track)
        if not track.idle.is_set():
            self._ending[device] = track
        return track

    def _stop(self, track: _Track) -> None:
        track.ended = True
        if track.timer is not None:
            track.timer.cancel()
            track.timer = None
        track.latest = None
        if track.in_flight is not None and not track.in_flight_marker:
            track.in_flight.cancel()  # superseded by the outcome

    def _wake(self) -> None:
        while self._waiting and len(self._tracks) + self._reserved < self._cadence.capacity:
            admitted = self._waiting.popleft()
            if not admitted.done():
                self._reserved += 1
                admitted.set_result(None)

    # -- what the job tells ---------------------------------------------------------------------------------

    def downloading(self, device: DeviceId, percent: int, *, urgent: bool = False) -> None:
        """The download stands at `percent`; `urgent` for the reports the cadence wants at once (0 and 100)."""
        track = self._tracks.get(device)
        if track is None:
            return
        track.state = ProgressState.DOWNLOADING
        track.percent = max(0, min(100, percent))
        self._tell(track, marker=urgent)

    def burning(self, device: DeviceId) -> None:
        """The flash starts: say so now (and, by the keep-alive, again until the job ends).

        Queued, not awaited: the flash must not wait for the uplink budget (with 1,000 jobs each flash slot
        would move at the pace of the uplink). It goes right after the job's markers already queued.
        """
        track = self._tracks.get(device)
        if track is None:
            return
        track.state = ProgressState.BURNING
        track.percent = 0
        self._tell(track, marker=True)

    def _tell(self, track: _Track, *, marker: bool) -> None:
        if marker and track.current not in track.marked:
            # Each marker once per job: a download joined late, or restarted from byte 0, says "0" or "100"
            # again, which the cloud has already heard (or will, in order).
            track.marked.add(track.current)
            self._queue_marker(track)
            return
        if not track.dirty:
            return
        if self._clock() - track.last_sent >= self._cadence.report_interval_s:
            self._send(track, UplinkPriority.PROGRESS)
        else:
            self._schedule(track)

    # -- sending ------------------------------------------------------------------------------------------

    def _queue_marker(self, track: _Track) -> None:
        """Queue the current state as a marker: after the markers before it, ahead of any percent or keep-alive.

        A percent or keep-alive not yet handed over gives way to it (superseded, as spec §3a allows).
        """
        qos = 0 if track.state is ProgressState.DOWNLOADING else 1
        track.markers.append((self._mark_sent(track), qos))
        track.latest = None
        if track.in_flight is not None and not track.in_flight_marker:
            track.in_flight.cancel()
        self._start_sender(track)

    def _send(self, track: _Track, priority: UplinkPriority) -> None:
        """Send the current state (a percent or a keep-alive) unless a report of the job is under way."""
        if track.sending:
            return  # the latest state follows what is under way (`_drain` re-arms the timer)
        qos = 0 if track.state is ProgressState.DOWNLOADING else 1
        track.latest = (self._mark_sent(track), qos, priority)
        self._start_sender(track)

    def _start_sender(self, track: _Track) -> None:
        if track.sending:
            return
        # Sending from the hand-over on, not from when the task runs: a marker right behind this report
        # (`burning` just after "100") must queue behind it.
        track.sending = True
        track.idle.clear()
        self._spawn(self._drain(track))

    async def _drain(self, track: _Track) -> None:
        """Send the track's reports one at a time: its queued markers in order, then the latest state if any.

        The latest state (a percent or a keep-alive) is dropped once the job ended: its outcome supersedes it.
        """
        try:
            while True:
                if track.markers:
                    payload, qos = track.markers.popleft()
                    await self._send_one(track, payload, qos, UplinkPriority.MARKER, marker=True)
                elif track.latest is not None and not track.ended:
                    payload, qos, priority = track.latest
                    track.latest = None
                    await self._send_one(track, payload, qos, priority, marker=False)
                else:
                    break
        finally:
            track.sending = False
            track.latest = None
            track.markers.clear()  # not empty only when the sender itself was cancelled (the gateway stops)
            track.idle.set()
            if self._ending.get(track.device) is track:
                del self._ending[track.device]
        if not track.ended:
            # What changed meanwhile goes one report interval after the last report, not at once (the cadence
            # holds however long the budget made that one wait); with nothing new, the keep-alive is re-armed.
            self._schedule(track)

    async def _send_one(
        self, track: _Track, payload: str, qos: int, priority: UplinkPriority, *, marker: bool
    ) -> None:
        """Publish one report of the track; a percent or keep-alive may be cancelled on the way (superseded)."""
        sending = asyncio.ensure_future(
            self._publish(
                ota_report(track.device),
                payload,
                qos,
                priority=priority,
                # A percent or keep-alive still waiting for the budget is replaced by a newer one of the job; a
                # marker has no key, so nothing ever replaces it.
                coalesce_key=None if marker else progress_key(track.device, track.version),
            )
        )
        track.in_flight, track.in_flight_marker = sending, marker
        try:
            await asyncio.wait([sending])
        except asyncio.CancelledError:
            sending.cancel()
            raise
        finally:
            track.in_flight = None
        if sending.cancelled():
            return
        err = sending.exception()
        if isinstance(err, TencentIotError):
            # A lost report does not stop the job: the keep-alive repeats it.
            _LOGGER.debug("A progress report of %s was not sent: %s", track.device, err)
        elif err is not None:
            raise err

    def _mark_sent(self, track: _Track) -> str:
        """The report of the track's current state, counted as sent now."""
        track.sent = track.current
        track.last_sent = self._clock()
        if not track.ended:
            self._schedule(track)
        return self._report(track)

    @staticmethod
    def _report(track: _Track) -> str:
        if track.state is ProgressState.DOWNLOADING:
            return report_progress(
                ProgressState.DOWNLOADING, track.version, percent=track.percent, echo=track.echo
            )
        return report_progress(track.state, track.version, echo=track.echo)

    def _schedule(self, track: _Track) -> None:
        """Arm the one timer of the track: a pending change after the report interval, else a keep-alive."""
        if track.dirty:
            due = track.last_sent + self._cadence.report_interval_s
            if track.timer is not None and track.due == due:
                return  # a change while one is already waiting: the timer sends whatever is latest
        else:
            # A little early, by a random part of a tenth: jobs started together drift apart instead of
            # sending their keep-alives in one burst every interval.
            due = track.last_sent + self._cadence.keepalive_interval_s * (1.0 - 0.1 * _JITTER.random())
        if track.timer is not None:
            track.timer.cancel()
        track.due = due
        delay = max(0.0, due - self._clock())
        track.timer = asyncio.get_running_loop().call_later(delay, self._on_timer, track)

    def _on_timer(self, track: _Track) -> None:
        track.timer = None
        track.due = None
        if self._tracks.get(track.device) is not track:
            return
        self._send(track, UplinkPriority.PROGRESS if track.dirty else UplinkPriority.KEEPALIVE)
