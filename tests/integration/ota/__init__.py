"""Tests of the Home Assistant side of firmware jobs (ota/): flashers, pre-flight and health templates, events,
failures in the user's language."""
