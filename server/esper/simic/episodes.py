"""Episodes: real short Esper runs played for Simic, in child processes.

An episode is `run_training` on one task with one seed and one policy: the embedded
run of `esper run`, kernels from the embedded asset cache, the run folder in a scratch
directory. Tamiyo records every boundary's transition in memory, and the episode
returns them with the run's summary. `policy` is "heuristic-v1", a degenerate
baseline ("never-germinate", "germinate-all"), a policy file path, or "static" for the
static twin. With `explore`, a learned policy samples its actions (seeded by
`explore_seed` and the epoch) instead of taking the most likely ones; without
`explore_decisions` it samples only its germinations.

`EpisodeWorkers` runs episodes in a pool of child processes (spawned, one torch thread
each), so a crash, a hang or torch's process-wide state stays out of Simic.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import multiprocessing
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper.leyline.v1 import policy_pb2
from esper.simic.curriculum import Task

logger = logging.getLogger(__name__)

STATIC = "static"


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode. `assets_dir` is the embedded asset cache (empty: Esper's shared one)."""

    task: Task
    seed: int
    policy: str
    explore: bool = False
    explore_decisions: bool = True
    explore_seed: int = 0
    record: bool = True
    assets_dir: str = ""
    tasks_dir: str = ""
    overrides: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class EpisodeResult:
    """What an episode measured. `transitions` are serialized PolicyTransitions in boundary order.

    Scores are the run's validation metric oriented so that higher is better (the accuracy
    of a classification run, a loss or bits per character negated), as Tamiyo reads them.
    `test_accuracy` is 0 for a run judged by another metric.
    """

    task: str
    seed: int
    policy: str
    best_val_score: float
    final_val_score: float
    test_accuracy: float
    params_initial: int
    params_final: int
    germinated: int
    fossilized: int
    culled: int
    rollbacks: int
    fallbacks: int
    wall_seconds: float
    transitions: tuple[bytes, ...] = field(default=(), repr=False)
    error: str = ""
    # Validation score of the model the run delivers (its best validated state when the
    # final one was worse); None when the run did not say.
    delivered_val_score: float | None = None

    @property
    def delivered(self) -> float:
        return self.delivered_val_score if self.delivered_val_score is not None else self.final_val_score

    def parsed_transitions(self) -> list[policy_pb2.PolicyTransition]:
        return [policy_pb2.PolicyTransition.FromString(data) for data in self.transitions]


class _Collector:
    """The transitions of one episode, in memory."""

    def __init__(self) -> None:
        self.items: list[bytes] = []

    def record(self, transition: policy_pb2.PolicyTransition) -> None:
        self.items.append(transition.SerializeToString(deterministic=True))


def episode_config(spec: EpisodeSpec, out: Path) -> Any:
    """The run config of an episode: Esper's defaults, the task, the seed, the policy."""
    from esper.config import load_config

    tasks_dir = Path(spec.tasks_dir or tempfile.gettempdir()) / "tasks"
    overrides: dict[str, Any] = {
        "run.dataset": spec.task.dataset(tasks_dir),
        "run.epochs": spec.task.epochs,
        "run.seed": spec.seed,
        "run.host_width": spec.task.host_width,
        "run.static": spec.policy == STATIC,
        "run.out": str(out),
        # The deterministic mode: an episode, its static twin and its baseline see the same
        # kernels however fast the machine compiles (the shared cache makes it free after the first).
        "assets.wait_for_kernels": True,
    }
    if spec.assets_dir:
        overrides["assets.data_dir"] = spec.assets_dir
    if spec.policy not in (STATIC,):
        overrides["tamiyo.policy_id"] = spec.policy if _is_learned(spec.policy) else "heuristic-v1"
    overrides.update(dict(spec.overrides))
    return load_config(None, overrides)


def _is_learned(policy: str) -> bool:
    from esper.simic.baselines import BASELINES

    return policy not in BASELINES and policy not in ("heuristic-v1", STATIC)


def play(spec: EpisodeSpec) -> EpisodeResult:
    """Play one episode in this process."""
    from esper.tolaria.session import run_training

    started = time.perf_counter()
    collector = _Collector()
    with tempfile.TemporaryDirectory(prefix="esper-episode-") as scratch:
        out = Path(scratch) / "run"
        config = episode_config(spec, out)
        controllers: list[Any] = []
        factory = _services(spec, collector if spec.record else None, controllers)
        result = run_training(config, collaborators=factory)
        summary = result.summary
        metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    fallbacks = 0
    if controllers:
        from esper.leyline.v1 import tamiyo_pb2

        fallbacks = int(controllers[0].get_status(tamiyo_pb2.GetStatusRequest()).policy_fallbacks)
    scores = run_scores(summary, metrics)
    return EpisodeResult(
        task=spec.task.name,
        seed=spec.seed,
        policy=spec.policy,
        best_val_score=scores.best,
        final_val_score=scores.final,
        test_accuracy=float(summary["final_test_accuracy"]),
        params_initial=int(summary["params_initial"]),
        params_final=int(summary["params_final"]),
        germinated=int(summary["seeds_germinated"]),
        fossilized=int(summary["seeds_fossilized"]),
        culled=int(summary["seeds_culled"]),
        rollbacks=_count(summary.get("rollbacks")),
        fallbacks=fallbacks,
        wall_seconds=time.perf_counter() - started,
        transitions=tuple(collector.items),
        delivered_val_score=scores.delivered,
    )


@dataclass(frozen=True)
class RunScores:
    """A run's validation scores: its best, its last epoch's and its delivered model's (None: not said)."""

    best: float
    final: float
    delivered: float | None


def run_scores(summary: dict[str, Any], metrics: list[dict[str, Any]]) -> RunScores:
    """The scores of a run folder's summary.json and metrics.jsonl rows: metrics negated when lower is better."""
    sign = -1.0 if summary.get("metric_direction") == "METRIC_DIRECTION_LOWER_IS_BETTER" else 1.0
    saved = summary.get("saved") or {}
    return RunScores(
        best=sign * float(summary["best_val_metric"]),
        final=sign * float(metrics[-1]["val_metric"]) if metrics else 0.0,
        delivered=sign * float(saved["val_metric"]) if "val_metric" in saved else None,
    )


def _count(value: Any) -> int:
    """A summary's count that is a number, or a list of what it counts."""
    if isinstance(value, list | tuple):
        return len(value)
    return int(value or 0)


def _services(spec: EpisodeSpec, sink: _Collector | None, controllers: list[Any]) -> Any:
    """Esper's embedded services, with Tamiyo recording transitions and playing the episode's policy."""
    from esper.simic.baselines import baseline_policy
    from esper.tamiyo import TamiyoController
    from esper.tamiyo.policies import find_artifact, learned_policy
    from esper.tolaria.collaborators import embedded_collaborators

    def factory(config: Any) -> Any:
        services = embedded_collaborators(config)
        kernels = services.urza

        def make_controller(model: Any) -> Any:
            policy = baseline_policy(spec.policy, config.tamiyo)
            if policy is None and _is_learned(spec.policy):
                artifact = find_artifact(spec.policy)
                if artifact is None:
                    raise ValueError(f"episode policy {spec.policy!r} not found")
                policy = learned_policy(
                    artifact,
                    config.tamiyo,
                    sample=spec.explore,
                    sample_decisions=spec.explore_decisions,
                    seed=spec.explore_seed,
                )
            controller = TamiyoController(model, config.tamiyo, kernels=kernels, transitions=sink, policy=policy)
            controllers.append(controller)
            return controller

        def prefetch(sites: Any) -> object:
            # Load once, here, not in the background: a kernel load in a thread beside the training
            # thread can break torch's process-wide fx annotation state (KeyError 'custom' in
            # zero_grad, seen here). The kernels are all validated already (the deterministic mode);
            # Esper's own prefetch follows the asset pipeline until the run ends, and joining it hung
            # every episode.
            from esper.assets.pipeline import prefetch_kernels

            prefetch_kernels(services.urza, services.kernel_cache, sites, threading.Event())
            return None

        return dataclasses.replace(services, make_controller=make_controller, prefetch=prefetch)

    return factory


def _play_safely(spec: EpisodeSpec) -> EpisodeResult:
    try:
        return play(spec)
    except Exception as exc:  # an episode that fails is reported, and the others go on
        logger.exception("episode %s seed %d (%s) failed", spec.task.name, spec.seed, spec.policy)
        return EpisodeResult(
            task=spec.task.name,
            seed=spec.seed,
            policy=spec.policy,
            best_val_score=0.0,
            final_val_score=0.0,
            test_accuracy=0.0,
            params_initial=0,
            params_final=0,
            germinated=0,
            fossilized=0,
            culled=0,
            rollbacks=0,
            fallbacks=0,
            wall_seconds=0.0,
            error=f"{type(exc).__name__}: {exc}"[:500],
        )


def _initialize_worker() -> None:
    import torch

    torch.set_num_threads(1)
    logging.getLogger().setLevel(logging.WARNING)


class EpisodeWorkers:
    """A pool of child processes that play episodes; results come back in the order of the specs."""

    def __init__(self, workers: int = 1, *, timeout_seconds: float = 900.0) -> None:
        self._timeout = timeout_seconds
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_initialize_worker,
        )

    def play(self, specs: Iterable[EpisodeSpec]) -> Iterator[EpisodeResult]:
        futures = [self._pool.submit(_play_safely, spec) for spec in specs]
        for future in futures:
            yield future.result(timeout=self._timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EpisodeWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
