"""Tests of the MQTT session, its rate budget, its login and where it connects (engine/mqtt/)."""
