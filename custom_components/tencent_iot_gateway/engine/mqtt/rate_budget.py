"""The uplink rate budget of one connection (spec §3a "Rate budget"; the contract is `uplink.py`).

Tencent's broker allows a device a limited number of uplink messages a second, and by the strict reading a
gateway's messages for all of its sub-devices share that one budget. `UplinkLimiter` guarantees that no more
than `rate` messages are handed to the MQTT client in any window of `WINDOW_S`: it spaces them evenly, by a
window stretched by a margin, so that a message the broker handles a little late (its own stalls, the
network) cannot make it count one too many. When the budget is spent, messages wait in one priority queue:
terminal reports and control operations first, the jobs' cadence markers, version reports next, then
progress, keep-alives last and never more than half of the budget. A waiting message with the same `coalesce_key` as a new one is replaced
by it (it keeps its place in the queue): the latest progress wins, and the caller of the replaced message is
answered together with the one that replaced it.

Cost: the fast path (its turn, nothing waiting) is O(1) and creates nothing; a waiting message costs one
future and a heap entry (O(log n)); one sender task drains the queue, however many messages wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import heapq
import time

from custom_components.tencent_iot_gateway.engine.errors import TencentIotError
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import Payload, UplinkPriority

WINDOW_S = 1.0
# Messages reach the broker's counter a little after we hand them over, by a delay that varies: the margin
# is how much variation is absorbed (the cost: the budget is used to 1 / (1 + margin), 93 %).
SAFETY_MARGIN_S = 0.08
CATCH_UP = 0.25  # of an interval: lateness of one message the next one's turn makes up for (`_Pacer`)

type Send = Callable[[str, str, int], int | None]


@dataclass(slots=True, eq=False)
class _Waiting:
    """A message waiting for the budget; `future` gets the packet id once it is handed to the client."""

    topic: str
    payload: Payload
    qos: int
    priority: UplinkPriority
    key: str | None
    future: asyncio.Future[int | None]
    waiters: int = 1
    settled: bool = False


@dataclass(slots=True)
class _Pacer:
    """Messages at least `interval_s` apart: `rate` per window spread evenly, never as one burst.

    A burst would be counted by the broker in the order and at the speed it processes it; spread out, what
    the broker sees is what was sent, give or take its delay, which the margin absorbs.
    """

    interval_s: float
    catch_up: float = 0.0
    next_s: float = 0.0

    def wait_s(self, now: float) -> float:
        """Seconds until one more message may go (0 when it may go now)."""
        return max(0.0, self.next_s - now)

    def record(self, now: float) -> None:
        """Count one message sent at `now`: the next one's turn is an interval after this one's turn.

        Counted from `now`, every timer that fires a little late (they all do) would stretch an interval, and
        the budget would be used to ~97 % of what the margin leaves. A turn missed by more than `catch_up`
        of an interval is not made up for, so a stall is never followed by a burst: with the connection's
        budget (30 a second, `CATCH_UP`), 31 messages still span at least 29.75 intervals, which leaves the
        broker 71 ms of the 80 ms margin.
        """
        self.next_s = max(self.next_s, now - self.catch_up * self.interval_s) + self.interval_s


class UplinkLimiter:
    """One connection's budget: `submit` hands a message to `send` now or when the budget allows."""

    def __init__(
        self,
        rate: float | None,
        send: Send,
        *,
        window_s: float = WINDOW_S,
        margin_s: float = SAFETY_MARGIN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`rate` messages per `window_s` (None or 0: no budget); `send(topic, payload, qos)` returns the mid."""
        self._send = send
        self._clock = clock
        self._window: _Pacer | None = None
        self._keepalive: _Pacer | None = None
        if rate:
            # `rate` per window, measured over a slightly longer one: any window of `window_s` holds fewer.
            interval = (window_s + margin_s) / max(1.0, rate * window_s)
            self._window = _Pacer(interval, CATCH_UP)
            # Strictly spaced: "at most half of the budget" leaves no room for catching up.
            self._keepalive = _Pacer(2 * interval)
        self._heap: list[tuple[int, int, _Waiting]] = []
        self._by_key: dict[str, _Waiting] = {}
        self._seq = 0
        self._sender: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def waiting(self) -> int:
        """How many messages wait for the budget."""
        return sum(1 for _, _, entry in self._heap if not entry.settled)

    async def submit(
        self,
        topic: str,
        payload: Payload,
        qos: int,
        priority: UplinkPriority = UplinkPriority.CONTROL,
        coalesce_key: str | None = None,
    ) -> int | None:
        """Hand the message to `send` within the budget; returns its packet id (None if `send` gave none).

        A callable `payload` is rendered right before `send` (see `uplink.Payload`). Raises what `send` or
        the rendering raises, or what `fail_waiting` says, for a message that was waiting.
        """
        now = self._clock()
        if not self._heap and self._delay(priority, now) == 0.0:
            self._record(priority, now)
            return self._send(topic, _rendered(payload), qos)
        entry = self._by_key.get(coalesce_key) if coalesce_key is not None else None
        if entry is not None and not entry.settled:
            # Latest wins: the newer content goes out in the older one's place; both callers are answered.
            entry.topic, entry.payload = topic, payload
            entry.qos = max(entry.qos, qos)
            entry.waiters += 1
            if priority < entry.priority:
                entry.priority = priority
                self._push(entry)
        else:
            future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
            # A waiter cancelled meanwhile must not leave an exception nobody retrieves.
            future.add_done_callback(_consume)
            entry = _Waiting(topic, payload, qos, priority, coalesce_key, future)
            if coalesce_key is not None:
                self._by_key[coalesce_key] = entry
            self._push(entry)
        self._ensure_sender()
        try:
            return await asyncio.shield(entry.future)
        except asyncio.CancelledError:
            entry.waiters -= 1
            if entry.waiters == 0 and not entry.settled:
                self._settle(entry)
                entry.future.cancel()
            raise

    def fail_waiting(self, error: TencentIotError) -> None:
        """Fail every waiting message (the connection is gone); the budget's memory is kept."""
        heap, self._heap = self._heap, []
        self._by_key.clear()
        for _, _, entry in heap:
            if not entry.settled:
                entry.settled = True
                if not entry.future.done():
                    entry.future.set_exception(error)

    async def close(self) -> None:
        """Stop the sender; waiting messages must have been failed first."""
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    # -- internals ------------------------------------------------------------------------------------------

    def _delay(self, priority: UplinkPriority, now: float) -> float:
        if self._window is None or self._keepalive is None:
            return 0.0
        delay = self._window.wait_s(now)
        if priority is UplinkPriority.KEEPALIVE:
            delay = max(delay, self._keepalive.wait_s(now))
        return delay

    def _record(self, priority: UplinkPriority, now: float) -> None:
        if self._window is None or self._keepalive is None:
            return
        self._window.record(now)
        if priority is UplinkPriority.KEEPALIVE:
            self._keepalive.record(now)

    def _push(self, entry: _Waiting) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (int(entry.priority), self._seq, entry))
        self._wake.set()

    def _settle(self, entry: _Waiting) -> None:
        entry.settled = True
        if entry.key is not None and self._by_key.get(entry.key) is entry:
            del self._by_key[entry.key]

    def _ensure_sender(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._drain(), name="uplink budget")

    async def _drain(self) -> None:
        while self._heap:
            priority, _, entry = self._heap[0]
            if entry.settled or priority != entry.priority:
                heapq.heappop(self._heap)  # sent, cancelled, or re-queued at a higher priority
                continue
            now = self._clock()
            delay = self._delay(entry.priority, now)
            if delay > 0:
                self._wake.clear()
                # A more urgent message arriving meanwhile may fit earlier (keep-alives have their own cap).
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            heapq.heappop(self._heap)
            self._settle(entry)
            self._record(entry.priority, now)
            try:
                mid = self._send(entry.topic, _rendered(entry.payload), entry.qos)
            except TencentIotError as err:
                entry.future.set_exception(err)
            else:
                entry.future.set_result(mid)


def _rendered(payload: Payload) -> str:
    return payload if isinstance(payload, str) else payload()


def _consume(future: asyncio.Future[int | None]) -> None:
    if not future.cancelled():
        future.exception()
