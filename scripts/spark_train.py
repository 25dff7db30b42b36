"""The spark-submit entry point of training: takes the arguments of `duanka spark train` (`--data … --output …`)."""

from __future__ import annotations

import sys

from duanka.cli import main

if __name__ == "__main__":
    sys.exit(main(["spark", "train", *sys.argv[1:]]))
