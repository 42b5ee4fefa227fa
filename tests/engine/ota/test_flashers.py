"""Flashers: a real subprocess for `command`, the emulator's virtual devices for `http`, a real directory for `file`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import errno
import json
import os
from pathlib import Path
import sys
import textwrap
from typing import Any

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import (
    FailureReason,
    FieldProblem,
    FlashError,
    InvalidFieldError,
    OtaResultCode,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.flashers import (
    CommandFlasher,
    CommandFlasherConfig,
    FileFlasher,
    FileFlasherConfig,
    FlasherConfig,
    HttpFlasher,
    HttpFlasherConfig,
    HttpMethod,
    build_flasher,
    file as file_flasher,
    flasher_config_from_dict,
    flasher_kinds,
    image_file_name,
)
from custom_components.tencent_iot_gateway.engine.ota.flashers.command import MAX_ARGS
from tencent_iot_emulator.virtual_devices import DeviceFault
from tests.engine.firmware_rig import PRODUCT, FirmwareRig, image, md5_hex, start_rig

TARGET = DeviceId(PRODUCT, "light1")
DATA = image(300_000)
TOKEN = "s3cr3t-token"

SCRIPT = textwrap.dedent(
    """
    import json, os, pathlib, subprocess, sys, time

    mode, record = sys.argv[1], pathlib.Path(sys.argv[2])
    info = {"argv": sys.argv[3:], "pid": os.getpid()}
    if mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        info["child"] = child.pid
    record.write_text(json.dumps(info))
    if mode == "ok":
        for line in ("progress: 0", "flashing bank B", "progress: 40", "Progress: 75 %", "progress: 250"):
            print(line, flush=True)
        sys.exit(0)
    if mode == "fail":
        for i in range(12):
            print(f"stderr line {i}", file=sys.stderr)
        sys.exit(3)
    if mode == "hang":
        print("progress: 5", flush=True)
        time.sleep(60)
    """
)


def firmware_for(data: bytes, version: str = "V100R0001") -> FirmwareSpec:
    """A verified firmware as the engine hands it to a flasher."""
    return FirmwareSpec("https://cos.example/ota/fw.bin?sign=x", md5_hex(data), len(data), version)


@pytest.fixture(name="image_file")
def image_file_fixture(tmp_path: Path) -> Path:
    """The verified image in the cache."""
    path = tmp_path / "cache" / f"{md5_hex(DATA)}-{len(DATA)}.bin"
    path.parent.mkdir()
    path.write_bytes(DATA)
    return path


@pytest.fixture(name="script")
def script_fixture(tmp_path: Path) -> Path:
    """The fake flashing program."""
    path = tmp_path / "flash tool.py"
    path.write_text(SCRIPT)
    return path


@pytest.fixture(name="rig")
async def rig_fixture(socket_enabled: None, tmp_path: Path) -> AsyncIterator[FirmwareRig]:
    """The emulator's virtual devices (and firmware server) on 127.0.0.1."""
    server, running = await start_rig(tmp_path)
    running.devices.ensure(PRODUCT, "light1", "0.1")
    try:
        yield running
    finally:
        await running.session.close()
        await server.close()


@pytest.fixture(name="token_rig")
async def token_rig_fixture(socket_enabled: None, tmp_path: Path) -> AsyncIterator[FirmwareRig]:
    """Virtual devices that require a bearer token."""
    server, running = await start_rig(tmp_path, devices_token=TOKEN)
    running.devices.ensure(PRODUCT, "light1", "0.1")
    try:
        yield running
    finally:
        await running.session.close()
        await server.close()


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (gone, or a zombie waiting for init)."""
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" in status.read_text()
    except FileNotFoundError:
        return True


async def wait_gone(pid: int) -> bool:
    """Whether `pid` stops running within 2 s (SIGKILL is delivered asynchronously)."""
    for _ in range(200):
        if process_gone(pid):
            return True
        await asyncio.sleep(0.01)
    return False


# --- command ----------------------------------------------------------------------------------------------


def command(script: Path, mode: str, record: Path, *extra: str, timeout_s: float = 10.0) -> CommandFlasher:
    """A command flasher running the test script in `mode`."""
    config = CommandFlasherConfig(
        program=sys.executable, args=(str(script), mode, str(record), *extra), timeout_s=timeout_s
    )
    return CommandFlasher(config)


def program_flasher(tmp_path: Path, code: str, *args: str) -> CommandFlasher:
    """A command flasher running `code`, written to a script, with `args`."""
    script = tmp_path / "tool.py"
    script.write_text(code)
    return CommandFlasher(
        CommandFlasherConfig(program=sys.executable, args=(str(script), *args), timeout_s=10.0)
    )


async def test_command_success_substitutes_arguments_and_reports_progress(
    tmp_path: Path, script: Path, image_file: Path
) -> None:
    record = tmp_path / "record.json"
    flasher = command(
        script,
        "ok",
        record,
        "--image={path}",
        "{product_id}/{device_name}",
        "{version}",
        "{md5}",
        "{size}",
        "literal {{braces}}",
    )
    seen: list[int] = []
    firmware = firmware_for(DATA)

    version = await flasher.flash(image_file, TARGET, firmware, seen.append)

    assert version == "V100R0001"
    assert seen == [0, 40, 75, 100]
    argv = json.loads(record.read_text())["argv"]
    assert argv == [
        f"--image={image_file}",
        f"{PRODUCT}/light1",
        "V100R0001",
        md5_hex(DATA),
        str(len(DATA)),
        "literal {braces}",
    ]


async def test_command_failure_quotes_the_stderr_tail(tmp_path: Path, script: Path, image_file: Path) -> None:
    flasher = command(script, "fail", tmp_path / "record.json")

    with pytest.raises(FlashError) as failure:
        await flasher.flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)

    message = str(failure.value)
    assert failure.value.code is OtaResultCode.UPGRADE_FAILED
    assert failure.value.failure.reason is FailureReason.COMMAND_EXIT
    assert failure.value.failure.placeholders["exit_code"] == "3"
    assert failure.value.failure.placeholders["program"] == "python"
    assert "exited with code 3" in message
    assert "stderr line 11" in message
    assert "stderr line 7" in message
    assert "stderr line 6" not in message
    assert len(message) < 600


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
async def test_command_failure_quotes_stderr_even_without_a_final_newline(
    tmp_path: Path, image_file: Path, code: str, quoted: str
) -> None:
    """A failed program's error says its status and its stderr tail, including an unterminated last line."""
    flasher = program_flasher(tmp_path, code)
    with pytest.raises(FlashError) as failure:
        await flasher.flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)
    assert failure.value.failure.reason is FailureReason.COMMAND_EXIT
    assert failure.value.failure.placeholders["remote"] == quoted  # the program's own words, quoted


async def test_command_timeout_kills_the_program_and_its_children(
    tmp_path: Path, script: Path, image_file: Path
) -> None:
    record = tmp_path / "record.json"
    flasher = command(script, "hang", record, timeout_s=1.0)
    seen: list[int] = []

    with pytest.raises(FlashError, match=r"ran longer than 1 s and was stopped") as failure:
        await flasher.flash(image_file, TARGET, firmware_for(DATA), seen.append)
    assert failure.value.failure.reason is FailureReason.COMMAND_TIMEOUT

    info = json.loads(record.read_text())
    assert seen == [5]
    assert process_gone(info["pid"])
    assert await wait_gone(info["child"])


def _pid_in(pid_file: Path) -> int | None:
    text = pid_file.read_text() if pid_file.exists() else ""
    return int(text) if text else None


async def test_command_cancelled_mid_flash_kills_the_program(tmp_path: Path, image_file: Path) -> None:
    """HA stopping mid-flash must not leave the flashing program running."""
    pid_file = tmp_path / "pid"
    code = "import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(30)\n"
    flasher = program_flasher(tmp_path, code, str(pid_file))
    task = asyncio.create_task(flasher.flash(image_file, TARGET, firmware_for(DATA), lambda _p: None))
    for _ in range(500):
        if _pid_in(pid_file) is not None:
            break
        await asyncio.sleep(0.01)
    pid = _pid_in(pid_file)
    assert pid is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    if not await wait_gone(pid):
        os.kill(pid, 9)
        pytest.fail(f"the flashing program {pid} survived the cancellation")


async def test_command_missing_program_is_a_flash_error(tmp_path: Path, image_file: Path) -> None:
    flasher = CommandFlasher(CommandFlasherConfig(program=str(tmp_path / "no-such-tool")))

    with pytest.raises(FlashError, match="was not found") as failure:
        await flasher.flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)
    assert failure.value.failure.reason is FailureReason.COMMAND_NOT_FOUND
    assert failure.value.failure.placeholders["program"] == str(tmp_path / "no-such-tool")


async def test_command_that_may_not_be_run_says_so(tmp_path: Path, image_file: Path) -> None:
    program = tmp_path / "not-executable"
    program.write_text("#!/bin/sh\nexit 0\n")
    flasher = CommandFlasher(CommandFlasherConfig(program=str(program)))

    with pytest.raises(FlashError) as failure:
        await flasher.flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)
    assert failure.value.failure.reason is FailureReason.COMMAND_NOT_EXECUTABLE


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"program": ""}, "program"),
        ({"program": "/bin/flash", "args": ["{secret}"]}, "args[0]"),
        ({"program": "/bin/flash", "args": ["ok", "{path.__class__}"]}, "args[1]"),
        ({"program": "/bin/flash", "args": ["{path!r}"]}, "args[0]"),
        ({"program": "/bin/flash", "args": ["{path:>20}"]}, "args[0]"),
        ({"program": "/bin/flash", "args": ["{unclosed"]}, "args[0]"),
        ({"program": "/bin/flash", "args": "not a list"}, "args"),
        ({"program": "/bin/flash", "args": [7]}, "args[0]"),
        ({"program": "/bin/flash", "timeout_s": 0}, "timeout_s"),
        ({"program": "/bin/flash", "timeout_s": "10"}, "timeout_s"),
        ({"program": "/bin/flash", "kind": "file"}, "kind"),
    ],
)
def test_command_config_validation_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFieldError) as failure:
        CommandFlasherConfig.from_dict(data)
    assert failure.value.field == field


def test_command_with_too_many_args_names_the_field_and_the_limit() -> None:
    """More arguments than a flasher may take name the `args` field and the limit."""
    args = tuple(f"a{i}" for i in range(MAX_ARGS + 1))
    with pytest.raises(InvalidFieldError, match=rf"args.*at most {MAX_ARGS} entries") as failure:
        CommandFlasherConfig(program=sys.executable, args=args)
    assert failure.value.problem is FieldProblem.TOO_MANY
    assert failure.value.placeholders == {"max": str(MAX_ARGS)}


@pytest.mark.parametrize("template", ["{device_name}", "{device_name}.bin"])
async def test_command_refuses_a_cloud_name_that_would_become_an_option(
    tmp_path: Path, script: Path, image_file: Path, template: str
) -> None:
    """A device name from the cloud starting with `-` never reaches the program as an option."""
    record = tmp_path / "record.json"
    flasher = command(script, "ok", record, template)
    hostile = DeviceId(PRODUCT, "-rf")  # device names may hold `-` anywhere; product ids cannot

    with pytest.raises(FlashError, match="would be read as an option"):
        await flasher.flash(image_file, hostile, firmware_for(DATA), lambda _p: None)
    assert not record.exists()  # the program never ran


async def test_command_options_written_in_the_template_still_work(
    tmp_path: Path, script: Path, image_file: Path
) -> None:
    """Only a value that turns an argument into an option is refused, not an option the user wrote."""
    record = tmp_path / "record.json"
    flasher = command(script, "ok", record, "--device={device_name}", "-v", "--", "{device_name}")

    await flasher.flash(image_file, DeviceId(PRODUCT, "-odd"), firmware_for(DATA), lambda _p: None)
    assert json.loads(record.read_text())["argv"] == ["--device=-odd", "-v", "--", "-odd"]


# --- config round trips and the factory --------------------------------------------------------------------


async def test_configs_round_trip_and_build(tmp_path: Path) -> None:
    configs: list[FlasherConfig] = [
        CommandFlasherConfig(program="/usr/bin/flash", args=("{path}", "{version}"), timeout_s=30.0),
        HttpFlasherConfig(
            url="https://dev.local/{device_name}/fw",
            method=HttpMethod.POST,
            token=TOKEN,
            version_url="https://dev.local/{device_name}",
            poll_interval_s=1.0,
        ),
        FileFlasherConfig(directory=str(tmp_path)),
    ]
    async with aiohttp.ClientSession() as session:
        for config, flasher_type in zip(configs, (CommandFlasher, HttpFlasher, FileFlasher), strict=True):
            stored = json.loads(json.dumps(config.to_dict()))
            assert stored["kind"] == config.kind
            parsed = flasher_config_from_dict(stored)
            assert parsed == config
            assert isinstance(build_flasher(parsed, session), flasher_type)
    # The integration registers kinds of its own (automation); the engine always brings these three.
    assert {"command", "file", "http"} <= set(flasher_kinds())


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidFieldError) as failure:
        flasher_config_from_dict({"kind": "telepathy"})
    assert failure.value.field == "kind"


def test_http_token_is_never_shown() -> None:
    config = HttpFlasherConfig(url="http://127.0.0.1/x", token=TOKEN)
    assert TOKEN not in repr(config)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"url": "ftp://dev/x"}, "url"),
        ({"url": "/relative"}, "url"),
        ({"url": "http://dev/{oops}"}, "url"),
        ({"url": "http://dev/x", "method": "DELETE"}, "method"),
        ({"url": "http://dev/x", "token": "a\nb"}, "token"),
        ({"url": "http://dev/x", "version_url": "nope"}, "version_url"),
        ({"url": "http://dev/x", "poll_interval_s": -1}, "poll_interval_s"),
        ({"url": "http://dev/x", "timeout_s": float("inf")}, "timeout_s"),
        ({"url": "http://dev/x", "version_timeout_s": True}, "version_timeout_s"),
    ],
)
def test_http_config_validation_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFieldError) as failure:
        HttpFlasherConfig.from_dict(data)
    assert failure.value.field == field


# --- http against the emulator's virtual devices ---------------------------------------------------------


def http_flasher(rig: FirmwareRig, **overrides: Any) -> HttpFlasher:
    """An http flasher for the rig's virtual devices, polling fast."""
    settings: dict[str, Any] = {
        "url": rig.base_url + "/devices/{product_id}/{device_name}/firmware",
        "version_url": rig.base_url + "/devices/{product_id}/{device_name}",
        "poll_interval_s": 0.02,
        "timeout_s": 5.0,
        "version_timeout_s": 3.0,
    }
    settings.update(overrides)
    return HttpFlasher(HttpFlasherConfig(**settings), rig.session)


async def test_http_flash_uploads_and_waits_for_the_new_version(rig: FirmwareRig, image_file: Path) -> None:
    seen: list[int] = []

    version = await http_flasher(rig).flash(image_file, TARGET, firmware_for(DATA), seen.append)

    assert version == "V100R0001"
    device = rig.devices.get(PRODUCT, "light1")
    assert device is not None
    assert device.version == "V100R0001"
    # The upload is half of the flash; the rest (the device writing and booting) reports nothing.
    assert seen[-1] == 50
    assert seen == sorted(seen)
    upload = next(r for r in rig.requests if r.method == "PUT")
    assert upload.path == f"/devices/{PRODUCT}/light1/firmware"
    assert upload.headers["X-Firmware-MD5"] == md5_hex(DATA)
    assert upload.headers["X-Firmware-Version"] == "V100R0001"
    assert upload.headers["Content-Length"] == str(len(DATA))
    assert "Transfer-Encoding" not in upload.headers
    polls = [r for r in rig.requests if r.method == "GET" and r.path == f"/devices/{PRODUCT}/light1"]
    assert polls


async def test_http_flash_quotes_placeholder_values_in_urls(rig: FirmwareRig, image_file: Path) -> None:
    target = DeviceId(PRODUCT, "lamp:1@hall")
    rig.devices.ensure(PRODUCT, "lamp:1@hall", "0.1")

    assert (
        await http_flasher(rig).flash(image_file, target, firmware_for(DATA), lambda _p: None) == "V100R0001"
    )

    upload = next(r for r in rig.requests if r.method == "PUT")
    assert upload.path == f"/devices/{PRODUCT}/lamp:1@hall/firmware"
    device = rig.devices.get(PRODUCT, "lamp:1@hall")
    assert device is not None
    assert device.version == "V100R0001"


async def test_http_flash_without_version_url_returns_after_upload(
    rig: FirmwareRig, image_file: Path
) -> None:
    flasher = http_flasher(rig, version_url=None)
    seen: list[int] = []

    assert await flasher.flash(image_file, TARGET, firmware_for(DATA), seen.append) == "V100R0001"
    assert seen[-1] == 100  # the upload is the whole flash

    assert [r.method for r in rig.requests] == ["PUT"]


async def test_http_rejected_image_is_a_flash_error(rig: FirmwareRig, image_file: Path) -> None:
    rig.devices.set_fault(PRODUCT, "light1", DeviceFault.REJECT)

    with pytest.raises(FlashError, match=r"refused the image with HTTP 422.*reject fault") as failure:
        await http_flasher(rig).flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)
    assert failure.value.failure.reason is FailureReason.DEVICE_HTTP_STATUS
    assert failure.value.failure.placeholders["http_status"] == "422"
    assert "reject fault" in failure.value.failure.placeholders["remote"]  # the device's own words, quoted


async def test_http_wrong_md5_is_refused_by_the_device(rig: FirmwareRig, image_file: Path) -> None:
    wrong = FirmwareSpec("https://x/fw.bin", "0" * 32, len(DATA), "V100R0001")

    with pytest.raises(FlashError, match="HTTP 422"):
        await http_flasher(rig).flash(image_file, TARGET, wrong, lambda _p: None)


async def test_http_hanging_device_times_out(rig: FirmwareRig, image_file: Path) -> None:
    rig.devices.set_fault(PRODUCT, "light1", DeviceFault.HANG)

    with pytest.raises(FlashError, match=r"did not finish within 0.5 s") as failure:
        await http_flasher(rig, timeout_s=0.5).flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)
    assert failure.value.failure.reason is FailureReason.DEVICE_TIMEOUT
    assert failure.value.failure.placeholders == {"host": "127.0.0.1", "seconds": "0.5"}


async def test_http_device_that_never_runs_the_version_times_out(rig: FirmwareRig, image_file: Path) -> None:
    rig.devices.set_fault(PRODUCT, "light1", DeviceFault.NO_REBOOT)

    with pytest.raises(FlashError, match=r"reported version 0.1, not the new one, 0.3 s after") as failure:
        await http_flasher(rig, version_timeout_s=0.3).flash(
            image_file, TARGET, firmware_for(DATA), lambda _p: None
        )
    assert failure.value.failure.reason is FailureReason.VERSION_NOT_REACHED
    assert failure.value.failure.placeholders == {"seen": "0.1", "seconds": "0.3"}


async def test_http_bearer_token(token_rig: FirmwareRig, image_file: Path) -> None:
    with pytest.raises(FlashError, match="HTTP 401") as failure:
        await http_flasher(token_rig).flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)
    assert TOKEN not in str(failure.value)

    flasher = http_flasher(token_rig, token=TOKEN)
    assert TOKEN not in repr(flasher)
    assert await flasher.flash(image_file, TARGET, firmware_for(DATA), lambda _p: None) == "V100R0001"
    assert token_rig.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_http_unreachable_device_is_a_flash_error(
    socket_enabled: None, tmp_path: Path, image_file: Path
) -> None:
    config = HttpFlasherConfig(url="http://127.0.0.1:9/fw?key=hidden", timeout_s=5.0)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(
            FlashError, match=r"the sub-device at 127\.0\.0\.1:9 refused the connection"
        ) as failure:
            await HttpFlasher(config, session).flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)
    assert "hidden" not in str(failure.value)
    assert "Error" not in str(failure.value)  # no library class name (ClientConnectorError)
    assert failure.value.failure.reason is FailureReason.DEVICE_CONNECTION_REFUSED
    assert failure.value.failure.placeholders == {"host": "127.0.0.1", "port": "9"}


# --- file --------------------------------------------------------------------------------------------------


async def test_file_flash_writes_atomically_under_a_safe_name(tmp_path: Path, image_file: Path) -> None:
    out = tmp_path / "drop"
    flasher = FileFlasher(FileFlasherConfig(directory=str(out)))
    seen: list[int] = []

    version = await flasher.flash(image_file, TARGET, firmware_for(DATA), seen.append)

    assert version == "V100R0001"
    written = out / f"{PRODUCT}_light1_V100R0001.bin"
    assert written.read_bytes() == DATA
    assert [p.name for p in out.iterdir()] == [written.name]
    assert seen[-1] == 100


async def test_file_flash_replaces_an_existing_file(tmp_path: Path, image_file: Path) -> None:
    out = tmp_path / "drop"
    out.mkdir()
    old = out / f"{PRODUCT}_light1_V100R0001.bin"
    old.write_bytes(b"old image")
    inode_before = old.stat().st_ino

    await FileFlasher(FileFlasherConfig(directory=str(out))).flash(
        image_file, TARGET, firmware_for(DATA), lambda _p: None
    )

    assert old.read_bytes() == DATA
    # Renamed over, not rewritten in place: a reader never sees a half-written file.
    assert old.stat().st_ino != inode_before
    assert sorted(p.name for p in out.iterdir()) == [old.name]


async def test_file_flash_sanitizes_device_names(tmp_path: Path, image_file: Path) -> None:
    out = tmp_path / "drop"
    flasher = FileFlasher(FileFlasherConfig(directory=str(out)))

    await flasher.flash(image_file, DeviceId(PRODUCT, "lamp:1@hall"), firmware_for(DATA), lambda _p: None)

    assert (out / f"{PRODUCT}_lamp_1_hall_V100R0001.bin").read_bytes() == DATA


@pytest.mark.parametrize(
    ("version", "name"),
    [
        ("../../etc/evil", "..%2F..%2Fetc%2Fevil"),
        ("a/b", "a%2Fb"),
        (".hidden", ".hidden"),
        ("1.0 (beta)", "1.0%20%28beta%29"),
        ("50%", "50%25"),
    ],
)
async def test_file_flash_encodes_versions_that_are_unsafe_in_a_file_name(
    tmp_path: Path, image_file: Path, version: str, name: str
) -> None:
    """Tencent accepts any 1-32 characters as a version: what a file name cannot hold is encoded, never
    refused, and the image lands inside the directory."""
    out = tmp_path / "drop"
    flasher = FileFlasher(FileFlasherConfig(directory=str(out)))

    assert await flasher.flash(image_file, TARGET, firmware_for(DATA, version=version), lambda _p: None) == (
        version
    )

    assert [p.name for p in out.iterdir()] == [f"{PRODUCT}_{TARGET.device_name}_{name}.bin"]
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize("version", ["x" * 33, "", "a\nb"])
async def test_file_flash_refuses_unsafe_versions(tmp_path: Path, image_file: Path, version: str) -> None:
    out = tmp_path / "drop"
    flasher = FileFlasher(FileFlasherConfig(directory=str(out)))

    with pytest.raises(FlashError, match="not safe to write") as failure:
        await flasher.flash(image_file, TARGET, firmware_for(DATA, version=version), lambda _p: None)
    assert failure.value.failure.reason is FailureReason.UNSAFE_FILE_NAME

    assert not out.exists() or list(out.iterdir()) == []
    assert not (tmp_path / "etc").exists()


def test_image_file_name_parts() -> None:
    assert (
        image_file_name(DeviceId("ABCDEFGHIJ", "gw.01-x_y"), "1.2.3+b4")
        == "ABCDEFGHIJ_gw.01-x_y_1.2.3+b4.bin"
    )


async def test_file_flash_into_an_unwritable_place_is_a_flash_error(tmp_path: Path, image_file: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    flasher = FileFlasher(FileFlasherConfig(directory=str(blocker / "sub")))

    with pytest.raises(FlashError, match="is a file, not a directory") as failure:
        await flasher.flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)
    assert failure.value.failure.reason is FailureReason.FILE_NOT_A_DIRECTORY


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (errno.ENOSPC, FailureReason.FILE_DISK_FULL),
        (errno.EACCES, FailureReason.FILE_NOT_WRITABLE),
        (errno.EROFS, FailureReason.FILE_NOT_WRITABLE),
        (errno.ENOENT, FailureReason.FILE_PATH_MISSING),
        (errno.EIO, FailureReason.FILE_WRITE_FAILED),
    ],
)
async def test_file_flash_names_why_the_directory_cannot_be_written(
    tmp_path: Path, image_file: Path, monkeypatch: pytest.MonkeyPatch, number: int, reason: FailureReason
) -> None:
    """The OS's error becomes a cause with advice (the tests run as root: a read-only directory is simulated)."""
    out = tmp_path / "drop"

    def refuse(*_args: object) -> None:
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(file_flasher, "_open_pair", refuse)
    with pytest.raises(FlashError) as failure:
        await FileFlasher(FileFlasherConfig(directory=str(out))).flash(
            image_file, TARGET, firmware_for(DATA), lambda _p: None
        )
    assert failure.value.failure.reason is reason
    assert failure.value.failure.placeholders["path"] == str(out)
    if reason is FailureReason.FILE_WRITE_FAILED:
        assert failure.value.failure.placeholders["remote"] == os.strerror(number)  # the OS's words, quoted


@pytest.mark.parametrize("directory", ["relative/dir", "", None, 5])
def test_file_config_needs_an_absolute_directory(directory: object) -> None:
    with pytest.raises(InvalidFieldError) as failure:
        FileFlasherConfig.from_dict({"kind": "file", "directory": directory})
    assert failure.value.field == "directory"


async def test_file_flash_onto_a_file_in_place_of_the_directory_says_so(
    tmp_path: Path, image_file: Path
) -> None:
    """The directory was replaced by a file: the error says that, not the OS's bare "File exists"."""
    blocker = tmp_path / "drop"
    blocker.write_text("not a directory")
    flasher = FileFlasher(FileFlasherConfig(directory=str(blocker)))

    with pytest.raises(FlashError) as failure:
        await flasher.flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)
    assert "File exists" not in str(failure.value)
    assert failure.value.failure.reason is FailureReason.FILE_NOT_A_DIRECTORY
    assert failure.value.failure.placeholders == {"path": str(blocker)}
    assert blocker.read_text() == "not a directory"


async def test_file_flash_under_a_file_says_which_part_is_not_a_directory(
    tmp_path: Path, image_file: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    flasher = FileFlasher(FileFlasherConfig(directory=str(blocker / "sub")))

    with pytest.raises(FlashError) as failure:
        await flasher.flash(image_file, TARGET, firmware_for(DATA), lambda _p: None)
    assert failure.value.failure.placeholders == {"path": str(blocker)}


async def test_file_flash_onto_a_directory_in_the_way_leaves_no_partial_file(tmp_path: Path) -> None:
    """The final rename fails (a directory holds the name): a FlashError naming the file, and no temp file left."""
    image = tmp_path / "image.bin"
    image.write_bytes(b"\x01" * 4096)
    out = tmp_path / "drop"
    in_the_way = out / f"{PRODUCT}_light1_2.0.bin"
    (in_the_way / "child").mkdir(parents=True)
    flasher = FileFlasher(FileFlasherConfig(directory=str(out)))

    with pytest.raises(FlashError, match=r"writing into .*drop failed: Is a directory") as failure:
        await flasher.flash(image, TARGET, firmware_for(image.read_bytes(), version="2.0"), lambda _p: None)
    assert failure.value.failure.reason is FailureReason.FILE_WRITE_FAILED

    assert sorted(p.name for p in out.iterdir()) == [f"{PRODUCT}_light1_2.0.bin"]
    assert in_the_way.is_dir()


async def test_file_flash_cancelled_mid_copy_removes_its_temporary_file(tmp_path: Path) -> None:
    """Cancelling mid-copy (HA shutting down) discards the partial temp file and leaves no final file."""
    image = tmp_path / "image.bin"
    image.write_bytes(b"\x02" * (8 * 1024 * 1024))
    out = tmp_path / "drop"
    flasher = FileFlasher(FileFlasherConfig(directory=str(out)))
    first_chunk = asyncio.Event()

    def progress(percent: int) -> None:
        first_chunk.set()

    task = asyncio.create_task(
        flasher.flash(image, TARGET, firmware_for(image.read_bytes(), version="2.0"), progress)
    )
    await first_chunk.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert list(out.iterdir()) == []


def _open_descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


async def test_file_flash_that_cannot_create_its_temporary_closes_the_image(tmp_path: Path) -> None:
    """The temporary file cannot be created (its path is too long, the final one is not): a FlashError, no leak.

    The image was already open at that point; it must be closed again, or every retry leaks a descriptor.
    """
    image = tmp_path / "image.bin"
    image.write_bytes(b"\x03" * 1024)
    final_name = f"{PRODUCT}_light1_2.0.bin"
    # Linux refuses paths of PATH_MAX (4096) bytes or more; the temporary's name is 14 bytes longer.
    directory = tmp_path
    while len(str(directory)) < 4096 - 1 - len(final_name) - 13:
        room = 4096 - 1 - len(final_name) - 13 - len(str(directory)) - 1
        directory = directory / ("d" * max(1, min(200, room)))
    assert len(str(directory / final_name)) < 4096 <= len(str(directory / final_name)) + 14
    directory.mkdir(parents=True)
    flasher = FileFlasher(FileFlasherConfig(directory=str(directory)))
    before = _open_descriptors()

    with pytest.raises(FlashError, match=r"writing into .* failed: File name too long"):
        await flasher.flash(image, TARGET, firmware_for(image.read_bytes(), version="2.0"), lambda _p: None)

    assert _open_descriptors() == before
    assert list(directory.iterdir()) == []
