"""`python -m tencent_iot_emulator serve` as a person runs it: the JSON line, TLS logins, a clean stop."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import signal
import sys

import aiohttp
import pytest

from tests.emulator_fixtures import MqttTestClient, sign_mqtt

ROOT = Path(__file__).resolve().parents[2]


def _processes_using(path: Path) -> list[int]:
    """Pids whose command line mentions `path` (mosquitto runs with `-c <state dir>/broker/mosquitto.conf`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmdline and b"mosquitto" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_serve_prints_endpoints_and_stops_cleanly(
    socket_enabled: None, tmp_path: Path, http: aiohttp.ClientSession, stop_signal: signal.Signals
) -> None:
    """The JSON line names working endpoints; TLS with the printed CA logs in; a signal stops everything."""
    state = tmp_path / "state"
    stderr = (tmp_path / "stderr").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tencent_iot_emulator",
        "serve",
        "--state-dir",
        str(state),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        ready = json.loads(line)
        assert set(ready) == {"mqtt", "mqtts", "http", "https", "ca_file"}
        assert ready["http"].startswith("http://127.0.0.1:")
        assert ready["https"].startswith("https://127.0.0.1:")
        ca_pem = await asyncio.get_running_loop().run_in_executor(None, Path(ready["ca_file"]).read_text)
        assert ca_pem.startswith("-----BEGIN CERTIFICATE-----")

        body = {"product_id": "ABCDEFGHIJ", "device_name": "gw01"}
        async with http.post(ready["http"] + "/api/devices", json=body) as response:
            assert response.status == 201
            secret = (await response.json())["device_secret"]

        good = MqttTestClient(sign_mqtt("ABCDEFGHIJ", "gw01", secret), ca_file=Path(ready["ca_file"]))
        assert await good.connect(ready["mqtts"]) == 0
        await good.disconnect()
        bad = MqttTestClient(
            sign_mqtt("ABCDEFGHIJ", "gw01", "d3Jvbmctc2VjcmV0"), ca_file=Path(ready["ca_file"])
        )
        assert await bad.connect(ready["mqtts"]) == 5
        await bad.disconnect()
        assert len(_processes_using(state)) == 1

        process.send_signal(stop_signal)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert _processes_using(state) == []
        assert await asyncio.wait_for(process.stdout.read(), 5) == b""
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        stderr.close()
    assert "Traceback" not in (tmp_path / "stderr").read_text()


async def test_serve_restart_keeps_devices(
    socket_enabled: None, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A second serve on the same state dir knows the device registered by the first."""
    state = tmp_path / "state"
    secret = ""
    for run in range(2):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tencent_iot_emulator",
            "serve",
            "--state-dir",
            str(state),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert process.stdout is not None
            ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 15))
            if run == 0:
                body = {"product_id": "ABCDEFGHIJ", "device_name": "gw01"}
                async with http.post(ready["http"] + "/api/devices", json=body) as response:
                    secret = (await response.json())["device_secret"]
            client = MqttTestClient(sign_mqtt("ABCDEFGHIJ", "gw01", secret))
            assert await client.connect(ready["mqtt"]) == 0
            await client.disconnect()
        finally:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 10) == 0
