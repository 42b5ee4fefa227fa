"""A shared download's progress reaches 1,000 jobs without one long step of the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from custom_components.tencent_iot_gateway.engine.ota.progress_fan_out import ProgressFanOut


async def test_many_listeners_are_served_in_chunks_in_order_and_all_hear_the_end() -> None:
    heard: dict[int, list[int]] = {i: [] for i in range(1000)}
    listeners: dict[int, Callable[[int], None]] = {i: heard[i].append for i in range(1000)}
    fan_out = ProgressFanOut(listeners, chunk=100)
    between: list[int] = []
    # Runs at the next loop iteration: if the fan-out called every listener in one go, all had heard by then.
    asyncio.get_running_loop().call_soon(lambda: between.append(sum(1 for h in heard.values() if h)))
    fan_out.deliver(0)
    fan_out.deliver(40)  # while the first pass runs: the listeners it has not reached get the latest
    fan_out.deliver(100)
    del listeners[999]  # a job that left is not called any more
    await fan_out.drain()
    assert between
    assert between[0] < 1000
    assert all(h[-1] == 100 for i, h in heard.items() if i != 999)
    assert all(h == sorted(h) and len(h) == len(set(h)) for h in heard.values())
    assert heard[999] == [0] or heard[999] == []


async def test_few_listeners_are_called_at_once() -> None:
    heard: list[int] = []
    fan_out = ProgressFanOut({1: heard.append}, chunk=100)
    fan_out.deliver(7)
    assert heard == [7]
    await fan_out.drain()
