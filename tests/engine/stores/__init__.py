"""Tests of what survives a restart (engine/stores/)."""
