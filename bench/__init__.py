"""Benchmarks and evaluations over ../shared/data; not part of the product or the tests."""
