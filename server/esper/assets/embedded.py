"""Urza, Tezzeret and Urabrask in one process, over SQLite and a local folder.

Training never waits for a compiler and never shares torch.export's process-wide
state with one: every compile runs in a child process forked from a warm fork server
(esper.tezzeret.forked), and every characterization in a sandbox process forked
from another (esper.urabrask.sandbox.ForkedSandbox).
The threads here only claim jobs, write logs and move bytes. At start a run submits
the Karn catalog's SAFE tier (or the configured templates), instantiated at the
activation shape of every seed site (esper.assets.pipeline), and names them in the
order its Tamiyo would take them (`prioritize`): the compile workers take those
first, FAST kernels before any better pipeline. `prefetch` keeps loading what is
validated into the kernel cache while the run trains.

Kernels are built, measured and loaded for the run's kind of device (`device_kind`):
the compile and sandbox children build and run them there, and the store is that kind's.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence

from esper import pipelines
from esper.assets.config import AssetsConfig
from esper.assets.pipeline import SeedSite, follow_kernels
from esper.errors import FailedPrecondition
from esper.forkserver import ForkServer
from esper.kasmina.config import KernelCacheConfig
from esper.kasmina.kernel_cache import KernelCache
from esper.tezzeret.config import DEVICE_KINDS, TezzeretConfig, default_hardware_target
from esper.tezzeret.forked import ForkedCompiler, compile_server
from esper.tezzeret.pipelines import CompileError, CompileInterrupted
from esper.tezzeret.worker import TezzeretWorker
from esper.trust.kernel_signing import KernelSigner, TrustedSigners
from esper.urabrask.config import UrabraskConfig
from esper.urabrask.sandbox import ForkedSandbox
from esper.urabrask.validator import UrabraskValidator
from esper.urza.config import UrzaConfig
from esper.urza.hub import UrzaHub

logger = logging.getLogger(__name__)

_MAX_COMPILE_SLOTS = 64
SIGNING_KEY_FILE = "pki/tezzeret-signing.key"


class EmbeddedAssets:
    """The asset pipeline of one embedded run; `with EmbeddedAssets(config) as assets: ...`."""

    def __init__(self, config: AssetsConfig, *, device_kind: str = "cpu") -> None:
        if device_kind not in DEVICE_KINDS:
            raise ValueError(f"device_kind must be one of {DEVICE_KINDS}, got {device_kind!r}")
        self.config = config
        self.device_kind = device_kind
        self.hardware_target = default_hardware_target(device_kind)
        # Kernels for another kind of device live in their own cache: compile jobs are per
        # blueprint and pipeline, so one Urza serves one hardware target.
        root = config.data_path if device_kind == "cpu" else config.data_path / device_kind
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
        self._compile_forks: ForkServer | None = None
        self._sandbox: ForkedSandbox | None = None
        self._preferred: tuple[str, ...] = ()
        self._slots = threading.Lock()
        self._toolchain_hash: str | None = None

    def start(self) -> None:
        """Start the compile and validation workers in background threads; returns at once.

        Each compile worker takes its slot and learns its toolchain hash in its own thread
        (the hash is computed in a child: it imports Inductor), so the run starts at once.
        """
        self._compile_forks = compile_server(f"tezzeret-forks-{os.getpid()}")
        self._compile_forks.start()
        for index in range(self.config.compile_workers):
            self._spawn(f"tezzeret-{index}", self._compile)
        self._sandbox = ForkedSandbox(name=f"urabrask-forks-{os.getpid()}")
        self._sandbox.start()
        for index in range(self.config.validation_workers):
            validator = UrabraskValidator(
                self.urza,
                UrabraskConfig(
                    worker_id=f"embedded-urabrask-{os.getpid()}-{index}",
                    hardware_target=self.hardware_target,
                    device=self.device_kind,
                ),
                characterize=self._sandbox,
                trust=self.trust,
            )
            self._spawn(f"urabrask-{index}", validator.run_forever)

    def prioritize(self, blueprint_ids: Sequence[str]) -> None:
        """Compile these blueprints before any other, in this order (FAST kernels of all of them first)."""
        self._preferred = tuple(dict.fromkeys(blueprint_ids))[:1000]

    def _preferred_ids(self) -> Sequence[str]:
        return self._preferred

    def _compile(self, stop: threading.Event) -> None:
        """A compile worker's thread: take a slot, then claim and compile until `stop`."""
        assert self._compile_forks is not None
        try:
            worker = self._claim_compile_slot(self._compile_forks)
        except CompileInterrupted:
            return  # stopped before the worker was ready
        except (FailedPrecondition, CompileError) as exc:
            logger.warning("no compile worker for this run: %s", exc)
            return
        if not stop.is_set():
            worker.run_forever(stop)

    def _claim_compile_slot(self, forks: ForkServer) -> TezzeretWorker:
        """A worker on the first free slot: its write-ahead log is locked while the run lasts.

        Slots keep worker ids stable across runs (a crashed run's job is resumed by the
        next run on the same slot) while concurrent runs on one cache get distinct slots.
        """
        with self._slots:
            for slot in range(_MAX_COMPILE_SLOTS):
                if any(worker.config.worker_id.endswith(f"-{slot}") for worker in self._workers):
                    continue
                worker = self._worker_on_slot(forks, slot)
                if worker is not None:
                    self._workers.append(worker)
                    return worker
        raise FailedPrecondition(f"all {_MAX_COMPILE_SLOTS} compile slots under {self._root} are in use")

    def _worker_on_slot(self, forks: ForkServer, slot: int) -> TezzeretWorker | None:
        """A worker holding `slot`, or None when another run holds it."""
        slot_dir = self._root / "tezzeret" / f"slot-{slot}"
        config = TezzeretConfig(
            worker_id=f"embedded-tezzeret-{slot}",
            wal_dir=slot_dir,
            work_dir=slot_dir / "work",
            poll_interval_seconds=0.2,
            hardware_target=self.hardware_target,
            device=self.device_kind,
        )
        compiler = ForkedCompiler(forks, slot_dir / "requests")
        try:
            return TezzeretWorker(
                self.urza,
                config,
                compiler=compiler,
                signer=self.signer,
                preferred=self._preferred_ids,
                toolchain=self._toolchain(compiler, config),
            )
        except FailedPrecondition:
            return None  # another run holds this slot

    def _toolchain(self, compiler: ForkedCompiler, config: TezzeretConfig) -> str:
        """The workers' toolchain hash, computed once in a child (Inductor's import stays out of here)."""
        if self._toolchain_hash is None:
            self._toolchain_hash = compiler.toolchain_hash(config)
        return self._toolchain_hash

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> threading.Thread:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def prefetch(self, sites: Iterable[SeedSite]) -> threading.Thread:
        """Keep the kernel cache warm for `sites` in the background, off the training path, until `stop`."""
        chosen = list(sites)
        return self._spawn(
            "kernel-prefetch",
            lambda stop: follow_kernels(self.urza, self.kernel_cache, chosen, stop, device_kind=self.device_kind),
        )

    def stop(self) -> None:
        """Stop every worker; a compile in flight is cut short and queued again for the next run.

        A characterization in flight (a second or two from a warm fork) is let finish, so its
        kernel is not left leased to a validator that is gone.
        """
        self._stop.set()
        if self._compile_forks is not None:
            self._compile_forks.close()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        if self._sandbox is not None:
            self._sandbox.close()
        with self._slots:
            for worker in self._workers:
                worker.close()
            self._workers.clear()
        self.urza.close()

    def __enter__(self) -> EmbeddedAssets:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
