"""Checks of every Simic request, in one place.

Each `check_<rpc>` raises InvalidArgument naming the offending field, and returns
the request's effective values (defaults applied, page token decoded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from esper import checks, ids
from esper.errors import InvalidArgument
from esper.leyline.v1 import control_pb2, lifecycle_pb2, policy_pb2, simic_pb2
from esper.paging import decode_page_token, validate_page_size
from esper.simic.config import SimicConfig
from esper.simic.curriculum import SUITES
from esper.tamiyo.graph_proto import graph_from_proto, tensor_from_proto

POLICY_LISTING = json.dumps(["simic.ListPolicies"])

MAX_POLICY_STEPS = 100_000
MAX_PPO_ITERATIONS = 10_000
MAX_GATE_SEEDS = 20
_ALGORITHMS = frozenset(simic_pb2.TrainingAlgorithm.values())
_OUTCOMES = frozenset(lifecycle_pb2.AdaptationOutcome.values())
_DIRECTIONS = frozenset(lifecycle_pb2.MetricDirection.values())


@dataclass(frozen=True)
class ReportPageRequest:
    """A ListFieldReports page: before which seq it starts (0: the newest), how long, which run."""

    before: int
    page_size: int
    run_id: str
    fingerprint: str


def report_filter_fingerprint(run_id: str) -> str:
    """Identity of a listing's filter; page tokens are only good for the same filter."""
    return json.dumps(["simic.ListFieldReports", run_id])


def check_record_field_reports(request: simic_pb2.RecordFieldReportsRequest, config: SimicConfig) -> None:
    if len(request.reports) > config.max_reports_per_request:
        raise InvalidArgument.for_field(
            "reports", f"holds {len(request.reports)}; at most {config.max_reports_per_request} per request"
        )
    for i, report in enumerate(request.reports):
        check_field_report(report, f"reports[{i}]")


def check_field_report(report: control_pb2.FieldReport, path: str = "report") -> None:
    """One report Simic can store: an id, ids that fit their columns, a known outcome, metrics in [0, 1]."""
    ids.REPORT.check(f"{path}.report_id", report.report_id)
    ids.RUN.check(f"{path}.run_id", report.run_id, required=False)
    ids.SEED.check(f"{path}.seed_id", report.seed_id, required=False)
    ids.BLUEPRINT.check(f"{path}.blueprint_id", report.blueprint_id, required=False)
    if report.outcome not in _OUTCOMES:
        raise InvalidArgument.for_field(f"{path}.outcome", f"{report.outcome} is not an AdaptationOutcome")
    _check_report_metrics(report, path)


def check_list_field_reports(request: simic_pb2.ListFieldReportsRequest, config: SimicConfig) -> ReportPageRequest:
    page_size = validate_page_size(request.page_size, default=config.default_page_size, maximum=config.max_page_size)
    ids.RUN.check("run_id", request.run_id, required=False)
    fingerprint = report_filter_fingerprint(request.run_id)
    before = decode_page_token(request.page_token, fingerprint)
    return ReportPageRequest(before=before, page_size=page_size, run_id=request.run_id, fingerprint=fingerprint)


def check_train_policy(request: simic_pb2.TrainPolicyRequest) -> None:
    if request.max_steps:
        checks.in_range("max_steps", request.max_steps, 1, MAX_POLICY_STEPS, note="(0 means the default)")
    if request.iterations:
        checks.in_range("iterations", request.iterations, 1, MAX_PPO_ITERATIONS, note="(0 means the default)")
    checks.one_of("algorithm", request.algorithm, sorted(_ALGORITHMS))
    ids.POLICY.check("base_policy_id", request.base_policy_id, required=False)
    ids.POLICY.check("policy_id", request.policy_id, required=False)
    if request.gate_suite:
        checks.one_of("gate_suite", request.gate_suite, [*sorted(SUITES), "none"])
    if request.gate_seeds:
        checks.in_range("gate_seeds", request.gate_seeds, 1, MAX_GATE_SEEDS, note="(0 means the configured number)")
    if request.HasField("gate_tolerance"):
        checks.in_range("gate_tolerance", request.gate_tolerance, 0.0, 100.0, note="(unset means the configured one)")


def check_get_policy(request: simic_pb2.GetPolicyRequest) -> None:
    ids.POLICY.check("policy_id", request.policy_id)


def check_get_training_job(request: simic_pb2.GetTrainingJobRequest) -> None:
    ids.JOB.check("job_id", request.job_id)


def check_list_policies(request: simic_pb2.ListPoliciesRequest, config: SimicConfig) -> tuple[int, int]:
    """(page size, seq to list before: 0 from the newest)."""
    page_size = validate_page_size(request.page_size, default=config.default_page_size, maximum=config.max_page_size)
    return page_size, decode_page_token(request.page_token, POLICY_LISTING)


def check_record_transitions(request: simic_pb2.RecordTransitionsRequest, config: SimicConfig) -> None:
    if len(request.transitions) > config.max_transitions_per_request:
        raise InvalidArgument.for_field(
            "transitions",
            f"holds {len(request.transitions)}; at most {config.max_transitions_per_request} per request",
        )
    for i, transition in enumerate(request.transitions):
        check_transition(transition, f"transitions[{i}]")


def check_transition(transition: policy_pb2.PolicyTransition, path: str = "transition") -> None:
    """A transition Simic can store: ids that fit their columns, an observation and masks that agree."""
    ids.REPORT.check(f"{path}.transition_id", transition.transition_id)
    ids.RUN.check(f"{path}.run_id", transition.run_id, required=False)
    ids.POLICY.check(f"{path}.policy_id", transition.policy_id)
    try:
        graph = graph_from_proto(transition.observation)
        mask = tensor_from_proto(transition.action_mask)
    except ValueError as exc:
        raise InvalidArgument.for_field(f"{path}.observation", str(exc)) from None
    seeds = graph.count("seed")
    if mask.shape != (seeds, 5):
        raise InvalidArgument.for_field(f"{path}.action_mask", f"shape {list(mask.shape)}, want [{seeds}, 5]")
    if len(transition.seed_actions) != seeds:
        raise InvalidArgument.for_field(
            f"{path}.seed_actions", f"holds {len(transition.seed_actions)} actions for {seeds} seeds"
        )
    if transition.metric_direction not in _DIRECTIONS:
        direction = transition.metric_direction
        raise InvalidArgument.for_field(f"{path}.metric_direction", f"{direction} is not a MetricDirection")
    if transition.metric_direction == lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED:
        checks.in_range(f"{path}.validation_score", transition.validation_score, 0.0, 1.0)
    else:
        checks.finite(f"{path}.validation_score", transition.validation_score)


def _check_report_metrics(report: control_pb2.FieldReport, path: str) -> None:
    """Accuracies in [0, 1]; another metric (a report naming its direction) only finite."""
    accuracy = report.metric_direction == lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED
    for name in ("pre_metric", "post_metric"):
        if accuracy:
            checks.in_range(f"{path}.{name}", getattr(report, name), 0.0, 1.0)
        else:
            checks.finite(f"{path}.{name}", getattr(report, name))
