"""Runs the demo's processes: the emulator (`python -m tencent_iot_emulator serve`) and Home Assistant (`hass`).

Both run in their own session (a Ctrl-C in the terminal reaches only the caller, which stops them in order:
Home Assistant first, so it leaves the broker cleanly, then the emulator with its mosquitto) and both get
SIGTERM from the kernel if the caller dies abruptly, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
import contextlib
import ctypes
from dataclasses import dataclass
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import shutil
import signal
import sys
from typing import Any, Final

import aiohttp

from .demo_setup import DemoError, DemoSetup, EmulatorEndpoints, set_up

TOP: Final = Path(__file__).resolve().parents[1]
CHECKOUT_CONFIG: Final = TOP / "config"
HA_PORT_ENV: Final = "TENCENT_IOT_HA_PORT"  # Home Assistant's port, for `develop` (scripts/py/demo.py)
# Home Assistant listens on loopback only: the demo user's password is in the README.
HA_HOST: Final = "127.0.0.1"
_PR_SET_PDEATHSIG: Final = 1
_STOP_TIMEOUT_S: Final = 30.0
_EMULATOR_READY_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class Ports:
    """Fixed ports make a restart reuse the same URLs (0 picks a free one)."""

    ha: int = 8123
    mqtt: int = 18830
    mqtts: int = 18883
    http: int = 18080
    https: int = 18443


@dataclass(frozen=True, slots=True)
class DemoPaths:
    """Where the demo keeps Home Assistant's configuration and the emulator's state."""

    config_dir: Path
    emulator_dir: Path

    @property
    def state_dir(self) -> Path:
        """The emulator's `--state-dir` (certificates, registry, firmware)."""
        return self.emulator_dir / "state"

    @property
    def secret_file(self) -> Path:
        """The gateway's secret, for the config flow (the console never shows it twice)."""
        return self.emulator_dir / "demo.json"

    @property
    def emulator_log(self) -> Path:
        """The emulator's own output."""
        return self.emulator_dir / "emulator.log"

    @property
    def ha_console_log(self) -> Path:
        """What `hass` prints (its full log is `home-assistant.log` in the config folder)."""
        return self.config_dir / "hass-console.log"


@dataclass(frozen=True, slots=True)
class RunningDemo:
    """The demo's processes, where they listen, and what the set-up made."""

    emulator: asyncio.subprocess.Process
    home_assistant: asyncio.subprocess.Process
    endpoints: EmulatorEndpoints
    setup: DemoSetup


def prepare_config_dir(config_dir: Path, port: int) -> None:
    """A Home Assistant config folder that loads this checkout's integration with the demo's configuration,
    listening on 127.0.0.1:`port`."""
    config_dir.mkdir(parents=True, exist_ok=True)
    link = config_dir / "custom_components"
    target = TOP / "custom_components"
    if config_dir.resolve() == CHECKOUT_CONFIG.resolve():
        wanted = Path("../custom_components")
    else:
        wanted = target
        shutil.copyfile(CHECKOUT_CONFIG / "configuration.yaml", config_dir / "configuration.yaml")
    if link.is_symlink() and link.readlink() != wanted:
        link.unlink()
    if not link.is_symlink():
        link.symlink_to(wanted)
    automations = config_dir / "automations.yaml"
    if not automations.exists():
        automations.write_text("[]\n", encoding="utf-8")
    write_http_settings(config_dir, port)


def write_http_settings(config_dir: Path, port: int) -> None:
    """Home Assistant's stored HTTP settings: listen on 127.0.0.1:`port` (written while it is not running).

    Since 2026.10 Home Assistant keeps its HTTP settings in its storage (`.storage/http`): an `http:` section in
    configuration.yaml is migrated once, as a *pending* change that must be confirmed, and raises the repair
    "The HTTP YAML configuration is deprecated". Its only other ways in are the settings page and its
    websocket command, which need a running Home Assistant (bound to every interface on its first start) and
    a restart. So the demo writes the stored settings before each start, as Home Assistant would after a
    confirmed change: its own schema fills in the defaults, settings changed in the UI are kept, and nothing
    is pending. An unchanged file is left alone.
    """
    # Imported here: Home Assistant's http package takes seconds to import, and only a start needs it.
    from homeassistant.components.http import config as http_config  # noqa: PLC0415
    from homeassistant.components.http.const import CONF_SERVER_HOST, CONF_SERVER_PORT  # noqa: PLC0415
    import probatio  # noqa: PLC0415

    wanted = {CONF_SERVER_HOST: [HA_HOST], CONF_SERVER_PORT: port}
    path = config_dir / ".storage" / http_config.STORAGE_KEY
    meta = (
        http_config.HTTP_CONFIG_CREATED_AT,
        http_config.HTTP_CONFIG_ERROR,
        http_config.HTTP_CONFIG_ERROR_MESSAGE,
    )
    kept: dict[str, Any] = {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
        stable = data[http_config.KEY_STABLE]
        if (
            all(stable.get(key) == value for key, value in wanted.items())
            and data[http_config.KEY_PENDING] is None
            and data[http_config.KEY_YAML_MIGRATION_DONE] is True
        ):
            return
        kept = {key: value for key, value in stable.items() if key not in meta}
    except FileNotFoundError:
        pass
    except ValueError, KeyError, TypeError, AttributeError:
        kept = {}  # not Home Assistant's format (any more): its defaults
    try:
        settings = http_config.HTTP_STORAGE_SCHEMA(kept | wanted)
    except probatio.Invalid:
        settings = http_config.HTTP_STORAGE_SCHEMA(wanted)  # e.g. a certificate file that is gone
    stored = {
        "version": http_config.STORAGE_VERSION,
        "minor_version": http_config.STORAGE_MINOR_VERSION,
        "key": http_config.STORAGE_KEY,
        "data": {
            http_config.KEY_STABLE: {
                **settings,
                http_config.HTTP_CONFIG_CREATED_AT: datetime.now(UTC).isoformat(),
                http_config.HTTP_CONFIG_ERROR: None,
                http_config.HTTP_CONFIG_ERROR_MESSAGE: None,
            },
            http_config.KEY_PENDING: None,
            http_config.KEY_YAML_MIGRATION_DONE: True,
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".demo-tmp")
    # Mode 0600, as Home Assistant keeps this file.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(stored, handle, indent=2)
    partial.replace(path)


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM to it if the demo's process dies abruptly."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def _spawn(args: list[str], log_file: Path, *, stdout_pipe: bool) -> asyncio.subprocess.Process:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return await asyncio.create_subprocess_exec(
            *args,
            cwd=TOP,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else log_fd,
            stderr=log_fd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        os.close(log_fd)


async def start_emulator(
    paths: DemoPaths, ports: Ports
) -> tuple[asyncio.subprocess.Process, EmulatorEndpoints]:
    """Start the emulator on `ports`; return it once it prints where it listens."""
    process = await _spawn(
        [
            sys.executable,
            "-m",
            "tencent_iot_emulator",
            "serve",
            "--state-dir",
            str(paths.state_dir),
            "--mqtt-port",
            str(ports.mqtt),
            "--mqtts-port",
            str(ports.mqtts),
            "--http-port",
            str(ports.http),
            "--https-port",
            str(ports.https),
        ],
        paths.emulator_log,
        stdout_pipe=True,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), _EMULATOR_READY_TIMEOUT_S)
    except TimeoutError:
        line = b""
    if not line:
        await stop_process(process)
        raise DemoError(f"the emulator did not start (is a port of {ports} taken?): see {paths.emulator_log}")
    return process, EmulatorEndpoints.from_json(json.loads(line))


async def start_home_assistant(paths: DemoPaths, port: int) -> asyncio.subprocess.Process:
    """Start `hass` on 127.0.0.1:`port` with `paths.config_dir` (prepared first)."""
    prepare_config_dir(paths.config_dir, port)
    hass = Path(sys.executable).parent / "hass"
    # --skip-pip: everything the integration and the configuration need is already installed.
    return await _spawn(
        [str(hass), "--config", str(paths.config_dir), "--skip-pip"], paths.ha_console_log, stdout_pipe=False
    )


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float = _STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if it does not end within `timeout_s`."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.stdout is not None:
        # Drain what is left, so the pipe's transport closes with the process.
        await process.stdout.read()


async def _unless_exits[T](
    work: Coroutine[Any, Any, T], process: asyncio.subprocess.Process, message: str
) -> T:
    """The result of `work`, or `DemoError(message)` as soon as `process` exits first."""
    task = asyncio.ensure_future(work)
    exited = asyncio.ensure_future(process.wait())
    try:
        await asyncio.wait({task, exited}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise DemoError(message)
    return task.result()


@contextlib.asynccontextmanager
async def running_demo(
    paths: DemoPaths, ports: Ports, session: aiohttp.ClientSession, *, timeout_s: float = 120.0
) -> AsyncIterator[RunningDemo]:
    """Start the emulator and Home Assistant, set the demo up, yield; stop both on exit (HA first)."""
    emulator, endpoints = await start_emulator(paths, ports)
    try:
        home_assistant = await start_home_assistant(paths, ports.ha)
        try:
            setup = await _unless_exits(
                set_up(
                    session, f"http://127.0.0.1:{ports.ha}", endpoints, paths.secret_file, timeout_s=timeout_s
                ),
                home_assistant,
                f"Home Assistant exited during the set-up: see {paths.config_dir / 'home-assistant.log'} "
                f"and {paths.ha_console_log}",
            )
            yield RunningDemo(emulator, home_assistant, endpoints, setup)
        finally:
            await stop_process(home_assistant)
    finally:
        await stop_process(emulator)
