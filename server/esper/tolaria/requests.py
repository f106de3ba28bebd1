"""Checks of every TolariaService request, in one place.

Each `check_<rpc>` raises InvalidArgument naming the offending field and returns
the request's effective values, so the run manager never re-derives them. A
CreateRun's `RunConfig` becomes a full `EsperConfig` here: `config_yaml` first, then
the explicit fields on top (a zero or empty field means "as the YAML or the
defaults say").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from esper import checks, ids
from esper.assets.config import DEFAULT_ASSETS_DIR
from esper.data.loading import BUILT_IN, DATASET_NAMES, NPZ_PREFIX
from esper.data.text import TEXT_NAME, TEXT_PREFIX
from esper.errors import InvalidArgument
from esper.leyline.v1 import run_pb2, tolaria_pb2
from esper.paging import decode_page_token, validate_page_size
from esper.tolaria.config import MAX_EPOCHS, MAX_HOST_WIDTH, EsperConfig, parse_config
from esper.trust.inputs import confine, quote

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
    `out_field` and `dataset_field` name where the folder and the dataset came from.
    """

    run_id: str
    config: EsperConfig
    out_field: str = "config.out_dir"
    dataset_field: str = "config.dataset"


class ServerRoots(Protocol):
    """Where a Tolaria server lets runs write and read (esper.tolaria.runs.RunManagerConfig)."""

    @property
    def runs_dir(self) -> Path: ...

    @property
    def data_root(self) -> Path | None: ...

    @property
    def assets_root(self) -> Path | None: ...


@dataclass(frozen=True)
class RunPage:
    """Where a ListRuns page starts: runs created before `before` (None = newest), how many, which."""

    before: int | None
    page_size: int
    status: int


def check_create_run(request: tolaria_pb2.CreateRunRequest) -> RunPlan:
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
    out_field = "config.out_dir" if run.out_dir else "config.config_yaml"
    return RunPlan(run_id=request.run_id, config=config, out_field=out_field, dataset_field=dataset_field)


def confine_run(plan: RunPlan, roots: ServerRoots, run_id: str) -> EsperConfig:
    """The plan's config with every path it names resolved inside the server's roots.

    The run folder goes under the runs root (`<root>/<run id>` when none is named); an
    `npz:` dataset must be a file under the data root; the embedded asset cache must
    be under the assets root. A path elsewhere is refused naming the root, never saying
    what exists outside it.
    """
    config = plan.config
    out = config.run.out if config.run.out is not None else run_id
    folder = confine(out, roots.runs_dir, field=plan.out_field)
    run = replace(config.run, out=str(folder))
    spec = config.run.dataset.strip()
    if spec.startswith(NPZ_PREFIX):
        if roots.data_root is None:
            raise InvalidArgument.for_field(plan.dataset_field, "this Tolaria serves no npz: datasets (no data root)")
        path = confine(spec[len(NPZ_PREFIX) :], roots.data_root, field=plan.dataset_field)
        if not path.is_file():
            raise InvalidArgument.for_field(
                plan.dataset_field, f"dataset {quote(spec)}: no such file under {roots.data_root}"
            )
        run = replace(run, dataset=f"{NPZ_PREFIX}{path}")
    assets = config.assets
    if roots.assets_root is not None:
        # A run that names no cache of its own shares the server's.
        named = assets.data_dir if assets.data_dir != DEFAULT_ASSETS_DIR else "shared"
        cache = confine(named, roots.assets_root, field="config.config_yaml")
        assets = replace(assets, data_dir=str(cache))
    return replace(config, run=run, assets=assets)


def check_get_run(request: tolaria_pb2.GetRunRequest) -> str:
    return _run_id(request.run_id)


def check_cancel_run(request: tolaria_pb2.CancelRunRequest) -> str:
    return _run_id(request.run_id)


def check_stream_run_events(request: tolaria_pb2.StreamRunEventsRequest) -> tuple[str, int]:
    """The run id and the first sequence number to send (0 means 1)."""
    return _run_id(request.run_id), max(1, request.from_sequence)


def list_filter_fingerprint(request: tolaria_pb2.ListRunsRequest) -> str:
    """Identity of a listing's filter; page tokens are only good for the same filter."""
    return json.dumps(["tolaria.ListRuns", int(request.status)])


def check_list_runs(request: tolaria_pb2.ListRunsRequest) -> RunPage:
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
    if spec in BUILT_IN or spec == TEXT_NAME or spec.startswith((NPZ_PREFIX, TEXT_PREFIX)):
        return
    valid = ", ".join(DATASET_NAMES)
    raise InvalidArgument.for_field(field, f"unknown dataset {quote(spec)}; valid: {valid}")


def _renamed(error: InvalidArgument, overrides: dict[str, object]) -> InvalidArgument:
    """A config error named after the request field it came from: an explicit field, or the YAML."""
    dotted = error.violations[0].field if error.violations else "config"
    description = error.violations[0].description if error.violations else error.message
    for field, key in _OVERRIDDEN.items():
        if dotted == key and key in overrides:
            return InvalidArgument.for_field(f"config.{field}", description)
    return InvalidArgument.for_field("config.config_yaml", f"{dotted}: {description}")
