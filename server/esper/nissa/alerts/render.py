"""The Prometheus rule file, rendered from the catalogue.

`python -m esper.nissa.alerts.render > deploy/prometheus/rules/esper.rules.yml`
(or `esper alerts --render-rules`) writes it; a unit test fails when the committed
file differs from what this renders, so the two cannot drift.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

import yaml

from esper.nissa.alerts.rules import RULES, AlertRule, format_value

RULE_FILE = "deploy/prometheus/rules/esper.rules.yml"
GROUP_NAME = "esper"
_HEADER = (
    "# Generated from esper.nissa.alerts.rules by `python -m esper.nissa.alerts.render`; do not edit.\n"
    "# Nissa evaluates the same rules itself (`esper alerts --mesh FILE`).\n"
)
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render_rules(rules: Sequence[AlertRule] = RULES) -> str:
    """The rule file's text: one group holding every rule, in catalogue order."""
    document = {"groups": [{"name": GROUP_NAME, "rules": [_rule(rule) for rule in rules]}]}
    return _HEADER + yaml.safe_dump(document, sort_keys=False, width=1000, default_flow_style=False)


def _rule(rule: AlertRule) -> dict[str, object]:
    entry: dict[str, object] = {"alert": rule.name, "expr": rule.expr}
    if rule.for_seconds:
        entry["for"] = go_duration(rule.for_seconds)
    entry["labels"] = {"severity": rule.severity_label}
    entry["annotations"] = {"summary": go_template(rule)}
    return entry


def go_template(rule: AlertRule) -> str:
    """The rule's summary as a Prometheus (Go) template printing what summary_for prints."""

    def field(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "value":
            return '{{ printf "%.4g" $value }}'
        if name == "threshold":
            return format_value(rule.threshold)
        return "{{ $labels." + name + " }}"

    return _FIELD.sub(field, rule.summary)


def go_duration(seconds: float) -> str:
    """A Prometheus duration: 15s, 1m, 90s, 1500ms."""
    milliseconds = round(seconds * 1000)
    if milliseconds % 1000:
        return f"{milliseconds}ms"
    whole = milliseconds // 1000
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


def main() -> int:
    sys.stdout.write(render_rules())
    return 0


if __name__ == "__main__":
    sys.exit(main())
