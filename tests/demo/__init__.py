"""Tests of what the demo scripts share with the tests (demo_support/)."""
