"""`esper` entry point: one CLI whose command groups live in sibling modules.

Each command module exposes `register(subparsers)`, adding its sub-commands with
`set_defaults(handler=...)`; a handler takes the parsed arguments and returns an
exit code. Errors are printed as one line naming what was wrong.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from esper.errors import EsperError, UsageError

# Command modules, in help order. A module adds its commands in `register`.
COMMAND_MODULES = (
    "esper.cli.run",
    "esper.cli.serve",
    "esper.cli.up",
    "esper.cli.assets",
    "esper.cli.traces",
    "esper.cli.alerts",
    "esper.cli.pki",
    "esper.cli.policy",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esper", description="Esper: morphogenetic training.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Libraries' deprecation notices (torch's in every compile and load) tell a user of
    # `esper` nothing they can act on; they stay visible to the SDK and the tests.
    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    # A command that starts itself again in other processes (`esper run --nproc N`) reads it.
    args.command_line = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args))
    except UsageError as exc:
        parser.exit(2, f"esper {args.command}: error: {exc}\n")
    except EsperError as exc:
        print(f"esper {args.command}: {exc.code} ({exc.reason}): {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
