"""Tests of the OTA jobs, downloads, cache, flashers and gates (engine/ota/)."""
