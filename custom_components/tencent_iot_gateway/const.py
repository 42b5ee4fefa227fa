"""Constants of the integration."""

from typing import Final

DOMAIN: Final = "tencent_iot_gateway"
