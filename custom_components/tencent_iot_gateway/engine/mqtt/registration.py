"""Dynamic registration (spec §1): trade a product secret for a device's own secret over HTTPS.

Raises the engine's typed errors: `InvalidFieldError` (a CA that cannot be a trust anchor), `RegistrationError`
(the cloud's refusal, in its own words), `ClockSkewError` (refused while the host's clock is off, with how
far), `RegistrationUnreachableError`. Secrets never appear in a message.
"""

from __future__ import annotations

import asyncio
from email.utils import parsedate_to_datetime
import json
import logging
import secrets
import ssl
import time
from urllib.parse import urlsplit

import aiohttp
from aiohttp import hdrs

from custom_components.tencent_iot_gateway.engine.errors import (
    REGISTRATION_NOT_A_SERVER,
    ClockSkewError,
    FieldProblem,
    InvalidFieldError,
    RegistrationError,
    RegistrationUnreachableError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId, decode_device_secret
from custom_components.tencent_iot_gateway.engine.mqtt.auth import (
    decrypt_registration_payload,
    registration_request,
)
from custom_components.tencent_iot_gateway.engine.net_causes import net_cause

REGISTRATION_TIMEOUT_S = 15.0
# A registration's signed timestamp must be near the server's time. Tencent does not document the tolerance;
# past this much, the host's clock is named as the cause of a refusal.
CLOCK_SKEW_TOLERANCE_S = 300.0
_SIGNATURE_EXPIRED_CODE = "AuthFailure.SignatureExpire"

_LOGGER = logging.getLogger(__name__)


async def trust_for(ca_pem: str | None) -> ssl.SSLContext | bool:
    """An SSL context trusting only `ca_pem`, or True (the session's default trust) when there is none."""
    if ca_pem is None:
        return True

    def build() -> ssl.SSLContext:
        return ssl.create_default_context(cadata=ca_pem)

    try:
        return await asyncio.get_running_loop().run_in_executor(None, build)
    except ssl.SSLError as err:
        # OpenSSL's reason (its own words, when it has any) is the log's detail.
        _LOGGER.debug("The CA certificate cannot be used: %s", err.reason or err)
        raise InvalidFieldError("ca_cert", FieldProblem.CA_UNUSABLE) from None


async def register_device(
    session: aiohttp.ClientSession,
    base_url: str,
    device: DeviceId,
    product_secret: str,
    *,
    ca_pem: str | None = None,
) -> str:
    """Trade the product secret for the device's secret (Tencent's dynamic registration, spec §1).

    Raises `InvalidFieldError` on the field `payload` when the answer cannot be used (a wrong product secret
    decrypts it to nothing useful), `RegistrationError` with the cloud's own words when it refuses.
    """
    host = urlsplit(base_url).netloc
    now = time.time()
    request = registration_request(
        host, device, product_secret, timestamp=int(now), nonce=secrets.randbelow(2**31)
    )
    trust = await trust_for(ca_pem)
    try:
        async with asyncio.timeout(REGISTRATION_TIMEOUT_S):
            response = await session.post(request.url, data=request.body, headers=request.headers, ssl=trust)
            async with response:
                text = await response.text()
                skew_s = _clock_skew(now, response.headers.get(hdrs.DATE))
    except (TimeoutError, aiohttp.ClientError, ssl.SSLError) as err:
        _LOGGER.debug("Registration request to %s failed: %r", host, err)
        raise RegistrationUnreachableError(host, net_cause(err).value) from None
    try:
        document = json.loads(text)
        answer = document["Response"]
    except ValueError, KeyError, TypeError:
        raise RegistrationUnreachableError(host, REGISTRATION_NOT_A_SERVER) from None
    if not isinstance(answer, dict):
        raise RegistrationUnreachableError(host, REGISTRATION_NOT_A_SERVER)
    error = answer.get("Error")
    if isinstance(error, dict):
        message = f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
        skewed = skew_s is not None and abs(skew_s) > CLOCK_SKEW_TOLERANCE_S
        if skewed or error.get("Code") == _SIGNATURE_EXPIRED_CODE:
            raise ClockSkewError(message, skew_s)
        raise RegistrationError(message)
    payload = answer.get("Payload")
    if not isinstance(payload, str):
        raise InvalidFieldError("payload", FieldProblem.REGISTRATION_UNREADABLE)
    secret = decrypt_registration_payload(payload, product_secret)
    try:
        decode_device_secret(secret, "device_secret")
    except InvalidFieldError:
        raise InvalidFieldError("payload", FieldProblem.REGISTRATION_UNREADABLE) from None
    return secret


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
