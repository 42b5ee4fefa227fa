"""What the benchmarks (`scripts/bench`) share with the Home Assistant side they run in a child pytest."""
