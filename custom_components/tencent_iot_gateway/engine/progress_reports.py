"""Time-driven OTA progress: while a job runs, its cloud task never goes `keepalive_interval_s` without a report.

Tencent's upgrade task times out after 120-900 s without progress (spec §3a), but a job can sit queued for a
slot, trickle over a slow link, wait for a retry or flash a Zigbee device for ten minutes without a single new
percent. So progress is driven by the clock as well as by events: every running job has one `_Track` holding
the report that describes it now (`downloading` with the current percent, or `burning`), sent

- at once when it matters to the cadence of spec §3 (percent "0" when a download starts from byte 0, "100" at
  the end, `burning` when the flash starts),
- at most once per `report_interval_s` when the percent changes (the latest percent wins),
- again, unchanged, when `keepalive_interval_s` passed without a report (a keep-alive: also while queued,
  where it says `downloading` "0", and while the downloader retries).

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

from .errors import TencentIotError
from .identity import DeviceId
from .ota_protocol import ProgressState, report_progress
from .topics import ota_report
from .uplink import DEFAULT_UPLINK_RATE, Publish, UplinkPriority

_LOGGER = logging.getLogger(__name__)

KEEPALIVE_INTERVAL_S = 30.0  # longest silence of a running job's task (Tencent's shortest timeout is 120 s)
REPORT_INTERVAL_S = 1.0  # at most one progress report a second per job (spec §3 cadence)
KEEPALIVE_SHARE = 0.5  # part of the uplink budget keep-alives may use (spec §3a)
_JITTER = random.SystemRandom()


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
    # A report of this job is waiting for the uplink budget. One at a time: the cadence's markers ("0",
    # "100", `burning`) are never replaced by a later report in the queue and never overtaken; what changes
    # meanwhile is sent, latest first, once it went.
    busy: bool = False
    backlog: deque[tuple[str, int]] = field(default_factory=deque)  # markers that wait for `busy`

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
        self, device: DeviceId, version: str, echo: Mapping[str, str | int] | None = None
    ) -> None:
        """Wait for room in the keep-alive budget, then keep this job's task alive until `end`.

        `echo`: the push's fields every report of the job repeats (`FirmwareSpec.report_fields`).
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
        # Until the download says otherwise, the job stands at 0: the first report is a keep-alive saying so.
        track = _Track(device, version, last_sent, sent=(ProgressState.DOWNLOADING, 0), echo=dict(echo or {}))
        self._tracks[device] = track
        self._schedule(track)

    def end(self, device: DeviceId, version: str | None = None) -> dict[str, str | int]:
        """Stop reporting the device's job (only if it is for `version`, when given); idempotent.

        Returns the fields its reports echoed, for the outcome report that follows (empty if none ran).
        """
        track = self._tracks.get(device)
        if track is None or (version is not None and track.version != version):
            return {}
        del self._tracks[device]
        if track.timer is not None:
            track.timer.cancel()
            track.timer = None
        self._wake()
        return track.echo

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
        since = self._clock() - track.last_sent
        if not track.dirty and (not urgent or since < self._cadence.report_interval_s):
            return
        if urgent or since >= self._cadence.report_interval_s:
            self._send(track, UplinkPriority.PROGRESS, marker=urgent)
        else:
            self._schedule(track)

    def burning(self, device: DeviceId) -> None:
        """The flash starts: say so now (and, by the keep-alive, again until the job ends).

        Queued, not awaited: the flash must not wait for the uplink budget (with 1,000 jobs each flash slot
        would move at the pace of the uplink). It goes right after the job's report under way, if any.
        """
        track = self._tracks.get(device)
        if track is None:
            return
        track.state = ProgressState.BURNING
        track.percent = 0
        self._send(track, UplinkPriority.PROGRESS, marker=True)

    # -- sending ------------------------------------------------------------------------------------------

    def _send(self, track: _Track, priority: UplinkPriority, *, marker: bool = False) -> None:
        qos = 0 if track.state is ProgressState.DOWNLOADING else 1
        if track.busy:
            if marker:  # "0", "100" or `burning` is sent in its place, not folded into what comes after it
                track.backlog.append((self._mark_sent(track), qos))
            return  # otherwise the latest report follows the one under way
        # Busy from the hand-over on, not from when the task runs: a marker right behind this one (`burning`
        # just after "100") must queue behind it, or the limiter's coalescing would let one replace the other.
        track.busy = True
        self._spawn(self._publish_one(track, self._mark_sent(track), qos, priority))

    async def _publish_one(self, track: _Track, payload: str, qos: int, priority: UplinkPriority) -> None:
        """Send one report of the track, which `_send` marked busy; then what queued behind it."""
        if self._tracks.get(track.device) is not track:
            # The job ended before this task ran: its outcome is already on its way and must be the last
            # report (the cloud refuses progress after the task's end). No await between here and the send.
            return
        try:
            # The outcome shares the key: waiting here when the job ends, this report is replaced by it.
            await self._publish(
                ota_report(track.device),
                payload,
                qos,
                priority=priority,
                coalesce_key=progress_key(track.device, track.version),
            )
        except TencentIotError as err:
            # A lost report does not stop the job: the keep-alive repeats it.
            _LOGGER.debug("A progress report of %s was not sent: %s", track.device, err)
        finally:
            track.busy = False
        if self._tracks.get(track.device) is not track:
            return
        if track.backlog:
            payload, qos = track.backlog.popleft()
            track.busy = True
            self._spawn(self._publish_one(track, payload, qos, UplinkPriority.PROGRESS))
        else:
            # What changed meanwhile goes one report interval after the last report, not at once (the cadence
            # holds however long the budget made that one wait); with nothing new, the keep-alive is re-armed.
            self._schedule(track)

    def _mark_sent(self, track: _Track) -> str:
        track.sent = track.current
        track.last_sent = self._clock()
        self._schedule(track)
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
