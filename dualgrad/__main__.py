"""``python -m dualgrad``: the command line of ``dualgrad.teach.cli`` (see there)."""

import sys

from .teach.cli import main

if __name__ == "__main__":
    sys.exit(main())
