"""Runs mosquitto 2.1 with the Tencent auth/ACL plugin as a child process of the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from dataclasses import dataclass, fields
import ipaddress
import logging
import os
from pathlib import Path
import secrets
import signal
import socket
import time

from .certs import CertPaths

_LOGGER = logging.getLogger(__name__)

PLUGIN_ENV = "TENCENT_IOT_AUTH_PLUGIN"
DEFAULT_PLUGIN = Path(__file__).resolve().parent.parent / "build" / "tencent_auth_plugin.so"
CONFIG_FILE = "mosquitto.conf"
LOG_FILE = "broker.log"
LIMITS_TABLE = "limits.tsv"
_START_ATTEMPTS = 5
_READY_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """mosquitto could not be started."""


@dataclass(frozen=True, slots=True)
class CloudCredential:
    """How the emulator's cloud client logs in: its own loopback listener and a random password."""

    port: int
    client_id: str
    username: str
    password: str

    def __repr__(self) -> str:
        """Keep the password out of reprs."""
        return f"CloudCredential(port={self.port}, client_id={self.client_id!r})"


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """Tencent's documented limits (IoT Hub limits page; spec §3a), as the broker plugin enforces them.

    0 turns a limit off. What breaks a limit is refused and recorded as a `limit` violation: a login too soon
    after the device's previous connect attempt or with a keep-alive out of range is refused (CONNACK 5); a
    subscription over the limits gets a SUBACK failure; a publish that is too big or over the rate is dropped
    (MQTT 3.1.1 cannot refuse a publish: the client still gets its PUBACK and the cloud never hears it; the
    connection stays up, as a throttling broker's does).
    """

    connect_interval_ms: int = 0  # at most one connect per device in this time (Tencent: 5000)
    max_topics_per_subscribe: int = 1
    max_subscriptions: int = 0  # per connection (older IoT Hub: 100)
    uplink_rate: int = 0  # publishes per connection in any 1 s window (Tencent: 30)
    max_payload: int = 16 * 1024
    keepalive_min: int = 60
    keepalive_max: int = 850

    @classmethod
    def strict(cls) -> BrokerLimits:
        """Every documented limit at its strictest reading."""
        return cls(connect_interval_ms=5000, max_subscriptions=100, uplink_rate=30)

    def table(self) -> str:
        """The plugin's `limits.tsv`."""
        return "".join(f"{f.name}\t{int(getattr(self, f.name))}\n" for f in fields(self))


def plugin_path() -> Path:
    """The compiled auth/ACL plugin; `TENCENT_IOT_AUTH_PLUGIN` overrides the build location."""
    return Path(os.environ.get(PLUGIN_ENV, DEFAULT_PLUGIN))


def free_port(host: str) -> int:
    """A port that was free on `host` a moment ago (mosquitto cannot report the port it picked for 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Broker:
    """mosquitto with a plain listener, a TLS listener and a loopback listener for the cloud client."""

    def __init__(
        self,
        directory: Path,
        certs: CertPaths,
        *,
        host: str = "127.0.0.1",
        mqtt_port: int = 0,
        mqtts_port: int = 0,
        limits: BrokerLimits | None = None,
    ) -> None:
        """Keep config, tables and log in `directory` (the plugin's tables live there too)."""
        self.directory = directory
        self.limits = limits or BrokerLimits()
        self._certs = certs
        self._host = host
        self._wanted = (mqtt_port, mqtts_port)
        self.mqtt_port = 0
        self.mqtts_port = 0
        self.cloud = CloudCredential(
            port=0,
            client_id=f"emulator-cloud-{secrets.token_hex(4)}",
            username=f"emulator-cloud-{secrets.token_hex(4)}",
            password=secrets.token_urlsafe(24),
        )
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start mosquitto and wait until every listener accepts connections."""
        plugin = plugin_path()
        if not plugin.is_file():
            raise BrokerError(
                f"The mosquitto auth plugin {plugin} is missing: run scripts/setup to compile "
                "tencent_iot_emulator/broker_plugin/tencent_auth.c"
            )
        last_error = ""
        for _ in range(_START_ATTEMPTS):
            ports = (
                self._wanted[0] or free_port(self._host),
                self._wanted[1] or free_port(self._host),
                free_port("127.0.0.1"),
            )
            config = self._config(plugin, *ports)
            await asyncio.get_running_loop().run_in_executor(None, self._write_config, config)
            await self.set_limits(self.limits)
            process = await self._spawn()
            try:
                await self._wait_ready(process, ports)
            except BrokerError as err:
                last_error = str(err)
                await _terminate(process)
                if all(self._wanted):
                    break  # fixed ports: picking again cannot help
                continue
            self._process = process
            self.mqtt_port, self.mqtts_port = ports[0], ports[1]
            self.cloud = CloudCredential(
                ports[2], self.cloud.client_id, self.cloud.username, self.cloud.password
            )
            return
        raise BrokerError(f"mosquitto did not start: {last_error} (see {self.directory / LOG_FILE})")

    async def set_limits(self, limits: BrokerLimits) -> None:
        """Apply new limits; the plugin re-reads them before its next check."""
        self.limits = limits
        await asyncio.get_running_loop().run_in_executor(None, self._write_limits, limits.table())

    def _write_limits(self, table: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / LIMITS_TABLE
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(table, encoding="utf-8")
        tmp.replace(path)

    async def stop(self) -> None:
        """Stop mosquitto (SIGTERM, then SIGKILL) and reap it."""
        process, self._process = self._process, None
        if process is not None:
            await _terminate(process)

    def _config(self, plugin: Path, mqtt_port: int, mqtts_port: int, cloud_port: int) -> str:
        lines = [
            "allow_anonymous false",
            "persistence false",
            # Tencent keeps no retained messages and refuses QoS 2 (max_qos is per listener, below).
            "retain_available false",
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
            f"plugin {plugin}",
            f"plugin_opt_state_dir {self.directory}",
            f"plugin_opt_cloud_username {self.cloud.username}",
            f"plugin_opt_cloud_password {self.cloud.password}",
            f"plugin_opt_cloud_client_id {self.cloud.client_id}",
            f"listener {mqtt_port} {self._host}",
            "max_qos 1",
            f"listener {mqtts_port} {self._host}",
            "max_qos 1",
            f"certfile {self._certs.cert_file}",
            f"keyfile {self._certs.key_file}",
            f"listener {cloud_port} 127.0.0.1",
            "max_qos 1",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto would drop to the `mosquitto` user, which cannot enter a state dir made
            # by root (pytest's tmp dirs are 0700) nor read the 0600 tables with device secrets. Staying root
            # is the simple, working choice for a local test broker; as any other user this line is ignored.
            lines.insert(0, "user root")
        return "\n".join(lines) + "\n"

    def _write_config(self, config: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / CONFIG_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(config)

    async def _spawn(self) -> asyncio.subprocess.Process:
        log_fd = os.open(self.directory / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            return await asyncio.create_subprocess_exec(
                "mosquitto",
                "-c",
                str(self.directory / CONFIG_FILE),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                preexec_fn=_die_with_parent,
            )
        except FileNotFoundError:
            raise BrokerError("mosquitto is not on PATH: run the emulator through scripts/run") from None
        finally:
            os.close(log_fd)

    async def _wait_ready(self, process: asyncio.subprocess.Process, ports: tuple[int, int, int]) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        connect_host = loopback_for(self._host)
        pending = [(connect_host, ports[0]), (connect_host, ports[1]), ("127.0.0.1", ports[2])]
        while pending:
            if process.returncode is not None:
                raise BrokerError(f"mosquitto exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise BrokerError("mosquitto did not accept connections in time")
            host, port = pending[0]
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            pending.pop(0)
        # A listener that failed to bind makes mosquitto exit right after opening the others.
        if process.returncode is not None:
            raise BrokerError(f"mosquitto exited with status {process.returncode}")


def loopback_for(host: str) -> str:
    """The address to reach a listener bound to `host` from this machine (loopback for a wildcard bind)."""
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:
            return "127.0.0.1"
    return host or "127.0.0.1"


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM to mosquitto if the emulator dies abruptly."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def _terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
