"""Command flasher edges: a silent failure, a last line without newline, cancellation, and bad arguments."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
import sys

import pytest

from custom_components.tencent_iot_gateway.engine.errors import (
    FailureReason,
    FieldProblem,
    FlashError,
    InvalidFieldError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.flashers import CommandFlasher, CommandFlasherConfig
from custom_components.tencent_iot_gateway.engine.ota.flashers.command import MAX_ARGS

TARGET = DeviceId("LIGHTPID01", "light1")
DATA = b"\x07" * 1000
FIRMWARE = FirmwareSpec("https://cos.example/fw.bin?sign=x", hashlib.md5(DATA).hexdigest(), len(DATA), "2.0")


def _flasher(tmp_path: Path, code: str, *args: str) -> tuple[CommandFlasher, Path]:
    script = tmp_path / "tool.py"
    script.write_text(code)
    image = tmp_path / "image.bin"
    image.write_bytes(DATA)
    config = CommandFlasherConfig(program=sys.executable, args=(str(script), *args), timeout_s=10.0)
    return CommandFlasher(config), image


@pytest.mark.parametrize(
    ("code", "quoted"),
    [
        ("import sys\nsys.exit(3)\n", "-"),
        (
            "import sys\nsys.stderr.write('bad header\\nno ack from device')\nsys.exit(4)\n",
            "bad header | no ack from device",
        ),
    ],
)
async def test_failure_message_quotes_stderr_even_without_a_final_newline(
    tmp_path: Path, code: str, quoted: str
) -> None:
    """A failed program's error says its status and its stderr tail, including an unterminated last line."""
    flasher, image = _flasher(tmp_path, code)
    with pytest.raises(FlashError) as failure:
        await flasher.flash(image, TARGET, FIRMWARE, lambda _p: None)
    assert failure.value.failure.reason is FailureReason.COMMAND_EXIT
    assert failure.value.failure.placeholders["remote"] == quoted  # the program's own words, quoted


def _pid_in(pid_file: Path) -> int | None:
    text = pid_file.read_text() if pid_file.exists() else ""
    return int(text) if text else None


def _gone(pid: int) -> bool:
    """True when `pid` no longer runs (gone, or a zombie waiting for its parent)."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


async def test_cancelled_flash_kills_the_program(tmp_path: Path) -> None:
    """HA stopping mid-flash must not leave the flashing program running."""
    pid_file = tmp_path / "pid"
    code = "import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(30)\n"
    flasher, image = _flasher(tmp_path, code, str(pid_file))
    task = asyncio.create_task(flasher.flash(image, TARGET, FIRMWARE, lambda _p: None))
    for _ in range(500):
        if _pid_in(pid_file) is not None:
            break
        await asyncio.sleep(0.01)
    pid = _pid_in(pid_file)
    assert pid is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if _gone(pid):
            break
        await asyncio.sleep(0.01)
    else:
        os.kill(pid, 9)
        pytest.fail(f"the flashing program {pid} survived the cancellation")


def test_too_many_args_name_the_field() -> None:
    """More arguments than a flasher may take name the `args` field and the limit."""
    args = tuple(f"a{i}" for i in range(MAX_ARGS + 1))
    with pytest.raises(InvalidFieldError, match=rf"args.*at most {MAX_ARGS} entries") as failure:
        CommandFlasherConfig(program=sys.executable, args=args)
    assert failure.value.problem is FieldProblem.TOO_MANY
    assert failure.value.placeholders == {"max": str(MAX_ARGS)}
