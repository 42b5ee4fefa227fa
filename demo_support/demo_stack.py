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
HA_PORT_ENV: Final = "TENCENT_IOT_HA_PORT"  # read by config/configuration.yaml (`!env_var`)
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


def prepare_config_dir(config_dir: Path) -> None:
    """A Home Assistant config folder that loads this checkout's integration with the demo's configuration."""
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


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM to it if the demo's process dies abruptly."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def _spawn(
    args: list[str], log_file: Path, *, stdout_pipe: bool, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return await asyncio.create_subprocess_exec(
            *args,
            cwd=TOP,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else log_fd,
            stderr=log_fd,
            env=env,
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
    prepare_config_dir(paths.config_dir)
    hass = Path(sys.executable).parent / "hass"
    env = dict(os.environ) | {HA_PORT_ENV: str(port)}
    # --skip-pip: everything the integration and the configuration need is already installed.
    return await _spawn(
        [str(hass), "--config", str(paths.config_dir), "--skip-pip"],
        paths.ha_console_log,
        stdout_pipe=False,
        env=env,
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
