"""Jobs the fork server tests run in its children (importable there: the zygote gets the repo on its path)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def write_pid(path: str) -> int:
    """Write this child's pid, process group and TMPDIR to `path`; exit 0."""
    Path(path).write_text(f"{os.getpid()} {os.getpgid(0)} {os.environ.get('ESPER_TEST_VALUE', '')}")
    print("to stdout")
    print("to stderr", file=sys.stderr)
    return 0


def exit_with(code: str) -> int:
    return int(code)


def crash() -> int:
    os.kill(os.getpid(), signal.SIGSEGV)
    return 0


def sleep_forever(pid_path: str) -> int:
    Path(pid_path).write_text(str(os.getpid()))
    while True:
        time.sleep(1)


def raise_error() -> int:
    raise RuntimeError("the job failed on purpose")


def cpu_seconds_limit() -> int:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_CPU)
    return 7 if soft == 30 else 1
