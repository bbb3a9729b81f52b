"""``python -m comet_sync``: the ``comet-sync`` command."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
