"""Tiny random models with the real architectures, for tests, benchmarks and the smoke run."""
