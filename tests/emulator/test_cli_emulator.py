"""The CLI against the real emulator: register, bind, upload, push and status, as a person would run them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tencent_iot_emulator import cli
from tencent_iot_emulator.console_client import ConsoleError
from tencent_iot_emulator.emulator import Emulator

from .firmware_support import image, md5_hex


async def run(console: str, *argv: str) -> tuple[int, str, str]:
    """Run one CLI command against `console`; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    command, *rest = argv
    status = await cli.run([command, "--console", console, *rest], out, err)
    return status, out.getvalue(), err.getvalue()


async def test_a_cli_session(socket_enabled: None, tmp_path: Path) -> None:
    """A whole session: devices registered, bound, firmware uploaded, a task pushed, status shows it."""
    async with Emulator(tmp_path / "state") as emulator:
        console = emulator.http_url
        status, out, _ = await run(console, "register", "GWPID00001/gw01")
        assert status == 0
        assert json.loads(out)["device_secret"]
        status, out, _ = await run(
            console, "register", "SUBPID0001/lamp01", "--secret", "c3ViZGV2LXNlY3JldA=="
        )
        assert json.loads(out)["device_secret"] == "c3ViZGV2LXNlY3JldA=="
        assert (await run(console, "register", "SUBPID0001/lamp02"))[0] == 0
        assert (await run(console, "bind", "GWPID00001/gw01", "SUBPID0001/lamp01"))[0] == 0

        data = image(50_000)
        path = tmp_path / "lamp.bin"
        path.write_bytes(data)
        status, out, _ = await run(console, "upload", "SUBPID0001", "2.0", str(path))
        assert json.loads(out) == {
            "product_id": "SUBPID0001",
            "version": "2.0",
            "md5": md5_hex(data),
            "size": 50_000,
        }

        status, out, err = await run(
            console, "push", "SUBPID0001", "2.0", "--mode", "list", "--device", "lamp01"
        )
        assert status == 0, err
        task_id = json.loads(out)["task_id"]

        status, out, _ = await run(console, "status")
        assert status == 0
        rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
        assert set(rows) == {"GWPID00001/gw01", "SUBPID0001/lamp01", "SUBPID0001/lamp02"}
        assert rows["SUBPID0001/lamp01"][:4] == ["SUBPID0001/lamp01", "no", "-", "GWPID00001/gw01"]
        assert rows["SUBPID0001/lamp01"][4:6] == [task_id, "pending"]
        assert rows["GWPID00001/gw01"][1:] == ["no", "-", "-", "-"]

        # A refusal from the real console: binding to a device that does not exist.
        status, _, err = await run(console, "bind", "GWPID00001/gw01", "SUBPID0001/ghost")
        assert status == 1
        assert "HTTP 404" in err


async def test_console_client_against_the_emulator(socket_enabled: None, tmp_path: Path) -> None:
    """The typed client reads E1's device and task JSON into its dataclasses."""
    async with Emulator(tmp_path / "state") as emulator:
        console = emulator.console
        credentials = await console.add_device("SUBPID0001", "lamp01")
        assert credentials.key == "SUBPID0001/lamp01"
        await console.upload_firmware("SUBPID0001", "2.0", image(1000))
        task_id = await console.create_task("SUBPID0001", "2.0", "list", devices=["lamp01"])
        task = await console.get_task(task_id)
        assert task.task_id == task_id
        assert task.devices["SUBPID0001/lamp01"].state == "pending"
        device = await console.get_device("SUBPID0001", "lamp01")
        assert (device.online, device.version, device.gateway) == (False, None, None)
        assert device.task is not None
        assert (device.task.state, device.task.task_id) == ("pending", task_id)
        assert [d.key for d in await console.list_devices()] == ["SUBPID0001/lamp01"]
        assert await console.messages("SUBPID0001/lamp01") == []
        assert isinstance(await console.violations(), list)
        with pytest.raises(ConsoleError, match="HTTP 404"):
            await console.get_device("SUBPID0001", "ghost")
