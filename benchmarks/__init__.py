"""Benchmark duanka against rules alone, a naive TF-IDF baseline and fastText: ``python -m benchmarks.run``.

Nothing here imports numpy at package import time, so ``benchmarks.run`` can limit the math libraries to
one thread before they load.
"""
