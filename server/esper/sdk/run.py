"""What `esper.Trainer` and `esper.Session` share: a growing run over a researcher's model and data.

`SdkRun` wraps the model (unless it already is), resolves the device, builds the
objective, the embedded asset pipeline, Kasmina, Tamiyo and Tolaria's trainer exactly
as `esper run` does, and at the end writes the same run folder (when `out` is given)
and returns a `FitResult`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esper.errors import InvalidArgument
from esper.kasmina.morphable import MorphableModel
from esper.tamiyo.config import HEURISTIC_POLICY_ID
from esper.tolaria.batches import Batch, IterableData, first_input, to_device
from esper.tolaria.collaborators import (
    CollaboratorsFactory,
    RunCollaborators,
    collaborators_for_rank,
    embedded_collaborators,
)
from esper.tolaria.config import EsperConfig
from esper.tolaria.data_parallel import DataParallel, join, ranks_summary
from esper.tolaria.devices import device_kind, resolve_device
from esper.tolaria.events import RunEventLog
from esper.tolaria.objective import Objective
from esper.tolaria.runfolder import RunFolder, message_to_json
from esper.tolaria.session import new_run_id, prepare_folder
from esper.tolaria.trainer import EpochRecord, TolariaTrainer, TrainingHistory

STATIC_POLICY = "static"
POLICIES = (HEURISTIC_POLICY_ID, STATIC_POLICY)


@dataclass
class FitResult:
    """A finished run: the grown model (the best validated state), one dict per epoch, and summary.json's content."""

    model: MorphableModel
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    out: Path | None = None


def epoch_dict(record: EpochRecord) -> dict[str, Any]:
    """One epoch as metrics.jsonl holds it: losses, the metric, parameters, seed stages, wall time."""
    return {**message_to_json(record.metrics), "wall_seconds": round(record.wall_seconds, 4)}


class SdkRun:
    """One run of a researcher's model: set up in `__init__`, closed by `finish`."""

    def __init__(
        self,
        model: nn.Module,
        train_data: Iterable[Batch] | None,
        val_data: Iterable[Batch],
        *,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None,
        metric: Any,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None,
        epochs: int,
        policy: str,
        device: str | torch.device,
        out: str | Path | None,
        config: EsperConfig | None,
        test_data: Iterable[Batch] | None,
        example_input: Any,
        seed: int,
        services: CollaboratorsFactory = embedded_collaborators,
        distributed: bool | None = False,
    ) -> None:
        self.device = resolve_device(device)
        self.ranks = join_ranks(distributed, self.device)
        if self.ranks is not None:
            self.device = self.ranks.device
        # Rank 0 writes the run folder and runs the asset pipeline; other ranks read its store.
        writes = self.ranks is None or self.ranks.is_main
        self.config = check_arguments(policy=policy, epochs=epochs, seed=seed, config=config, out=out)
        # The asset pipeline builds kernels for the kind of device the model trains on.
        self.config = dataclasses.replace(
            self.config, run=dataclasses.replace(self.config.run, device=device_kind(self.device))
        )
        self.objective = Objective(loss_fn, metric)
        self.data = IterableData(train_data if train_data is not None else [], val_data, test_data)
        self.folder = RunFolder(Path(out).expanduser()) if out is not None and writes else None
        self.run_id = new_run_id() if self.ranks is None else self.ranks.broadcast(new_run_id())
        self.events = RunEventLog(self.run_id)
        if self.folder is not None:
            prepare_folder(self.folder, self.config, self.run_id, resume=False, events=self.events)
        torch.manual_seed(seed)
        example = to_device(example_input if example_input is not None else first_input(self.data), self.device)
        self._started = time.perf_counter()
        self.services: RunCollaborators | None = None
        self.asset_wait = 0.0
        if self.ranks is not None:
            services = collaborators_for_rank(self.ranks, self.config, services)
        self.trainer = self._trainer(model, example, optimizer, services)
        if self.ranks is not None:
            self.trainer.join_data_parallel(self.ranks)
        if self.folder is not None:
            self.trainer.on_epoch = _append_metrics(self.folder)

    def _trainer(
        self, model: nn.Module, example: Any, optimizer: Any, services: CollaboratorsFactory
    ) -> TolariaTrainer:
        from esper.kasmina import wrap
        from esper.tolaria.session import CHECKPOINT_FILE, growing_trainer

        checkpoint = self.folder.path / CHECKPOINT_FILE if self.folder is not None else None
        model = model.to(self.device)
        if self.config.run.static:
            host = model.host if isinstance(model, MorphableModel) else model
            static = MorphableModel(host, [], self.config.kasmina).to(self.device)
            return TolariaTrainer(
                static,
                None,
                self.config.run,
                self.config.tolaria,
                data=self.data,
                run_id=self.run_id,
                events=self.events,
                checkpoint_path=checkpoint,
                objective=self.objective,
                optimizer=optimizer,
                device=self.device,
            )
        wrapped = (
            model if isinstance(model, MorphableModel) else wrap(model, self.config.kasmina, example_input=example)
        )
        trainer, self.services, self.asset_wait = growing_trainer(
            wrapped,
            self.config,
            self.data,
            run_id=self.run_id,
            events=self.events,
            checkpoint_path=checkpoint,
            make_collaborators=services,
            objective=self.objective,
            device=self.device,
            optimizer=optimizer,
        )
        return trainer

    def finish(self, history: TrainingHistory) -> FitResult:
        """Evaluate on the test data (if any), write the run folder (if any), close the services.

        Adaptations still in flight are not part of the model (as `esper run` does not save
        them): they are locked ROLLED_BACK, so `FitResult.model` is exactly what
        `esper.save_model` writes.
        """
        from esper.kasmina.persistence import save_model
        from esper.tolaria.session import run_summary_dict, write_results

        try:
            test = self.trainer.test_stats()
            summary = run_summary_dict(
                self.run_id,
                self.config,
                "sdk",
                None,
                history,
                test,
                self.trainer,
                self.events,
                time.perf_counter() - self._started,
                self.asset_wait,
            )
            summary.update(ranks_summary(self.ranks, self.events.events(), self.trainer.model))
            self._retire_in_flight()
            if self.folder is not None:
                save_model(self.trainer.model, self.folder.path)
        finally:
            if self.services is not None:
                self.services.close()
            self.events.close()
            if self.ranks is not None:
                self.ranks.close()
        if self.folder is not None:
            write_results(self.folder, summary, "sdk", self.config.run.static, None)
        return FitResult(
            model=self.trainer.model,
            history=[epoch_dict(record) for record in history.epochs],
            summary=summary,
            out=self.folder.path if self.folder is not None else None,
        )

    def _retire_in_flight(self) -> None:
        kasmina = self.trainer.kasmina
        in_flight = self.trainer.in_flight_seed_ids()
        if kasmina is None or not in_flight:
            return
        kasmina.roll_back(in_flight, reason="the run ended before its adaptation finished: not part of the model")
        self.trainer.optimizers.sync()
        for transition in kasmina.drain_transitions():
            self.events.transition(transition)


def check_distributed(distributed: Any) -> None:
    if distributed is not None and not isinstance(distributed, bool):
        raise InvalidArgument.for_field("distributed", f"must be None, True or False, got {distributed!r}")


def join_ranks(distributed: bool | None, device: torch.device) -> DataParallel | None:
    """This process's rank for `distributed` (None: when torchrun started several processes, or a
    process group is set up; True: that must be so; False: train alone)."""
    check_distributed(distributed)
    if distributed is False:
        return None
    ranks = join(device)
    if ranks is None and distributed:
        raise InvalidArgument.for_field(
            "distributed",
            "is True but this process is not one of several: start the script with torchrun "
            "(torchrun --standalone --nproc-per-node N script.py) or set up a torch.distributed process group",
        )
    return ranks


def check_arguments(
    *, policy: str, epochs: int, seed: int, config: EsperConfig | None, out: str | Path | None
) -> EsperConfig:
    """The run's config from the arguments; InvalidArgument naming a bad one (`policy`, `run.epochs`, ...)."""
    if policy not in POLICIES:
        raise InvalidArgument.for_field("policy", f"must be one of {', '.join(POLICIES)}, got {policy!r}")
    if config is not None and not isinstance(config, EsperConfig):
        raise InvalidArgument.for_field(
            "config", f"must be an EsperConfig (esper.load_config), got {type(config).__name__}"
        )
    return _config(config, epochs=epochs, seed=seed, static=policy == STATIC_POLICY, out=out)


def _config(config: EsperConfig | None, *, epochs: int, seed: int, static: bool, out: str | Path | None) -> EsperConfig:
    """The run's EsperConfig: the given one (or the defaults) with this run's length, seed and mode.

    Without a config, the SDK does not wait for kernels before the first epoch: a seed
    germinates with the kernels already validated, and the first run on a new shape
    trains at once while they compile.
    """
    base = config if config is not None else EsperConfig()
    if config is None:
        base = dataclasses.replace(base, assets=dataclasses.replace(base.assets, wait_for_kernels=False))
    run = dataclasses.replace(
        base.run, epochs=epochs, seed=seed, static=static, out=str(out) if out is not None else None
    )
    return dataclasses.replace(base, run=run)


def _append_metrics(folder: RunFolder) -> Callable[[EpochRecord, TrainingHistory], None]:
    def write(record: EpochRecord, history: TrainingHistory) -> None:
        folder.append_metrics(record.metrics, wall_seconds=round(record.wall_seconds, 4))

    return write
