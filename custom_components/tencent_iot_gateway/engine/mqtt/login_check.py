"""One login to check a gateway's credentials before anything is saved (the config flow's test)."""

from __future__ import annotations

from custom_components.tencent_iot_gateway.engine.errors import NotAGatewayError, SubscriptionRefusedError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.mqtt.session import MqttSession
from custom_components.tencent_iot_gateway.engine.mqtt.topics import gateway_operation_result


async def check_login(endpoint: BrokerEndpoint, device: DeviceId, device_secret: str) -> None:
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
