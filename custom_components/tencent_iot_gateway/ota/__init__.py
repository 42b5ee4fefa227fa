"""The firmware side of the Home Assistant layer: flashers, pre-flight gates and health checks from HA
templates and automations, the subentry forms of a flasher, and what a user reads and hears about a job.

The engine's OTA jobs (engine/ota/) call what this package builds; nothing here runs a job."""
