"""What the gateway sends up, and how urgent it is: the contract between the OTA jobs and the session.

Tencent's broker limits what one connection may send (spec §3a "Rate budget": 30 uplink messages a second by
the strict reading). Every uplink therefore says how it may be treated when the budget is tight: terminal
reports and `online` go first, then the cadence markers of the jobs, which are never coalesced; intermediate
progress can be coalesced (a newer report with the same key replaces one still waiting), keep-alives take what is
left. The session's rate limiter implements this; callers only label.

The data-template bridge (engine/data_template/) comes after all of that: OTA must never wait for the bridge.
Its reports may be rendered when their turn comes (a `Payload` callable), so the values sent are the latest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Protocol

DEFAULT_UPLINK_RATE = 30.0  # messages per second for the whole connection (spec §3a)


class UplinkPriority(IntEnum):
    """Lower values are sent first when messages wait for the budget."""

    TERMINAL = 0  # fail, done: outcomes the cloud must hear
    CONTROL = 1  # gateway operations (online, offline, bind, describe) and their acknowledgements
    # A job's cadence markers (downloading "0" and "100", `burning`): its outcome waits until they are handed
    # over (spec §3a), so they go ahead of everything an outcome goes ahead of.
    MARKER = 2
    # report_version: ahead of progress as spec §3a says, but behind the two above, which it could otherwise
    # hold up: after a (re)connect with 1,000 sub-devices the versions take half a minute of the budget, and a
    # sub-device added meanwhile, or a flash that ends, would wait for them all.
    VERSION = 3
    PROGRESS = 4  # a downloading percent between the markers, or a changed state at its report interval
    KEEPALIVE = 5  # a repeated report whose only purpose is to keep the cloud's task alive
    # The data-template bridge, below every OTA message: a flood of reports holds an OTA message up by one
    # message's turn at most (the budget is shared, never preempted), and never starves keep-alives. Answers
    # to the cloud and requests (control_reply, get_status, clear_control) go before reports: a control's
    # sender waits for them, while a report only needs to arrive eventually with the latest values.
    DATA_REPLY = 6
    DATA_REPORT = 7


# A payload, or what renders it when the budget lets it go: the data-template reports are built only then, so
# a report that waited carries the values of that moment, not of when it was queued.
type Payload = str | Callable[[], str]


class Publish(Protocol):
    """Send one message; with QoS 1 return once the broker acknowledged it."""

    def __call__(
        self,
        topic: str,
        payload: str,
        qos: int = 1,
        *,
        priority: UplinkPriority = UplinkPriority.CONTROL,
        coalesce_key: str | None = None,
    ) -> Awaitable[None]:
        """`coalesce_key`: a later message with the same key replaces this one if it has not been sent yet."""
        ...


# Subscribe to topics through the connection, one per SUBSCRIBE; returns once each was granted.
type Subscribe = Callable[[list[str]], Awaitable[None]]
