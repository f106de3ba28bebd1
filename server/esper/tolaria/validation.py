"""Validation of every TolariaService request, in one place.

Each `validate_<rpc>` raises InvalidArgument naming the offending field and returns
the request's effective values, so the run manager never re-derives them. A
CreateRun's `RunConfig` becomes a full `EsperConfig` here: `config_yaml` first, then
the explicit fields on top (a zero or empty field means "as the YAML or the
defaults say").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from esper import checks, ids
from esper.data.loading import BUILT_IN, NPZ_PREFIX
from esper.errors import InvalidArgument
from esper.leyline.v1 import run_pb2, tolaria_pb2
from esper.paging import decode_page_token, validate_page_size
from esper.tolaria.config import MAX_EPOCHS, MAX_HOST_WIDTH, EsperConfig, parse_config

MAX_CONFIG_YAML_BYTES = 1024 * 1024
MAX_SEED = 2**63 - 1
_STATUSES = frozenset(run_pb2.RunStatus.values())

# RunConfig field -> the EsperConfig key it overrides.
_OVERRIDDEN = {
    "dataset": "run.dataset",
    "epochs": "run.epochs",
    "seed": "run.seed",
    "host_width": "run.host_width",
    "static": "run.static",
    "out_dir": "run.out",
}


@dataclass(frozen=True)
class RunPlan:
    """A CreateRun request made concrete: the run id asked for ("" = any) and the full config.

    `config.run.out` is None when neither the request nor its YAML names a folder.
    """

    run_id: str
    config: EsperConfig


@dataclass(frozen=True)
class RunPage:
    """Where a ListRuns page starts: runs created before `before` (None = newest), how many, which."""

    before: int | None
    page_size: int
    status: int


def validate_create_run(request: tolaria_pb2.CreateRunRequest) -> RunPlan:
    ids.RUN.check("run_id", request.run_id, required=False)
    if not request.HasField("config"):
        raise InvalidArgument.for_field("config", "required: the run's options")
    run = request.config
    _check_run_fields(run)
    overrides = {key: value for key, value in _overrides(run).items() if value is not None}
    try:
        config = parse_config(run.config_yaml, overrides)
    except InvalidArgument as exc:
        raise _renamed(exc, overrides) from None
    dataset_field = "config.dataset" if run.dataset else "config.config_yaml"
    _check_dataset(config.run.dataset, dataset_field)
    out = config.run.out
    if out is not None and not Path(out).expanduser().is_absolute():
        field = "config.out_dir" if run.out_dir else "config.config_yaml"
        raise InvalidArgument.for_field(field, f"the run folder must be an absolute path, got {out!r}")
    return RunPlan(run_id=request.run_id, config=config)


def validate_get_run(request: tolaria_pb2.GetRunRequest) -> str:
    return _run_id(request.run_id)


def validate_cancel_run(request: tolaria_pb2.CancelRunRequest) -> str:
    return _run_id(request.run_id)


def validate_stream_run_events(request: tolaria_pb2.StreamRunEventsRequest) -> tuple[str, int]:
    """The run id and the first sequence number to send (0 means 1)."""
    return _run_id(request.run_id), max(1, request.from_sequence)


def list_filter_fingerprint(request: tolaria_pb2.ListRunsRequest) -> str:
    """Identity of a listing's filter; page tokens are only good for the same filter."""
    return json.dumps(["tolaria.ListRuns", int(request.status)])


def validate_list_runs(request: tolaria_pb2.ListRunsRequest) -> RunPage:
    page_size = validate_page_size(request.page_size)
    if request.status not in _STATUSES:
        raise InvalidArgument.for_field("status", f"unknown RunStatus value {request.status}")
    before = decode_page_token(request.page_token, list_filter_fingerprint(request)) if request.page_token else None
    return RunPage(before=before, page_size=page_size, status=int(request.status))


def _run_id(run_id: str) -> str:
    return ids.RUN.check("run_id", run_id)


def _check_run_fields(run: run_pb2.RunConfig) -> None:
    if run.epochs:
        checks.in_range("config.epochs", run.epochs, 1, MAX_EPOCHS, note="(0 = the config's)")
    if run.host_width:
        checks.in_range("config.host_width", run.host_width, 1, MAX_HOST_WIDTH, note="(0 = default)")
    checks.at_most("config.seed", run.seed, MAX_SEED)
    if len(run.config_yaml.encode("utf-8")) > MAX_CONFIG_YAML_BYTES:
        raise InvalidArgument.for_field("config.config_yaml", f"longer than {MAX_CONFIG_YAML_BYTES} bytes")


def _overrides(run: run_pb2.RunConfig) -> dict[str, object]:
    return {
        "run.dataset": run.dataset or None,
        "run.epochs": run.epochs or None,
        "run.seed": run.seed or None,
        "run.host_width": run.host_width or None,
        "run.static": True if run.static else None,
        "run.out": run.out_dir or None,
    }


def _check_dataset(dataset: str, field: str) -> None:
    spec = dataset.strip()
    if spec in BUILT_IN:
        return
    if spec.startswith(NPZ_PREFIX):
        path = Path(spec[len(NPZ_PREFIX) :]).expanduser()
        if not path.is_file():
            raise InvalidArgument.for_field(field, f"dataset {spec!r}: no such file on the Tolaria server")
        return
    valid = ", ".join([*BUILT_IN, f"{NPZ_PREFIX}PATH"])
    raise InvalidArgument.for_field(field, f"unknown dataset {spec!r}; valid: {valid}")


def _renamed(error: InvalidArgument, overrides: dict[str, object]) -> InvalidArgument:
    """A config error named after the request field it came from: an explicit field, or the YAML."""
    dotted = error.violations[0].field if error.violations else "config"
    description = error.violations[0].description if error.violations else error.message
    for field, key in _OVERRIDDEN.items():
        if dotted == key and key in overrides:
            return InvalidArgument.for_field(f"config.{field}", description)
    return InvalidArgument.for_field("config.config_yaml", f"{dotted}: {description}")
