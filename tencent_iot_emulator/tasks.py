"""OTA upgrade tasks as Tencent's console makes them (spec §5): three modes, per-device state, timeouts.

Tencent's docs do not say what a task's `TimeoutInterval` counts from (spec §3a), so a task says which reading
it follows (`timeout_from`): `progress` (the clock restarts with every push and every progress report: a
device that keeps reporting never times out) or `push` (the stricter one: the clock starts at the first push
to the device and nothing extends it; a flash longer than the timeout ends `timeout` whatever is reported).

A task never talks MQTT itself: it asks its `Sender` to push `update_firmware` to a device, and the cloud
feeds it every `report_version` and `report_progress` it receives.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
import itertools
import time
from typing import Any, Protocol

MIN_TIMEOUT_S = 120.0
MAX_TIMEOUT_S = 900.0
DEFAULT_TIMEOUT_S = 300.0


class TaskError(ValueError):
    """A task request the console refuses (message safe to show)."""


class TaskMode(StrEnum):
    """The console's three ways to choose targets."""

    ALL = "all"  # every device of the product whose reported version is in from_versions
    DEVICES = "devices"  # chosen devices, when their reported version is in from_versions
    LIST = "list"  # listed devices, whatever version they run


class TimeoutFrom(StrEnum):
    """What a task's timeout counts from."""

    PROGRESS = "progress"  # the last push or progress report of the device
    PUSH = "push"  # the first push to the device (absolute)


class DeviceState(StrEnum):
    """A device's state within a task, as the console shows it."""

    PENDING = "pending"
    SENT = "sent"
    DOWNLOADING = "downloading"
    BURNING = "burning"
    DONE = "done"
    FAIL = "fail"
    TIMEOUT = "timeout"

    @property
    def terminal(self) -> bool:
        """Whether the device is finished with this task."""
        return self in (DeviceState.DONE, DeviceState.FAIL, DeviceState.TIMEOUT)

    @property
    def in_flight(self) -> bool:
        """Whether `update_firmware` went out and the device is (supposedly) working on it."""
        return self in (DeviceState.SENT, DeviceState.DOWNLOADING, DeviceState.BURNING)


class ProgressState(StrEnum):
    """`report_progress` states a device may report."""

    DOWNLOADING = "downloading"
    BURNING = "burning"
    DONE = "done"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Progress:
    """A validated `report_progress`."""

    version: str
    state: ProgressState
    percent: int | None
    result_code: int
    result_msg: str


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What the console asked for (validated by `TaskSpec.parse`)."""

    product_id: str
    version: str
    mode: TaskMode
    from_versions: tuple[str, ...]
    devices: tuple[str, ...]
    timeout_s: float
    url_scheme: str
    timeout_from: TimeoutFrom = TimeoutFrom.PROGRESS

    @classmethod
    def parse(cls, body: object, *, min_timeout_s: float = MIN_TIMEOUT_S) -> TaskSpec:
        """Validate a `POST /api/tasks` body; `min_timeout_s` lowers the floor of timeout_s for tests."""
        if not isinstance(body, dict):
            raise TaskError("the body must be a JSON object")
        product_id = body.get("product_id")
        version = body.get("version")
        if not isinstance(product_id, str) or not product_id:
            raise TaskError("product_id is required")
        if not isinstance(version, str) or not version:
            raise TaskError("version is required")
        try:
            mode = TaskMode(str(body.get("mode")))
        except ValueError:
            raise TaskError("mode must be one of all, devices, list") from None
        from_versions = _str_list(body.get("from_versions"), "from_versions")
        devices = _str_list(body.get("devices"), "devices")
        if mode is not TaskMode.LIST and not from_versions:
            raise TaskError(f"mode {mode} needs from_versions")
        if mode is TaskMode.ALL and devices:
            raise TaskError("mode all takes no devices")
        if mode is not TaskMode.ALL and not devices:
            raise TaskError(f"mode {mode} needs devices")
        timeout = body.get("timeout_s", DEFAULT_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TaskError("timeout_s must be a number")
        if not min_timeout_s <= timeout <= MAX_TIMEOUT_S:
            raise TaskError(f"timeout_s must be between {min_timeout_s:g} and {MAX_TIMEOUT_S:g}")
        url_scheme = body.get("url_scheme", "https")
        if url_scheme not in ("https", "http"):
            raise TaskError("url_scheme must be https or http")
        try:
            timeout_from = TimeoutFrom(str(body.get("timeout_from", TimeoutFrom.PROGRESS)))
        except ValueError:
            raise TaskError("timeout_from must be progress or push") from None
        return cls(
            product_id,
            version,
            mode,
            tuple(from_versions),
            tuple(devices),
            float(timeout),
            url_scheme,
            timeout_from,
        )


def _str_list(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise TaskError(f"{name} must be a list of strings")
    return list(dict.fromkeys(value))


@dataclass(slots=True)
class TaskDevice:
    """One device's progress in one task (mutable: the task updates it as reports arrive)."""

    task_id: int
    product_id: str
    device_name: str
    state: DeviceState = DeviceState.PENDING
    percent: int | None = None
    result_code: int | None = None
    result_msg: str = ""
    updated: float = field(default_factory=time.time)
    timer: asyncio.TimerHandle | None = None
    # What the device reported for this task, in order ("downloading 0", "burning", "fail -4", ...): the
    # console shows it, and the cadence checks read it.
    history: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """`PID/DN`."""
        return f"{self.product_id}/{self.device_name}"

    def to_json(self) -> dict[str, Any]:
        """The console's view."""
        return {
            "task_id": self.task_id,
            "product_id": self.product_id,
            "device_name": self.device_name,
            "state": str(self.state),
            "percent": self.percent,
            "result_code": self.result_code,
            "result_msg": self.result_msg,
            "history": list(self.history),
        }


@dataclass(slots=True)
class Task:
    """An upgrade task and its per-device entries (in the order they joined)."""

    task_id: int
    spec: TaskSpec
    devices: dict[str, TaskDevice] = field(default_factory=dict)

    def eligible(self, version: str | None) -> bool:
        """Whether a device running `version` should be pushed this task's firmware."""
        if self.spec.mode is TaskMode.LIST:
            return True
        return version is not None and version in self.spec.from_versions

    def to_json(self) -> dict[str, Any]:
        """The console's view."""
        spec = self.spec
        return {
            "task_id": self.task_id,
            "product_id": spec.product_id,
            "version": spec.version,
            "mode": str(spec.mode),
            "from_versions": list(spec.from_versions),
            "timeout_s": spec.timeout_s,
            "timeout_from": str(spec.timeout_from),
            "url_scheme": spec.url_scheme,
            "devices": [entry.to_json() for entry in self.devices.values()],
        }


class Sender(Protocol):
    """What tasks need from the cloud."""

    def is_online(self, key: str) -> bool:
        """Whether the device `PID/DN` is reachable now."""

    def version_of(self, key: str) -> str | None:
        """The version the device last reported, if any."""

    def device_names(self, product_id: str) -> list[str]:
        """Names of the registered devices of a product."""

    async def send_update(self, task: Task, entry: TaskDevice) -> None:
        """Push `update_firmware` for `task` to the entry's device."""


class TaskManager:
    """Every task, plus the device -> entries index that reports are routed through."""

    def __init__(self, sender: Sender, *, min_timeout_s: float = MIN_TIMEOUT_S) -> None:
        """Use `sender` to reach devices. `min_timeout_s` is a test knob: the console floor of timeout_s."""
        self._sender = sender
        self.min_timeout_s = min_timeout_s
        self._tasks: dict[int, Task] = {}
        self._ids = itertools.count(1)

    def get(self, task_id: int) -> Task | None:
        """A task by id."""
        return self._tasks.get(task_id)

    def all(self) -> list[Task]:
        """Every task, oldest first (the console's page lists them)."""
        return list(self._tasks.values())

    def latest_entry(self, key: str) -> TaskDevice | None:
        """The device's entry in the newest task that includes it."""
        for task in reversed(self._tasks.values()):
            entry = task.devices.get(key)
            if entry is not None:
                return entry
        return None

    def _entry_for_version(self, key: str, version: str) -> TaskDevice | None:
        """The device's entry in the newest unfinished task pushing `version`: a gateway that drops an older
        task for a newer one still ends the older one with a report for its version."""
        for task in reversed(self._tasks.values()):
            entry = task.devices.get(key)
            if entry is not None and task.spec.version == version and not entry.state.terminal:
                return entry
        return None

    async def create(self, spec: TaskSpec) -> Task:
        """Create a task; online eligible targets get `update_firmware` at once."""
        task = Task(next(self._ids), spec)
        if spec.mode is TaskMode.ALL:
            for name in self._sender.device_names(spec.product_id):
                if task.eligible(self._sender.version_of(f"{spec.product_id}/{name}")):
                    self._add(task, name)
        else:
            known = set(self._sender.device_names(spec.product_id))
            missing = [name for name in spec.devices if name not in known]
            if missing:
                raise TaskError(f"no such device(s) of {spec.product_id}: {', '.join(missing)}")
            for name in spec.devices:
                self._add(task, name)
        self._tasks[task.task_id] = task
        for entry in list(task.devices.values()):
            if self._sender.is_online(entry.key) and task.eligible(self._sender.version_of(entry.key)):
                await self._send(task, entry)
        return task

    async def on_report_version(self, product_id: str, device_name: str, version: str) -> None:
        """A device reported its version: finish, (re-)send or start what is pending for it."""
        key = f"{product_id}/{device_name}"
        task = self._acting_task(product_id, device_name, version)
        if task is None:
            return
        entry = task.devices[key]
        if entry.state.terminal:
            return
        if version == task.spec.version and entry.state.in_flight:
            self._finish(entry, DeviceState.DONE, 0, "")
        elif entry.state.in_flight or task.eligible(version):
            await self._send(task, entry)

    def on_progress(self, product_id: str, device_name: str, progress: Progress) -> str | None:
        """Apply a `report_progress`; returns why it was refused or is out of order (a violation), else None.

        A terminal report after the task ended is recorded and tolerated: Tencent's own SDKs send two in a
        row on a bad image (`-4` from the check, then `-5` from their samples), and the cloud must accept
        that. The first outcome stands. Any other report after the end is refused.
        """
        key = f"{product_id}/{device_name}"
        entry = self._entry_for_version(key, progress.version) or self.latest_entry(key)
        if entry is None:
            return "report_progress without an upgrade task for this device"
        task = self._tasks[entry.task_id]
        if progress.version != task.spec.version:
            return (
                f"report_progress for version {progress.version!r}, but the task pushes {task.spec.version!r}"
            )
        if entry.state.terminal:
            if progress.state in (ProgressState.FAIL, ProgressState.DONE):
                entry.history.append(_heard(progress))
                return None
            return f"report_progress after the task ended ({entry.state})"
        out_of_order = _cadence_violation(entry.history, progress)
        entry.history.append(_heard(progress))
        entry.result_code = progress.result_code
        entry.result_msg = progress.result_msg
        if progress.state is ProgressState.FAIL:
            self._finish(entry, DeviceState.FAIL, progress.result_code, progress.result_msg)
        elif progress.state is ProgressState.DONE:
            self._finish(entry, DeviceState.DONE, progress.result_code, progress.result_msg)
            entry.percent = 100
        else:
            entry.state = (
                DeviceState.DOWNLOADING
                if progress.state is ProgressState.DOWNLOADING
                else DeviceState.BURNING
            )
            if progress.percent is not None:
                entry.percent = progress.percent
            if task.spec.timeout_from is TimeoutFrom.PROGRESS:
                self._arm(task, entry)
        entry.updated = time.time()
        return out_of_order

    def close(self) -> None:
        """Cancel every timeout timer."""
        for task in self._tasks.values():
            for entry in task.devices.values():
                _cancel(entry)

    def _acting_task(self, product_id: str, device_name: str, version: str) -> Task | None:
        """The newest task that includes the device, after letting `all`-mode tasks adopt it."""
        key = f"{product_id}/{device_name}"
        for task in reversed(self._tasks.values()):
            if key in task.devices:
                return task
            if (
                task.spec.mode is TaskMode.ALL
                and task.spec.product_id == product_id
                and task.eligible(version)
            ):
                self._add(task, device_name)
                return task
        return None

    def _add(self, task: Task, device_name: str) -> None:
        entry = TaskDevice(task.task_id, task.spec.product_id, device_name)
        task.devices[entry.key] = entry

    async def _send(self, task: Task, entry: TaskDevice) -> None:
        first_push = entry.state is DeviceState.PENDING
        entry.state = DeviceState.SENT
        entry.percent = None
        entry.updated = time.time()
        if first_push or task.spec.timeout_from is TimeoutFrom.PROGRESS:
            self._arm(task, entry)
        await self._sender.send_update(task, entry)

    def _arm(self, task: Task, entry: TaskDevice) -> None:
        """(Re)start the timeout timer."""
        _cancel(entry)
        entry.timer = asyncio.get_running_loop().call_later(task.spec.timeout_s, self._expire, entry)

    def _expire(self, entry: TaskDevice) -> None:
        entry.timer = None
        if entry.state.in_flight:
            task = self._tasks[entry.task_id]
            if task.spec.timeout_from is TimeoutFrom.PUSH:
                reason = f"not done {task.spec.timeout_s:g} s after the push"
            else:
                reason = f"no progress for {task.spec.timeout_s:g} s"
            self._finish(entry, DeviceState.TIMEOUT, None, reason)

    def _finish(self, entry: TaskDevice, state: DeviceState, code: int | None, message: str) -> None:
        _cancel(entry)
        entry.state = state
        entry.result_code = code
        entry.result_msg = message
        entry.updated = time.time()


def _heard(progress: Progress) -> str:
    if progress.state is ProgressState.DOWNLOADING:
        return f"downloading {progress.percent}"
    if progress.state is ProgressState.FAIL:
        return f"fail {progress.result_code}"
    return str(progress.state)


def _cadence_violation(history: list[str], progress: Progress) -> str | None:
    """Why `progress` breaks spec §3's cadence ("0" from byte 0, "100", `burning`, then `done`), else None.

    The markers are never dropped or reordered (spec §3a): `burning` follows a `downloading 100`, `done`
    follows a `burning`, and nothing says `downloading` once the flash began. A `fail` may come at any point.
    """
    if progress.state is ProgressState.BURNING and "downloading 100" not in history:
        return "burning before the device reported downloading 100"
    if progress.state is ProgressState.DONE and "burning" not in history:
        return "done before the device reported burning"
    if progress.state is ProgressState.DOWNLOADING and "burning" in history:
        return "downloading after the device reported burning"
    return None


def _cancel(entry: TaskDevice) -> None:
    if entry.timer is not None:
        entry.timer.cancel()
        entry.timer = None
