"""Signatures against the test vectors of the protocol spec, and bad input rejected with the field named."""

from __future__ import annotations

import base64

import pytest

from custom_components.tencent_iot_gateway.engine.errors import FieldProblem, InvalidFieldError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId, decode_device_secret
from custom_components.tencent_iot_gateway.engine.mqtt.auth import (
    SDK_APP_ID,
    SIGNATURE_EXPIRY,
    SignMethod,
    bind_signature,
    decrypt_registration_payload,
    encrypt_registration_payload,
    mqtt_credentials,
    random_conn_id,
    registration_request,
)

SUB = DeviceId("SUBPID0001", "lamp01")
SUB_SECRET = "c3ViZGV2LXNlY3JldA=="
REG_DEVICE = DeviceId("ABCDEFGHIJ", "gw01")
PRODUCT_SECRET = "ABCDEFGHIJKLMNOPQRSTUVWX"
REG_HOST = "ap-guangzhou.gateway.tencentdevices.com"
REG_PAYLOAD = "XTv6+/pNsmYOjNuQMIRnuLp56yoWYX8Yat+uo4K8jKFBxvZ8CWg+9bMnn32GActW+KYxv+NsIi9ET/nSUJFXJw=="


@pytest.mark.parametrize(
    ("device", "secret", "conn_id", "expiry", "app_id", "method", "username", "password"),
    [
        pytest.param(
            DeviceId("ABCDEFGHIJ", "gw01"),
            "MTIzNDU2Nzg5MGFiY2RlZg==",
            "a1B2c",
            1700000000,
            "12010126",
            SignMethod.HMAC_SHA256,
            "ABCDEFGHIJgw01;12010126;a1B2c;1700000000",
            "aec28c749ab9aedaf74ce3dcb8c3af8d467d53afff18accc3c22adc11650a364;hmacsha256",
            id="V1",
        ),
        pytest.param(
            DeviceId("TESTPID001", "gateway_dev"),
            "c2VjcmV0LWtleS1mb3ItdGVzdCE=",
            "Xy9Zq",
            9223372036854775807,
            "21010406",
            SignMethod.HMAC_SHA1,
            "TESTPID001gateway_dev;21010406;Xy9Zq;9223372036854775807",
            "3a5f6cb3a99f8296a139760729d00aabc52d06d4;hmacsha1",
            id="V2",
        ),
    ],
)
def test_mqtt_credentials_vectors(
    device: DeviceId,
    secret: str,
    conn_id: str,
    expiry: int,
    app_id: str,
    method: SignMethod,
    username: str,
    password: str,
) -> None:
    """Both spec vectors sign to the exact username and password."""
    creds = mqtt_credentials(device, secret, method=method, sdk_app_id=app_id, conn_id=conn_id, expiry=expiry)
    assert creds.client_id == device.client_id
    assert creds.username == username
    assert creds.password == password
    assert creds.expiry == expiry


def test_mqtt_credentials_defaults_are_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without explicit values: the documented app id, a new conn id, the fixed far expiry."""
    monkeypatch.setattr("time.time", lambda: 1_000_000.5)
    device = DeviceId("ABCDEFGHIJ", "gw01")
    first = mqtt_credentials(device, "MTIzNDU2Nzg5MGFiY2RlZg==")
    fields = first.username.split(";")
    assert fields[0] == "ABCDEFGHIJgw01"
    assert fields[1] == SDK_APP_ID
    assert len(fields[2]) == 5
    assert fields[2].isalnum()
    assert int(fields[3]) == SIGNATURE_EXPIRY == 2**31 - 1  # whatever the host's clock says
    assert first.password.endswith(";hmacsha256")
    conn_ids = {random_conn_id() for _ in range(50)}
    assert len(conn_ids) > 40  # random, not a constant


def test_credentials_repr_hides_the_password() -> None:
    """A logged or traced credentials object never shows the password."""
    creds = mqtt_credentials(DeviceId("ABCDEFGHIJ", "gw01"), "MTIzNDU2Nzg5MGFiY2RlZg==")
    assert creds.password.split(";")[0] not in repr(creds)
    assert "redacted" in repr(creds)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (SignMethod.HMAC_SHA1, "OYPbHHf/KphVpYF6Olm+8O4gYCE="),
        (SignMethod.HMAC_SHA256, "WO4ANG3q/A4NkpN1y/+SZpqRkxzD3mpITOQkLnkG2IE="),
    ],
)
def test_bind_signature_vectors(method: SignMethod, expected: str) -> None:
    """The bind signature is keyed with the secret's text, as in the spec's vector."""
    assert bind_signature(SUB, SUB_SECRET, random=12345, timestamp=1700000000, method=method) == expected


def test_registration_request_vector() -> None:
    """Body, body hash and signature of the spec's dynamic-registration vector."""
    request = registration_request(REG_HOST, REG_DEVICE, PRODUCT_SECRET, timestamp=1700000000, nonce=12345)
    assert request.body == b'{"ProductId":"ABCDEFGHIJ","DeviceName":"gw01"}'
    assert request.url == f"https://{REG_HOST}/device/register"
    assert request.headers == {
        "Content-Type": "application/json; charset=utf-8",
        "X-TC-Algorithm": "hmacsha256",
        "X-TC-Timestamp": "1700000000",
        "X-TC-Nonce": "12345",
        "X-TC-Signature": "6K5TAmky9uxLhjMI2iila9/KTx4jApfH4v3S+HH/nsw=",
    }


def test_registration_payload_vector() -> None:
    """The spec's payload decrypts to its device secret, and encrypting gives the payload back."""
    assert decrypt_registration_payload(REG_PAYLOAD, PRODUCT_SECRET) == "MTIzNDU2Nzg5MGFiY2RlZg=="
    assert encrypt_registration_payload("MTIzNDU2Nzg5MGFiY2RlZg==", PRODUCT_SECRET) == REG_PAYLOAD


def _assert_field_error(
    excinfo: pytest.ExceptionInfo[InvalidFieldError], field: str, secret: str = ""
) -> None:
    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.field == field
    assert str(excinfo.value).startswith(f"{field}: ")
    if secret:
        assert secret not in str(excinfo.value)


@pytest.mark.parametrize(
    ("product_id", "device_name", "field"),
    [
        ("", "gw01", "product_id"),
        ("ABCDEFGHIJK", "gw01", "product_id"),
        ("ABC/DEF", "gw01", "product_id"),
        ("ABCDEFGHIJ", "", "device_name"),
        ("ABCDEFGHIJ", "x" * 49, "device_name"),
        ("ABCDEFGHIJ", "bad name", "device_name"),
        ("ABCDEFGHIJ", "a/b", "device_name"),
    ],
)
def test_bad_ids_name_the_field(product_id: str, device_name: str, field: str) -> None:
    """Empty, over-long or ill-formed ids fail with a ValueError naming the field."""
    with pytest.raises(InvalidFieldError) as excinfo:
        DeviceId(product_id, device_name)
    _assert_field_error(excinfo, field)


def test_longest_ids_are_accepted() -> None:
    """The limits themselves are allowed."""
    device = DeviceId("A" * 10, "n" * 48)
    assert device.client_id == "A" * 10 + "n" * 48
    assert DeviceId.parse(device.key) == device


def test_parse_needs_a_slash() -> None:
    """`PID/DN` parsing names what is wrong."""
    with pytest.raises(InvalidFieldError) as excinfo:
        DeviceId.parse("ABCDEFGHIJgw01")
    _assert_field_error(excinfo, "device")


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("not base64!!", "base64"),
        ("MTIzNDU2Nzg5MGFiY2RlZg", "base64"),  # padding lost in a copy
        ("", "empty"),
        (base64.b64encode(b"k" * 60).decode(), "at most 64"),
    ],
)
def test_bad_device_secret(secret: str, reason: str) -> None:
    """A device secret that cannot be a key fails naming the field, without echoing the secret."""
    with pytest.raises(InvalidFieldError) as excinfo:
        mqtt_credentials(REG_DEVICE, secret)
    _assert_field_error(excinfo, "device_secret", secret)
    assert reason in excinfo.value.reason
    with pytest.raises(InvalidFieldError):
        decode_device_secret(secret)


def test_bind_needs_a_secret() -> None:
    """An empty sub-device secret cannot sign a bind."""
    with pytest.raises(InvalidFieldError) as excinfo:
        bind_signature(SUB, "", random=1, timestamp=1, method=SignMethod.HMAC_SHA256)
    _assert_field_error(excinfo, "device_secret")


@pytest.mark.parametrize("product_secret", ["", "Xy7Qw2", "ÄBCDEFGHIJKLMNOPQRSTUVWX"])
def test_bad_product_secret(product_secret: str) -> None:
    """Registration refuses a product secret that cannot key AES-128."""
    with pytest.raises(InvalidFieldError) as excinfo:
        registration_request(REG_HOST, REG_DEVICE, product_secret, timestamp=1, nonce=1)
    _assert_field_error(excinfo, "product_secret", product_secret)
    with pytest.raises(InvalidFieldError):
        decrypt_registration_payload(REG_PAYLOAD, product_secret)


def test_registration_needs_a_host() -> None:
    """An empty registration host is refused by name."""
    with pytest.raises(InvalidFieldError) as excinfo:
        registration_request("", REG_DEVICE, PRODUCT_SECRET, timestamp=1, nonce=1)
    _assert_field_error(excinfo, "host")


@pytest.mark.parametrize(
    ("payload", "product_secret", "reason"),
    [
        ("%%%", PRODUCT_SECRET, "product secret"),
        (base64.b64encode(b"short").decode(), PRODUCT_SECRET, "product secret"),
        (REG_PAYLOAD, "ZYXWVUTSRQPONMLKJIHGFEDC", "product secret"),
    ],
)
def test_bad_registration_payload(payload: str, product_secret: str, reason: str) -> None:
    """A payload that is not base64, not whole blocks, or decrypted with the wrong key says so."""
    with pytest.raises(InvalidFieldError) as excinfo:
        decrypt_registration_payload(payload, product_secret)
    _assert_field_error(excinfo, "payload")
    assert excinfo.value.problem is FieldProblem.REGISTRATION_UNREADABLE
    assert reason in excinfo.value.reason


def test_certificate_registration_is_refused() -> None:
    """A reply for a certificate device (type 1) is not silently taken for a key."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    plaintext = b'{"encryptionType":1,"clientCert":"x","clientKey":"y"}'
    plaintext += b"\0" * (-len(plaintext) % 16)
    encryptor = Cipher(algorithms.AES128(PRODUCT_SECRET.encode()[:16]), modes.CBC(b"0" * 16)).encryptor()
    payload = base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()
    with pytest.raises(InvalidFieldError) as excinfo:
        decrypt_registration_payload(payload, PRODUCT_SECRET)
    assert "certificate" in excinfo.value.reason
