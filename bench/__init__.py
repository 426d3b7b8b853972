"""Benchmarks: the raw HTTP client baseline and the end-to-end pipeline."""
