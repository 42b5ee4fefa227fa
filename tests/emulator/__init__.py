"""Tests of the cloud emulator alone (no integration code)."""
