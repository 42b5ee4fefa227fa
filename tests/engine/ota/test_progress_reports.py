"""The progress reporter's own rules: cadence, keep-alive, coalescing keys and admission within the budget."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
import json
from typing import Any

import pytest

from custom_components.tencent_iot_gateway.engine.background import BackgroundTasks
from custom_components.tencent_iot_gateway.engine.errors import NotConnectedError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import UplinkPriority
from custom_components.tencent_iot_gateway.engine.ota.progress_reports import (
    ProgressReporter,
    ReportCadence,
    progress_key,
)
from tests.emulator_fixtures import eventually

A, B, C = (DeviceId("LIGHTPID01", name) for name in ("a", "b", "c"))


@dataclass
class Sent:
    """One publish the reporter made."""

    topic: str
    report: dict[str, Any]
    qos: int
    priority: UplinkPriority
    coalesce_key: str | None


@dataclass
class Uplink:
    """A `Publish` that records, and fails while `down`."""

    sent: list[Sent] = field(default_factory=list)
    down: bool = False

    async def __call__(
        self,
        topic: str,
        payload: str,
        qos: int = 1,
        *,
        priority: UplinkPriority = UplinkPriority.CONTROL,
        coalesce_key: str | None = None,
    ) -> None:
        if self.down:
            raise NotConnectedError("not connected")
        self.sent.append(Sent(topic, json.loads(payload)["report"], qos, priority, coalesce_key))

    def of(self, device: DeviceId) -> list[Sent]:
        return [s for s in self.sent if s.topic.endswith(f"/{device.product_id}/{device.device_name}")]


@pytest.fixture
async def background() -> Any:
    tasks = BackgroundTasks("test")
    yield tasks
    await tasks.close()


def _reporter(uplink: Uplink, background: BackgroundTasks, **cadence: float) -> ProgressReporter:
    return ProgressReporter(uplink, background.spawn, ReportCadence(**cadence))


async def test_capacity_is_half_the_budget_over_the_keepalive_interval() -> None:
    assert ReportCadence().capacity == 450  # 30 msg/s x 1/2 x 30 s
    assert ReportCadence(uplink_rate=2.0, keepalive_interval_s=1.0).capacity == 1
    assert ReportCadence(uplink_rate=0.1, keepalive_interval_s=1.0).capacity == 1  # never zero


@pytest.mark.parametrize(
    "cadence",
    [
        {"keepalive_interval_s": 0.0},
        {"report_interval_s": 2.0, "keepalive_interval_s": 1.0},
        {"report_interval_s": -1.0},
        {"uplink_rate": 0.0},
    ],
)
def test_a_cadence_that_cannot_work_is_refused(cadence: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"interval|rate"):
        ReportCadence(**cadence)


async def test_cadence_urgent_throttled_and_keepalive(background: BackgroundTasks) -> None:
    """0 and 100 go at once; changes in between at most once per interval, latest wins; silence is filled."""
    uplink = Uplink()
    reporter = _reporter(uplink, background, report_interval_s=0.2, keepalive_interval_s=0.5)
    await reporter.admit(A, "V2")
    reporter.downloading(A, 0, urgent=True)
    reporter.downloading(A, 10)
    reporter.downloading(A, 20)  # both within the interval: only the latest is sent, later

    async def sent(count: int) -> bool:
        await asyncio.sleep(0)
        return len(uplink.of(A)) >= count

    await eventually(lambda: sent(2), within=2)
    first, second = uplink.of(A)[:2]
    assert first.report["progress"]["percent"] == "0"
    assert (second.report["progress"]["percent"], second.priority) == ("20", UplinkPriority.PROGRESS)
    # A marker is never coalesced (no key); a percent in between is, with the job's other percents.
    assert [(s.coalesce_key, s.priority) for s in (first, second)] == [
        (None, UplinkPriority.MARKER),
        (progress_key(A, "V2"), UplinkPriority.PROGRESS),
    ]
    assert all(s.qos == 0 for s in uplink.of(A))

    await eventually(lambda: sent(3), within=2)
    keepalive = uplink.of(A)[2]
    assert (keepalive.report["progress"]["percent"], keepalive.priority) == ("20", UplinkPriority.KEEPALIVE)

    reporter.downloading(A, 100, urgent=True)
    await asyncio.sleep(0)
    await eventually(lambda: sent(4), within=2)
    assert uplink.of(A)[3].report["progress"]["percent"] == "100"

    uplink.down = True
    reporter.burning(A)  # a lost burning does not raise: the keep-alive repeats it
    for _ in range(3):
        await asyncio.sleep(0)  # the queued burning is tried (and lost) while the uplink is down
    uplink.down = False
    await eventually(lambda: sent(5), within=2)
    repeat = uplink.of(A)[4]
    assert (repeat.report["progress"]["state"], repeat.qos) == ("burning", 1)

    reporter.end(A, "V1")  # another version's outcome does not end this job
    assert reporter.alive == 1
    reporter.end(A, "V2")
    reporter.end(A)  # idempotent
    count = len(uplink.of(A))
    reporter.downloading(A, 50)  # a job that ended reports nothing
    # B's second report comes a keep-alive interval after its first: A's would have come by then.
    await reporter.admit(B, "V2")

    async def b_twice() -> bool:
        await asyncio.sleep(0)
        return len(uplink.of(B)) >= 2

    await eventually(b_twice, within=2)
    assert len(uplink.of(A)) == count
    reporter.end(B)


async def test_a_queued_job_says_zero_after_one_report_interval(background: BackgroundTasks) -> None:
    uplink = Uplink()
    reporter = _reporter(uplink, background, report_interval_s=0.05, keepalive_interval_s=5.0)
    await reporter.admit(A, "V2")
    assert uplink.sent == []

    async def told() -> bool:
        await asyncio.sleep(0)
        return bool(uplink.sent)

    await eventually(told, within=2)
    assert uplink.sent[0].report == {
        "progress": {"state": "downloading", "percent": "0", "result_code": "0", "result_msg": ""},
        "version": "V2",
    }
    assert uplink.sent[0].priority is UplinkPriority.KEEPALIVE
    reporter.end(A)


async def test_a_resumed_job_says_where_its_download_stands(background: BackgroundTasks) -> None:
    """Spec §3: "0" only for a download from byte 0. A job resumed at 43 % keeps its task alive with 43, and
    its cloud progress never jumps back (old code: the admission's keep-alive said "0")."""
    uplink = Uplink()
    reporter = _reporter(uplink, background, report_interval_s=0.05, keepalive_interval_s=5.0)
    await reporter.admit(A, "V2", percent=lambda: 43)

    async def told() -> bool:
        await asyncio.sleep(0)
        return bool(uplink.sent)

    await eventually(told, within=2)
    assert uplink.sent[0].report["progress"]["percent"] == "43"
    reporter.downloading(A, 44)

    async def sent(count: int) -> bool:
        await asyncio.sleep(0)
        return len(uplink.sent) >= count

    await eventually(lambda: sent(2), within=2)
    reporter.downloading(A, 100, urgent=True)
    await eventually(lambda: sent(3), within=2)
    assert [s.report["progress"]["percent"] for s in uplink.sent] == ["43", "44", "100"]
    reporter.end(A)


async def test_admission_waits_in_order_and_hands_on_a_slot_nobody_took(background: BackgroundTasks) -> None:
    """Capacity 1: B and C wait in order; a waiter cancelled before or after its turn never loses the slot."""
    reporter = _reporter(Uplink(), background, uplink_rate=2.0, keepalive_interval_s=1.0)
    await reporter.admit(A, "V2")
    b = asyncio.create_task(reporter.admit(B, "V2"))
    c = asyncio.create_task(reporter.admit(C, "V2"))
    await asyncio.sleep(0.01)
    assert not b.done()
    assert not c.done()

    reporter.end(A)  # B's turn; B is cancelled before it resumes: C must get the slot
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    await asyncio.wait_for(c, 1)
    assert reporter.alive == 1

    d = asyncio.create_task(reporter.admit(A, "V3"))
    await asyncio.sleep(0.01)
    d.cancel()  # cancelled while still waiting
    with pytest.raises(asyncio.CancelledError):
        await d
    reporter.end(C)
    await asyncio.wait_for(reporter.admit(B, "V2"), 1)
    assert reporter.alive == 1
    reporter.end(B)


async def test_a_report_whose_turn_comes_after_the_job_ended_is_not_sent() -> None:
    """A report handed to the background just before the outcome must not follow the outcome to the cloud
    (the emulator refused `downloading` after `done`, seen once in twenty runs before this rule)."""
    uplink = Uplink()
    pending: list[Coroutine[Any, Any, None]] = []
    reporter = ProgressReporter(uplink, pending.append, ReportCadence(report_interval_s=0.0))
    await reporter.admit(A, "V2")
    reporter.downloading(A, 40)
    assert len(pending) == 1  # handed over, not yet run
    reporter.end(A, "V2")  # the outcome goes now
    for coro in pending:
        await coro
    assert uplink.sent == []


async def test_markers_keep_their_place_behind_a_report_still_waiting(background: BackgroundTasks) -> None:
    """While a report waits for the budget, the cadence's "100" and `burning` queue behind it, in order."""
    uplink = Uplink()
    gate = asyncio.Event()

    async def slow(topic: str, payload: str, qos: int = 1, **labels: Any) -> None:
        await gate.wait()  # the budget holds every report back until the gate opens
        await uplink(topic, payload, qos, **labels)

    reporter = ProgressReporter(slow, background.spawn, ReportCadence(report_interval_s=0.0))
    await reporter.admit(A, "V2")
    reporter.downloading(A, 0, urgent=True)
    await asyncio.sleep(0)  # "0" is now waiting
    reporter.downloading(A, 40)
    reporter.downloading(A, 100, urgent=True)
    reporter.burning(A)
    await asyncio.sleep(0)
    gate.set()

    async def all_sent() -> bool:
        await asyncio.sleep(0)
        return len(uplink.of(A)) >= 3

    await eventually(all_sent, within=2)
    reports = [s.report["progress"] for s in uplink.of(A)]
    assert [(p["state"], p.get("percent")) for p in reports] == [
        ("downloading", "0"),
        ("downloading", "100"),
        ("burning", None),
    ]
    reporter.end(A)


async def test_finish_waits_for_every_marker_and_drops_the_percents(background: BackgroundTasks) -> None:
    """The outcome goes last: `finish` returns once "0", "100" and `burning` are handed over, in order, even
    when the job ends while all three still wait for the budget (old code: the outcome replaced them in the
    limiter, and ending the job discarded the markers queued behind the one under way). A percent still
    waiting is dropped: the outcome supersedes it."""
    uplink = CoalescingUplink()
    reporter = ProgressReporter(uplink, background.spawn, ReportCadence(report_interval_s=0.0))
    await reporter.admit(A, "V2", {"task_id": 7})
    reporter.downloading(A, 0, urgent=True)
    reporter.downloading(A, 0, urgent=True)  # said once per job
    reporter.downloading(A, 100, urgent=True)
    reporter.burning(A)
    finishing = asyncio.ensure_future(reporter.finish(A, "V2"))
    await asyncio.sleep(0.05)
    assert not finishing.done()  # the markers still wait for the budget
    uplink.gate.set()
    assert await asyncio.wait_for(finishing, 2) == {"task_id": 7}
    reports = [s.report["progress"] for s in uplink.uplink.of(A)]
    assert [(p["state"], p.get("percent")) for p in reports] == [
        ("downloading", "0"),
        ("downloading", "100"),
        ("burning", None),
    ]
    assert all(s.priority is UplinkPriority.MARKER and s.coalesce_key is None for s in uplink.uplink.of(A))
    assert reporter.alive == 0
    assert await reporter.finish(A, "V2") == {}  # nothing left to wait for


async def test_a_marker_supersedes_a_keepalive_still_waiting(background: BackgroundTasks) -> None:
    """A keep-alive waiting for the budget (behind every other job's) gives way to the marker that follows
    it: the marker does not wait for it, and the cloud hears the marker."""
    uplink = Uplink()
    gate = asyncio.Event()

    async def held_keepalives(topic: str, payload: str, qos: int = 1, **labels: Any) -> None:
        if labels.get("priority") is UplinkPriority.KEEPALIVE:
            await gate.wait()  # never opens: the budget has no room for keep-alives
        await uplink(topic, payload, qos, **labels)

    reporter = ProgressReporter(
        held_keepalives, background.spawn, ReportCadence(report_interval_s=0.01, keepalive_interval_s=5.0)
    )
    await reporter.admit(A, "V2")
    await asyncio.sleep(0.1)  # the admission's keep-alive is due and waits
    reporter.downloading(A, 100, urgent=True)
    reporter.burning(A)
    await asyncio.wait_for(reporter.finish(A, "V2"), 2)
    reports = [s.report["progress"] for s in uplink.of(A)]
    assert [(p["state"], p.get("percent")) for p in reports] == [("downloading", "100"), ("burning", None)]


@dataclass
class CoalescingUplink:
    """Holds every report until `gate` opens; like the session's limiter, a waiting report is replaced by a
    later one with the same coalescing key."""

    uplink: Uplink = field(default_factory=Uplink)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    latest: dict[str | None, object] = field(default_factory=dict)

    async def __call__(
        self,
        topic: str,
        payload: str,
        qos: int = 1,
        *,
        priority: UplinkPriority = UplinkPriority.CONTROL,
        coalesce_key: str | None = None,
    ) -> None:
        token = self.latest[coalesce_key] = object()
        await self.gate.wait()
        if self.latest.get(coalesce_key) is token:
            await self.uplink(topic, payload, qos, priority=priority, coalesce_key=coalesce_key)


async def test_burning_does_not_wait_for_the_budget_and_keeps_its_place(background: BackgroundTasks) -> None:
    """The flash starts at once, whatever the uplink: `burning` is queued, not awaited (a flash slot held
    while the report waits for the budget would slow every flash to the uplink's pace). Queued right behind
    the "100" the download just sent, neither replaces the other."""
    uplink = CoalescingUplink()
    reporter = ProgressReporter(uplink, background.spawn, ReportCadence(report_interval_s=0.0))
    await reporter.admit(A, "V2")
    reporter.downloading(A, 100, urgent=True)
    reporter.burning(A)  # returns at once, with no await since the "100", as when the flash slot is free
    uplink.gate.set()

    async def both_sent() -> bool:
        await asyncio.sleep(0)
        return len(uplink.uplink.of(A)) >= 2

    await eventually(both_sent, within=2)
    reports = [s.report["progress"] for s in uplink.uplink.of(A)]
    assert [(p["state"], p.get("percent")) for p in reports] == [("downloading", "100"), ("burning", None)]
    assert uplink.uplink.of(A)[1].qos == 1
    reporter.end(A)


async def test_a_change_while_a_report_waits_keeps_the_cadence(background: BackgroundTasks) -> None:
    """A percent that changed while the last report waited for the budget follows it one report interval
    after it, not at once when the budget lets the first one go."""
    uplink = Uplink()
    gate = asyncio.Event()
    sent_at: list[float] = []
    loop = asyncio.get_running_loop()

    async def slow(topic: str, payload: str, qos: int = 1, **labels: Any) -> None:
        await gate.wait()
        sent_at.append(loop.time())
        await uplink(topic, payload, qos, **labels)

    reporter = ProgressReporter(slow, background.spawn, ReportCadence(report_interval_s=0.3))
    await reporter.admit(A, "V2")
    started = loop.time()
    reporter.downloading(A, 0, urgent=True)  # waits for the budget
    reporter.downloading(A, 40)  # changed meanwhile
    await asyncio.sleep(0.05)
    gate.set()

    async def both_sent() -> bool:
        await asyncio.sleep(0)
        return len(uplink.of(A)) >= 2

    await eventually(both_sent, within=2)
    assert [s.report["progress"]["percent"] for s in uplink.of(A)[:2]] == ["0", "40"]
    assert sent_at[1] - started >= 0.3 * 0.9  # old code: sent as soon as "0" went, 50 ms in
    reporter.end(A)
