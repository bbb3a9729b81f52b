"""``python -m comet_sync.testing``: the fake server as a process of its own."""

import sys

from ._process import main

if __name__ == "__main__":
    sys.exit(main())
