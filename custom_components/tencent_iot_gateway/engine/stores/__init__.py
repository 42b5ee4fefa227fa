"""What survives a restart: the JSON store protocol, the OTA jobs' records and the halted rollouts."""
