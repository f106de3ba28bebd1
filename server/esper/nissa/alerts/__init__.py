"""Nissa's alerts: the rule catalogue, the scraper and evaluator, and the Prometheus rule file.

The catalogue (rules.py) is the one definition of every alert rule; Nissa evaluates
it over its own scrapes (engine.py) and render.py writes the same rules for
Prometheus. Nothing here imports grpc.
"""

from esper.nissa.alerts.config import NissaAlertsConfig, ScrapeTarget, parse_for_override, parse_target
from esper.nissa.alerts.engine import AlertEngine
from esper.nissa.alerts.rules import RULES, RULES_BY_NAME, AlertRule
from esper.nissa.alerts.task import alert_task

__all__ = [
    "RULES",
    "RULES_BY_NAME",
    "AlertEngine",
    "AlertRule",
    "NissaAlertsConfig",
    "ScrapeTarget",
    "alert_task",
    "parse_for_override",
    "parse_target",
]
