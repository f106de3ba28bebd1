"""One embedded training run, end to end: what `esper run` and the SDK's defaults do.

data -> host -> (seeds, asset pipeline, Tamiyo) -> Tolaria -> run folder with
metrics, events, lineage, the model, a summary and report.png. Everything runs in
this process; kernels compile in background threads of the embedded asset pipeline.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esper.data import load_dataset
from esper.data.bundle import Dataset
from esper.hosts import build_host, default_host_spec
from esper.hosts.spec import HostSpec
from esper.kasmina.persistence import save_model
from esper.leyline.v1 import lifecycle_pb2, run_pb2
from esper.tolaria.checkpoint import load_checkpoint
from esper.tolaria.config import EsperConfig, config_to_dict
from esper.tolaria.events import RunEventLog
from esper.tolaria.report import render_report
from esper.tolaria.runfolder import RunFolder
from esper.tolaria.services import RunServices, ServicesFactory, embedded_services
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
    services: ServicesFactory = embedded_services,
    events: RunEventLog | None = None,
    on_trainer: Callable[[TolariaTrainer], None] | None = None,
) -> RunResult:
    """Train one run into `config.run.out`; `resume` continues from its last checkpoint.

    `events` lets a host process (the Tolaria server) hold the run's event log to
    stream it; `on_trainer` hands it the trainer before training starts (for example
    to serve the run's Kasmina operator over gRPC).
    """
    out = config.run.require_out()
    folder = RunFolder(out)
    run_id = run_id or (_previous_run_id(folder) if resume else None) or new_run_id()
    data = load_dataset(config.run.dataset, seed=config.run.seed, validation_fraction=config.run.validation_fraction)
    spec = default_host_spec(
        data.input_kind, data.input_shape, data.num_classes, config.run.host_width, init_seed=config.run.seed
    )
    events = _prepare_folder(folder, config, run_id, resume=resume, events=events)
    started = time.perf_counter()
    if config.run.static:
        trainer, asset_wait = _static_trainer(config, spec, data, run_id, events, folder), 0.0
        running: RunServices | None = None
    else:
        trainer, running, asset_wait = _morphogenetic_trainer(config, spec, data, run_id, events, folder, services)
    try:
        trainer.on_epoch = _chain(_metrics_writer(folder), on_epoch)
        trainer.should_stop = should_stop or (lambda: False)
        if resume and (out / CHECKPOINT_FILE).exists():
            trainer.resume(out / CHECKPOINT_FILE)
        if on_trainer is not None:
            on_trainer(trainer)
        _, history = trainer.train()
        test = trainer.test_accuracy()
        save_model(trainer.model, out, host_spec=spec)
    finally:
        if running is not None:
            running.close()
        events.close()
    summary = _summary(
        run_id,
        config,
        data,
        spec,
        history,
        test.accuracy,
        trainer,
        events,
        time.perf_counter() - started,
        asset_wait,
    )
    _write_results(folder, summary, data.name, config.run.static, baseline_dir)
    return RunResult(run_id=run_id, out_dir=out, summary=summary)


def _write_results(
    folder: RunFolder, summary: dict[str, Any], dataset: str, static: bool, baseline_dir: Path | None
) -> None:
    """summary.json (compared with the static baseline's when there is one) and report.png."""
    baseline = RunFolder(baseline_dir).read_summary() if baseline_dir is not None else None
    if baseline is not None:
        summary["baseline"] = {
            "final_test_accuracy": baseline.get("final_test_accuracy"),
            "params_final": baseline.get("params_final"),
            "out_dir": str(baseline_dir),
        }
        summary["growth_beat_static"] = bool(
            summary["final_test_accuracy"] > float(baseline.get("final_test_accuracy", 1.0))
        )
    extra = {key: value for key, value in summary.items() if key not in _SUMMARY_FIELDS}
    folder.write_summary(_run_summary(summary), run_id=summary["run_id"], dataset=dataset, static=static, **extra)
    render_report(folder.path, baseline_metrics=baseline_dir)


def _prepare_folder(
    folder: RunFolder, config: EsperConfig, run_id: str, *, resume: bool, events: RunEventLog | None
) -> RunEventLog:
    """A fresh run folder (kept as is when resuming) with its config, and the event log writing into it."""
    if not resume:
        _reset(folder)
    folder.write_config(config)
    events = events if events is not None else RunEventLog(run_id)
    events.add_sink(folder.append_event)
    return events


def _static_trainer(
    config: EsperConfig, spec: HostSpec, data: Dataset, run_id: str, events: RunEventLog, folder: RunFolder
) -> TolariaTrainer:
    from esper.kasmina import MorphableModel

    # A morphable model with no seeds: the same host, saved and reloaded like a grown one.
    model = MorphableModel(build_host(spec), [], config.kasmina)
    return TolariaTrainer(
        model,
        None,
        config.run,
        config.tolaria,
        data=data,
        run_id=run_id,
        events=events,
        checkpoint_path=folder.path / CHECKPOINT_FILE,
    )


def _morphogenetic_trainer(
    config: EsperConfig,
    spec: HostSpec,
    data: Dataset,
    run_id: str,
    events: RunEventLog,
    folder: RunFolder,
    make_services: ServicesFactory,
) -> tuple[TolariaTrainer, RunServices, float]:
    from esper.assets import SeedSite, submit_templates, wait_until_settled
    from esper.karn.catalog import TemplateCatalog
    from esper.kasmina import KasminaOperator, wrap
    from esper.kasmina.source import CachedKernelSource

    model = wrap(build_host(spec), config.kasmina, example_input=data.x_train[:2])
    services = make_services(config)
    if services.publish_event is not None:
        events.add_sink(services.publish_event, replay=True)
    try:
        sites = [SeedSite.of(d) for d in model.seed_layout()]
        blueprint_ids = submit_templates(services.urza, TemplateCatalog.default(), config.assets.template_ids, sites)
        events.notice(
            f"asset pipeline ({services.description}): {len(blueprint_ids)} blueprint(s) for {len(sites)} seed site(s)"
        )
        waited = 0.0
        if config.assets.wait_for_kernels:
            # Before the first epoch, not on the training path: the run then sees the same
            # kernels whatever the machine's load, which keeps a seed's run repeatable.
            waited = wait_until_settled(services.urza, blueprint_ids, timeout=config.assets.wait_timeout_seconds)
            events.notice(f"asset pipeline: kernels characterized after {waited:.1f} s")
        services.prefetch(sites)
        operator = KasminaOperator(
            model, CachedKernelSource(services.kernel_cache, services.urza), config.kasmina, run_id=run_id
        )
        trainer = TolariaTrainer(
            model,
            services.make_controller(model),
            config.run,
            config.tolaria,
            data=data,
            kasmina=operator,
            run_id=run_id,
            events=events,
            checkpoint_path=folder.path / CHECKPOINT_FILE,
            on_boundary=services.publish,
        )
    except BaseException:
        services.close()
        raise
    return trainer, services, waited


def _metrics_writer(folder: RunFolder) -> EpochCallback:
    def write(record: EpochRecord, history: TrainingHistory) -> None:
        folder.append_metrics(record.metrics, wall_seconds=round(record.wall_seconds, 4))

    return write


def _chain(*callbacks: EpochCallback | None) -> EpochCallback:
    def call(record: EpochRecord, history: TrainingHistory) -> None:
        for callback in callbacks:
            if callback is not None:
                callback(record, history)

    return call


def _summary(
    run_id: str,
    config: EsperConfig,
    data: Dataset,
    spec: HostSpec,
    history: TrainingHistory,
    test_accuracy: float,
    trainer: TolariaTrainer,
    events: RunEventLog,
    wall_seconds: float,
    asset_wait: float,
) -> dict[str, Any]:
    params = [record.metrics.parameter_count for record in history.epochs]
    hook_ms = history.hook_ms() or [0.0]
    stages = _stage_counts(events)
    return {
        "run_id": run_id,
        "dataset": data.name,
        "static": config.run.static,
        "seed": config.run.seed,
        "final_test_accuracy": test_accuracy,
        "best_val_accuracy": history.best_val_accuracy,
        "params_initial": params[0] if params else 0,
        # The saved model's (host and fossilized seeds): the model final_test_accuracy measures.
        "params_final": trainer.saved_parameter_count(),
        "seeds_germinated": stages["germinated"],
        "seeds_fossilized": stages["fossilized"],
        "seeds_culled": stages["culled"],
        "epochs": len(history.epochs),
        "wall_seconds": wall_seconds,
        "asset_wait_seconds": asset_wait,
        "hook_ms_p50": statistics.median(hook_ms),
        "hook_ms_p95": _percentile(hook_ms, 95),
        "hook_budget_ms": config.tolaria.hook_budget_ms,
        "isolation_violations": _isolation_violations(trainer),
        "seeds_in_flight_at_end": trainer.in_flight_seed_ids(),
        "rollbacks": history.rollbacks,
        "rollback_events": [record.to_dict() for record in history.rollback_log],
        "saved": history.saved.to_dict() if history.saved is not None else None,
        "cancelled": history.cancelled,
        "host": dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else {},
        "config": config_to_dict(config),
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
