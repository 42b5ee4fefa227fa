"""What may be shown of a URL or a sub-device: never a URL's userinfo or pre-signed query, never a secret."""

from __future__ import annotations

import pytest

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import SubDevice
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec, url_without_query


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://cos.example/ota/fw.bin?sign=abc#frag", "https://cos.example/ota/fw.bin"),
        ("https://user:pass@cos.example:8443/fw.bin?sign=abc", "https://cos.example:8443/fw.bin"),
        ("http://token@192.168.1.5/upload", "http://192.168.1.5/upload"),
        ("http://u:p@[fe80::1]:8080/x", "http://[fe80::1]:8080/x"),
        ("http://a%40b:c@host/x", "http://host/x"),
    ],
)
def test_url_without_query_drops_userinfo_and_query(url: str, shown: str) -> None:
    assert url_without_query(url) == shown


def test_firmware_spec_repr_hides_userinfo() -> None:
    spec = FirmwareSpec("https://user:secret@cos.example/fw.bin?sign=x", "0" * 32, 1, "1.0")
    assert "secret" not in repr(spec)
    assert "sign" not in repr(spec)


def test_sub_device_repr_hides_its_secret() -> None:
    """A sub-device's secret never reaches a log line through its repr."""
    sub = SubDevice(DeviceId("LIGHTPID01", "light1"), "0.1", secret="c3VwZXItc2VjcmV0")
    assert repr(sub) == "SubDevice(LIGHTPID01/light1, installed_version='0.1')"
