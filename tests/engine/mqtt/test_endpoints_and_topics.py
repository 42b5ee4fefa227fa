"""Where the gateway connects and what it listens to: broker endpoints per region, and the OTA update topic."""

from __future__ import annotations

import pytest

from custom_components.tencent_iot_gateway.engine.errors import FieldProblem, InvalidFieldError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import (
    BrokerEndpoint,
    Region,
    registration_host,
)
from custom_components.tencent_iot_gateway.engine.mqtt.topics import ota_update, parse_ota_update

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
