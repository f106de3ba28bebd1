"""What Tamiyo offers and what it needs, as protocols.

`TamiyoApi` is the TamiyoService: the in-process TamiyoController and the remote
TamiyoClient both fit it. `KernelDirectory` is the one Urza rpc Tamiyo uses to
choose kernels: the in-process asset hub and the remote Urza client both fit it,
so the controller never depends on either.
"""

from __future__ import annotations

from typing import Protocol

from esper.leyline.v1 import tamiyo_pb2, urza_pb2


class TamiyoApi(Protocol):
    """The TamiyoService rpcs, one method each, proto request in and proto response out."""

    def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
        """Decide at one epoch boundary: commands, run-level signal, decisions, field reports."""
        ...

    def get_status(self, request: tamiyo_pb2.GetStatusRequest) -> tamiyo_pb2.GetStatusResponse:
        """One run's status, or the controller-wide one for an empty run id."""
        ...

    def load_policy(self, request: tamiyo_pb2.LoadPolicyRequest) -> tamiyo_pb2.LoadPolicyResponse:
        """Switch the policy; NotFound (POLICY_NOT_FOUND) for an unknown policy id."""
        ...

    def export_controller_state(
        self, request: tamiyo_pb2.ExportControllerStateRequest
    ) -> tamiyo_pb2.ExportControllerStateResponse:
        """A run's full controller state, for a checkpoint; NotFound (RUN_NOT_FOUND) if unknown."""
        ...

    def restore_controller_state(
        self, request: tamiyo_pb2.RestoreControllerStateRequest
    ) -> tamiyo_pb2.RestoreControllerStateResponse:
        """Replace a run's controller state with a checkpointed one."""
        ...


class KernelDirectory(Protocol):
    """Where validated kernels are found: Urza's QueryKernels."""

    def query_kernels(self, request: urza_pb2.QueryKernelsRequest) -> urza_pb2.QueryKernelsResponse:
        """Kernels matching a KernelQuery, newest first, paged."""
        ...
