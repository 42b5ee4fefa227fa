"""Python helpers of the project's scripts (run through the wrappers in `scripts/`)."""
