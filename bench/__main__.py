"""``python -m bench``: run the benchmark scenarios (see :mod:`bench.cli`)."""

import sys

from bench.cli import main

sys.exit(main())
