"""Tests of the benchmarks' pure helpers (bench_support)."""
