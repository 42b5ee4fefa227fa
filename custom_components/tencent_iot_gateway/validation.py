"""Checks the config flow runs before it saves anything: fields, the CA, dynamic registration, a real login.

Everything here raises the engine's typed errors (`InvalidFieldError` naming the field, `AuthenticationError`,
`CannotConnectError`) or `RegistrationError`; the flow turns them into form errors. Secrets never appear in
a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
import json
import secrets
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import hdrs
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
from .engine.auth import decrypt_registration_payload, registration_request
from .engine.endpoints import BrokerEndpoint, Region, registration_host
from .engine.errors import InvalidFieldError, NotAGatewayError, SubscriptionRefusedError, TencentIotError
from .engine.identity import DeviceId, decode_device_secret
from .engine.session import MqttSession
from .engine.topics import gateway_operation_result

REGISTRATION_TIMEOUT_S = 15.0
# A registration's signed timestamp must be near the server's time. Tencent does not document the tolerance;
# past this much, the host's clock is named as the cause of a refusal.
CLOCK_SKEW_TOLERANCE_S = 300.0
_SIGNATURE_EXPIRED_CODE = "AuthFailure.SignatureExpire"
HTTPS_PORT = 443


class RegistrationError(TencentIotError):
    """The cloud refused a dynamic registration; `message` is the cloud's own words (no secret)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClockSkewError(RegistrationError):
    """The registration was refused, and the host's clock is off: its signed timestamp is what failed.

    `skew_s`: how far the host's clock is ahead of the server's (negative: behind), from the reply's `Date`
    header; None when the reply had none and only the refusal's code says so.
    """

    def __init__(self, message: str, skew_s: float | None) -> None:
        super().__init__(message)
        self.skew_s = skew_s


class RegistrationUnreachableError(TencentIotError):
    """The registration endpoint could not be reached or did not answer with JSON."""


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


async def async_ssl_context(ca_pem: str | None) -> ssl.SSLContext | bool:
    """An SSL context trusting only `ca_pem`, or True (the session's default trust) when there is none."""
    if ca_pem is None:
        return True

    def build() -> ssl.SSLContext:
        return ssl.create_default_context(cadata=ca_pem)

    try:
        return await asyncio.get_running_loop().run_in_executor(None, build)
    except ssl.SSLError as err:
        # OpenSSL names no reason for some refusals (text glued after an END line): say so plainly.
        reason = err.reason or "OpenSSL refused the text"
        raise InvalidFieldError(CONF_CA_CERT, f"cannot be used as a trust anchor ({reason})") from None


async def async_register_device(
    session: aiohttp.ClientSession,
    base_url: str,
    device: DeviceId,
    product_secret: str,
    *,
    ca_pem: str | None = None,
) -> str:
    """Trade the product secret for the device's secret (Tencent's dynamic registration, spec §1)."""
    host = urlsplit(base_url).netloc
    now = time.time()
    request = registration_request(
        host, device, product_secret, timestamp=int(now), nonce=secrets.randbelow(2**31)
    )
    trust = await async_ssl_context(ca_pem)
    try:
        async with asyncio.timeout(REGISTRATION_TIMEOUT_S):
            response = await session.post(request.url, data=request.body, headers=request.headers, ssl=trust)
            async with response:
                text = await response.text()
                skew_s = _clock_skew(now, response.headers.get(hdrs.DATE))
    except (TimeoutError, aiohttp.ClientError, ssl.SSLError) as err:
        raise RegistrationUnreachableError(f"cannot reach {host}: {type(err).__name__}") from None
    try:
        document = json.loads(text)
        answer = document["Response"]
    except ValueError, KeyError, TypeError:
        raise RegistrationUnreachableError(f"{host} did not answer like a registration server") from None
    if not isinstance(answer, dict):
        raise RegistrationUnreachableError(f"{host} did not answer like a registration server")
    error = answer.get("Error")
    if isinstance(error, dict):
        message = f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
        skewed = skew_s is not None and abs(skew_s) > CLOCK_SKEW_TOLERANCE_S
        if skewed or error.get("Code") == _SIGNATURE_EXPIRED_CODE:
            raise ClockSkewError(message, skew_s)
        raise RegistrationError(message)
    payload = answer.get("Payload")
    if not isinstance(payload, str):
        raise RegistrationError("the reply carries no payload")
    try:
        return check_device_secret(decrypt_registration_payload(payload, product_secret))
    except InvalidFieldError as err:
        raise RegistrationError(f"the reply cannot be used: {err.reason}") from None


def _clock_skew(sent_at: float, date_header: str | None) -> float | None:
    """Seconds the host's clock is ahead of the server that sent `date_header` (None: no usable date)."""
    if not date_header:
        return None
    try:
        server = parsedate_to_datetime(date_header)
    except TypeError, ValueError:
        return None
    if server.tzinfo is None:
        return None
    return sent_at - server.timestamp()


async def async_check_login(endpoint: BrokerEndpoint, device: DeviceId, device_secret: str) -> None:
    """Log in once, check the device may act as a gateway, and leave.

    Raises `AuthenticationError`, `CannotConnectError` or `NotAGatewayError`; no session is left behind.
    """

    async def check_gateway_topic() -> None:
        try:
            await session.subscribe([gateway_operation_result(device)])
        except SubscriptionRefusedError:
            raise NotAGatewayError(f"{device} is not a device of a gateway product") from None

    session = MqttSession(
        endpoint, device, device_secret, on_message=lambda _t, _p: None, on_connected=check_gateway_topic
    )
    # A session whose start() failed has already released its socket; stop() is only for a started one
    # (on a failed one it would also fail the CONNACK future nobody awaits any more).
    await session.start()
    await session.stop()
