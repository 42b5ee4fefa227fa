"""What the OTA jobs keep across restarts, one record per sub-device, written in coalesced batches.

A change costs O(1): the device's record is replaced in memory and a write is scheduled. Ordinary changes
(a push arrived, an install started) are written together at most once per `SAVE_DELAY_S`; an outcome that
must survive a crash (a flash began, a flash or job ended) is written at once by `async_put_now`, whose caller
waits for the write before telling the cloud (spec §3a: a terminal outcome is saved before it is reported).
Outcomes that arrive together share one write, and writes are at least `MIN_WRITE_GAP_S` apart, so the store
is written a few times a second at most, whatever the number of sub-devices. Exactly one document is pending at
any time: it is built when the write starts, from the records as they are then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
import logging
import time
from typing import Any

from custom_components.tencent_iot_gateway.engine.ota.firmware import echoed_fields
from custom_components.tencent_iot_gateway.engine.stores.storage import StateStore

_LOGGER = logging.getLogger(__name__)

STORE_VERSION = 1
SAVE_DELAY_S = 1.0
MIN_WRITE_GAP_S = 0.2


class OutcomeState(StrEnum):
    """The terminal report a job owes the cloud."""

    DONE = "done"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A job's terminal report not yet acknowledged by the broker: sent again after the next reconnect."""

    state: OutcomeState
    version: str
    code: int = 0
    message: str = ""
    # The push's fields its reports repeat (task_id, fw_type, if it had them): a resent report repeats them too.
    echo: tuple[tuple[str, str | int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        stored: dict[str, Any] = {
            "state": self.state.value,
            "version": self.version,
            "code": self.code,
            "message": self.message,
        }
        if self.echo:
            stored["echo"] = dict(self.echo)
        return stored

    @classmethod
    def from_dict(cls, data: object) -> Outcome | None:
        """Parse a stored outcome; anything malformed is None."""
        if not isinstance(data, Mapping):
            return None
        state, version = data.get("state"), data.get("version")
        code, message = data.get("code", 0), data.get("message", "")
        if state not in {s.value for s in OutcomeState} or not isinstance(version, str) or not version:
            return None
        if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
            return None
        echo = data.get("echo")
        return cls(
            OutcomeState(state),
            version,
            code,
            message,
            echoed_fields(echo) if isinstance(echo, Mapping) else (),
        )


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One sub-device's saved state.

    `installed` None: the version is unknown (adopted from the cloud, never told). `flashing`: the version whose
    flash had begun and not ended when this was written; found at start, the flash was interrupted.
    """

    installed: str | None
    pending: Mapping[str, Any] | None = None
    install_requested: bool = False
    flashing: str | None = None
    outcome: Outcome | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form (the keys of store version 1, plus the optional new ones)."""
        data: dict[str, Any] = {
            "installed": self.installed,
            "pending": dict(self.pending) if self.pending is not None else None,
            "install_requested": self.install_requested,
        }
        if self.flashing is not None:
            data["flashing"] = self.flashing
        if self.outcome is not None:
            data["outcome"] = self.outcome.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: object) -> DeviceRecord | None:
        """Parse a stored record; anything malformed is None."""
        if not isinstance(data, Mapping):
            return None
        installed = data.get("installed")
        pending = data.get("pending")
        flashing = data.get("flashing")
        return cls(
            installed=installed if isinstance(installed, str) and installed else None,
            pending=pending if isinstance(pending, Mapping) else None,
            install_requested=data.get("install_requested") is True,
            flashing=flashing if isinstance(flashing, str) and flashing else None,
            outcome=Outcome.from_dict(data.get("outcome")),
        )


class JobStore:
    """The saved records of every sub-device of one gateway, behind one `StateStore`."""

    def __init__(
        self,
        store: StateStore,
        *,
        save_delay_s: float = SAVE_DELAY_S,
        min_write_gap_s: float = MIN_WRITE_GAP_S,
    ) -> None:
        """Coalesce writes to `store`: ordinary changes within `save_delay_s`, urgent ones within the gap."""
        self._store = store
        self._save_delay_s = save_delay_s
        self._min_write_gap_s = min_write_gap_s
        self._records: dict[str, DeviceRecord] = {}
        # The stored form of each record, built once per change: a write only copies the references.
        self._documents: dict[str, dict[str, Any]] = {}
        self._changes = 0
        self._saved = 0
        self._urgent = 0
        self._dirty_since = 0.0
        self._last_write = -float("inf")
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._writes = 0

    @property
    def writes(self) -> int:
        """How many times the document was written (for tests and benchmarks)."""
        return self._writes

    async def async_load(self) -> None:
        """Read what the last run saved; a record that cannot be parsed is dropped."""
        document = await self._store.async_load() or {}
        devices = document.get("devices") if document.get("version") == STORE_VERSION else None
        for key, raw in (devices if isinstance(devices, Mapping) else {}).items():
            record = DeviceRecord.from_dict(raw)
            if isinstance(key, str) and record is not None:
                self._records[key] = record
                self._documents[key] = record.to_dict()

    def get(self, key: str) -> DeviceRecord | None:
        """The record of a sub-device, if one was saved."""
        return self._records.get(key)

    def put(self, key: str, record: DeviceRecord) -> None:
        """Replace a record; it is written with the next batch."""
        if self._records.get(key) == record:
            return
        self._records[key] = record
        self._documents[key] = record.to_dict()
        self._changed()

    def put_urgent(self, key: str, record: DeviceRecord) -> None:
        """Replace a record and have it written as soon as the write gap allows, without waiting for it."""
        self.put(key, record)
        if self._saved < self._changes:
            self._urgent = self._changes
            self._wake.set()

    async def async_put_now(self, key: str, record: DeviceRecord) -> None:
        """Replace a record and return once it is written (with whatever else changed meanwhile)."""
        self.put(key, record)
        await self.async_flush()

    def remove(self, key: str) -> None:
        """Forget a sub-device."""
        if self._records.pop(key, None) is not None:
            del self._documents[key]
            self._changed()

    async def async_flush(self) -> None:
        """Return once every change made so far is written."""
        if self._saved >= self._changes:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._changes, future))
        self._urgent = self._changes
        self._wake.set()
        self._ensure_writer()
        await asyncio.shield(future)

    async def async_close(self) -> None:
        """Write what is pending and stop the writer."""
        await self.async_flush()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    def _changed(self) -> None:
        if self._saved >= self._changes:
            self._dirty_since = time.monotonic()
        self._changes += 1
        self._ensure_writer()

    def _ensure_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="save OTA jobs")

    async def _write_loop(self) -> None:
        while self._saved < self._changes:
            urgent = self._urgent > self._saved
            due = max(
                self._last_write + self._min_write_gap_s,
                self._dirty_since + (0.0 if urgent else self._save_delay_s),
            )
            wait = due - time.monotonic()
            if wait > 0:
                self._wake.clear()
                # An urgent save arriving meanwhile shortens the wait.
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            await self._write_once()

    async def _write_once(self) -> None:
        generation = self._changes
        document = {"version": STORE_VERSION, "devices": dict(self._documents)}
        try:
            await self._store.async_save(document)
        except (OSError, TypeError, ValueError) as err:
            # Waiters are released all the same: an outcome that cannot be saved is still worth reporting.
            _LOGGER.error("Could not save the state of the OTA jobs: %s", err)
        self._writes += 1
        self._last_write = time.monotonic()
        self._saved = generation
        if self._saved < self._changes:
            self._dirty_since = self._last_write
        waiting, self._waiters = self._waiters, []
        for wanted, future in waiting:
            if wanted <= generation:
                if not future.done():
                    future.set_result(None)
            else:
                self._waiters.append((wanted, future))
