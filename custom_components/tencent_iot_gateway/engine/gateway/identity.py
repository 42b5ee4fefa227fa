"""Who a device is on Tencent's cloud, validated once so the rest of the engine can trust it."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
import re

from custom_components.tencent_iot_gateway.engine.errors import FieldProblem, InvalidFieldError

PRODUCT_ID_MAX = 10
DEVICE_NAME_MAX = 48
DEVICE_SECRET_MAX = 64

_PRODUCT_ID_RE = re.compile(r"[A-Za-z0-9]+")
_DEVICE_NAME_RE = re.compile(r"[A-Za-z0-9_\-.:@]+")


def validate_product_id(value: str, field: str = "product_id") -> str:
    """Return the product id, or raise naming `field` when it cannot be one."""
    if not value:
        raise InvalidFieldError(field, FieldProblem.REQUIRED)
    if len(value) > PRODUCT_ID_MAX:
        raise InvalidFieldError(field, FieldProblem.TOO_LONG, length=len(value), max=PRODUCT_ID_MAX)
    if not _PRODUCT_ID_RE.fullmatch(value):
        raise InvalidFieldError(field, FieldProblem.PRODUCT_ID_CHARACTERS)
    return value


def validate_device_name(value: str, field: str = "device_name") -> str:
    """Return the device name, or raise naming `field` when it cannot be one."""
    if not value:
        raise InvalidFieldError(field, FieldProblem.REQUIRED)
    if len(value) > DEVICE_NAME_MAX:
        raise InvalidFieldError(field, FieldProblem.TOO_LONG, length=len(value), max=DEVICE_NAME_MAX)
    if not _DEVICE_NAME_RE.fullmatch(value):
        raise InvalidFieldError(field, FieldProblem.DEVICE_NAME_CHARACTERS)
    return value


def decode_device_secret(value: str, field: str = "device_secret") -> bytes:
    """Return the HMAC key that a base64 device secret stands for, or raise naming `field`."""
    if not value:
        raise InvalidFieldError(field, FieldProblem.REQUIRED)
    if len(value) > DEVICE_SECRET_MAX:
        raise InvalidFieldError(field, FieldProblem.TOO_LONG, length=len(value), max=DEVICE_SECRET_MAX)
    try:
        key = base64.b64decode(value, validate=True)
    except binascii.Error, ValueError:
        # The message never repeats the value: it is a secret.
        raise InvalidFieldError(field, FieldProblem.NOT_BASE64) from None
    if not key:
        raise InvalidFieldError(field, FieldProblem.SECRET_EMPTY)
    return key


@dataclass(frozen=True, slots=True)
class DeviceId:
    """A device on the cloud: its product and its name within that product."""

    product_id: str
    device_name: str

    def __post_init__(self) -> None:
        """Refuse ids the cloud would refuse, with the field named."""
        validate_product_id(self.product_id)
        validate_device_name(self.device_name)

    @property
    def client_id(self) -> str:
        """MQTT client id: the plain concatenation the cloud expects."""
        return f"{self.product_id}{self.device_name}"

    @property
    def key(self) -> str:
        """`PID/DN`, the form used in unique ids, logs and the emulator's console."""
        return f"{self.product_id}/{self.device_name}"

    @classmethod
    def parse(cls, key: str) -> DeviceId:
        """Build from the `PID/DN` form."""
        product_id, sep, device_name = key.partition("/")
        if not sep:
            raise InvalidFieldError("device", FieldProblem.DEVICE_KEY)
        return cls(product_id, device_name)

    def __str__(self) -> str:
        """Logs name devices as `PID/DN`."""
        return self.key
