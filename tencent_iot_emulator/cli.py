"""The command line for a person rehearsing an OTA against the emulator's console.

    python -m tencent_iot_emulator register --console URL PID/DN [--secret S]
    python -m tencent_iot_emulator register --console URL --product PID [--product-secret S]
    python -m tencent_iot_emulator bind     --console URL GATEWAY_PID/DN SUB_PID/DN [--unbind]
    python -m tencent_iot_emulator upload   --console URL PID VERSION FILE
    python -m tencent_iot_emulator push     --console URL PID VERSION [--mode all|devices|list]
                                            [--from-version V]... [--device DN]... [--timeout-s N]
                                            [--timeout-from progress|push] [--url-scheme https|http]
    python -m tencent_iot_emulator status   --console URL [--product PID]

`--console` defaults to the environment variable TENCENT_IOT_EMULATOR_CONSOLE. Results are printed as JSON
(one line), except `status`, which prints a table. Exit status: 0 ok, 1 the console refused, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
import json
import os
from pathlib import Path
import sys
from typing import Any, TextIO

import aiohttp

from .console_client import ConsoleClient, ConsoleError, DeviceStatus

CONSOLE_ENV = "TENCENT_IOT_EMULATOR_CONSOLE"
COMMANDS = ("register", "bind", "upload", "push", "status")
_STATUS_COLUMNS = ("DEVICE", "ONLINE", "VERSION", "GATEWAY", "TASK", "STATE", "PERCENT")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every CLI command."""
    parser = argparse.ArgumentParser(
        prog="python -m tencent_iot_emulator", description="Drive the Tencent IoT emulator's console."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--console",
            default=os.environ.get(CONSOLE_ENV),
            help=f"the console's base URL, e.g. http://127.0.0.1:8080 (default: ${CONSOLE_ENV})",
        )
        return sub

    register = command("register", "register a device (PID/DN), or a product with --product")
    register.add_argument("device", nargs="?", help="PID/DN of the device to register")
    register.add_argument("--secret", help="the device secret (base64); generated when absent")
    register.add_argument("--product", help="register this product id instead of a device")
    register.add_argument("--product-secret", help="the product secret; generated when absent")

    bind = command("bind", "bind a sub-device to a gateway from the console (or unbind it)")
    bind.add_argument("gateway", help="PID/DN of the gateway")
    bind.add_argument("subdevice", help="PID/DN of the sub-device")
    bind.add_argument("--unbind", action="store_true", help="unbind instead")

    upload = command("upload", "upload a firmware image for a product and version")
    upload.add_argument("product_id")
    upload.add_argument("version")
    upload.add_argument("file", type=Path)

    push = command("push", "create an upgrade task (the three console modes)")
    push.add_argument("product_id")
    push.add_argument("version")
    push.add_argument("--mode", choices=("all", "devices", "list"), default="all")
    push.add_argument(
        "--from-version", dest="from_versions", action="append", help="a version to upgrade from (repeat)"
    )
    push.add_argument("--device", dest="devices", action="append", help="a device name (repeat)")
    push.add_argument("--timeout-s", type=float, help="the task's timeout (120-900 s)")
    push.add_argument(
        "--timeout-from",
        choices=("progress", "push"),
        help="what the timeout counts from: the last progress report (default) or the push (absolute)",
    )
    push.add_argument("--url-scheme", choices=("https", "http"))

    status = command("status", "print a table of devices: online, version, gateway, task state, percent")
    status.add_argument("--product", help="only this product's devices")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one CLI command (from `argv`, default the process's arguments); return the exit status."""
    return asyncio.run(run(sys.argv[1:] if argv is None else list(argv)))


async def run(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one CLI command inside a running event loop, writing to `out` and `err` (default stdout/stderr)."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    if not args.console:
        err.write(f"error: --console URL is required (or set {CONSOLE_ENV})\n")
        return 2
    usage_error = _usage_error(args)
    if usage_error:
        err.write(f"error: {usage_error}\n")
        return 2
    async with aiohttp.ClientSession() as session:
        console = ConsoleClient(args.console, session)
        try:
            await _dispatch(console, args, out)
        except ConsoleError as error:
            err.write(f"error: the console refused: {error}\n")
            return 1
    return 0


def _usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with arguments argparse cannot check on its own, if anything."""
    if args.command == "register":
        if (args.device is None) == (args.product is None):
            return "register takes either PID/DN or --product PID"
        if args.device is not None and args.device.count("/") != 1:
            return f"{args.device!r} is not PID/DN"
    if args.command == "bind":
        for value in (args.gateway, args.subdevice):
            if value.count("/") != 1:
                return f"{value!r} is not PID/DN"
    if args.command == "upload" and not args.file.is_file():
        return f"{args.file} is not a file"
    return None


async def _dispatch(console: ConsoleClient, args: argparse.Namespace, out: TextIO) -> None:
    match args.command:
        case "register" if args.product is not None:
            product = await console.add_product(args.product, args.product_secret)
            _print_json(out, {"product_id": product.product_id, "product_secret": product.product_secret})
        case "register":
            product_id, device_name = args.device.split("/")
            device = await console.add_device(product_id, device_name, args.secret)
            _print_json(
                out,
                {
                    "product_id": device.product_id,
                    "device_name": device.device_name,
                    "device_secret": device.device_secret,
                },
            )
        case "bind":
            if args.unbind:
                await console.unbind(args.gateway, args.subdevice)
            else:
                await console.bind(args.gateway, args.subdevice)
            _print_json(out, {"gateway": args.gateway, "subdevice": args.subdevice, "bound": not args.unbind})
        case "upload":
            firmware = await console.upload_firmware(args.product_id, args.version, args.file)
            _print_json(
                out,
                {
                    "product_id": firmware.product_id,
                    "version": firmware.version,
                    "md5": firmware.md5,
                    "size": firmware.size,
                },
            )
        case "push":
            task_id = await console.create_task(
                args.product_id,
                args.version,
                args.mode,
                from_versions=args.from_versions,
                devices=args.devices,
                timeout_s=args.timeout_s,
                url_scheme=args.url_scheme,
                timeout_from=args.timeout_from,
            )
            _print_json(out, {"task_id": task_id})
        case "status":
            devices = await console.list_devices()
            if args.product:
                devices = [d for d in devices if d.product_id == args.product]
            out.write(format_status_table(devices))


def format_status_table(devices: Sequence[DeviceStatus]) -> str:
    """The devices as an aligned text table, one row per device, sorted by PID/DN."""
    rows = [_STATUS_COLUMNS] + [_status_row(d) for d in sorted(devices, key=lambda d: d.key)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_STATUS_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    if not devices:
        lines.append("(no devices)")
    return "\n".join(lines) + "\n"


def _status_row(device: DeviceStatus) -> tuple[str, ...]:
    task = device.task
    percent = "" if task is None or task.percent is None else f"{task.percent}%"
    return (
        device.key,
        "yes" if device.online else "no",
        device.version or "-",
        device.gateway or "-",
        (task.task_id or "") if task else "",
        task.state if task else "-",
        percent,
    )


def _print_json(out: TextIO, value: dict[str, Any]) -> None:
    out.write(json.dumps(value) + "\n")
