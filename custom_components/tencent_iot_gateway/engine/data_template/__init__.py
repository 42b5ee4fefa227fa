"""The data-template bridge's engine side: each sub-device's `$thing/.../property` traffic (see `client.py`)."""
