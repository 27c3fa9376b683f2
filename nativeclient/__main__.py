"""``python -m nativeclient HOST PORT USERNAME ...`` -- same as the ``chatclient`` script."""

import sys

from nativeclient.cli import main

if __name__ == "__main__":
    sys.exit(main())
