"""The CLI: every command's HTTP call and output, against a stub of E1's console routes plus the real
firmware routes, and its usage and refusal exits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
import io
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
import pytest

from tencent_iot_emulator import cli
from tencent_iot_emulator.console_client import DeviceStatus, TaskProgress
from tencent_iot_emulator.firmware import FirmwareStore
from tencent_iot_emulator.firmware_server import FirmwareServer

from .firmware_support import image, md5_hex

DEVICES = [
    {
        "product_id": "GWPID00001",
        "device_name": "gw01",
        "online": True,
        "version": "3.1",
        "gateway": None,
        "task": None,
    },
    {
        "product_id": "SUBPID0001",
        "device_name": "lamp01",
        "online": True,
        "version": "1.0",
        "gateway": "GWPID00001/gw01",
        "task": {"task_id": 4, "state": "downloading", "percent": 37},
    },
    {
        "product_id": "SUBPID0001",
        "device_name": "lamp02",
        "online": False,
        "version": None,
        "gateway": None,
        "task": {"task_id": 4, "state": "pending", "percent": None},
    },
]


@dataclass
class StubConsole:
    """E1's console routes as a stub that records what it is sent; the firmware routes are the real ones."""

    url: str
    requests: list[tuple[str, str, Any]] = field(default_factory=list)


@pytest.fixture(name="console")
async def console_fixture(socket_enabled: None, tmp_path: Path) -> AsyncIterator[StubConsole]:
    """A stub console on 127.0.0.1."""
    stub = StubConsole(url="")

    async def record(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json() if request.can_read_body else {}
        stub.requests.append((request.method, request.path, body))
        match request.method, request.path:
            case "POST", "/api/devices":
                if body["device_name"] == "taken":
                    return web.json_response({"error": "device already exists"}, status=409)
                return web.json_response(body | {"device_secret": body.get("device_secret", "Z2VuZXJhdGVk")})
            case "POST", "/api/products":
                return web.json_response(body | {"product_secret": "PRODSECRET"})
            case "POST", "/api/tasks":
                return web.json_response({"task_id": 4})
            case "GET", "/api/devices":
                return web.json_response({"devices": DEVICES})
        return web.json_response({})

    app = web.Application()
    for method in ("GET", "POST", "DELETE"):
        for path in ("/api/devices", "/api/products", "/api/bindings", "/api/tasks"):
            app.router.add_route(method, path, record)
    FirmwareServer(FirmwareStore(tmp_path / "fw")).register_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    stub.url = str(server.make_url("")).rstrip("/")
    try:
        yield stub
    finally:
        await server.close()


async def run(console: StubConsole, *argv: str) -> tuple[int, str, str]:
    """Run the CLI with `--console` pointing at the stub; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    command, *rest = argv
    status = await cli.run([command, "--console", console.url, *rest], out, err)
    return status, out.getvalue(), err.getvalue()


async def test_register_device(console: StubConsole) -> None:
    """register PID/DN posts the device and prints its credentials as JSON."""
    status, out, _ = await run(console, "register", "SUBPID0001/lamp01", "--secret", "c2VjcmV0")
    assert status == 0
    assert json.loads(out) == {
        "product_id": "SUBPID0001",
        "device_name": "lamp01",
        "device_secret": "c2VjcmV0",
    }
    assert console.requests == [
        (
            "POST",
            "/api/devices",
            {"product_id": "SUBPID0001", "device_name": "lamp01", "device_secret": "c2VjcmV0"},
        )
    ]


async def test_register_product(console: StubConsole) -> None:
    """register --product posts the product and prints its secret."""
    status, out, _ = await run(console, "register", "--product", "SUBPID0001")
    assert status == 0
    assert json.loads(out) == {"product_id": "SUBPID0001", "product_secret": "PRODSECRET"}
    assert console.requests == [("POST", "/api/products", {"product_id": "SUBPID0001"})]


async def test_bind_and_unbind(console: StubConsole) -> None:
    """bind posts, bind --unbind deletes the binding."""
    assert (await run(console, "bind", "GWPID00001/gw01", "SUBPID0001/lamp01"))[0] == 0
    assert (await run(console, "bind", "GWPID00001/gw01", "SUBPID0001/lamp01", "--unbind"))[0] == 0
    body = {"gateway": "GWPID00001/gw01", "subdevice": "SUBPID0001/lamp01"}
    assert console.requests == [("POST", "/api/bindings", body), ("DELETE", "/api/bindings", body)]


async def test_upload(console: StubConsole, tmp_path: Path) -> None:
    """upload streams the file to the real firmware route and prints md5 and size."""
    data = image(600_000)
    path = tmp_path / "lamp-2.0.bin"
    path.write_bytes(data)
    status, out, _ = await run(console, "upload", "SUBPID0001", "2.0", str(path))
    assert status == 0
    assert json.loads(out) == {
        "product_id": "SUBPID0001",
        "version": "2.0",
        "md5": md5_hex(data),
        "size": len(data),
    }


async def test_push_each_mode(console: StubConsole) -> None:
    """push sends the task with its mode and only the options given."""
    status, out, _ = await run(
        console, "push", "SUBPID0001", "2.0", "--from-version", "1.0", "--from-version", "1.1"
    )
    assert (status, json.loads(out)) == (0, {"task_id": "4"})
    await run(
        console,
        "push",
        "SUBPID0001",
        "2.0",
        "--mode",
        "devices",
        "--device",
        "lamp01",
        "--from-version",
        "1.0",
    )
    await run(
        console, "push", "SUBPID0001", "2.0", "--mode", "list", "--device", "lamp02",
        "--timeout-s", "300", "--url-scheme", "http", "--timeout-from", "push",
    )  # fmt: skip
    assert [body for _, _, body in console.requests] == [
        {"product_id": "SUBPID0001", "version": "2.0", "mode": "all", "from_versions": ["1.0", "1.1"]},
        {
            "product_id": "SUBPID0001",
            "version": "2.0",
            "mode": "devices",
            "from_versions": ["1.0"],
            "devices": ["lamp01"],
        },
        {
            "product_id": "SUBPID0001",
            "version": "2.0",
            "mode": "list",
            "devices": ["lamp02"],
            "timeout_s": 300.0,
            "url_scheme": "http",
            "timeout_from": "push",
        },
    ]


async def test_status_table(console: StubConsole) -> None:
    """status prints one aligned row per device: online, version, gateway, task, state, percent."""
    status, out, _ = await run(console, "status")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["DEVICE", "ONLINE", "VERSION", "GATEWAY", "TASK", "STATE", "PERCENT"]
    assert lines[1].split() == ["GWPID00001/gw01", "yes", "3.1", "-", "-"]
    assert lines[2].split() == [
        "SUBPID0001/lamp01",
        "yes",
        "1.0",
        "GWPID00001/gw01",
        "4",
        "downloading",
        "37%",
    ]
    assert lines[3].split() == ["SUBPID0001/lamp02", "no", "-", "-", "4", "pending"]
    assert len({line.index("ONLINE") for line in lines[:1]} | {lines[2].index("yes")}) == 1
    status, out, _ = await run(console, "status", "--product", "GWPID00001")
    assert len(out.splitlines()) == 2


def test_empty_table() -> None:
    """No devices: the header and a note."""
    assert (
        cli.format_status_table([])
        == "DEVICE  ONLINE  VERSION  GATEWAY  TASK  STATE  PERCENT\n(no devices)\n"
    )


def test_table_of_a_done_device() -> None:
    """A finished task shows done and 100%."""
    device = DeviceStatus("P1", "d1", True, "2.0", None, TaskProgress("done", 100, 0, "", "9"), raw={})
    assert cli.format_status_table([device]).splitlines()[1].split() == [
        "P1/d1",
        "yes",
        "2.0",
        "-",
        "9",
        "done",
        "100%",
    ]


async def test_console_refusal_exits_1(console: StubConsole) -> None:
    """A refusal prints the console's message and exits 1."""
    status, out, err = await run(console, "register", "SUBPID0001/taken")
    assert (status, out) == (1, "")
    assert "HTTP 409: device already exists" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["register", "nodevice"], "is not PID/DN"),
        (["register"], "either PID/DN or --product"),
        (["bind", "G/gw", "lamp"], "'lamp' is not PID/DN"),
        (["upload", "P1", "1.0", "/nonexistent/file.bin"], "is not a file"),
    ],
)
async def test_usage_errors_exit_2(console: StubConsole, argv: list[str], message: str) -> None:
    """Arguments argparse cannot check are refused before any request, exit 2."""
    status, _, err = await run(console, *argv)
    assert status == 2
    assert message in err
    assert console.requests == []


async def test_console_url_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --console nor the environment variable: exit 2 with a hint."""
    monkeypatch.delenv(cli.CONSOLE_ENV, raising=False)
    err = io.StringIO()
    assert await cli.run(["status"], io.StringIO(), err) == 2
    assert cli.CONSOLE_ENV in err.getvalue()


async def test_unknown_command_exits_2() -> None:
    """argparse's own refusals come back as exit status 2 instead of raising SystemExit."""
    assert await cli.run(["frobnicate"], io.StringIO(), io.StringIO()) == 2


def test_main_runs_its_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() is synchronous (for `python -m`) and returns the exit status."""
    monkeypatch.delenv(cli.CONSOLE_ENV, raising=False)
    assert cli.main(["status"]) == 2
