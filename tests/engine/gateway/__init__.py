"""Tests of the gateway operations and the announce (engine/gateway/)."""
