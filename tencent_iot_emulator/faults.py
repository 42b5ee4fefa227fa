"""Fault knobs of the firmware server, parsed and validated from the console's `PUT /api/faults` JSON.

The JSON body (every field optional; a PUT replaces the whole set, `{}` resets everything):

    {
      "url_ttl_s": 30,                 # life of newly signed URLs (default: the server's initial TTL)
      "cut_after_bytes": 1000, ...     # download knobs at the top level apply to every firmware ("global")
      "firmware": {"PID/VERSION": {"status": 404, ...}}   # per firmware: replaces the global knobs for it
    }

Download knobs (see `DownloadFaults`): `cut_after_bytes`, `cut_repeat`, `throttle_bps`, `stall_at_byte`,
`stall_s`, `stall_repeat`, `flip_byte_at`, `ignore_range`, `status`, `header_delay_s`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
import math
from typing import Any

GLOBAL_SCOPE = "*"


class FaultError(ValueError):
    """The fault JSON is malformed; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class DownloadFaults:
    """What goes wrong with one firmware's downloads.

    Offsets (`stall_at_byte`, `flip_byte_at`) are positions in the file; `cut_after_bytes` counts body bytes of
    one response, so with `cut_repeat` a client that resumes with Range still progresses N bytes per attempt.
    Cuts and stalls fire once per PUT (in their scope) unless their `_repeat` flag is set.
    """

    cut_after_bytes: int | None = None
    cut_repeat: bool = False
    throttle_bps: int | None = None
    stall_at_byte: int | None = None
    stall_s: float = 0.0
    stall_repeat: bool = False
    flip_byte_at: int | None = None
    ignore_range: bool = False
    status: int | None = None
    header_delay_s: float = 0.0

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str) -> DownloadFaults:
        """Validate the knobs in `raw` (every key must be a knob); `where` names them in error messages."""
        known = {f.name for f in fields(cls)}
        for key in raw:
            if key not in known:
                raise FaultError(f"{where}: unknown fault knob {key!r}; known: {', '.join(sorted(known))}")
        status = _optional_int(raw, "status", where, minimum=400)
        if status is not None and status > 599:
            raise FaultError(f"{where}: status must be an HTTP error status (400-599), got {status}")
        faults = cls(
            cut_after_bytes=_optional_int(raw, "cut_after_bytes", where, minimum=0),
            cut_repeat=_bool(raw, "cut_repeat", where),
            throttle_bps=_optional_int(raw, "throttle_bps", where, minimum=1),
            stall_at_byte=_optional_int(raw, "stall_at_byte", where, minimum=0),
            stall_s=_seconds(raw, "stall_s", where),
            stall_repeat=_bool(raw, "stall_repeat", where),
            flip_byte_at=_optional_int(raw, "flip_byte_at", where, minimum=0),
            ignore_range=_bool(raw, "ignore_range", where),
            status=status,
            header_delay_s=_seconds(raw, "header_delay_s", where),
        )
        if (faults.stall_at_byte is None) != (faults.stall_s == 0):
            raise FaultError(f"{where}: stall_at_byte and stall_s go together (both set, or neither)")
        return faults

    @property
    def streams_plainly(self) -> bool:
        """Whether the body needs no per-chunk fault handling (the fast path)."""
        return (
            self.cut_after_bytes is None
            and self.throttle_bps is None
            and self.stall_at_byte is None
            and self.flip_byte_at is None
        )

    def to_json(self) -> dict[str, Any]:
        """The knobs that differ from their default, as `parse` accepts them."""
        defaults = DownloadFaults()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }


NO_FAULTS = DownloadFaults()


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """The whole fault set: the URL life, global knobs, and per-firmware knobs keyed `PID/VERSION`."""

    url_ttl_s: float | None = None
    global_faults: DownloadFaults = NO_FAULTS
    firmware: Mapping[str, DownloadFaults] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: object) -> FaultConfig:
        """Validate the body of `PUT /api/faults`."""
        if not isinstance(raw, dict):
            raise FaultError("the fault set must be a JSON object")
        knobs = {k: v for k, v in raw.items() if k not in {"url_ttl_s", "firmware"}}
        url_ttl_s = _seconds(raw, "url_ttl_s", "faults") if "url_ttl_s" in raw else None
        per_firmware = raw.get("firmware", {})
        if not isinstance(per_firmware, dict):
            raise FaultError('faults: "firmware" must be an object keyed "PID/VERSION"')
        firmware: dict[str, DownloadFaults] = {}
        for key, value in per_firmware.items():
            product_id, slash, version = key.partition("/")
            if not (slash and product_id and version and "/" not in version):
                raise FaultError(f"faults: firmware key {key!r} must be PRODUCT_ID/VERSION")
            if not isinstance(value, dict):
                raise FaultError(f"firmware {key!r}: the knobs must be a JSON object")
            firmware[key] = DownloadFaults.parse(value, f"firmware {key!r}")
        return cls(url_ttl_s, DownloadFaults.parse(knobs, "faults"), firmware)

    def for_firmware(self, key: str) -> tuple[str, DownloadFaults]:
        """The scope (`key` or the global scope) and the knobs that apply to firmware `key`."""
        specific = self.firmware.get(key)
        if specific is not None:
            return key, specific
        return GLOBAL_SCOPE, self.global_faults

    def to_json(self) -> dict[str, Any]:
        """The fault set as `parse` accepts it."""
        result: dict[str, Any] = self.global_faults.to_json()
        if self.url_ttl_s is not None:
            result["url_ttl_s"] = self.url_ttl_s
        if self.firmware:
            result["firmware"] = {key: faults.to_json() for key, faults in self.firmware.items()}
        return result


def _optional_int(raw: Mapping[str, Any], name: str, where: str, *, minimum: int) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    # bool is an int in Python, but `true` is never a byte count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise FaultError(f"{where}: {name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise FaultError(f"{where}: {name} must be at least {minimum}, got {value}")
    return value


def _bool(raw: Mapping[str, Any], name: str, where: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise FaultError(f"{where}: {name} must be true or false, got {type(value).__name__}")
    return value


def _seconds(raw: Mapping[str, Any], name: str, where: str) -> float:
    value = raw.get(name, 0.0)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise FaultError(f"{where}: {name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise FaultError(f"{where}: {name} must be a finite number of seconds >= 0, got {value}")
    return float(value)
