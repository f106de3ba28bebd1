"""One rule per kind of id: an id one rpc accepts is accepted everywhere it travels next."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from esper import ids
from esper.errors import InvalidArgument
from esper.karn.requests import check_get_template
from esper.kasmina.requests import check_apply_command, check_list_seed_states, check_stream_telemetry
from esper.leyline.v1 import (
    control_pb2,
    karn_pb2,
    kasmina_pb2,
    kernel_pb2,
    lifecycle_pb2,
    nissa_pb2,
    simic_pb2,
    tamiyo_pb2,
    tolaria_pb2,
    urabrask_pb2,
    urza_pb2,
)
from esper.nissa.requests import check_find_traces, check_get_run_summary
from esper.oona.subjects import command_subject, field_report_subject, run_event_subject, telemetry_subject
from esper.simic.config import SimicConfig
from esper.simic.requests import check_field_report, check_get_policy, check_list_field_reports
from esper.tamiyo.requests import check_export_controller_state, check_get_status, check_load_policy
from esper.tolaria.requests import check_cancel_run, check_get_run, check_stream_run_events
from esper.urabrask.requests import check_get_validation_report
from esper.urza.requests import check_get_kernel, check_query_kernels

Check = Callable[[str], object]


def _germinate(kernel_id: str) -> kasmina_pb2.ApplyCommandRequest:
    command = control_pb2.AdaptationCommand(
        command_id="c-1",
        run_id="run-1",
        seed_id="blocks.0.mlp",
        command_type=lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION,
        kernel_id=kernel_id,
    )
    return kasmina_pb2.ApplyCommandRequest(command=command)


RUN_ID_USES: dict[str, Check] = {
    "tolaria.GetRun": lambda v: check_get_run(tolaria_pb2.GetRunRequest(run_id=v)),
    "tolaria.CancelRun": lambda v: check_cancel_run(tolaria_pb2.CancelRunRequest(run_id=v)),
    "tolaria.StreamRunEvents": lambda v: check_stream_run_events(tolaria_pb2.StreamRunEventsRequest(run_id=v)),
    "kasmina.ListSeedStates": lambda v: check_list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id=v)),
    "kasmina.StreamTelemetry": lambda v: check_stream_telemetry(kasmina_pb2.StreamTelemetryRequest(run_id=v)),
    "tamiyo.GetStatus": lambda v: check_get_status(tamiyo_pb2.GetStatusRequest(run_id=v or "r")),
    "tamiyo.ExportControllerState": lambda v: check_export_controller_state(
        tamiyo_pb2.ExportControllerStateRequest(run_id=v)
    ),
    "simic.ListFieldReports": lambda v: check_list_field_reports(
        simic_pb2.ListFieldReportsRequest(run_id=v or "r"), SimicConfig(data_dir="unused")
    ),
    "simic.FieldReport": lambda v: check_field_report(control_pb2.FieldReport(report_id="r-1", run_id=v or "r")),
    "nissa.GetRunSummary": lambda v: check_get_run_summary(nissa_pb2.GetRunSummaryRequest(run_id=v)),
    "nissa.FindTraces": lambda v: check_find_traces(nissa_pb2.FindTracesRequest(run_id=v or "r")),
    "oona.telemetry_subject": lambda v: telemetry_subject(v, "blocks.0.mlp"),
    "oona.run_event_subject": run_event_subject,
    "oona.field_report_subject": field_report_subject,
    "oona.command_subject": lambda v: command_subject(v, lifecycle_pb2.MESSAGE_PRIORITY_NORMAL),
}
SEED_ID_USES: dict[str, Check] = {
    "kasmina.StreamTelemetry": lambda v: check_stream_telemetry(
        kasmina_pb2.StreamTelemetryRequest(run_id="run-1", seed_ids=[v])
    ),
    "simic.FieldReport": lambda v: check_field_report(control_pb2.FieldReport(report_id="r-1", seed_id=v or "s")),
    "nissa.FindTraces": lambda v: check_find_traces(nissa_pb2.FindTracesRequest(seed_id=v or "s")),
    "oona.telemetry_subject": lambda v: telemetry_subject("run-1", v),
}
KERNEL_ID_USES: dict[str, Check] = {
    "kasmina.ApplyCommand": lambda v: check_apply_command(_germinate(v)),
    "urza.GetKernel": lambda v: check_get_kernel(urza_pb2.GetKernelRequest(kernel_id=v)),
    "urabrask.GetValidationReport": lambda v: check_get_validation_report(
        urabrask_pb2.GetValidationReportRequest(kernel_id=v)
    ),
}
POLICY_ID_USES: dict[str, Check] = {
    "tamiyo.LoadPolicy": lambda v: check_load_policy(tamiyo_pb2.LoadPolicyRequest(policy_id=v)),
    "simic.GetPolicy": lambda v: check_get_policy(simic_pb2.GetPolicyRequest(policy_id=v)),
}
TEMPLATE_ID_USES: dict[str, Check] = {
    "karn.GetTemplate": lambda v: check_get_template(karn_pb2.GetTemplateRequest(template_id=v)),
    "urza.QueryKernels": lambda v: check_query_kernels(
        urza_pb2.QueryKernelsRequest(query=kernel_pb2.KernelQuery(template_id=v or "t"))
    ),
}

CANDIDATES = [
    "run-1",
    "R_2-x",
    "x" * 64,
    "x" * 65,
    "x" * 256,
    "x" * 257,
    "run.1",
    "blocks.0.mlp",
    "a b",
    "tab\there",
    "ünï",
    "3f2a9c01b7de-cpu_x86_64-standard-a1c3b2e4",
    "heuristic-v1",
    ".hidden",
    "conv3x3_relu",
    "Upper_Case",
]


def _accepted(check: Check, value: str) -> bool:
    try:
        check(value)
    except InvalidArgument:
        return False
    return True


@pytest.mark.parametrize(
    ("rule", "uses"),
    [
        (ids.RUN, RUN_ID_USES),
        (ids.SEED, SEED_ID_USES),
        (ids.KERNEL, KERNEL_ID_USES),
        (ids.POLICY, POLICY_ID_USES),
        (ids.TEMPLATE, TEMPLATE_ID_USES),
    ],
    ids=lambda value: value.kind if isinstance(value, ids.IdRule) else "",
)
@pytest.mark.parametrize("value", CANDIDATES)
def test_every_place_an_id_travels_agrees_with_its_rule(rule: ids.IdRule, uses: dict[str, Check], value: str) -> None:
    verdicts = {name: _accepted(check, value) for name, check in uses.items()}
    assert verdicts == dict.fromkeys(uses, rule.is_valid(value))


def test_a_refused_id_names_the_field_and_the_rule() -> None:
    with pytest.raises(InvalidArgument) as caught:
        ids.RUN.check("packet.run_id", "run.1")
    assert caught.value.violations[0].field == "packet.run_id"
    assert "run id" in caught.value.message


def test_minted_kernel_ids_are_kernel_ids() -> None:
    minted = "3f2a9c01b7de-cpu_x86_64-standard-a1c3b2e4"
    assert ids.MINTED_KERNEL_ID.fullmatch(minted) and ids.KERNEL.is_valid(minted)
