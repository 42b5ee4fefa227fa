"""Signatures of Tencent Cloud IoT: MQTT key authentication, sub-device binding and dynamic registration.

Every function here is pure (time and randomness come in as arguments, or from the defaults' clock and
`secrets`), so each can be checked against the protocol's test vectors.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum
import hashlib
import hmac
import json
import secrets
import string

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from custom_components.tencent_iot_gateway.engine.errors import FieldProblem, InvalidFieldError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId, decode_device_secret

SDK_APP_ID = "12010126"
# The username's expiry (Unix seconds, per Tencent's docs): fixed far ahead, as Tencent's C and Java SDKs
# sign by default, so that the login never depends on the host's clock. An expiry an hour ahead of the host's
# time was refused as expired (CONNACK 4) on a host whose clock ran an hour slow, and the user was asked for a
# new secret that was right all along. 2^31 - 1 (January 2038) is the largest value every parser of Tencent's
# takes; the password it signs never leaves the TLS connection and changes with every connect (the conn id).
SIGNATURE_EXPIRY = 2**31 - 1
CONN_ID_LENGTH = 5
_CONN_ID_ALPHABET = string.ascii_letters + string.digits

REGISTER_PATH = "/device/register"
REGISTER_ALGORITHM = "hmacsha256"
_AES_BLOCK = 16
_AES_IV = b"0" * _AES_BLOCK


class SignMethod(StrEnum):
    """HMAC flavours the cloud accepts; the value is the suffix or field it is named by on the wire."""

    HMAC_SHA256 = "hmacsha256"
    HMAC_SHA1 = "hmacsha1"

    @property
    def digest(self) -> str:
        """hashlib's name of the digest."""
        return "sha256" if self is SignMethod.HMAC_SHA256 else "sha1"


@dataclass(frozen=True, slots=True)
class MqttCredentials:
    """What an MQTT CONNECT carries for key authentication. `password` is a secret: never log it."""

    client_id: str
    username: str
    password: str
    expiry: int

    def __repr__(self) -> str:
        """Keep the password out of reprs, tracebacks and debug logs."""
        return (
            f"MqttCredentials(client_id={self.client_id!r}, username={self.username!r}, password=<redacted>)"
        )


def random_conn_id() -> str:
    """Five random characters that make each connection's username unique."""
    return "".join(secrets.choice(_CONN_ID_ALPHABET) for _ in range(CONN_ID_LENGTH))


def mqtt_credentials(
    device: DeviceId,
    device_secret: str,
    *,
    method: SignMethod = SignMethod.HMAC_SHA256,
    sdk_app_id: str = SDK_APP_ID,
    conn_id: str | None = None,
    expiry: int | None = None,
) -> MqttCredentials:
    """Sign a username for `device`; a fresh conn id and `SIGNATURE_EXPIRY` unless given."""
    key = decode_device_secret(device_secret)
    if conn_id is None:
        conn_id = random_conn_id()
    if expiry is None:
        expiry = SIGNATURE_EXPIRY
    username = f"{device.client_id};{sdk_app_id};{conn_id};{expiry}"
    digest = hmac.new(key, username.encode(), method.digest).hexdigest()
    return MqttCredentials(device.client_id, username, f"{digest};{method.value}", expiry)


def bind_signature(
    device: DeviceId, device_secret: str, *, random: int, timestamp: int, method: SignMethod
) -> str:
    """Signature a gateway sends to bind `device`: keyed with the secret's ASCII text, not its decoded bytes."""
    if not device_secret:
        raise InvalidFieldError("device_secret", FieldProblem.REQUIRED)
    message = f"{device.product_id}{device.device_name};{random};{timestamp}"
    digest = hmac.new(device_secret.encode(), message.encode(), method.digest).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """A signed dynamic-registration request, ready to POST to `https://{host}{REGISTER_PATH}`."""

    host: str
    body: bytes
    headers: dict[str, str]

    @property
    def url(self) -> str:
        """Where to send it."""
        return f"https://{self.host}{REGISTER_PATH}"


def _validate_product_secret(product_secret: str) -> bytes:
    if not product_secret:
        raise InvalidFieldError("product_secret", FieldProblem.REQUIRED)
    if not product_secret.isascii():
        raise InvalidFieldError("product_secret", FieldProblem.NOT_ASCII)
    key = product_secret.encode()
    if len(key) < _AES_BLOCK:
        raise InvalidFieldError("product_secret", FieldProblem.TOO_SHORT, min=_AES_BLOCK)
    return key


def registration_request(
    host: str, device: DeviceId, product_secret: str, *, timestamp: int, nonce: int
) -> RegistrationRequest:
    """Sign a request that trades the product secret for `device`'s own secret."""
    key = _validate_product_secret(product_secret)
    if not host:
        raise InvalidFieldError("host", FieldProblem.REQUIRED)
    body = json.dumps(
        {"ProductId": device.product_id, "DeviceName": device.device_name}, separators=(",", ":")
    ).encode()
    string_to_sign = "\n".join(
        [
            "POST",
            host,
            REGISTER_PATH,
            "",
            REGISTER_ALGORITHM,
            str(timestamp),
            str(nonce),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    signature = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-TC-Algorithm": REGISTER_ALGORITHM,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Nonce": str(nonce),
        "X-TC-Signature": signature,
    }
    return RegistrationRequest(host, body, headers)


def decrypt_registration_payload(payload: str, product_secret: str) -> str:
    """Return the device secret carried by a registration reply's `Payload`.

    Raises `InvalidFieldError("payload", …)` for anything that is not a PSK registration; the message never
    quotes the decrypted text, which holds a secret.
    """
    key = _validate_product_secret(product_secret)[:_AES_BLOCK]
    try:
        ciphertext = base64.b64decode(payload, validate=True)
    except binascii.Error, ValueError:
        raise InvalidFieldError("payload", FieldProblem.REGISTRATION_UNREADABLE) from None
    if not ciphertext or len(ciphertext) % _AES_BLOCK:
        raise InvalidFieldError("payload", FieldProblem.REGISTRATION_UNREADABLE)
    decryptor = Cipher(algorithms.AES128(key), modes.CBC(_AES_IV)).decryptor()
    plaintext = (decryptor.update(ciphertext) + decryptor.finalize()).rstrip(b"\0")
    try:
        document = json.loads(plaintext)
    except UnicodeDecodeError, ValueError:
        raise InvalidFieldError("payload", FieldProblem.REGISTRATION_UNREADABLE) from None
    if not isinstance(document, dict):
        raise InvalidFieldError("payload", FieldProblem.REGISTRATION_UNREADABLE)
    if document.get("encryptionType") != 2:
        raise InvalidFieldError("payload", FieldProblem.CERTIFICATE_DEVICE)
    psk = document.get("psk")
    if not isinstance(psk, str) or not psk:
        raise InvalidFieldError("payload", FieldProblem.REGISTRATION_UNREADABLE)
    return psk


def encrypt_registration_payload(device_secret: str, product_secret: str) -> str:
    """The cloud's side of `decrypt_registration_payload`; the emulator and tests use it."""
    key = _validate_product_secret(product_secret)[:_AES_BLOCK]
    plaintext = json.dumps({"encryptionType": 2, "psk": device_secret}, separators=(",", ":")).encode()
    plaintext += b"\0" * (-len(plaintext) % _AES_BLOCK)
    encryptor = Cipher(algorithms.AES128(key), modes.CBC(_AES_IV)).encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()
