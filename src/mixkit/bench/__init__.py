"""Benchmarks (``mixkit bench …``). Each writes a table; timings are medians of interleaved runs."""
