"""The spark-submit entry point: takes the arguments of `duanka spark score` (`--input … --output …`)."""

from __future__ import annotations

import sys

from duanka.cli import main

if __name__ == "__main__":
    sys.exit(main(["spark", "score", *sys.argv[1:]]))
