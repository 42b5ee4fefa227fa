"""Dynamic registration's edge cases: what the user sees when the registration server answers oddly.

A real HTTPS server (the emulator's certificate, so the gateway's CA trusts it) plays a broken registration
service; every odd answer must end as a form error that says why, never as an exception in the flow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import json
import ssl
from typing import Any
from unittest.mock import AsyncMock
from urllib.parse import urlsplit

from aiohttp import web
from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_CA_CERT,
    CONF_DEVICE_NAME,
    CONF_PRODUCT_ID,
    CONF_PRODUCT_SECRET,
    CONF_REGION,
    CONF_REGISTRATION_URL,
    DOMAIN,
)
from custom_components.tencent_iot_gateway.entry_config import registration_url_for
from tencent_iot_emulator.certs import ensure_certificates
from tencent_iot_emulator.emulator import CERTS_DIR

from .gateway_rig import PRODUCT_SECRET, Gateway

type Reply = Callable[[], web.Response]


class FakeRegistration:
    """An HTTPS registration endpoint whose answer the test chooses; it records what it was sent."""

    def __init__(self) -> None:
        self.reply: Reply = lambda: web.json_response({})
        self.requests: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return self.reply()


@pytest.fixture
async def registration(gateway: Gateway) -> AsyncIterator[FakeRegistration]:
    """The fake registration server, on 127.0.0.1 with the emulator's server certificate."""
    certs = await asyncio.get_running_loop().run_in_executor(
        None, ensure_certificates, gateway.emulator.state_dir / CERTS_DIR
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    fake = FakeRegistration()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"https://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


async def _register(hass: HomeAssistant, gateway: Gateway, custom: dict[str, Any]) -> Any:
    """Run the user step with a product secret, then the custom step with `custom`."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    flow_id = result["flow_id"]
    await hass.config_entries.flow.async_configure(
        flow_id,
        {
            CONF_REGION: "custom",
            CONF_PRODUCT_ID: gateway.product_id,
            CONF_DEVICE_NAME: "gw_new",
            CONF_PRODUCT_SECRET: PRODUCT_SECRET,
        },
    )
    return await hass.config_entries.flow.async_configure(flow_id, custom)


def _json(document: object) -> Reply:
    return lambda: web.json_response(document)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (lambda: web.Response(text="<html>proxy error</html>"), "did not answer like a registration server"),
        (_json({"Data": {}}), "did not answer like a registration server"),
        (_json({"Response": ["not", "an", "object"]}), "did not answer like a registration server"),
    ],
    ids=["not-json", "no-response", "response-not-an-object"],
)
async def test_a_server_that_is_not_a_registration_service(
    hass: HomeAssistant,
    gateway: Gateway,
    registration: FakeRegistration,
    mock_setup_entry: AsyncMock,
    reply: Reply,
    reason: str,
) -> None:
    """Anything but Tencent's reply format: the custom step says the registration URL is wrong."""
    registration.reply = reply
    result = await _register(hass, gateway, gateway.custom | {CONF_REGISTRATION_URL: registration.url})
    assert registration.requests, "the flow posted to the URL it was given"
    assert result["step_id"] == "custom"
    assert result["errors"] == {CONF_REGISTRATION_URL: "registration_unreachable_not_a_server"}
    assert result["description_placeholders"] == {"host": urlsplit(registration.url).netloc}
    assert reason  # the case, as the test's id says
    assert PRODUCT_SECRET not in json.dumps(result["description_placeholders"])
    mock_setup_entry.assert_not_called()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (_json({"Response": {"RequestId": "r1"}}), "registration_unreadable"),
        (_json({"Response": {"Payload": "bm90IGVuY3J5cHRlZA=="}}), "registration_unreadable"),
    ],
    ids=["no-payload", "payload-not-ours"],
)
async def test_a_registration_reply_without_a_usable_secret(
    hass: HomeAssistant,
    gateway: Gateway,
    registration: FakeRegistration,
    mock_setup_entry: AsyncMock,
    reply: Reply,
    reason: str,
) -> None:
    """A reply in the right format that yields no device secret: the user form says registration failed."""
    registration.reply = reply
    result = await _register(hass, gateway, gateway.custom | {CONF_REGISTRATION_URL: registration.url})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": reason}  # our words ("is the product secret right?"), translated
    assert PRODUCT_SECRET not in json.dumps(result["description_placeholders"])
    mock_setup_entry.assert_not_called()


async def test_registration_without_the_ca_does_not_trust_the_deployment(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """No CA given: only the system's trust applies, so the deployment's own certificate is refused.

    The TLS server is the emulator's broker (mosquitto, another process, same certificate): a TLS server in
    the test's own event loop would report the refused handshake as an error of the loop.
    """
    custom = {key: value for key, value in gateway.custom.items() if key != CONF_CA_CERT}
    url = f"https://127.0.0.1:{gateway.emulator.mqtts_port}"
    result = await _register(hass, gateway, custom | {CONF_REGISTRATION_URL: url})
    assert result["step_id"] == "custom"
    assert result["errors"] == {CONF_REGISTRATION_URL: "registration_unreachable_tls"}
    assert "Error" not in json.dumps(result["description_placeholders"])  # no library class name
    mock_setup_entry.assert_not_called()


async def test_a_ca_that_openssl_refuses_is_a_field_error(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """A certificate with text glued after its END line parses, but cannot be a trust anchor: the CA field."""
    glued = gateway.ca_pem.strip() + "copied too far"
    result = await _register(
        hass,
        gateway,
        gateway.custom | {CONF_CA_CERT: glued, CONF_REGISTRATION_URL: gateway.emulator.https_url},
    )
    assert result["step_id"] == "custom"
    assert result["errors"] == {CONF_CA_CERT: "ca_unusable"}
    assert "None" not in json.dumps(result["description_placeholders"])
    mock_setup_entry.assert_not_called()


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("ap-guangzhou", "https://ap-guangzhou.gateway.tencentdevices.com"),
        ("us-east", "https://us-east.gateway.tencentdevices.com"),
    ],
)
def test_tencent_regions_register_at_their_documented_host(region: str, host: str) -> None:
    """A Tencent region ignores any given URL: registration goes to the region's documented host."""
    data = {CONF_REGION: region, CONF_PRODUCT_ID: "ABCDEFGHIJ", CONF_REGISTRATION_URL: "https://elsewhere"}
    assert registration_url_for(data) == host
