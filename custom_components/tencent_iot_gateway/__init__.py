"""Tencent IoT Gateway: Home Assistant as a gateway of Tencent Cloud IoT, with sub-device firmware updates."""
