"""Benchmarks: repeatable scripts that print numbers."""
