"""`python -m tencent_iot_emulator serve ...` runs the emulator; any other command is the console CLI."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
import signal
import sys

from . import cli
from .broker import BrokerLimits
from .emulator import Emulator


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tencent_iot_emulator serve", description="Run the local Tencent Cloud IoT emulator."
    )
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="where certificates, devices, firmware live"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    for name in ("mqtt", "mqtts", "http", "https"):
        parser.add_argument(f"--{name}-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--strict-limits",
        action="store_true",
        help="enforce every documented broker limit (5 s between connects, 30 msg/s, 100 subscriptions)",
    )
    return parser


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGINT or SIGTERM; print one JSON line with the endpoints once ready."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Emulator(
        args.state_dir,
        args.host,
        mqtt_port=args.mqtt_port,
        mqtts_port=args.mqtts_port,
        http_port=args.http_port,
        https_port=args.https_port,
        limits=BrokerLimits.strict() if args.strict_limits else None,
    ) as emulator:
        ready = {
            "mqtt": emulator.mqtt_port,
            "mqtts": emulator.mqtts_port,
            "http": emulator.http_url,
            "https": emulator.https_url,
            "ca_file": str(emulator.ca_file.resolve()),
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str]) -> int:
    """Dispatch `serve` here and every other command to the CLI."""
    if argv[:1] == ["serve"]:
        args = _serve_parser().parse_args(argv[1:])
        asyncio.run(serve(args))
        return 0
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
