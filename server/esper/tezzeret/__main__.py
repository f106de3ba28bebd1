"""`python -m esper.tezzeret ARGS` is `esper serve tezzeret ARGS`."""

from __future__ import annotations

import sys

from esper.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["serve", "tezzeret", *sys.argv[1:]]))
