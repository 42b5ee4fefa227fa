"""Uplink messages the cloud loses on purpose: a QoS 0 report that never arrives, a `burning` lost on the way.

`PUT /api/drops` replaces the rules (`DELETE` clears them):

    {"drops": [{"client": "PID/DN", "type": "report_progress", "state": "burning", "count": 1}]}

A rule matches an uplink of `client` (a device key) whose JSON `type` is `type` and, when `state` is given,
whose `report.progress.state` is `state`; it drops the next `count` such messages (default 1) and then ends.
A dropped message is logged with direction `dropped` and otherwise never reaches the cloud's logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class DropError(ValueError):
    """The drop rules are malformed; the message says which field and why."""


@dataclass(slots=True)
class DropRule:
    """Drop the next `remaining` uplinks of `client` of this type (and progress state)."""

    client: str
    type: str
    state: str | None = None
    remaining: int = 1

    @classmethod
    def parse(cls, raw: object) -> DropRule:
        """Validate one rule of `PUT /api/drops`."""
        if not isinstance(raw, dict):
            raise DropError("a drop rule must be a JSON object")
        unknown = set(raw) - {"client", "type", "state", "count"}
        if unknown:
            raise DropError(f"unknown drop rule field(s): {', '.join(sorted(unknown))}")
        client, kind, state = raw.get("client"), raw.get("type"), raw.get("state")
        count = raw.get("count", 1)
        if not isinstance(client, str) or "/" not in client:
            raise DropError("client must be a device key PID/DN")
        if not isinstance(kind, str) or not kind:
            raise DropError("type must be a message type, e.g. report_progress")
        if state is not None and not isinstance(state, str):
            raise DropError("state must be a string")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise DropError("count must be an integer >= 1")
        return cls(client, kind, state, count)

    def matches(self, client: str, message: Any) -> bool:
        """Whether `message` from `client` is one this rule drops."""
        if client != self.client or not isinstance(message, dict) or message.get("type") != self.type:
            return False
        if self.state is None:
            return True
        report = message.get("report")
        progress = report.get("progress") if isinstance(report, dict) else None
        return isinstance(progress, dict) and progress.get("state") == self.state

    def to_json(self) -> dict[str, Any]:
        """The rule as `parse` accepts it (with what is left of its count)."""
        rule: dict[str, Any] = {"client": self.client, "type": self.type, "count": self.remaining}
        if self.state is not None:
            rule["state"] = self.state
        return rule


class UplinkDrops:
    """The rules in force."""

    def __init__(self) -> None:
        """No rules: nothing is dropped."""
        self._rules: list[DropRule] = []

    def replace(self, raw: object) -> None:
        """Set the rules from the body of `PUT /api/drops`."""
        rules = raw.get("drops") if isinstance(raw, dict) else None
        if not isinstance(rules, list):
            raise DropError('the body must be {"drops": [rules]}')
        self._rules = [DropRule.parse(rule) for rule in rules]

    def clear(self) -> None:
        """Drop nothing any more."""
        self._rules = []

    def take(self, client: str, message: Any) -> bool:
        """Whether to drop this uplink (using up one count of the first rule that matches)."""
        for rule in self._rules:
            if rule.matches(client, message):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
                return True
        return False

    def to_json(self) -> dict[str, Any]:
        """The rules still in force."""
        return {"drops": [rule.to_json() for rule in self._rules]}
