"""Urza, Tezzeret and Urabrask in one process, over SQLite and a local folder.

Compilation and characterization run in background threads, so training never
waits for a compiler: it only sees kernels once Urabrask has validated them. At
start a run submits the Karn catalog's SAFE tier (or the configured templates),
instantiated at the activation shape of every seed site (esper.assets.pipeline).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable

from esper import pipelines
from esper.assets.config import AssetsConfig
from esper.assets.pipeline import SeedSite, prefetch_kernels
from esper.errors import FailedPrecondition
from esper.karn.catalog import TemplateCatalog
from esper.kasmina.config import KernelCacheConfig
from esper.kasmina.kernel_cache import KernelCache
from esper.tezzeret.config import TezzeretConfig, default_hardware_target
from esper.tezzeret.worker import TezzeretWorker
from esper.trust.kernel_signing import KernelSigner, TrustedSigners
from esper.urabrask.config import UrabraskConfig
from esper.urabrask.validator import UrabraskValidator
from esper.urza.config import UrzaConfig
from esper.urza.hub import UrzaHub

logger = logging.getLogger(__name__)

_MAX_COMPILE_SLOTS = 64
SIGNING_KEY_FILE = "pki/tezzeret-signing.key"


class EmbeddedAssets:
    """The asset pipeline of one embedded run; `with EmbeddedAssets(config) as assets: ...`."""

    def __init__(
        self, config: AssetsConfig, *, catalog: TemplateCatalog | None = None, device_kind: str = "cpu"
    ) -> None:
        self.config = config
        self.catalog = catalog if catalog is not None else TemplateCatalog.default()
        # Kernels for another kind of device live in their own cache: compile jobs are per
        # blueprint and pipeline, so one Urza serves one hardware target.
        root = config.data_path if device_kind == "cpu" else config.data_path / device_kind
        self.device_kind = device_kind
        root.mkdir(parents=True, exist_ok=True)
        # The cache's own compile worker key: every kernel here is signed by it and nothing else is loaded.
        self.signer = KernelSigner.load_or_create(root / SIGNING_KEY_FILE)
        self.trust = TrustedSigners.of(self.signer)
        self.urza = UrzaHub.open(
            UrzaConfig(data_dir=str(root), default_pipelines=tuple(pipelines.BY_NAME[p] for p in config.pipelines)),
            trust=self.trust,
        )
        self.kernel_cache = KernelCache(self.urza, KernelCacheConfig(), trust=self.trust)
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
                self.urza,
                UrabraskConfig(
                    worker_id=f"embedded-urabrask-{os.getpid()}-{index}",
                    hardware_target=default_hardware_target(self.device_kind),
                ),
                trust=self.trust,
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
                device=self.device_kind,
            )
            try:
                return TezzeretWorker(self.urza, config, signer=self.signer)
            except FailedPrecondition:
                continue  # another run holds this slot
        raise FailedPrecondition(f"all {_MAX_COMPILE_SLOTS} compile slots under {self._root} are in use")

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> threading.Thread:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def prefetch(self, sites: Iterable[SeedSite]) -> threading.Thread:
        """Warm the kernel cache for `sites` in the background, off the training path."""
        chosen = list(sites)
        return self._spawn("kernel-prefetch", lambda stop: prefetch_kernels(self.urza, self.kernel_cache, chosen, stop))

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
