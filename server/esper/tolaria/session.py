"""One embedded training run, end to end: what `esper run` and the SDK's defaults do.

data -> host -> (seeds, asset pipeline, Tamiyo) -> Tolaria -> run folder with
metrics, events, lineage, the model, a summary and report.png. Everything runs in
this process except compiles and characterizations, which the embedded asset pipeline
runs in child processes while training goes on.
"""

from __future__ import annotations

import logging
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from esper.data import load_dataset
from esper.data.bundle import Dataset
from esper.hosts import build_host, default_host_spec
from esper.hosts.spec import HostSpec
from esper.kasmina.persistence import save_model
from esper.leyline.v1 import lifecycle_pb2, run_pb2
from esper.tolaria.batches import RunData
from esper.tolaria.checkpoint import load_checkpoint
from esper.tolaria.collaborators import (
    CollaboratorsFactory,
    RunCollaborators,
    collaborators_for_rank,
    embedded_collaborators,
)
from esper.tolaria.config import EsperConfig, config_to_dict
from esper.tolaria.data_parallel import DataParallel, ranks_summary
from esper.tolaria.devices import resolve_device
from esper.tolaria.events import RunEventLog
from esper.tolaria.loop import EpochStats, count_parameters
from esper.tolaria.objective import Objective
from esper.tolaria.optimizers import OptimizerFactory
from esper.tolaria.run_report import render_report
from esper.tolaria.runfolder import RunFolder
from esper.tolaria.trainer import EpochRecord, TolariaTrainer, TrainingHistory

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = Path("checkpoints") / "last.pt"
EpochCallback = Callable[[EpochRecord, TrainingHistory], None]


@dataclass
class RunResult:
    """Where the run went and what it measured."""

    run_id: str
    out_dir: Path
    summary: dict[str, Any]


def new_run_id() -> str:
    return f"run-{uuid.uuid4().hex[:8]}"


def run_training(
    config: EsperConfig,
    *,
    run_id: str | None = None,
    on_epoch: EpochCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = False,
    baseline_dir: Path | None = None,
    collaborators: CollaboratorsFactory = embedded_collaborators,
    events: RunEventLog | None = None,
    on_trainer: Callable[[TolariaTrainer], None] | None = None,
    ranks: DataParallel | None = None,
) -> RunResult:
    """Train one run into `config.run.out`; `resume` continues from its last checkpoint.

    `events` lets a host process (the Tolaria server) hold the run's event log to
    stream it; `on_trainer` hands it the trainer before training starts (for example
    to serve the run's Kasmina operator over gRPC). With `ranks` this process is one
    rank of a data-parallel run (esper.tolaria.data_parallel): rank 0 writes the run
    folder and its checkpoints and runs the asset pipeline; the other ranks keep their
    events in memory, read kernels from the same asset store, and resume from rank 0's
    checkpoint.
    """
    out = config.run.require_out()
    folder = RunFolder(out)
    writes = ranks is None or ranks.is_main
    run_id = run_id or (_previous_run_id(folder) if resume else None) or new_run_id()
    if ranks is not None:
        run_id = ranks.broadcast(run_id)
        collaborators = collaborators_for_rank(ranks, config, collaborators)
    data = load_dataset(config.run.dataset, seed=config.run.seed, validation_fraction=config.run.validation_fraction)
    spec = run_host_spec(config, data)
    device = ranks.device if ranks is not None else resolve_device(config.run.device, "run.device")
    if writes:
        events = prepare_folder(folder, config, run_id, resume=resume, events=events)
    else:
        events = events if events is not None else RunEventLog(run_id)
    checkpoint = folder.path / CHECKPOINT_FILE if writes else None
    started = time.perf_counter()
    if config.run.static:
        trainer, asset_wait = _static_trainer(config, spec, data, run_id, events, checkpoint, device), 0.0
        running: RunCollaborators | None = None
    else:
        trainer, running, asset_wait = _morphogenetic_trainer(
            config, spec, data, run_id, events, checkpoint, collaborators, device
        )
    try:
        if ranks is not None:
            trainer.join_data_parallel(ranks)
        trainer.on_epoch = chain(metrics_writer(folder), on_epoch) if writes else on_epoch
        trainer.should_stop = should_stop or (lambda: False)
        if resume and (out / CHECKPOINT_FILE).exists():
            trainer.resume(out / CHECKPOINT_FILE)
        if on_trainer is not None:
            on_trainer(trainer)
        _, history = trainer.train()
        test = trainer.test_stats()
        if writes:
            save_model(trainer.model, out, host_spec=spec)
    finally:
        if running is not None:
            running.close()
        events.close()
    summary = run_summary_dict(
        run_id,
        config,
        data.name,
        spec.to_dict(),
        history,
        test,
        trainer,
        events,
        time.perf_counter() - started,
        asset_wait,
    )
    summary.update(ranks_summary(ranks, events.events(), trainer.model))
    if writes:
        write_results(folder, summary, data.name, config.run.static, baseline_dir)
    return RunResult(run_id=run_id, out_dir=out, summary=summary)


def write_results(
    folder: RunFolder, summary: dict[str, Any], dataset: str, static: bool, baseline_dir: Path | None
) -> None:
    """summary.json (compared with the static baseline's when there is one) and report.png."""
    baseline = RunFolder(baseline_dir).read_summary() if baseline_dir is not None else None
    if baseline is not None and baseline_dir is not None:
        summary.update(baseline_comparison(summary, baseline, baseline_dir))
    extra = {key: value for key, value in summary.items() if key not in _SUMMARY_FIELDS}
    folder.write_summary(_run_summary(summary), run_id=summary["run_id"], dataset=dataset, static=static, **extra)
    render_report(folder.path, baseline_metrics=baseline_dir)


def baseline_comparison(summary: dict[str, Any], baseline: dict[str, Any], baseline_dir: Path) -> dict[str, Any]:
    """The summary's `baseline` entry and whether growth beat it on the test metric (either direction)."""
    lower = summary.get("metric_direction") == "METRIC_DIRECTION_LOWER_IS_BETTER"
    ours = float(summary.get("final_test_metric", summary.get("final_test_accuracy", 0.0)))
    theirs = float(baseline.get("final_test_metric", baseline.get("final_test_accuracy", 0.0)))
    return {
        "baseline": {
            "final_test_accuracy": baseline.get("final_test_accuracy"),
            "final_test_metric": theirs,
            "params_final": baseline.get("params_final"),
            "out_dir": str(baseline_dir),
        },
        "growth_beat_static": bool(ours < theirs if lower else ours > theirs),
    }


def prepare_folder(
    folder: RunFolder, config: EsperConfig, run_id: str, *, resume: bool, events: RunEventLog | None
) -> RunEventLog:
    """A fresh run folder (kept as is when resuming) with its config, and the event log writing into it."""
    if not resume:
        _reset(folder)
    folder.write_config(config)
    events = events if events is not None else RunEventLog(run_id)
    events.add_sink(folder.append_event)
    return events


def run_host_spec(config: EsperConfig, data: Dataset) -> HostSpec:
    """The host `config.run` asks for (`host`, `host_width`, `host_depth`) over `data`'s inputs."""
    return default_host_spec(
        data.input_kind,
        data.input_shape,
        data.num_classes,
        config.run.host_width,
        depth=config.run.host_depth,
        init_seed=config.run.seed,
        kind=config.run.host,
    )


def dataset_objective(data: Dataset) -> Objective:
    """Cross-entropy, judged by the data set's metric (accuracy, or bits per character for text)."""
    return Objective(metric=data.metric)


def _static_trainer(
    config: EsperConfig,
    spec: HostSpec,
    data: Dataset,
    run_id: str,
    events: RunEventLog,
    checkpoint: Path | None,
    device: torch.device,
) -> TolariaTrainer:
    from esper.kasmina import MorphableModel

    # A morphable model with no seeds: the same host, saved and reloaded like a grown one.
    model = MorphableModel(build_host(spec), [], config.kasmina).to(device)
    return TolariaTrainer(
        model,
        None,
        config.run,
        config.tolaria,
        data=data,
        run_id=run_id,
        events=events,
        checkpoint_path=checkpoint,
        objective=dataset_objective(data),
        device=device,
    )


def _morphogenetic_trainer(
    config: EsperConfig,
    spec: HostSpec,
    data: Dataset,
    run_id: str,
    events: RunEventLog,
    checkpoint: Path | None,
    make_collaborators: CollaboratorsFactory,
    device: torch.device,
) -> tuple[TolariaTrainer, RunCollaborators, float]:
    from esper.kasmina import wrap

    model = wrap(build_host(spec).to(device), config.kasmina, example_input=data.x_train[:2].to(device))
    return growing_trainer(
        model,
        config,
        data,
        run_id=run_id,
        events=events,
        checkpoint_path=checkpoint,
        make_collaborators=make_collaborators,
        objective=dataset_objective(data),
        device=device,
    )


def growing_trainer(
    model: Any,
    config: EsperConfig,
    data: Dataset | RunData,
    *,
    run_id: str,
    events: RunEventLog,
    checkpoint_path: Path | None,
    make_collaborators: CollaboratorsFactory,
    objective: Objective,
    device: torch.device,
    optimizer: OptimizerFactory | None = None,
) -> tuple[TolariaTrainer, RunCollaborators, float]:
    """A trainer that grows `model` (a wrapped MorphableModel on `device`): assets, Kasmina, Tamiyo.

    Submits the catalog's templates at the model's seed sites, names them to the compile
    workers in the order Tamiyo would take them, waits for them only in the deterministic
    mode (`config.assets.wait_for_kernels`), and returns the trainer, the services to close
    after training and the seconds the asset pipeline took before training.
    """
    from esper.assets import SeedSite
    from esper.kasmina import KasminaOperator
    from esper.kasmina.source import CachedKernelSource

    started = time.perf_counter()
    services = make_collaborators(config)
    if services.publish_event is not None:
        events.add_sink(services.publish_event, replay=True)
    try:
        sites = [SeedSite.of(d) for d in model.seed_layout()]
        if not services.reads_only:
            _request_kernels(services, config, events, sites, count_parameters(model))
        # What the run spent on its kernels before training: the pipeline's start, the
        # submissions and, in the deterministic mode, the wait. Building the trainer is not.
        asset_wait = time.perf_counter() - started
        supply = _KernelSupply(services, config, events, sites)
        source = services.kernel_source or CachedKernelSource(services.kernel_cache, services.urza)
        operator = KasminaOperator(model, source, config.kasmina, run_id=run_id)
        trainer = TolariaTrainer(
            model,
            services.make_controller(model),
            config.run,
            config.tolaria,
            data=data,
            kasmina=operator,
            run_id=run_id,
            events=events,
            checkpoint_path=checkpoint_path,
            on_boundary=services.publish,
            on_layout=supply,
            objective=objective,
            optimizer=optimizer,
            device=device,
        )
        # Only now: the trainer's first optimizer imports torch._dynamo, and so does a kernel
        # load; two threads importing it at once can fail with a circular import.
        services.prefetch(sites)
    except BaseException:
        services.close()
        raise
    return trainer, services, asset_wait


def _request_kernels(
    services: RunCollaborators, config: EsperConfig, events: RunEventLog, sites: list[Any], parameters: int
) -> None:
    """Submit the catalog's templates at `sites`, name them to the compile workers in the order
    Tamiyo would take them, and in the deterministic mode wait until they are characterized."""
    from esper.assets import wait_until_settled
    from esper.assets.pipeline import submit_blueprints
    from esper.karn.catalog import TemplateCatalog
    from esper.tamiyo.germination import WantedBlueprint, compile_priority

    submitted = submit_blueprints(services.urza, TemplateCatalog.default(), config.assets.template_ids, sites)
    blueprint_ids = list(dict.fromkeys(entry.blueprint_id for entry in submitted))
    if services.prioritize is not None:
        wanted = [WantedBlueprint(e.blueprint_id, e.growth_kind, e.parameter_estimate, e.site_index) for e in submitted]
        services.prioritize(compile_priority(config.tamiyo, wanted, parameters))
    events.notice(
        f"asset pipeline ({services.description}): {len(blueprint_ids)} blueprint(s) for {len(sites)} seed site(s)"
    )
    if config.assets.wait_for_kernels:
        # The deterministic mode: the run then sees the same kernels whatever the
        # machine's load, so a seed's run repeats exactly.
        waited = wait_until_settled(services.urza, blueprint_ids, timeout=config.assets.wait_timeout_seconds)
        events.notice(f"asset pipeline: kernels characterized after {waited:.1f} s")


class _KernelSupply:
    """Kernels for seed sites that appear during the run (dormant width seeds follow a growing host).

    New sites get their templates submitted and, with `assets.wait_for_kernels`, are
    awaited at the boundary, before Tamiyo next asks: the run then sees the same kernels
    whatever the machine's load, which keeps a seed's run repeatable. Their kernels are
    loaded into the cache there too, not by a thread beside training: part of torch's
    tracing state is process-wide, and a load beside a training step can break the step.
    """

    def __init__(self, services: RunCollaborators, config: EsperConfig, events: RunEventLog, sites: Any) -> None:
        self._services = services
        self._config = config
        self._events = events
        self._known = set(sites)
        self.waited = 0.0  # seconds the boundaries spent waiting for these kernels

    def __call__(self, layout: Any) -> None:
        from esper.assets import SeedSite, submit_templates, wait_until_settled
        from esper.karn.catalog import TemplateCatalog

        sites = [site for site in dict.fromkeys(SeedSite.of(d) for d in layout) if site not in self._known]
        if not sites:
            return
        self._known.update(sites)
        urza, assets = self._services.urza, self._config.assets
        if not self._services.reads_only:
            blueprint_ids = submit_templates(urza, TemplateCatalog.default(), assets.template_ids, sites)
            waited = (
                wait_until_settled(urza, blueprint_ids, timeout=assets.wait_timeout_seconds)
                if assets.wait_for_kernels
                else 0.0
            )
            self.waited += waited
            self._events.notice(
                f"asset pipeline: {len(blueprint_ids)} blueprint(s) for {len(sites)} new seed site(s) of the grown "
                f"host, characterized after {waited:.1f} s"
            )
        import threading

        from esper.assets.pipeline import prefetch_kernels

        prefetch_kernels(urza, self._services.kernel_cache, sites, threading.Event())


def metrics_writer(folder: RunFolder) -> EpochCallback:
    def write(record: EpochRecord, history: TrainingHistory) -> None:
        folder.append_metrics(record.metrics, wall_seconds=round(record.wall_seconds, 4))

    return write


def chain(*callbacks: EpochCallback | None) -> EpochCallback:
    def call(record: EpochRecord, history: TrainingHistory) -> None:
        for callback in callbacks:
            if callback is not None:
                callback(record, history)

    return call


def run_summary_dict(
    run_id: str,
    config: EsperConfig,
    dataset: str,
    host: dict[str, Any] | None,
    history: TrainingHistory,
    test: EpochStats | None,
    trainer: TolariaTrainer,
    events: RunEventLog,
    wall_seconds: float,
    asset_wait: float,
) -> dict[str, Any]:
    """What summary.json holds (its RunSummary fields and the rest), for any run of a TolariaTrainer."""
    params = [record.metrics.parameter_count for record in history.epochs]
    hook_ms = history.hook_ms() or [0.0]
    stages = _stage_counts(events)
    return {
        **metric_summary(trainer.objective, history, test),
        "run_id": run_id,
        "dataset": dataset,
        "static": config.run.static,
        "seed": config.run.seed,
        "params_initial": params[0] if params else 0,
        # The saved model's (host and fossilized seeds): the model final_test_accuracy measures.
        "params_final": trainer.saved_parameter_count(),
        "seeds_germinated": stages["germinated"],
        "seeds_fossilized": stages["fossilized"],
        "seeds_culled": stages["culled"],
        "epochs": len(history.epochs),
        "wall_seconds": wall_seconds,
        # Before the first epoch, and at the boundaries that made kernels for a grown host's new sites.
        "asset_wait_seconds": asset_wait + getattr(trainer.on_layout, "waited", 0.0),
        "first_germination_epoch": _first_germination_epoch(events),
        "hook_ms_p50": statistics.median(hook_ms),
        "hook_ms_p95": _percentile(hook_ms, 95),
        "hook_budget_ms": config.tolaria.hook_budget_ms,
        "isolation_violations": _isolation_violations(trainer),
        "seeds_in_flight_at_end": trainer.in_flight_seed_ids(),
        "rollbacks": history.rollbacks,
        "rollback_events": [record.to_dict() for record in history.rollback_log],
        "saved": history.saved.to_dict() if history.saved is not None else None,
        "cancelled": history.cancelled,
        "host": host or {},
        "config": config_to_dict(config),
    }


def metric_summary(objective: Objective, history: TrainingHistory, test: EpochStats | None) -> dict[str, Any]:
    """The summary's metric fields: its name and direction, the best validation and the test figure.

    `final_test_accuracy` and `best_val_accuracy` are filled for an accuracy run only.
    """
    metric = objective.metric
    best = metric.score(history.best_val_score) if history.epochs else 0.0
    test_metric = test.metric if test is not None else float("nan")
    direction = (
        lifecycle_pb2.METRIC_DIRECTION_HIGHER_IS_BETTER
        if metric.higher_is_better
        else lifecycle_pb2.METRIC_DIRECTION_LOWER_IS_BETTER
    )
    return {
        "final_test_accuracy": test_metric if objective.is_accuracy else 0.0,
        "best_val_accuracy": best if objective.is_accuracy else 0.0,
        "metric_name": metric.name,
        "metric_direction": lifecycle_pb2.MetricDirection.Name(direction),
        "final_test_metric": test_metric,
        "best_val_metric": best,
    }


_SUMMARY_FIELDS = frozenset(run_pb2.RunSummary.DESCRIPTOR.fields_by_name) | {"run_id", "dataset", "static"}


def _run_summary(summary: dict[str, Any]) -> run_pb2.RunSummary:
    fields = run_pb2.RunSummary.DESCRIPTOR.fields_by_name
    return run_pb2.RunSummary(**{key: value for key, value in summary.items() if key in fields})


def _stage_counts(events: RunEventLog) -> dict[str, int]:
    """How many seeds entered GERMINATED, FOSSILIZED and CULLED, from the recorded transitions."""
    entered = {
        lifecycle_pb2.SEED_STAGE_GERMINATED: "germinated",
        lifecycle_pb2.SEED_STAGE_FOSSILIZED: "fossilized",
        lifecycle_pb2.SEED_STAGE_CULLED: "culled",
    }
    counts = dict.fromkeys(entered.values(), 0)
    for event in events.events():
        if event.WhichOneof("payload") == "seed_transition" and event.seed_transition.to_stage in entered:
            counts[entered[event.seed_transition.to_stage]] += 1
    return counts


def _first_germination_epoch(events: RunEventLog) -> int | None:
    """The epoch whose boundary germinated the run's first seed; None if none germinated."""
    for event in events.events():
        if (
            event.WhichOneof("payload") == "seed_transition"
            and event.seed_transition.to_stage == lifecycle_pb2.SEED_STAGE_GERMINATED
        ):
            return int(event.seed_transition.epoch)
    return None


def _isolation_violations(trainer: TolariaTrainer) -> int:
    if trainer.kasmina is None:
        return 0
    return int(sum(seed.isolation_violations for seed in trainer.model.seed_list()))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _previous_run_id(folder: RunFolder) -> str | None:
    checkpoint = folder.path / CHECKPOINT_FILE
    return str(load_checkpoint(checkpoint)["run_id"]) if checkpoint.exists() else None


def _reset(folder: RunFolder) -> None:
    for path in (folder.metrics_path, folder.events_path, folder.summary_path, folder.report_path):
        path.unlink(missing_ok=True)
