"""The demo's command line: `develop` runs everything, `push` pushes a firmware to the three lights.

    python -m scripts.py.demo develop [--config DIR] [--emulator-dir DIR]
    python -m scripts.py.demo push VERSION [--size BYTES] [--no-throttle]

Ports are fixed so that a restart reuses the same URLs; each can be changed through the environment:
TENCENT_IOT_HA_PORT (8123), TENCENT_IOT_DEMO_MQTT_PORT (18830), TENCENT_IOT_DEMO_MQTTS_PORT (18883),
TENCENT_IOT_DEMO_HTTP_PORT (18080), TENCENT_IOT_DEMO_HTTPS_PORT (18443).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping, Sequence
import os
from pathlib import Path
import signal
import sys

import aiohttp

from demo_support.demo_push import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_THROTTLE_BPS,
    next_version,
    push_firmware,
    push_report,
)
from demo_support.demo_setup import DEMO_USER, LIGHTS, DemoError
from demo_support.demo_stack import HA_PORT_ENV, TOP, DemoPaths, Ports, RunningDemo, running_demo
from tencent_iot_emulator.console_client import ConsoleClient, ConsoleError

PORT_ENV = {
    "mqtt": "TENCENT_IOT_DEMO_MQTT_PORT",
    "mqtts": "TENCENT_IOT_DEMO_MQTTS_PORT",
    "http": "TENCENT_IOT_DEMO_HTTP_PORT",
    "https": "TENCENT_IOT_DEMO_HTTPS_PORT",
}


def ports_from_env(environ: Mapping[str, str]) -> Ports:
    """The fixed ports, each overridable through its environment variable."""
    default = Ports()

    def port(variable: str, fallback: int) -> int:
        value = environ.get(variable, "").strip()
        if not value:
            return fallback
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise DemoError(f"{variable}={value!r} is not a port number")
        return int(value)

    return Ports(
        ha=port(HA_PORT_ENV, default.ha),
        mqtt=port(PORT_ENV["mqtt"], default.mqtt),
        mqtts=port(PORT_ENV["mqtts"], default.mqtts),
        http=port(PORT_ENV["http"], default.http),
        https=port(PORT_ENV["https"], default.https),
    )


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def banner(demo: RunningDemo, paths: DemoPaths) -> str:
    """What `develop` prints once everything runs."""
    setup = demo.setup
    endpoints = demo.endpoints
    name, username, password = DEMO_USER
    versions = ", ".join(f"{key} {version}" for key, version in sorted(setup.versions.items()))
    lines = [
        "",
        "The Tencent IoT Gateway demo is running." + ("" if setup.created_entry else " (state reused)"),
        "",
        f"  Home Assistant     {setup.ha_url}   user: {username}   password: {password}   ({name})",
        f"  Emulator console   {endpoints.http_url}/   (open it in a browser: devices, versions, tasks)",
        f"  Emulator broker    mqtts://127.0.0.1:{endpoints.mqtts_port}  (CA {_relative(endpoints.ca_file)})",
        f"  Sub-devices        {versions}",
        "",
        "Push a firmware upgrade to the three lights (then press Update in a light's firmware dialog):",
        "",
        f"  scripts/demo-push {next_version(v for key, v in setup.versions.items() if _is_light(key))}",
        "",
        "Follow the cloud's side of the task (each light's state and percent) in the emulator console,",
        f"  {endpoints.http_url}/  (it refreshes itself), or as a table in the terminal:",
        f"  scripts/run python -m tencent_iot_emulator status --console {endpoints.http_url}",
        "",
        f"Logs: {_relative(paths.config_dir / 'home-assistant.log')}, {_relative(paths.emulator_log)}.",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


async def develop(paths: DemoPaths, ports: Ports) -> int:
    """Run the demo until SIGINT or SIGTERM (or until one of its processes exits)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            sys.stderr.write("\nStopping Home Assistant and the emulator...\n")
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    sys.stderr.write(
        f"Starting the emulator (state: {_relative(paths.state_dir)}) and Home Assistant "
        f"(config: {_relative(paths.config_dir)}) on http://127.0.0.1:{ports.ha} ...\n"
    )
    async with aiohttp.ClientSession() as session:
        try:
            async with running_demo(paths, ports, session) as demo:
                sys.stdout.write(banner(demo, paths))
                sys.stdout.flush()
                ended = await _first_exit(demo)
                sys.stderr.write(f"{ended} exited: stopping the demo.\n")
                return 1
        except asyncio.CancelledError:
            if not stopping:
                raise
            sys.stderr.write("Stopped.\n")
            return 0
        except DemoError as err:
            sys.stderr.write(f"error: {err}\n")
            return 1


async def _first_exit(demo: RunningDemo) -> str:
    """Wait until Home Assistant or the emulator exits; return which."""
    waits = {
        asyncio.ensure_future(demo.home_assistant.wait()): "Home Assistant",
        asyncio.ensure_future(demo.emulator.wait()): "The emulator",
    }
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
    return waits[next(iter(done))]


async def push(console_url: str, version: str, size: int, throttle_bps: int | None) -> int:
    """Upload a generated image of `version` for the lights and create the task; print what was done."""
    async with aiohttp.ClientSession() as session:
        console = ConsoleClient(console_url, session)
        try:
            pushed = await push_firmware(console, version, size=size, throttle_bps=throttle_bps)
        except ConsoleError as err:
            sys.stderr.write(f"error: the emulator refused ({err}); is scripts/develop running?\n")
            return 1
    sys.stdout.write(push_report(pushed, console_url))
    return 0


def _is_light(key: str) -> bool:
    return any(light.key == key for light in LIGHTS)


def build_parser() -> argparse.ArgumentParser:
    """The arguments of both commands."""
    parser = argparse.ArgumentParser(prog="python -m scripts.py.demo", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("develop", help="run the emulator and Home Assistant with the demo set up")
    run.add_argument("--config", type=Path, default=TOP / "config", help="Home Assistant's config folder")
    run.add_argument("--emulator-dir", type=Path, default=TOP / ".emulator", help="the emulator's folder")
    push_command = commands.add_parser("push", help="push a firmware version to the three lights")
    push_command.add_argument("version", help="e.g. V100R0001")
    push_command.add_argument("--size", type=int, default=DEFAULT_IMAGE_SIZE, help="image size in bytes")
    push_command.add_argument(
        "--no-throttle", action="store_true", help="let the download run at full speed (too fast to watch)"
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Run one command; the exit status."""
    args = build_parser().parse_args(argv)
    try:
        ports = ports_from_env(os.environ)
    except DemoError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    if args.command == "develop":
        return asyncio.run(develop(DemoPaths(args.config, args.emulator_dir), ports))
    throttle = None if args.no_throttle else DEFAULT_THROTTLE_BPS
    return asyncio.run(push(f"http://127.0.0.1:{ports.http}", args.version, args.size, throttle))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
