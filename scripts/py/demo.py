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

from demo_support.demo_banner import banner, relative
from demo_support.demo_push import DEFAULT_IMAGE_SIZE, DEFAULT_THROTTLE_BPS, push_firmware, push_report
from demo_support.demo_setup import DemoError
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
        f"Starting the emulator (state: {relative(paths.state_dir)}) and Home Assistant "
        f"(config: {relative(paths.config_dir)}) on http://127.0.0.1:{ports.ha} ...\n"
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
