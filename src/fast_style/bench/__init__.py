"""Benchmarks behind scripts/benchmark.py: one module per part (inference, training)."""
