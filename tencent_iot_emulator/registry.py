"""Products, devices and gateway bindings: persisted in the state dir, mirrored into the broker plugin's tables.

`registry.json` is the source of truth across restarts. After every change the registry rewrites
`broker/devices.tsv` and `broker/bindings.tsv`, which the mosquitto plugin re-reads when they change; each file
is replaced atomically (write then rename), so the plugin never sees half a table. Every write is awaited
before a change is acknowledged, so a binding made in the console applies to the next MQTT packet.

Each write costs O(registered devices), so a thousand devices added one write each is quadratic: batches
(`add_devices`, `bind_many`) change many entries for one write, and concurrent changes share one write (a
change waiting for the lock is covered by the write of whoever snapshots after it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
import json
import os
from pathlib import Path
import re
import secrets
from typing import Any

REGISTRY_FILE = "registry.json"
DEVICES_TABLE = "devices.tsv"
BINDINGS_TABLE = "bindings.tsv"

_PRODUCT_ID_RE = re.compile(r"[A-Za-z0-9]{1,10}")
_DEVICE_NAME_RE = re.compile(r"[A-Za-z0-9_\-.:@]{1,48}")
_SECRET_MAX = 64
_PRODUCT_SECRET_RE = re.compile(r"[A-Za-z0-9+/=]{16,64}")


class RegistryError(ValueError):
    """A request the registry refuses; the message is safe to show (it never holds a secret)."""


class UnknownDeviceError(RegistryError):
    """No such device is registered."""


class BindingConflictError(RegistryError):
    """The sub-device is bound to another gateway, or not bound where the request says."""


def validate_product_id(value: object) -> str:
    """Return `value` if it is a product id (1-10 letters or digits), else raise `RegistryError`."""
    if not isinstance(value, str) or not _PRODUCT_ID_RE.fullmatch(value):
        raise RegistryError("product_id must be 1 to 10 letters or digits")
    return value


def validate_device_name(value: object) -> str:
    """Return `value` if it is a device name (1-48 of `A-Za-z0-9_-.:@`), else raise `RegistryError`."""
    if not isinstance(value, str) or not _DEVICE_NAME_RE.fullmatch(value):
        raise RegistryError("device_name must be 1 to 48 characters of letters, digits and _ - . : @")
    return value


def validate_device_secret(value: object) -> str:
    """Return `value` if it is a base64 device secret of at most 64 characters, else raise `RegistryError`."""
    if not isinstance(value, str) or not value or len(value) > _SECRET_MAX:
        raise RegistryError("device_secret must be base64 text of at most 64 characters")
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise RegistryError("device_secret must be base64 text of at most 64 characters") from None
    return value


def parse_key(value: object) -> tuple[str, str]:
    """Split a `PID/DN` device key, validating both halves."""
    if not isinstance(value, str) or "/" not in value:
        raise RegistryError("a device is named as PRODUCT_ID/DEVICE_NAME")
    product_id, device_name = value.split("/", 1)
    return validate_product_id(product_id), validate_device_name(device_name)


def device_key(product_id: str, device_name: str) -> str:
    """The `PID/DN` key the console and the emulator's tables use for a device."""
    return f"{product_id}/{device_name}"


def new_device_secret() -> str:
    """A fresh secret shaped like Tencent's: base64 of 16 random bytes."""
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


def new_product_secret() -> str:
    """A fresh product secret: 24 letters and digits, so its first 16 bytes make an AES-128 key."""
    return secrets.token_urlsafe(18).replace("-", "A").replace("_", "B")[:24]


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device. `secret` is the base64 device secret: never log it."""

    product_id: str
    device_name: str
    secret: str

    @property
    def key(self) -> str:
        """`PID/DN`."""
        return device_key(self.product_id, self.device_name)

    @property
    def client_id(self) -> str:
        """The MQTT client id Tencent expects: product id and device name concatenated."""
        return self.product_id + self.device_name

    def __repr__(self) -> str:
        """Keep the secret out of reprs."""
        return f"Device({self.key!r})"


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """One device of a batch registration; `secret` None keeps an existing secret or generates one."""

    product_id: str
    device_name: str
    secret: str | None = None

    def __repr__(self) -> str:
        """Keep the secret out of reprs."""
        return f"DeviceRequest({device_key(self.product_id, self.device_name)!r})"


class Registry:
    """Products, devices and bindings (sub-device key -> gateway key)."""

    def __init__(self, state_dir: Path, tables_dir: Path) -> None:
        """Persist into `state_dir`; write the broker plugin's tables into `tables_dir`."""
        self._file = state_dir / REGISTRY_FILE
        self._tables_dir = tables_dir
        self._products: dict[str, str | None] = {}
        # Products whose devices may not act as gateways (Tencent's "device" node type); the rest may.
        self._plain_products: set[str] = set()
        self._devices: dict[str, Device] = {}
        self._by_client_id: dict[str, Device] = {}
        self._bindings: dict[str, str] = {}
        self._lock = asyncio.Lock()
        # Generations of the in-memory state: changed by every mutation, written by the last finished write.
        self._changed = 0
        self._written = -1

    async def load(self) -> None:
        """Read `registry.json` (if any) and (re)write the broker tables."""
        data = await asyncio.get_running_loop().run_in_executor(None, self._read)
        for product_id, product_secret in data.get("products", {}).items():
            self._products[product_id] = product_secret
        for entry in data.get("devices", []):
            device = Device(entry["product_id"], entry["device_name"], entry["secret"])
            self._devices[device.key] = device
            self._by_client_id[device.client_id] = device
        self._bindings = dict(data.get("bindings", {}))
        self._plain_products = set(data.get("plain_products", []))
        await self._save()

    def _read(self) -> dict[str, Any]:
        try:
            text = self._file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        data = json.loads(text)
        return data if isinstance(data, dict) else {}

    def product_secret(self, product_id: str) -> str | None:
        """The product secret for dynamic registration, if the product has one."""
        return self._products.get(product_id)

    async def add_product(
        self, product_id: str, product_secret: str | None = None, *, gateway: bool | None = None
    ) -> str:
        """Create or update a product; returns its secret (generated when not given).

        `gateway` False makes it a plain device product: its devices log in but may not use `$gateway/...`.
        """
        validate_product_id(product_id)
        if gateway is not None:
            if gateway:
                self._plain_products.discard(product_id)
            else:
                self._plain_products.add(product_id)
        if product_secret is None:
            product_secret = self._products.get(product_id) or new_product_secret()
        elif not isinstance(product_secret, str) or not _PRODUCT_SECRET_RE.fullmatch(product_secret):
            raise RegistryError("product_secret must be 16 to 64 base64 characters")
        self._products[product_id] = product_secret
        await self._save()
        return product_secret

    async def add_device(self, product_id: str, device_name: str, secret: str | None = None) -> Device:
        """Register a device (or return it; a given secret replaces the old one)."""
        [device] = await self.add_devices([DeviceRequest(product_id, device_name, secret)])
        return device

    async def add_devices(self, requests: Sequence[DeviceRequest]) -> list[Device]:
        """Register many devices with one write; all or none (the first invalid request refuses the batch)."""
        planned: dict[str, Device] = {}
        by_client_id: dict[str, Device] = {}
        for request in requests:
            device = self._plan_device(request, planned)
            clash = by_client_id.get(device.client_id) or self._by_client_id.get(device.client_id)
            if clash is not None and clash.key != device.key:
                raise RegistryError(f"client id {device.client_id} is already used by {clash.key}")
            planned[device.key] = by_client_id[device.client_id] = device
        changed = [d for d in planned.values() if self._devices.get(d.key) != d]
        for device in changed:
            self._devices[device.key] = device
            self._by_client_id[device.client_id] = device
            self._products.setdefault(device.product_id, None)
        if changed or not requests:
            await self._save()
        return [planned[device_key(r.product_id, r.device_name)] for r in requests]

    def _plan_device(self, request: DeviceRequest, planned: dict[str, Device]) -> Device:
        """The device `request` leaves registered (validated; nothing is changed yet)."""
        product_id = validate_product_id(request.product_id)
        device_name = validate_device_name(request.device_name)
        key = device_key(product_id, device_name)
        existing = planned.get(key) or self._devices.get(key)
        if request.secret is None:
            return existing or Device(product_id, device_name, new_device_secret())
        return Device(product_id, device_name, validate_device_secret(request.secret))

    def get(self, product_id: str, device_name: str) -> Device | None:
        """The device, if registered."""
        return self._devices.get(device_key(product_id, device_name))

    def by_key(self, key: str) -> Device | None:
        """The device named `PID/DN`, if registered."""
        return self._devices.get(key)

    def by_client_id(self, client_id: str) -> Device | None:
        """The device that logs in with `client_id`, if registered."""
        return self._by_client_id.get(client_id)

    def devices(self, product_id: str | None = None) -> list[Device]:
        """All devices (of one product when given), in registration order."""
        return [d for d in self._devices.values() if product_id is None or d.product_id == product_id]

    def gateway_of(self, sub_key: str) -> str | None:
        """The key of the gateway a sub-device is bound to, if any."""
        return self._bindings.get(sub_key)

    def subdevices_of(self, gateway_key: str) -> list[str]:
        """Keys of the sub-devices bound to a gateway, in binding order."""
        return [sub for sub, gateway in self._bindings.items() if gateway == gateway_key]

    async def bind(self, gateway_key: str, sub_key: str) -> None:
        """Bind a sub-device to a gateway (idempotent); refuses one bound elsewhere."""
        await self.bind_many(gateway_key, [sub_key])

    async def bind_many(self, gateway_key: str, sub_keys: Sequence[str]) -> None:
        """Bind sub-devices to a gateway with one write (idempotent); all or none, as `bind` checks each."""
        self._require(gateway_key)
        for sub_key in sub_keys:
            self._require(sub_key)
            if gateway_key == sub_key:
                raise BindingConflictError("a device cannot be bound to itself")
            current = self._bindings.get(sub_key)
            if current is not None and current != gateway_key:
                raise BindingConflictError(f"{sub_key} is bound to another gateway")
        for sub_key in sub_keys:
            self._bindings[sub_key] = gateway_key
        await self._save()

    async def unbind(self, gateway_key: str, sub_key: str) -> None:
        """Unbind a sub-device from the gateway it is bound to."""
        self._require(gateway_key)
        self._require(sub_key)
        if self._bindings.get(sub_key) != gateway_key:
            raise BindingConflictError(f"{sub_key} is not bound to {gateway_key}")
        del self._bindings[sub_key]
        await self._save()

    async def unbind_all(self, gateway_key: str) -> list[str]:
        """Unbind every sub-device of a gateway; returns their keys."""
        self._require(gateway_key)
        subs = self.subdevices_of(gateway_key)
        for sub in subs:
            del self._bindings[sub]
        await self._save()
        return subs

    def _require(self, key: str) -> Device:
        device = self._devices.get(key)
        if device is None:
            raise UnknownDeviceError(f"no device {key}")
        return device

    async def _save(self) -> None:
        """Persist and rewrite the broker tables; returns once a write holding this change has landed.

        Writes are serialised, so they land in the order of the changes; each write takes the state as it is
        when the write starts, so every change already made by then needs no write of its own.
        """
        self._changed += 1
        wanted = self._changed
        async with self._lock:
            if self._written >= wanted:
                return
            generation = self._changed
            # Devices are frozen: shallow copies are a consistent snapshot; the text is built off the loop.
            snapshot = _Snapshot(
                dict(self._products),
                list(self._devices.values()),
                dict(self._bindings),
                frozenset(self._plain_products),
            )
            await asyncio.get_running_loop().run_in_executor(None, self._write_all, snapshot)
            self._written = generation

    def _write_all(self, snapshot: _Snapshot) -> None:
        self._tables_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self._file, json.dumps(snapshot.registry(), indent=1))
        _atomic_write(self._tables_dir / DEVICES_TABLE, snapshot.devices_table())
        _atomic_write(self._tables_dir / BINDINGS_TABLE, snapshot.bindings_table())


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The registry at one moment, as the write that persists it sees it."""

    products: dict[str, str | None]
    devices: list[Device]
    bindings: dict[str, str]
    plain_products: frozenset[str]  # products whose devices are not gateways

    def registry(self) -> dict[str, Any]:
        """The document of `registry.json`."""
        return {
            "products": self.products,
            "devices": [
                {"product_id": d.product_id, "device_name": d.device_name, "secret": d.secret}
                for d in self.devices
            ],
            "bindings": self.bindings,
            "plain_products": sorted(self.plain_products),
        }

    def devices_table(self) -> str:
        """`devices.tsv`: client id, product id, device name, secret, and whether it may act as a gateway."""
        return "".join(
            f"{d.client_id}\t{d.product_id}\t{d.device_name}\t{d.secret}"
            f"\t{'device' if d.product_id in self.plain_products else 'gateway'}\n"
            for d in self.devices
        )

    def bindings_table(self) -> str:
        """`bindings.tsv`: gateway product id and name, then the sub-device's."""
        return "".join(
            f"{gateway.replace('/', chr(9), 1)}\t{sub.replace('/', chr(9), 1)}\n"
            for sub, gateway in self.bindings.items()
        )


def _atomic_write(path: Path, text: str) -> None:
    """Replace `path` in one step, readable only by its owner (the tables hold device secrets)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)
