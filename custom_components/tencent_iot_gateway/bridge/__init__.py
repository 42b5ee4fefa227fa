"""The data-template bridge's Home Assistant side: entities of any integration as Tencent sub-devices.

A config subentry of type `bridge` (`subentry_flow.py`) names a Tencent product, its category and the entities
to bridge; each entity becomes one device of that product (registered with the product secret, or given by the
user), bound to the gateway and brought online by the engine (`pairings.py` keeps entity -> device). The
runtime part (`entity_bridge.py`) reports each entity's state through the engine's data-template client and
turns the cloud's controls into Home Assistant actions (`controls.py`). The mapping of each domain to Tencent's
standard identifiers lives in a module of its own (`light.py`, `switch.py`, `sensor.py`, `binary_sensor.py`,
`cover.py`, `climate.py`), like HA's HomeKit Bridge; `categories.py` ties a category to its mapping.
"""
