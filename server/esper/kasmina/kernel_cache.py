"""Kasmina's kernel cache: verified kernel artifacts, loaded once, kept in an LRU.

A miss fetches the artifact from Urza (in-process or over gRPC, through the
`UrzaServiceApi` protocol), verifies its SHA-256 and its compile worker's Ed25519
signature against the trusted keys before anything reads it (an unsigned kernel,
or one signed by a key not trusted here, is refused: Urza only stores what it is
sent), loads it with `esper.tezzeret.artifacts.load_kernel_module` (format check,
then torch.export, never pickle) and keeps
the loaded module: loading costs tens of milliseconds, which the training path must
not pay twice. Entries are evicted least recently used first, bounded both by count
and by bytes.

Seeds train their kernel's parameters, so a seed never runs the cached module
itself: `instantiate` gives it a private copy whose parameters are its own, made by
copying the module's structure and cloning only its tensors (tens of microseconds,
where `copy.deepcopy` of an exported program takes over a millisecond because it
recompiles the graph's code).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import types
from collections import OrderedDict
from dataclasses import dataclass

from torch import nn

from esper.errors import DataLoss, EsperError, FailedPrecondition
from esper.kasmina.config import KernelCacheConfig
from esper.leyline.v1 import kernel_pb2
from esper.leyline.v1.services import UrzaServiceApi
from esper.tezzeret.artifacts import load_kernel_module
from esper.trust.kernel_signing import KernelSignatureError, TrustedSigners
from esper.urza.fetch import download_kernel_bytes

logger = logging.getLogger(__name__)

# Hook tables are copied per instance so hooks a seed registers stay its own.
_HOOK_TABLES = (
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_backward_pre_hooks",
    "_backward_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


@dataclass(frozen=True)
class LoadedKernel:
    """A loaded kernel: its metadata and the program module shared through the cache.

    Never train `module` or attach state to it; `KernelCache.instantiate` gives each
    seed a private copy.
    """

    artifact: kernel_pb2.KernelArtifact
    module: nn.Module
    size_bytes: int


@dataclass(frozen=True)
class KernelCacheStats:
    """Counters since the cache was made. `misses` counts loads that had to wait for a fetch."""

    entries: int
    bytes: int
    hits: int
    misses: int
    evictions: int
    checksum_failures: int
    load_failures: int
    hit_rate: float
    signature_failures: int = 0


class _Flight:
    """One fetch in progress; concurrent loads of the same kernel wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: LoadedKernel | None = None
        self.error: BaseException | None = None


class KernelCache:
    """LRU of loaded kernels, bounded by count and bytes; thread-safe, one fetch per kernel at a time."""

    def __init__(
        self, urza: UrzaServiceApi, config: KernelCacheConfig | None = None, *, trust: TrustedSigners | None = None
    ) -> None:
        self._urza = urza
        self.config = config if config is not None else KernelCacheConfig()
        self._trust = trust
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, LoadedKernel] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._checksum_failures = 0
        self._signature_failures = 0
        self._load_failures = 0

    def load(self, kernel_id: str) -> LoadedKernel:
        """The loaded kernel, from memory or fetched, verified and loaded on a miss.

        Raises DataLoss (CHECKSUM_MISMATCH) when the bytes fail their checksum (nothing
        is loaded or cached), FailedPrecondition when the kernel is not VALIDATED or its
        artifact does not load, and whatever Urza raises (e.g. NotFound).
        """
        with self._lock:
            entry = self._entries.get(kernel_id)
            if entry is not None:
                self._entries.move_to_end(kernel_id)
                self._hits += 1
                return entry
            self._misses += 1
            flight = self._flights.get(kernel_id)
            leader = flight is None
            if flight is None:
                flight = self._flights[kernel_id] = _Flight()
        if not leader:
            return _await(flight)
        try:
            entry = self._fetch(kernel_id)
            flight.result = entry
            with self._lock:
                self._insert(entry)
            return entry
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[kernel_id]
            flight.done.set()

    def instantiate(self, kernel_id: str, *, check_inputs: bool = True) -> nn.Module:
        """A private, trainable module for one seed: the kernel's program with its own parameters.

        An exported program checks every call's input against its shape constraints,
        which costs about as much as the forward pass of a small block (tens of
        microseconds). A caller that has matched the seed's activation shape to the
        kernel's `input_shape` once may pass `check_inputs=False`; a wrong shape then
        fails inside the first op that cannot take it, with a less helpful message.
        """
        module = private_copy(self.load(kernel_id).module)
        state = vars(module)
        if not check_inputs and "validate_inputs" in state:
            state["validate_inputs"] = False
        return module

    def evict(self, kernel_id: str) -> bool:
        """Drop a kernel (e.g. one that failed at run time); True if it was cached."""
        with self._lock:
            entry = self._entries.pop(kernel_id, None)
            if entry is None:
                return False
            self._bytes -= entry.size_bytes
            return True

    def __contains__(self, kernel_id: object) -> bool:
        with self._lock:
            return kernel_id in self._entries

    def cached_ids(self) -> list[str]:
        """Cached kernel ids, least recently used first."""
        with self._lock:
            return list(self._entries)

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses); 0 before the first load."""
        with self._lock:
            return self._hit_rate()

    def stats(self) -> KernelCacheStats:
        with self._lock:
            return KernelCacheStats(
                entries=len(self._entries),
                bytes=self._bytes,
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                checksum_failures=self._checksum_failures,
                load_failures=self._load_failures,
                hit_rate=self._hit_rate(),
                signature_failures=self._signature_failures,
            )

    def _hit_rate(self) -> float:
        total = self._hits + self._misses
        return self._hits / total if total else 0.0

    def _fetch(self, kernel_id: str) -> LoadedKernel:
        """Download (verified), check status, load. Runs outside the lock."""
        try:
            data, artifact = download_kernel_bytes(self._urza, kernel_id)
        except DataLoss:
            with self._lock:
                self._checksum_failures += 1
            logger.warning("kernel %s failed its checksum; not loaded", kernel_id)
            raise
        if self.config.require_validated and artifact.status != kernel_pb2.KERNEL_STATUS_VALIDATED:
            status = kernel_pb2.KernelStatus.Name(artifact.status)
            raise FailedPrecondition(f"kernel {kernel_id} is {status}, not VALIDATED; it cannot be grafted")
        self._verify_signature(artifact, data)
        try:
            module = load_kernel_module(data, artifact.pipeline)
        except Exception as exc:
            with self._lock:
                self._load_failures += 1
            if isinstance(exc, EsperError):
                raise
            raise FailedPrecondition(f"kernel {kernel_id}: artifact does not load: {exc}") from exc
        logger.debug("kernel %s loaded (%d bytes)", kernel_id, len(data))
        return LoadedKernel(artifact=artifact, module=module, size_bytes=len(data))

    def _verify_signature(self, artifact: kernel_pb2.KernelArtifact, data: bytes) -> None:
        if not self.config.require_signature:
            return
        try:
            if self._trust is None:
                raise KernelSignatureError(
                    f"kernel {artifact.kernel_id}: no trusted signing key is configured; nothing is loaded unverified"
                )
            self._trust.verify(artifact, hashlib.sha256(data).hexdigest())
        except KernelSignatureError:
            with self._lock:
                self._signature_failures += 1
            logger.warning("kernel %s refused: its signature does not verify here", artifact.kernel_id)
            raise

    def _insert(self, entry: LoadedKernel) -> None:
        """Add an entry and evict least recently used ones until both bounds hold. Lock held."""
        kernel_id = entry.artifact.kernel_id
        if entry.size_bytes > self.config.max_bytes:
            logger.warning(
                "kernel %s (%d bytes) exceeds the cache's %d bytes; served uncached",
                kernel_id,
                entry.size_bytes,
                self.config.max_bytes,
            )
            return
        previous = self._entries.pop(kernel_id, None)
        if previous is not None:
            self._bytes -= previous.size_bytes
        self._entries[kernel_id] = entry
        self._bytes += entry.size_bytes
        while len(self._entries) > self.config.max_entries or self._bytes > self.config.max_bytes:
            evicted_id, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size_bytes
            self._evictions += 1
            logger.debug("kernel %s evicted", evicted_id)


def _await(flight: _Flight) -> LoadedKernel:
    flight.done.wait()
    if flight.error is not None:
        raise flight.error
    assert flight.result is not None
    return flight.result


def private_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` sharing its code and graph but owning clones of every tensor it trains.

    Each sub-module is copied shallowly (a new instance dict), then its parameters and
    buffers are cloned, its children copied the same way, its hook tables copied and
    methods bound to the original re-bound to the copy. Parameters keep their
    requires_grad; gradients of the copy never reach the original or another copy.
    The shared graph must not be edited in place (no `recompile` on a copy).
    """
    copy = object.__new__(type(module))
    state = module.__dict__.copy()
    state["_parameters"] = {
        name: None if param is None else _own_parameter(param) for name, param in module._parameters.items()
    }
    state["_buffers"] = {name: None if buffer is None else buffer.clone() for name, buffer in module._buffers.items()}
    state["_modules"] = {
        name: None if child is None else private_copy(child) for name, child in module._modules.items()
    }
    if "_non_persistent_buffers_set" in state:
        state["_non_persistent_buffers_set"] = set(state["_non_persistent_buffers_set"])
    for table in _HOOK_TABLES:
        if table in state:
            state[table] = state[table].copy()
    for name, value in state.items():
        if isinstance(value, types.MethodType) and value.__self__ is module:
            state[name] = types.MethodType(value.__func__, copy)
    copy.__dict__ = state
    return copy


def _own_parameter(param: nn.Parameter) -> nn.Parameter:
    return nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad)
