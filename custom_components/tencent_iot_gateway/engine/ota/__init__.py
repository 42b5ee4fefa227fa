"""Firmware over the air (spec §3-§4): the jobs, their reports to the cloud, downloads, the image cache,
flashers and the gates a job passes (pre-flight, rollout, health check)."""
