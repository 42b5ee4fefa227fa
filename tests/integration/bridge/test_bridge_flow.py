"""The "Bridge entities to Tencent" subentry flow: its errors, registration refused with the reason, devices
given per entity, and reconfigure (entities added get a device, identifiers changed)."""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir

from custom_components.tencent_iot_gateway.bridge.const import (
    CONF_CATEGORY,
    CONF_CREATION,
    CONF_ENTITIES,
    CONF_PROPERTIES,
    CONF_READ_ONLY,
    SUBENTRY_BRIDGE,
)
from custom_components.tencent_iot_gateway.bridge.pairings import pairings_of
from custom_components.tencent_iot_gateway.bridge.subentry_flow import UPDATED
from custom_components.tencent_iot_gateway.const import (
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_PRODUCT_ID,
    CONF_PRODUCT_SECRET,
    CONF_REGISTRATION_URL,
    CONF_UNBIND_ON_REMOVE,
    DOMAIN,
)
from tests.integration.bridge.bridge_rig import (
    BRIDGE_PRODUCT,
    BRIDGE_SECRET,
    LIGHT,
    add_bridge,
    bridge_product,
    reported,
    setup_lights,
    wait_settled,
)
from tests.integration.gateway_rig import Gateway, add_entry
from tests.integration.helpers import frontend_fields, wait_for


def _user(product_id: str = BRIDGE_PRODUCT, creation: str = "register") -> dict[str, object]:
    return {
        CONF_PRODUCT_ID: product_id,
        CONF_CATEGORY: "light",
        CONF_CREATION: creation,
        CONF_READ_ONLY: False,
        CONF_UNBIND_ON_REMOVE: True,
    }


async def test_first_step_refuses_bad_products(hass: HomeAssistant, gateway: Gateway) -> None:
    """Not Tencent's shape, the gateway's own product, a product bridged already: each on the product field."""
    await setup_lights(hass, "desk")
    await bridge_product(gateway)
    entry = await add_entry(hass, gateway.entry_data)
    assert (await add_bridge(hass, entry, gateway, [LIGHT]))["type"] is FlowResultType.CREATE_ENTRY
    for product_id, error in (
        ("brlight001", "product_id_format"),
        (gateway.product_id, "bridge_gateway_product"),
        (BRIDGE_PRODUCT, "bridge_exists"),
    ):
        result = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_BRIDGE), context={"source": SOURCE_USER}
        )
        result = await hass.config_entries.subentries.async_configure(result["flow_id"], _user(product_id))
        assert result["errors"] == {CONF_PRODUCT_ID: error}


async def test_entities_step_offers_only_the_category_and_checks_the_input(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """The entity selector is limited to lights; no entity, a bad identifier, a missing or wrong product secret
    are errors that say what to do; a refused registration gives the cloud's reason."""
    await setup_lights(hass, "desk")
    await bridge_product(gateway)
    entry = await add_entry(hass, gateway.entry_data)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_BRIDGE), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _user())
    assert result["step_id"] == "entities"
    fields = {f["name"]: f for f in frontend_fields(result)}
    assert fields[CONF_ENTITIES]["selector"]["entity"]["filter"] == [{"domain": ["light"]}]
    properties = {f["name"]: f for f in fields[CONF_PROPERTIES]["schema"]}
    assert set(properties) == {"power", "brightness", "color_temp"}
    flow_id = result["flow_id"]
    base = {CONF_REGISTRATION_URL: gateway.emulator.https_url, CONF_PROPERTIES: {}}
    for user_input, error in (
        ({CONF_ENTITIES: [], CONF_PRODUCT_SECRET: BRIDGE_SECRET}, {CONF_ENTITIES: "bridge_no_entities"}),
        (
            {CONF_ENTITIES: [LIGHT], CONF_PRODUCT_SECRET: BRIDGE_SECRET, CONF_PROPERTIES: {"power": "9bad"}},
            {CONF_PROPERTIES: "property_identifier"},
        ),
        ({CONF_ENTITIES: [LIGHT]}, {CONF_PRODUCT_SECRET: "bridge_product_secret_needed"}),
        (
            {CONF_ENTITIES: [LIGHT], CONF_PRODUCT_SECRET: "V1JPTkctU0VDUkVULVdST05H"},
            {"base": "bridge_registration_failed"},
        ),
    ):
        result = await hass.config_entries.subentries.async_configure(flow_id, base | user_input)
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == error
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert "SignatureFailure" in placeholders["reason"]
    assert (await pairings_of(hass, entry.entry_id)).get(LIGHT, BRIDGE_PRODUCT) is None


async def test_devices_given_per_entity(hass: HomeAssistant, gateway: Gateway) -> None:
    """Devices created in the console: one form per entity asks its name and secret; a bad secret is refused
    on its field; the device is bound with it and comes online."""
    await setup_lights(hass, "desk")
    await gateway.emulator.console.add_product(BRIDGE_PRODUCT)
    await gateway.emulator.console.set_template(BRIDGE_PRODUCT, "light")
    credentials = await gateway.emulator.console.add_device(BRIDGE_PRODUCT, "bulb7")
    entry = await add_entry(hass, gateway.entry_data)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_BRIDGE), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _user(creation="given"))
    assert CONF_PRODUCT_SECRET not in {f["name"] for f in frontend_fields(result)}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_ENTITIES: [LIGHT], CONF_PROPERTIES: {}}
    )
    assert result["step_id"] == "credentials"
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert LIGHT in placeholders["entity"]
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_DEVICE_NAME: "bulb7", CONF_DEVICE_SECRET: "not base64!"}
    )
    assert result["errors"] == {CONF_DEVICE_SECRET: "not_base64"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_DEVICE_NAME: "bulb7", CONF_DEVICE_SECRET: credentials.device_secret}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await wait_settled(gateway, "bulb7")
    await reported(gateway, {"power_switch": 0}, name="bulb7")


async def test_reconfigure_adds_an_entity_and_changes_an_identifier(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """Editing: the form shows the current entities and identifiers; an entity added is registered (with the
    product secret given again) and comes online; a changed identifier is what is reported from then on."""
    await setup_lights(hass, "desk", "lamp")
    await bridge_product(gateway)
    await gateway.emulator.console.set_template(
        BRIDGE_PRODUCT,
        properties=[
            {"id": "power_switch", "type": "bool"},
            {"id": "switch_on", "type": "bool"},
            {"id": "brightness", "type": "int", "min": 0, "max": 100},
            {"id": "color_temp", "type": "int", "min": 2000, "max": 7000},
        ],
    )
    entry = await add_entry(hass, gateway.entry_data)
    assert (await add_bridge(hass, entry, gateway, [LIGHT]))["type"] is FlowResultType.CREATE_ENTRY
    await wait_settled(gateway, "light_desk")
    [subentry_id] = [i for i, s in entry.subentries.items() if s.subentry_type == SUBENTRY_BRIDGE]
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_BRIDGE), context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id}
    )
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_ENTITIES: [LIGHT, "light.lamp"],
            CONF_READ_ONLY: False,
            CONF_UNBIND_ON_REMOVE: True,
            CONF_PRODUCT_SECRET: BRIDGE_SECRET,
            CONF_REGISTRATION_URL: gateway.emulator.https_url,
            CONF_PROPERTIES: {"power": "switch_on"},
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == UPDATED
    await wait_settled(gateway, "light_lamp")
    await reported(gateway, {"switch_on": 0}, name="light_lamp")
    await reported(gateway, {"switch_on": 0}, name="light_desk")


async def test_a_device_the_cloud_does_not_bind_raises_an_issue(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """A device given with a secret that is not its own: the cloud refuses the signed bind, the device stays
    offline and a repair issue names the entity, the device and the product, and says why (the secret)."""
    await setup_lights(hass, "desk")
    await gateway.emulator.console.add_product(BRIDGE_PRODUCT)
    await gateway.emulator.console.set_template(BRIDGE_PRODUCT, "light")
    await gateway.emulator.console.add_device(BRIDGE_PRODUCT, "bulb7")
    entry = await add_entry(hass, gateway.entry_data)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_BRIDGE), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _user(creation="given"))
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_ENTITIES: [LIGHT], CONF_PROPERTIES: {}}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_DEVICE_NAME: "bulb7", CONF_DEVICE_SECRET: "V1JPTkctU0VDUkVULVdST05H"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    registry = ir.async_get(hass)
    issue_id = f"bridge_not_bound_{entry.entry_id}_{BRIDGE_PRODUCT}/bulb7"
    await wait_for(hass, lambda: registry.async_get_issue(DOMAIN, issue_id) is not None)
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["entity_id"] == LIGHT
    assert issue.translation_placeholders["device"] == "bulb7"
    # The cloud's answer to the signed bind (803: the signature is wrong) picks the words: the secret.
    assert issue.translation_key == "bridge_bind_refused_secret"
    assert issue.translation_placeholders["code"] == "803"
    assert not (await gateway.emulator.console.get_device(BRIDGE_PRODUCT, "bulb7")).online
