"""The rules every identifier follows, wherever it travels.

An id crosses several subsystems: a run id is chosen at CreateRun, sent to Tamiyo
and Kasmina, becomes a NATS subject token on Oona, is stored by Simic and queried
at Nissa. One rule per kind of id, used by every request check and by Oona's
subjects, so an id accepted by one rpc is accepted everywhere it goes next.

- run: one NATS subject token, `[A-Za-z0-9_-]{1,64}`.
- seed: a host module path ("blocks.0.mlp"): up to 256 characters, none of them a
  control character (a module may be named anything; Oona escapes it into one
  subject token).
- command, report, blueprint, kernel, and the work queues' job, worker and lease
  ids: printable ASCII without spaces, up to 256.
  A kernel id Tezzeret mints also has the form of `MINTED_KERNEL_ID`.
- template: a Karn template id, `[a-z0-9_]{1,64}` (an IR node id's alphabet).
- policy: `[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}`, safe as a file name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from esper.errors import InvalidArgument


@dataclass(frozen=True)
class IdRule:
    """What one kind of id may look like: a pattern and how to say it in an error."""

    kind: str
    pattern: re.Pattern[str]
    description: str

    def is_valid(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None

    def check(self, field: str, value: str, *, required: bool = True) -> str:
        """`value` if it is a valid id; InvalidArgument naming `field` otherwise. An empty optional id passes."""
        if not value:
            if required:
                raise InvalidArgument.for_field(field, "is required")
            return value
        if not self.is_valid(value):
            shown = value if len(value) <= 80 else value[:77] + "..."
            raise InvalidArgument.for_field(field, f"a {self.kind} must be {self.description}, got {shown!r}")
        return value


_PRINTABLE = re.compile(r"[\x21-\x7e]{1,256}")
_PRINTABLE_TEXT = "1-256 printable ASCII characters without spaces"

RUN = IdRule("run id", re.compile(r"[A-Za-z0-9_-]{1,64}"), "1-64 letters, digits, '_' or '-'")
SEED = IdRule("seed id", re.compile(r"[^\x00-\x1f\x7f]{1,256}"), "1-256 characters, none of them a control character")
COMMAND = IdRule("command id", _PRINTABLE, _PRINTABLE_TEXT)
REPORT = IdRule("report id", _PRINTABLE, _PRINTABLE_TEXT)
BLUEPRINT = IdRule("blueprint id", _PRINTABLE, _PRINTABLE_TEXT)
KERNEL = IdRule("kernel id", _PRINTABLE, _PRINTABLE_TEXT)
JOB = IdRule("job id", _PRINTABLE, _PRINTABLE_TEXT)
WORKER = IdRule("worker id", _PRINTABLE, _PRINTABLE_TEXT)
LEASE = IdRule("lease token", _PRINTABLE, _PRINTABLE_TEXT)
TEMPLATE = IdRule("template id", re.compile(r"[a-z0-9_]{1,64}"), "1-64 lowercase letters, digits or '_'")
POLICY = IdRule(
    "policy id",
    re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}"),
    "1-128 letters, digits, '_', '-' or '.', not starting with '.'",
)

ALL: tuple[IdRule, ...] = (RUN, SEED, COMMAND, REPORT, BLUEPRINT, KERNEL, JOB, WORKER, LEASE, TEMPLATE, POLICY)

# "<ir hash 12>-<target>-<pipeline>-<toolchain hash 8>" (docs/assets.md, "Kernel ids").
MINTED_KERNEL_ID = re.compile(
    r"(?P<ir>[0-9a-f]{12})-(?P<target>[a-z0-9_]+)-(?P<pipeline>fast|standard|aggressive)-(?P<toolchain>[0-9a-f]{8})"
)
