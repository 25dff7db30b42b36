"""Request limits for services that score over the network (the MLflow pyfunc and ``duanka serve``).

Defined here, in the scoring core, so that ``duanka serve`` reads them without importing MLflow.
"""

from __future__ import annotations

__all__ = ["MAX_BODY_BYTES", "MAX_RECORDS", "MAX_REQUEST_CHARS"]

# Requests larger than this are refused rather than tying up a worker for minutes; send several requests.
MAX_RECORDS = 1_000
# Characters in one request, all records together: scoring costs about 1.75 µs a character on one core (measured on
# 12,000-character posts, 2026-12-06), so a maximal request is scored in about 2 s, well inside a server's timeout.
# (1,000 records of 12,000 characters, allowed before, took 30 s and more under load.)
MAX_REQUEST_CHARS = 1_000_000
# Bytes of one HTTP request body (``duanka serve``): a maximal request is 1,000,000 characters, which JSON writes in
# at most 6 bytes each (``\uXXXX``, what json.dumps sends by default; 3 as raw UTF-8), plus the records' keys.
MAX_BODY_BYTES = 8 * 1024 * 1024
