"""The Home Assistant-free core of the gateway: signing, MQTT session, gateway operations and OTA jobs.

Nothing in this package imports `homeassistant`; the integration's modules beside it adapt it to HA.
"""
