"""Urza, Tezzeret and Urabrask in one process, over SQLite and a local folder.

Compilation and characterization run in background threads, so training never
waits for a compiler: it only sees kernels once Urabrask has validated them. At
start the pipeline submits the Karn catalog's SAFE tier (or the configured
templates), instantiated at the activation shape of every seed site.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from esper.assets.config import AssetsConfig
from esper.errors import EsperError, FailedPrecondition, InvalidArgument
from esper.karn.catalog import TemplateCatalog
from esper.kasmina.config import KernelCacheConfig
from esper.kasmina.kernel_cache import KernelCache
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.tezzeret.config import TezzeretConfig
from esper.tezzeret.worker import TezzeretWorker
from esper.urabrask.config import UrabraskConfig
from esper.urabrask.validator import UrabraskValidator
from esper.urza.config import UrzaConfig
from esper.urza.hub import UrzaHub

logger = logging.getLogger(__name__)

_PIPELINES = {
    "fast": kernel_pb2.COMPILATION_PIPELINE_FAST,
    "standard": kernel_pb2.COMPILATION_PIPELINE_STANDARD,
    "aggressive": kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE,
}
_MAX_COMPILE_SLOTS = 64
_SETTLED = {
    blueprint_pb2.BLUEPRINT_STATUS_VALIDATED,
    blueprint_pb2.BLUEPRINT_STATUS_FAILED,
    blueprint_pb2.BLUEPRINT_STATUS_REJECTED,
}


@dataclass(frozen=True)
class SeedSite:
    """An activation a seed sits on: the kernels it can take must consume this shape."""

    input_kind: blueprint_pb2.InputKind
    input_shape: tuple[int, ...]


class EmbeddedAssets:
    """The asset pipeline of one embedded run; `with EmbeddedAssets(config) as assets: ...`."""

    def __init__(self, config: AssetsConfig, *, catalog: TemplateCatalog | None = None) -> None:
        self.config = config
        self.catalog = catalog if catalog is not None else TemplateCatalog.default()
        root = Path(config.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.urza = UrzaHub.open(
            UrzaConfig(data_dir=str(root), default_pipelines=tuple(_PIPELINES[p] for p in config.pipelines))
        )
        self.kernel_cache = KernelCache(self.urza, KernelCacheConfig())
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._workers: list[TezzeretWorker] = []
        self._root = root

    def start(self) -> None:
        """Start the compile and validation workers in background threads."""
        for _ in range(self.config.compile_workers):
            worker = self._claim_compile_slot()
            self._workers.append(worker)
            self._spawn(worker.config.worker_id, worker.run_forever)
        for index in range(self.config.validation_workers):
            validator = UrabraskValidator(
                self.urza, UrabraskConfig(worker_id=f"embedded-urabrask-{os.getpid()}-{index}")
            )
            self._spawn(f"urabrask-{index}", validator.run_forever)

    def _claim_compile_slot(self) -> TezzeretWorker:
        """A worker on the first free slot: its write-ahead log is locked while the run lasts.

        Slots keep worker ids stable across runs (a crashed run's job is resumed by the
        next run on the same slot) while concurrent runs on one cache get distinct slots.
        """
        for slot in range(_MAX_COMPILE_SLOTS):
            if any(worker.config.worker_id.endswith(f"-{slot}") for worker in self._workers):
                continue
            config = TezzeretConfig(
                worker_id=f"embedded-tezzeret-{slot}",
                wal_dir=self._root / "tezzeret" / f"slot-{slot}",
                work_dir=self._root / "tezzeret" / f"slot-{slot}" / "work",
                poll_interval_seconds=0.2,
            )
            try:
                return TezzeretWorker(self.urza, config)
            except FailedPrecondition:
                continue  # another run holds this slot
        raise FailedPrecondition(f"all {_MAX_COMPILE_SLOTS} compile slots under {self._root} are in use")

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> threading.Thread:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def submit_catalog(self, sites: Iterable[SeedSite]) -> list[str]:
        """Submit the configured templates at every distinct site shape; returns blueprint ids."""
        blueprint_ids: list[str] = []
        for site in sorted(set(sites), key=lambda s: (s.input_kind, s.input_shape)):
            for template in self._templates_for(site):
                response = self.urza.create_blueprint(
                    urza_pb2.CreateBlueprintRequest(
                        ir=template.ir,
                        template_id=template.template_id,
                        name=template.name,
                        tier=template.tier,
                        tags=list(template.tags),
                    )
                )
                if response.blueprint.blueprint_id not in blueprint_ids:
                    blueprint_ids.append(response.blueprint.blueprint_id)
        logger.info("asset pipeline: %d blueprint(s) submitted", len(blueprint_ids))
        return blueprint_ids

    def _templates_for(self, site: SeedSite) -> list[blueprint_pb2.BlueprintTemplate]:
        if not self.config.template_ids:
            return self.catalog.query(
                input_kind=site.input_kind,
                input_shape=site.input_shape,
                tiers=[blueprint_pb2.BLUEPRINT_TIER_SAFE],
                limit=1000,
            )
        templates = []
        for template_id in self.config.template_ids:
            try:
                templates.append(self.catalog.instantiate(template_id, site.input_shape))
            except InvalidArgument as exc:
                logger.info("template %s does not fit %s: %s", template_id, site.input_shape, exc)
        return templates

    def pending(self, blueprint_ids: Sequence[str]) -> list[str]:
        """The blueprints not yet VALIDATED, FAILED or REJECTED."""
        waiting = []
        for blueprint_id in blueprint_ids:
            request = urza_pb2.GetBlueprintRequest(blueprint_id=blueprint_id)
            if self.urza.get_blueprint(request).blueprint.status not in _SETTLED:
                waiting.append(blueprint_id)
        return waiting

    def wait_until_settled(
        self, blueprint_ids: Sequence[str], *, timeout: float, poll: float = 0.25
    ) -> float:
        """Block until every blueprint is settled or `timeout` passes; returns seconds waited."""
        start = time.monotonic()
        waiting = list(blueprint_ids)
        while waiting:
            waiting = self.pending(waiting)
            if not waiting or time.monotonic() - start > timeout:
                break
            time.sleep(poll)
        if waiting:
            logger.warning("asset pipeline: %d blueprint(s) unsettled after %.0f s", len(waiting), timeout)
        return time.monotonic() - start

    def prefetch(self, sites: Iterable[SeedSite]) -> threading.Thread:
        """Load the validated kernels that fit `sites` into the kernel cache, in the background.

        Off the training path: a later germination then grafts from a hot cache.
        """
        queries = [
            kernel_pb2.KernelQuery(
                status=kernel_pb2.KERNEL_STATUS_VALIDATED,
                input_kind=site.input_kind,
                input_shape=blueprint_pb2.TensorShape(dims=site.input_shape),
            )
            for site in set(sites)
        ]

        def load_all(stop: threading.Event) -> None:
            for query in queries:
                response = self.urza.query_kernels(urza_pb2.QueryKernelsRequest(query=query, page_size=1000))
                for kernel in response.result.kernels:
                    if stop.is_set():
                        return
                    try:
                        self.kernel_cache.load(kernel.kernel_id)
                    except EsperError as exc:
                        logger.info("prefetch of %s failed: %s", kernel.kernel_id, exc)

        return self._spawn("kernel-prefetch", load_all)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        for worker in self._workers:
            worker.close()
        self._workers.clear()
        self.urza.close()

    def __enter__(self) -> EmbeddedAssets:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
