"""The registry at gateway scale: batch registration and binding, one write per batch, and a restart sees it all.

Writes are counted on the real registry (its `_write_all` wrapped, still writing), because "one write per
batch, not per device" is the point of the change: at a thousand devices a write per device is quadratic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
import threading

import aiohttp
import pytest

from tencent_iot_emulator.console_client import ConsoleClient, ConsoleError
from tencent_iot_emulator.emulator import Emulator
from tencent_iot_emulator.registry import DEVICES_TABLE, DeviceRequest, Registry, RegistryError, _Snapshot
from tests.emulator_fixtures import eventually, mqtt_client

GATEWAY = ("GWPID00001", "gw01")
GATEWAY_KEY = "GWPID00001/gw01"
SUB_PRODUCT = "SUBPID0001"
SCALE = 1000


def _count_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every registry write from now on appends the number of devices it wrote."""
    writes: list[int] = []
    real = Registry._write_all

    def counting(registry: Registry, snapshot: _Snapshot) -> None:
        real(registry, snapshot)
        writes.append(len(snapshot.devices))

    monkeypatch.setattr(Registry, "_write_all", counting)
    return writes


def _subs(count: int) -> list[tuple[str, str]]:
    return [(SUB_PRODUCT, f"sub{i:04d}") for i in range(count)]


async def test_batch_of_a_thousand_is_one_write_and_survives_restart(
    socket_enabled: None, tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 sub-devices registered and bound in two requests: two writes; a restarted emulator knows them."""
    state = tmp_path / "state"
    subs = _subs(SCALE)
    async with Emulator(state) as emu:
        console = ConsoleClient(emu.http_url, http)
        gateway = await console.add_device(*GATEWAY)
        writes = _count_writes(monkeypatch)
        created = await console.add_devices(subs)
        await console.bind_many(GATEWAY_KEY, [f"{p}/{d}" for p, d in subs])
        assert writes == [SCALE + 1, SCALE + 1]
        assert [(c.product_id, c.device_name) for c in created] == subs
        secrets = {c.key: c.device_secret for c in created}
        # Registering again without secrets keeps them and needs no write.
        assert {c.key: c.device_secret for c in await console.add_devices(subs)} == secrets
        assert len(writes) == 2
        monkeypatch.undo()
    async with Emulator(state) as emu:
        console = ConsoleClient(emu.http_url, http)
        listed = {d.key: d.gateway for d in await console.list_devices()}
        assert listed == {GATEWAY_KEY: None} | dict.fromkeys(secrets, GATEWAY_KEY)
        assert {d.key for d in await console.list_devices(SUB_PRODUCT)} == set(secrets)
        table = (state / "broker" / DEVICES_TABLE).read_text(encoding="utf-8")
        assert len(table.splitlines()) == SCALE + 1
        # The broker plugin's tables after the restart let the gateway act for the last sub-device bound.
        async with mqtt_client(emu, *GATEWAY, gateway.device_secret, tls=True) as client:
            assert await client.subscribe(f"$ota/update/{SUB_PRODUCT}/sub{SCALE - 1:04d}") == [1]
            assert await client.subscribe("$ota/update/SUBPID0001/unbound") == [128]


async def test_batches_are_all_or_nothing(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """One bad entry refuses the whole batch: nothing is registered or bound, and the status says why."""
    console = ConsoleClient(emulator.http_url, http)
    await console.add_device(*GATEWAY)
    await console.add_device("GWPID00002", "gw02")
    with pytest.raises(ConsoleError) as refused:
        await console.add_devices([(SUB_PRODUCT, "ok01"), (SUB_PRODUCT, "bad name")])
    assert refused.value.status == 400
    with pytest.raises(ConsoleError) as bad_secret:
        await console.add_devices([(SUB_PRODUCT, "ok01")], {f"{SUB_PRODUCT}/ok01": "not base64!"})
    assert bad_secret.value.status == 400
    assert {d.key for d in await console.list_devices()} == {GATEWAY_KEY, "GWPID00002/gw02"}

    await console.add_devices(_subs(3))
    await console.bind("GWPID00002/gw02", f"{SUB_PRODUCT}/sub0002")
    with pytest.raises(ConsoleError) as conflict:
        await console.bind_many(GATEWAY_KEY, [f"{SUB_PRODUCT}/sub0000", f"{SUB_PRODUCT}/sub0002"])
    assert conflict.value.status == 409
    with pytest.raises(ConsoleError) as unknown:
        await console.bind_many(GATEWAY_KEY, [f"{SUB_PRODUCT}/sub0000", f"{SUB_PRODUCT}/ghost"])
    assert unknown.value.status == 404
    gateways = {d.key: d.gateway for d in await console.list_devices()}
    assert gateways[f"{SUB_PRODUCT}/sub0000"] is None
    assert gateways[f"{SUB_PRODUCT}/sub0002"] == "GWPID00002/gw02"


async def test_concurrent_changes_share_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """200 single registrations while a write is under way: one more write covers them all.

    The first write is held in its thread until the other 199 changes are made, so the test does not depend
    on how the loop happens to schedule the tasks.
    """
    registry = Registry(tmp_path / "state", tmp_path / "tables")
    (tmp_path / "state").mkdir()
    await registry.load()
    release = threading.Event()
    writes: list[int] = []
    real = Registry._write_all

    def held_write(registry: Registry, snapshot: _Snapshot) -> None:
        if not writes:
            release.wait(timeout=30)
        real(registry, snapshot)
        writes.append(len(snapshot.devices))

    monkeypatch.setattr(Registry, "_write_all", held_write)
    adds = [asyncio.ensure_future(registry.add_device(p, d)) for p, d in _subs(200)]

    async def all_made() -> bool | None:
        return len(registry.devices()) == 200 or None

    await eventually(all_made)
    assert not any(add.done() for add in adds)  # nothing is acknowledged before it is written
    release.set()
    devices = await asyncio.gather(*adds)
    assert writes == [1, 200]

    reloaded = Registry(tmp_path / "state", tmp_path / "tables")
    await reloaded.load()
    assert [d.secret for d in reloaded.devices()] == [d.secret for d in devices]


async def test_client_id_clash_within_a_batch(tmp_path: Path) -> None:
    """Two devices of one batch that would log in with the same client id are refused together."""
    registry = Registry(tmp_path, tmp_path / "tables")
    with pytest.raises(RegistryError, match="client id"):
        await registry.add_devices([DeviceRequest("AB", "Cdev"), DeviceRequest("ABC", "dev")])
    assert registry.devices() == []
