"""Where servers keep their state by default: one root, ignored by git.

The root is `$ESPER_HOME` when it is set, else `.esper` in the working folder; each
server keeps its state in the folder named after it (`.esper/urza/`,
`.esper/nissa/`, ...). Only command-line entry points read the variable, and pass
the folder on in a config; flags such as `--data-dir` still put state anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

HOME_VARIABLE = "ESPER_HOME"
DEFAULT_ROOT = ".esper"


def state_root(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(HOME_VARIABLE) or DEFAULT_ROOT).expanduser()


def state_dir(name: str, environ: Mapping[str, str] | None = None) -> Path:
    """The default state folder of server `name`, e.g. `.esper/urza`."""
    return state_root(environ) / name


def default_help(name: str, *parts: str) -> str:
    """How a flag's help names this default: "$ESPER_HOME/urza (else ./.esper/urza)"."""
    tail = "/".join((name, *parts))
    return f"${HOME_VARIABLE}/{tail}, else ./{DEFAULT_ROOT}/{tail}"
