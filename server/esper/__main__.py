"""`python -m esper ...` is the `esper` command, so `torchrun ... -m esper run ...` starts data-parallel runs."""

import sys

from esper.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
