"""The entry's fields as the engine takes them: the gateway's id, its broker, the CA and the registration URL.

Everything here raises the engine's `InvalidFieldError` naming the field; the flow turns it into a form error.
Dynamic registration and the test login are the engine's (`engine.register_device`, `engine.check_login`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from .const import (
    CONF_CA_CERT,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_HOST,
    CONF_PORT,
    CONF_PRODUCT_ID,
    CONF_REGION,
    CONF_REGISTRATION_URL,
    CONF_TLS,
)
from .engine import (
    BrokerEndpoint,
    DeviceId,
    InvalidFieldError,
    Region,
    decode_device_secret,
    registration_host,
)


def device_id_from(data: Mapping[str, Any]) -> DeviceId:
    """The gateway's id from entry data; raises `InvalidFieldError` naming the bad field."""
    return DeviceId(str(data.get(CONF_PRODUCT_ID, "")).strip(), str(data.get(CONF_DEVICE_NAME, "")).strip())


def check_device_secret(secret: str) -> str:
    """A device secret that can sign (base64, at most 64 characters)."""
    decode_device_secret(secret, CONF_DEVICE_SECRET)
    return secret


def check_ca_pem(text: str | None) -> str | None:
    """The PEM text of one or more CA certificates, or None when empty."""
    if text is None or not text.strip():
        return None
    try:
        # Raises ValueError for text holding no certificate too, so a success means at least one.
        x509.load_pem_x509_certificates(text.strip().encode())
    except ValueError:
        raise InvalidFieldError(
            CONF_CA_CERT, "is not PEM certificate text (-----BEGIN CERTIFICATE-----)"
        ) from None
    return text.strip() + "\n"


def endpoint_from(data: Mapping[str, Any]) -> BrokerEndpoint:
    """The broker of an entry: a Tencent region's, or the custom host/port/TLS/CA."""
    region = Region(data[CONF_REGION])
    if region is not Region.CUSTOM:
        return BrokerEndpoint.for_region(region, data[CONF_PRODUCT_ID])
    return BrokerEndpoint(
        host=str(data[CONF_HOST]).strip(),
        port=int(data[CONF_PORT]),
        tls=bool(data[CONF_TLS]),
        ca_pem=check_ca_pem(data.get(CONF_CA_CERT)),
    )


def registration_url_for(data: Mapping[str, Any]) -> str:
    """Where dynamic registration goes.

    Tencent's regions use Tencent's documented registration hosts. A custom (private) deployment has no
    documented one, so the user gives its HTTPS base URL; when left empty it is `https://<mqtt host>`.
    """
    region = Region(data[CONF_REGION])
    if region is not Region.CUSTOM:
        host = registration_host(region)
        if host is None:
            raise InvalidFieldError(
                CONF_REGION,
                "Tencent documents no dynamic registration in this region; enter the device secret",
            )
        return f"https://{host}"
    given = str(data.get(CONF_REGISTRATION_URL) or "").strip()
    url = given or f"https://{str(data[CONF_HOST]).strip()}"
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in {"", "/"} or parts.query:
        raise InvalidFieldError(
            CONF_REGISTRATION_URL, "must be an https:// base URL with no path, e.g. https://host:8443"
        )
    return f"https://{parts.netloc}"
