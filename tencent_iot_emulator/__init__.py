"""A local stand-in for Tencent Cloud IoT's cloud side (broker, gateway operations, OTA console, firmware).

Independent of the integration on purpose: it never imports `custom_components`, so a signing bug in the
integration cannot hide itself by being checked with the same code.
"""

from __future__ import annotations
