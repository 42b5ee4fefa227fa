"""Where the gateway's broker is: Tencent's regions, or any host of a private deployment."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from custom_components.tencent_iot_gateway.engine.errors import FieldProblem, InvalidFieldError

MQTT_TLS_PORT = 8883

# Tencent's own self-signed root signs its brokers' certificates; system trust stores do not hold it.
TENCENT_ROOT_CA_FILE = Path(__file__).with_name("tencent_iothub_root_ca.pem")


class Region(StrEnum):
    """Tencent Cloud IoT regions; `CUSTOM` is any host (private deployment, the emulator)."""

    CHINA = "ap-guangzhou"
    US_EAST = "us-east"
    EUROPE = "europe"
    BANGKOK = "ap-bangkok"
    CUSTOM = "custom"


_REGION_HOSTS = {
    Region.CHINA: "{product_id}.iotcloud.tencentdevices.com",
    Region.US_EAST: "{product_id}.us-east.iotcloud.tencentdevices.com",
    Region.EUROPE: "{product_id}.europe.iothub.tencentdevices.com",
    Region.BANGKOK: "{product_id}.ap-bangkok.iothub.tencentdevices.com",
}

_REGISTRATION_HOSTS = {
    Region.CHINA: "ap-guangzhou.gateway.tencentdevices.com",
    Region.US_EAST: "us-east.gateway.tencentdevices.com",
}


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """A broker address and how to trust it. `ca_pem` None means Tencent's root CA."""

    host: str
    port: int = MQTT_TLS_PORT
    tls: bool = True
    ca_pem: str | None = None

    def __post_init__(self) -> None:
        """Refuse addresses that cannot work, naming the field."""
        if not self.host or any(c.isspace() or c in "/?#" for c in self.host):
            raise InvalidFieldError("host", FieldProblem.HOST_NAME)
        if not 0 < self.port < 65536:
            raise InvalidFieldError("port", FieldProblem.OUT_OF_RANGE, min=1, max=65535)

    def __repr__(self) -> str:
        """The CA is long and says nothing useful in a log line."""
        trust = "tencent-root" if self.ca_pem is None else "custom-ca"
        return f"BrokerEndpoint({self.host}:{self.port}, tls={self.tls}, {trust})"

    @classmethod
    def for_region(cls, region: Region, product_id: str) -> BrokerEndpoint:
        """The TLS endpoint of a Tencent region for a product."""
        if region is Region.CUSTOM:
            raise InvalidFieldError("region", FieldProblem.CUSTOM_REGION_NEEDS_HOST)
        return cls(_REGION_HOSTS[region].format(product_id=product_id))


def registration_host(region: Region) -> str | None:
    """The dynamic-registration host of a region, or None where Tencent documents none."""
    return _REGISTRATION_HOSTS.get(region)
