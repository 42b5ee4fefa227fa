"""The uplink rate budget (engine/mqtt/rate_budget.py): window, priorities, coalescing, keep-alive share, cost."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from custom_components.tencent_iot_gateway.engine.errors import NotConnectedError
from custom_components.tencent_iot_gateway.engine.mqtt.rate_budget import (
    CATCH_UP,
    SAFETY_MARGIN_S,
    UplinkLimiter,
    _Pacer,
)
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import UplinkPriority
from tests.emulator_fixtures import eventually

WINDOW_S = 0.1
MARGIN_S = 0.005


class Recorder:
    """A `send` that records what went out and when; mids count up from 1."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str, str, int]] = []

    def __call__(self, topic: str, payload: str, qos: int) -> int:
        self.sent.append((time.monotonic(), topic, payload, qos))
        return len(self.sent)

    @property
    def payloads(self) -> list[str]:
        return [payload for _, _, payload, _ in self.sent]

    def times(self, payload_prefix: str = "") -> list[float]:
        return [at for at, _, payload, _ in self.sent if payload.startswith(payload_prefix)]


def limiter(recorder: Recorder, rate: float | None) -> UplinkLimiter:
    """`rate` messages a second, counted in windows of 0.1 s (`rate / 10` per window)."""
    return UplinkLimiter(rate, recorder, window_s=WINDOW_S, margin_s=MARGIN_S)


def most_in_any_window(times: list[float], window_s: float) -> int:
    """The largest number of `times` inside any half-open window of `window_s`."""
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_without_a_budget_everything_goes_at_once() -> None:
    recorder = Recorder()
    budget = limiter(recorder, None)
    mids = await asyncio.gather(*(budget.submit("t", str(i), 1) for i in range(50)))
    assert mids == list(range(1, 51))


async def test_never_more_than_the_budget_in_any_window() -> None:
    recorder = Recorder()
    budget = limiter(recorder, 50)  # 5 per 0.1 s
    await asyncio.gather(*(budget.submit("t", str(i), 0) for i in range(40)))
    assert len(recorder.sent) == 40
    assert most_in_any_window(recorder.times(), WINDOW_S) <= 5
    # and as fast as the budget allows: 40 messages, 5 per (window + margin)
    assert recorder.sent[-1][0] - recorder.sent[0][0] < 8 * (WINDOW_S + MARGIN_S) + 0.2


async def test_waiting_messages_go_by_priority_then_in_order() -> None:
    recorder = Recorder()
    budget = limiter(recorder, 10)
    await budget.submit("t", "first", 0)  # spends the budget: everything below waits
    waiting = [
        budget.submit("t", "keepalive", 0, UplinkPriority.KEEPALIVE),
        budget.submit("t", "progress-1", 0, UplinkPriority.PROGRESS),
        budget.submit("t", "control", 1, UplinkPriority.CONTROL),
        budget.submit("t", "progress-2", 0, UplinkPriority.PROGRESS),
        budget.submit("t", "done", 1, UplinkPriority.TERMINAL),
    ]
    await asyncio.gather(*waiting)
    assert recorder.payloads == ["first", "done", "control", "progress-1", "progress-2", "keepalive"]


async def test_the_bridge_goes_after_every_ota_message() -> None:
    """Data-template traffic waits behind OTA's outcomes, markers, versions, progress and keep-alives, and
    its answers to the cloud go before its reports."""
    recorder = Recorder()
    budget = limiter(recorder, 10)
    await budget.submit("t", "first", 0)
    waiting = [
        budget.submit("t", "report", 0, UplinkPriority.DATA_REPORT),
        budget.submit("t", "control_reply", 1, UplinkPriority.DATA_REPLY),
        budget.submit("t", "keepalive", 0, UplinkPriority.KEEPALIVE),
        budget.submit("t", "progress", 0, UplinkPriority.PROGRESS),
        budget.submit("t", "version", 1, UplinkPriority.VERSION),
        budget.submit("t", "marker", 1, UplinkPriority.MARKER),
        budget.submit("t", "done", 1, UplinkPriority.TERMINAL),
    ]
    await asyncio.gather(*waiting)
    assert recorder.payloads == [
        "first",
        "done",
        "marker",
        "version",
        "progress",
        "keepalive",
        "control_reply",
        "report",
    ]


async def test_a_flood_of_reports_holds_an_ota_marker_up_by_one_turn_at_most() -> None:
    """With 200 reports waiting and going out, a marker submitted meanwhile is the next message handed over
    (or the one after, if a report's turn came at that very moment): one pacing interval, here 1/100 s, and
    the connection's 30 a second give 1/30 s, far from a second."""
    recorder = Recorder()
    budget = limiter(recorder, 100)
    reports = [
        asyncio.ensure_future(budget.submit("t", f"report {i}", 0, UplinkPriority.DATA_REPORT))
        for i in range(200)
    ]

    async def some_reports_sent() -> bool:
        return len(recorder.sent) >= 20

    await eventually(some_reports_sent)
    sent_before = len(recorder.sent)
    await budget.submit("t", "marker", 1, UplinkPriority.MARKER)
    assert recorder.payloads.index("marker") - sent_before <= 1
    assert all(p.startswith("report") for p in recorder.payloads[: recorder.payloads.index("marker")])
    for report in reports:
        report.cancel()
    await asyncio.gather(*reports, return_exceptions=True)
    await budget.close()


async def test_a_rendered_payload_carries_the_values_of_its_turn() -> None:
    """A callable payload (uplink.Payload) is rendered when it is handed over, not when it was submitted."""
    recorder = Recorder()
    budget = limiter(recorder, 10)
    await budget.submit("t", "first", 0)
    value = {"brightness": 1}
    waiting = asyncio.ensure_future(
        budget.submit("t", lambda: f"report {value['brightness']}", 0, UplinkPriority.DATA_REPORT)
    )
    await asyncio.sleep(0)
    value["brightness"] = 42
    await waiting
    assert recorder.payloads == ["first", "report 42"]


async def test_coalescing_sends_the_latest_once_and_answers_every_caller() -> None:
    recorder = Recorder()
    budget = limiter(recorder, 10)
    await budget.submit("t", "first", 0)
    key = "progress LIGHTPID01/light1 2.0"
    calls = [
        asyncio.ensure_future(budget.submit("t", f"percent {p}", 0, UplinkPriority.PROGRESS, key))
        for p in (10, 20, 30)
    ]
    other = asyncio.ensure_future(budget.submit("t", "other device", 0, UplinkPriority.PROGRESS, "k2"))
    # `burning` (QoS 1) replaces the waiting percent: the replaced callers must wait for a PUBACK-able message
    burning = asyncio.ensure_future(budget.submit("t", "burning", 1, UplinkPriority.PROGRESS, key))
    async with asyncio.timeout(2):
        mids = await asyncio.gather(*calls, burning)
        await other
    assert recorder.payloads == ["first", "burning", "other device"]
    assert len(set(mids)) == 1  # every caller is answered with the one message that went out
    assert recorder.sent[1][3] == 1  # with the highest QoS of the replaced ones


async def test_keepalives_use_at_most_half_of_the_budget() -> None:
    recorder = Recorder()
    budget = limiter(recorder, 60)
    keepalives = [budget.submit("t", f"ka{i}", 0, UplinkPriority.KEEPALIVE) for i in range(18)]
    await asyncio.gather(*keepalives)
    assert most_in_any_window(recorder.times("ka"), WINDOW_S) <= 3


async def test_keepalives_leave_room_for_the_rest() -> None:
    recorder = Recorder()
    budget = limiter(recorder, 60)
    keepalives = [
        asyncio.ensure_future(budget.submit("t", f"ka{i}", 0, UplinkPriority.KEEPALIVE)) for i in range(30)
    ]
    await asyncio.sleep(0)
    # progress that arrives while keep-alives wait is not held behind them
    started = time.monotonic()
    await budget.submit("t", "progress", 0, UplinkPriority.PROGRESS)
    assert time.monotonic() - started < 2 * (WINDOW_S + MARGIN_S)
    await asyncio.gather(*keepalives)


async def test_a_cancelled_caller_sends_nothing() -> None:
    recorder = Recorder()
    budget = limiter(recorder, 10)
    await budget.submit("t", "first", 0)
    call = asyncio.ensure_future(budget.submit("t", "cancelled", 0))
    await asyncio.sleep(0)
    call.cancel()
    await budget.submit("t", "after", 0)
    assert recorder.payloads == ["first", "after"]


async def test_a_lost_connection_fails_the_waiting_messages() -> None:
    recorder = Recorder()
    budget = limiter(recorder, 10)
    await budget.submit("t", "first", 0)
    calls = [asyncio.ensure_future(budget.submit("t", str(i), 1)) for i in range(3)]
    await asyncio.sleep(0)
    budget.fail_waiting(NotConnectedError("gone"))
    for call in calls:
        with pytest.raises(NotConnectedError):
            await call
    await budget.close()
    assert recorder.payloads == ["first"]


async def test_a_thousand_waiting_messages_cost_one_task() -> None:
    recorder = Recorder()
    budget = limiter(recorder, 500)
    tasks_before = len(asyncio.all_tasks())
    calls = [asyncio.ensure_future(budget.submit("t", str(i), 0)) for i in range(1000)]
    await asyncio.sleep(0)
    # the callers' own futures, plus one sender: no task per waiting message
    assert len(asyncio.all_tasks()) - tasks_before <= len(calls) + 1
    assert budget.waiting > 0
    await asyncio.gather(*calls)
    assert most_in_any_window(recorder.times(), WINDOW_S) <= 50


def _paced(lateness_s: list[float], interval_s: float) -> list[float]:
    """When messages go if each one's timer fires `lateness_s[i]` after its turn."""
    pacer, now, sent = _Pacer(interval_s, CATCH_UP), 100.0, []
    for late in lateness_s:
        now = max(now, pacer.next_s) + late
        pacer.record(now)
        sent.append(now)
    return sent


def test_late_timers_do_not_stretch_the_budget_and_a_stall_is_no_burst() -> None:
    """The connection's budget (30 a second): 300 messages whose timers fire 0-2 ms late take no longer than
    on time (old code: every lateness added up, 3 % of the budget lost); after a 0.5 s stall the next one
    still waits most of an interval; and with lateness of any size, no second (even stretched by what the
    margin leaves for the broker's delays) ever holds more than 30."""
    interval = (1.0 + SAFETY_MARGIN_S) / 30
    rng = random.Random(10)
    on_time = _paced([0.0] * 300, interval)
    late = _paced([rng.uniform(0, 0.002) for _ in range(300)], interval)
    assert late[-1] - late[0] <= on_time[-1] - on_time[0] + 0.002

    stalled = _paced([0.0] * 5 + [0.5] + [0.0] * 5, interval)
    assert stalled[6] - stalled[5] >= (1 - CATCH_UP) * interval - 1e-9

    for _ in range(20):
        sent = _paced([rng.choice([0.0, 0.0, rng.uniform(0, 2 * interval)]) for _ in range(400)], interval)
        assert most_in_any_window(sent, 1.0 + SAFETY_MARGIN_S - 0.009) <= 30
