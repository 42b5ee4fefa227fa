"""Edges of the small engine modules: broker endpoints, topic parsing, and the file flasher's failure paths."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from custom_components.tencent_iot_gateway.engine.errors import (
    FailureReason,
    FieldProblem,
    FlashError,
    InvalidFieldError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import (
    BrokerEndpoint,
    Region,
    registration_host,
)
from custom_components.tencent_iot_gateway.engine.mqtt.topics import ota_update, parse_ota_update
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.flashers import FileFlasher, FileFlasherConfig

TARGET = DeviceId("LIGHTPID01", "light1")


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_endpoint_refuses_a_port_outside_tcp(port: int) -> None:
    """A port that cannot exist names the port field and the range a port has."""
    with pytest.raises(InvalidFieldError, match=r"port.*from 1 to 65535") as failure:
        BrokerEndpoint("127.0.0.1", port)
    assert failure.value.problem is FieldProblem.OUT_OF_RANGE
    assert failure.value.placeholders == {"min": "1", "max": "65535"}


def test_endpoint_repr_hides_the_ca_and_says_which_trust() -> None:
    """The PEM never lands in a log line; the repr says whose root is trusted."""
    pem = "-----BEGIN CERTIFICATE-----\nMIIBsecret\n-----END CERTIFICATE-----\n"
    custom = BrokerEndpoint("broker.example", 1883, tls=False, ca_pem=pem)
    assert repr(custom) == "BrokerEndpoint(broker.example:1883, tls=False, custom-ca)"
    assert "MIIB" not in repr(custom)
    assert (
        repr(BrokerEndpoint("broker.example"))
        == "BrokerEndpoint(broker.example:8883, tls=True, tencent-root)"
    )


def test_region_endpoints_and_registration_hosts() -> None:
    """Each Tencent region maps to its TLS host; the custom region needs an explicit host."""
    europe = BrokerEndpoint.for_region(Region.EUROPE, "PROD000001")
    assert (europe.host, europe.port, europe.tls) == (
        "PROD000001.europe.iothub.tencentdevices.com",
        8883,
        True,
    )
    with pytest.raises(InvalidFieldError, match=r"region.*explicit host"):
        BrokerEndpoint.for_region(Region.CUSTOM, "PROD000001")
    assert registration_host(Region.CHINA) == "ap-guangzhou.gateway.tencentdevices.com"
    assert registration_host(Region.BANGKOK) is None


@pytest.mark.parametrize(
    "topic",
    [
        "$gateway/operation/result/GWPROD0001/gateway1",
        "$ota/report/LIGHTPID01/light1",
        "$ota/update/LIGHTPID01",
        "$ota/update/LIGHTPID01/light1/extra",
    ],
)
def test_parse_ota_update_ignores_other_topics(topic: str) -> None:
    """Only `$ota/update/PID/DN` names a device; anything else is not for the OTA machinery."""
    assert parse_ota_update(topic) is None


def test_parse_ota_update_round_trips() -> None:
    """The parser reads back exactly the device the topic was built for."""
    assert parse_ota_update(ota_update(TARGET)) == TARGET


def _firmware(data: bytes) -> FirmwareSpec:
    return FirmwareSpec("https://cos.example/fw.bin?sign=x", hashlib.md5(data).hexdigest(), len(data), "2.0")


async def test_file_flash_onto_a_directory_in_the_way_leaves_no_partial_file(tmp_path: Path) -> None:
    """The final rename fails (a directory holds the name): a FlashError naming the file, and no temp file left."""
    image = tmp_path / "image.bin"
    image.write_bytes(b"\x01" * 4096)
    out = tmp_path / "drop"
    in_the_way = out / "LIGHTPID01_light1_2.0.bin"
    (in_the_way / "child").mkdir(parents=True)
    flasher = FileFlasher(FileFlasherConfig(directory=str(out)))

    with pytest.raises(FlashError, match=r"writing into .*drop failed: Is a directory") as failure:
        await flasher.flash(image, TARGET, _firmware(image.read_bytes()), lambda _p: None)
    assert failure.value.failure.reason is FailureReason.FILE_WRITE_FAILED

    assert sorted(p.name for p in out.iterdir()) == ["LIGHTPID01_light1_2.0.bin"]
    assert in_the_way.is_dir()


async def test_cancelled_file_flash_removes_its_temporary_file(tmp_path: Path) -> None:
    """Cancelling mid-copy (HA shutting down) discards the partial temp file and leaves no final file."""
    image = tmp_path / "image.bin"
    image.write_bytes(b"\x02" * (8 * 1024 * 1024))
    out = tmp_path / "drop"
    flasher = FileFlasher(FileFlasherConfig(directory=str(out)))
    first_chunk = asyncio.Event()

    def progress(percent: int) -> None:
        first_chunk.set()

    task = asyncio.create_task(flasher.flash(image, TARGET, _firmware(image.read_bytes()), progress))
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
    final_name = "LIGHTPID01_light1_2.0.bin"
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
        await flasher.flash(image, TARGET, _firmware(image.read_bytes()), lambda _p: None)

    assert _open_descriptors() == before
    assert list(directory.iterdir()) == []
