"""The MQTT connection to Tencent's broker: signing, endpoints, the session driven by the asyncio loop, its
uplink rate budget and the topics it speaks on."""
