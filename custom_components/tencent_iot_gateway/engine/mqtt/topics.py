"""MQTT topics of the gateway, OTA and data-template protocols: the one place they are spelled."""

from __future__ import annotations

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId


def gateway_operation(gateway: DeviceId) -> str:
    """Where the gateway sends operations (up)."""
    return f"$gateway/operation/{gateway.product_id}/{gateway.device_name}"


def gateway_operation_result(gateway: DeviceId) -> str:
    """Where the cloud answers operations and pushes changes (down)."""
    return f"$gateway/operation/result/{gateway.product_id}/{gateway.device_name}"


def ota_update(device: DeviceId) -> str:
    """Where the cloud pushes `update_firmware` and answers `report_version` (down)."""
    return f"$ota/update/{device.product_id}/{device.device_name}"


def ota_report(device: DeviceId) -> str:
    """Where a device reports its version and upgrade progress (up)."""
    return f"$ota/report/{device.product_id}/{device.device_name}"


def parse_ota_update(topic: str) -> DeviceId | None:
    """The device an `$ota/update/...` topic is for, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "$ota" or parts[1] != "update":
        return None
    return DeviceId(parts[2], parts[3])


def thing_property_up(device: DeviceId) -> str:
    """Where a device reports properties and answers controls (`report`, `control_reply`, `get_status`, ...)."""
    return f"$thing/up/property/{device.product_id}/{device.device_name}"


def thing_property_down(device: DeviceId) -> str:
    """Where the cloud sends controls and answers a device's property messages."""
    return f"$thing/down/property/{device.product_id}/{device.device_name}"


def parse_thing_property_down(topic: str) -> DeviceId | None:
    """The device a `$thing/down/property/...` topic is for, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[:3] != ["$thing", "down", "property"]:
        return None
    return DeviceId(parts[3], parts[4])
