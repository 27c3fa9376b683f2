"""``python -m ircd``: the same as the ``chatserver`` command."""

import sys

from ircd.cli import main

sys.exit(main())
