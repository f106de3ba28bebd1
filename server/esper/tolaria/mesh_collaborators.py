"""A run's collaborators across the mesh: Urza and Tamiyo over gRPC, Oona on NATS JetStream.

`MeshCollaborators(addresses)` is a `CollaboratorsFactory`: each run gets its own Urza and
Tamiyo clients (closed with the run), a kernel cache over that Urza, and a
publisher that puts the boundary's seed telemetry and field reports on JetStream
through the process's one bus. This is wiring, not domain logic: it is the one
place of the Tolaria server that opens gRPC channels of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import grpc

from esper.assets.pipeline import SeedSite, follow_kernels
from esper.clients import TamiyoClient, UrzaClient
from esper.clients.base import ClientConfig
from esper.errors import EsperError
from esper.kasmina.config import KernelCacheConfig
from esper.kasmina.kernel_cache import KernelCache
from esper.leyline.v1 import control_pb2, kernel_pb2, run_pb2, tamiyo_pb2, telemetry_pb2, urza_pb2
from esper.mesh.addresses import MeshAddresses
from esper.mesh.tls import secure_channel
from esper.observability import metrics
from esper.oona.api import Bus
from esper.oona.subjects import field_report_subject, run_event_subject, telemetry_subject
from esper.pipelines import BY_NAME
from esper.tolaria.collaborators import RunCollaborators
from esper.tolaria.config import EsperConfig, MeshCollaboratorsConfig
from esper.trust.identity import TlsIdentity
from esper.trust.kernel_signing import TrustedSigners

logger = logging.getLogger(__name__)

_PREFETCH_JOIN_SECONDS = 5.0
PUBLISH_SOURCE = "tolaria"


class RemoteTamiyo:
    """Tamiyo over gRPC as the trainer calls it: a short, single-try deadline on Step only."""

    def __init__(self, client: ChannelTamiyoClient, step_deadline_seconds: float) -> None:
        self._client = client
        self._step_deadline = step_deadline_seconds

    def wait_for_connection(self, timeout: float) -> bool:
        """Whether Tamiyo is (again) reachable on this run's channel within `timeout` seconds."""
        return self._client.wait_for_connection(timeout)

    def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
        return self._client.step(request, timeout=self._step_deadline)

    def export_controller_state(
        self, request: tamiyo_pb2.ExportControllerStateRequest
    ) -> tamiyo_pb2.ExportControllerStateResponse:
        return self._client.export_controller_state(request)

    def restore_controller_state(
        self, request: tamiyo_pb2.RestoreControllerStateRequest
    ) -> tamiyo_pb2.RestoreControllerStateResponse:
        return self._client.restore_controller_state(request)

    def get_status(self, request: tamiyo_pb2.GetStatusRequest) -> tamiyo_pb2.GetStatusResponse:
        return self._client.get_status(request)


class RunUrzaClient(UrzaClient):
    """Urza for one run: blueprints it submits ask for the run's own compilation pipelines.

    The mesh's Urza has its own default pipelines; asking for the run's keeps a mesh
    run on the same kernels as the embedded run of the same config.
    """

    def __init__(self, config: ClientConfig, pipelines: Sequence[kernel_pb2.CompilationPipeline]) -> None:
        super().__init__(config)
        self._pipelines = list(pipelines)

    def create_blueprint(
        self, request: urza_pb2.CreateBlueprintRequest, *, timeout: float | None = None
    ) -> urza_pb2.CreateBlueprintResponse:
        if not request.pipelines:
            request = urza_pb2.CreateBlueprintRequest.FromString(request.SerializeToString())
            request.pipelines.extend(self._pipelines)
        return super().create_blueprint(request, timeout=timeout)


class BoundaryPublisher:
    """Puts a boundary's seed telemetry and field reports, and every run event, on Oona; never fails the run."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def __call__(
        self, telemetry: Sequence[telemetry_pb2.SeedTelemetry], reports: Sequence[control_pb2.FieldReport]
    ) -> None:
        try:
            for seed in telemetry:
                key = f"telemetry:{seed.run_id}:{seed.seed_id}:{seed.epoch}:{seed.global_step}"
                envelope = self._bus.seal(seed, source=PUBLISH_SOURCE, idempotency_key=key)
                self._bus.publish(telemetry_subject(seed.run_id, seed.seed_id), envelope)
            # Keyed by the report's own id, as Tamiyo keys the same report: a report both
            # publish is stored once.
            for report in reports:
                envelope = self._bus.seal(report, source=PUBLISH_SOURCE, idempotency_key=report.report_id)
                self._bus.publish(field_report_subject(report.run_id), envelope)
        except EsperError as exc:
            # Observers lose this boundary; the run, which does not depend on them, goes on.
            logger.warning("publishing a boundary to Oona failed: %s", exc)

    def event(self, event: run_pb2.RunEvent) -> None:
        """Put one run event on the run's events subject (keyed by its sequence, so a replay is a repeat)."""
        try:
            key = f"event:{event.run_id}:{event.sequence}"
            envelope = self._bus.seal(event, source=PUBLISH_SOURCE, idempotency_key=key)
            self._bus.publish(run_event_subject(event.run_id), envelope)
        except Exception as exc:  # an observer's loss must never fail the training step that emitted it
            logger.warning("publishing run event %d to Oona failed: %s", event.sequence, exc)


class MeshCollaborators:
    """CollaboratorsFactory over a mesh; `close()` when the process stops (it owns the bus)."""

    def __init__(
        self,
        addresses: MeshAddresses,
        config: MeshCollaboratorsConfig | None = None,
        *,
        bus: Bus | None = None,
        trust: TrustedSigners | None = None,
        tls: TlsIdentity | None = None,
    ) -> None:
        self.addresses = addresses
        self.config = config if config is not None else MeshCollaboratorsConfig()
        self._bus = bus
        self._trust = trust
        self._tls = tls
        self._urza = addresses.address("urza")
        self._tamiyo = addresses.address("tamiyo")

    def __call__(self, config: EsperConfig) -> RunCollaborators:
        pipelines = [BY_NAME[name] for name in config.assets.pipelines]
        urza = RunUrzaClient(
            ClientConfig(address=self._urza, deadline_seconds=self.config.urza_deadline_seconds, tls=self._tls),
            pipelines,
        )
        tamiyo = self._tamiyo_client()
        cache = KernelCache(urza, KernelCacheConfig(), trust=self._trust)
        metrics.KERNEL_CACHE.register(cache)
        stop = threading.Event()
        prefetchers: list[threading.Thread] = []

        def prefetch(sites: Sequence[SeedSite]) -> threading.Thread:
            chosen = list(sites)
            thread = threading.Thread(
                target=follow_kernels, args=(urza, cache, chosen, stop), name="kernel-prefetch", daemon=True
            )
            thread.start()
            prefetchers.append(thread)
            return thread

        def close() -> None:
            stop.set()
            for thread in prefetchers:
                thread.join(_PREFETCH_JOIN_SECONDS)
            tamiyo.close()
            urza.close()
            metrics.KERNEL_CACHE.unregister(cache)

        remote = RemoteTamiyo(tamiyo, self.config.tamiyo_step_deadline_seconds)
        return RunCollaborators(
            urza=urza,
            kernel_cache=cache,
            make_controller=lambda model: remote,
            publish=BoundaryPublisher(self._bus) if self._bus is not None else _unpublished,
            publish_event=BoundaryPublisher(self._bus).event if self._bus is not None else None,
            prefetch=prefetch,
            close=close,
            description=self.description,
        )

    @property
    def description(self) -> str:
        nats = f", oona {self.addresses.nats_url}" if self._bus is not None else ""
        return f"mesh: urza {self._urza}, tamiyo {self._tamiyo}{nats}"

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()

    def _tamiyo_client(self) -> ChannelTamiyoClient:
        # A Tamiyo that was down must be found again within seconds of its return, not
        # after gRPC's default reconnect backoff (up to two minutes).
        backoff_ms = int(self.config.max_reconnect_backoff_seconds * 1000)
        options: list[tuple[str, object]] = [
            ("grpc.enable_retries", 0),
            ("grpc.initial_reconnect_backoff_ms", min(250, backoff_ms)),
            ("grpc.max_reconnect_backoff_ms", backoff_ms),
        ]
        channel = (
            secure_channel(self._tamiyo, self._tls, options)
            if self._tls is not None
            else grpc.insecure_channel(self._tamiyo, options=options)
        )
        client = ChannelTamiyoClient(
            ClientConfig(
                address=self._tamiyo,
                deadline_seconds=self.config.tamiyo_deadline_seconds,
                max_attempts=1,
                tls=self._tls,
            ),
            channel,
        )
        # Connect before the first epoch, so the first Step does not pay for the handshake.
        if not client.wait_for_connection(self.config.tamiyo_deadline_seconds):
            logger.warning("Tamiyo at %s is not answering; the run starts conservatively", self._tamiyo)
        return client


class ChannelTamiyoClient(TamiyoClient):
    """A TamiyoClient on a channel made for it, which it watches and closes."""

    def __init__(self, config: ClientConfig, channel: grpc.Channel) -> None:
        super().__init__(config, channel=channel)
        self._own = channel

    def wait_for_connection(self, timeout: float) -> bool:
        try:
            grpc.channel_ready_future(self._own).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
        return True

    def close(self) -> None:
        self._own.close()


def _unpublished(telemetry: Sequence[Any], reports: Sequence[Any]) -> None:
    """A mesh with no NATS: telemetry and field reports stay in the run folder."""


def mesh_collaborators(
    addresses: MeshAddresses,
    config: MeshCollaboratorsConfig | None = None,
    *,
    bus: Bus | None = None,
    trust: TrustedSigners | None = None,
    tls: TlsIdentity | None = None,
) -> MeshCollaborators:
    """The CollaboratorsFactory of runs trained through `addresses` (see MeshCollaborators)."""
    return MeshCollaborators(addresses, config, bus=bus, trust=trust, tls=tls)
