"""``python -m duanka``: the ``duanka`` command."""

import sys

from duanka.cli import main

sys.exit(main())
