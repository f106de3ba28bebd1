"""Data-parallel training: `esper run --nproc N`, `torchrun ... -m esper run ...`, or `esper.Trainer` under torchrun.

Every process (rank) holds the whole model and trains on its share of each global
batch; after each backward pass the gradients are summed over the ranks with one
`torch.distributed.all_reduce` per dtype (gloo on the CPU, NCCL on CUDA), so every
rank takes the same optimizer step and the models stay identical.

Why not `DistributedDataParallel`: it fixes the set of parameters it reduces when it
is built, and a growing model changes that set at every germination, fossilization
and cull (and a rollback puts an older one back). An explicit all-reduce after the
backward pass reduces whatever the model trains at this step, in the model's own
parameter order; it is the same arithmetic as DDP (the gradients' average) without
DDP's overlap of communication with the backward pass, which matters little at
these model sizes.

What keeps a growing model the same on every rank:

- One Tamiyo decides: rank 0's controller steps and its answer (or its failure) is
  broadcast; every other rank's controller returns that answer (`FollowerController`).
  Deciding on one rank is what makes this exact: Tamiyo asks Urza which kernels are
  validated *now*, and a compile worker can finish between two ranks' questions.
  Every rank's Kasmina then applies the same commands at the same boundary, loading
  the same kernels from the shared asset store.
- Every rank sees the same numbers: training statistics are summed over the ranks once
  per epoch and each rank validates on the whole validation split (the same model), so
  rollbacks, graft judgements and telemetry agree; a drift-controlled ramp reads the
  global batch's loss, reduced with the gradients.
- After the first step on a new set of trainable parameters every rank takes rank 0's
  values: a width seed starts its units from the activations of its first step, which
  are this rank's share of the batch. After each boundary the ranks compare what they
  applied and the model's layout, and a run whose ranks disagree stops with an error
  instead of reducing mismatched gradients.

A global batch is split into contiguous shares (sizes differ by at most one) and each
rank's loss is scaled by its share of the batch's weight (rows, or tokens for a
sequence loss), so the summed gradient is the gradient of the global batch's mean loss:
the same run as one process at the same global batch, up to floating-point summation
order. Every rank reads every global batch (the same order: a seeded shuffle) and
keeps its rows, so any re-iterable source works unchanged. A batch with fewer rows than
ranks is skipped on every rank.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from esper import errors
from esper.errors import EsperError, InvalidArgument, Unavailable
from esper.leyline.v1 import tamiyo_pb2
from esper.tolaria.batches import batch_rows, slice_rows

logger = logging.getLogger(__name__)

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass
class DataParallel:
    """This process's rank in a data-parallel run and the collectives its training uses."""

    rank: int
    world_size: int
    device: torch.device
    backend: str
    # Whether this object created the process group (and so destroys it on close).
    owns_group: bool = True
    _signature: tuple[int, ...] = field(default=(), repr=False)
    _settle: bool = field(default=False, repr=False)

    @property
    def is_main(self) -> bool:
        """Rank 0: decides for every rank and writes the run folder."""
        return self.rank == 0

    # Small objects between ranks

    def barrier(self) -> None:
        dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank (a small picklable object between this run's own processes)."""
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        found: list[Any] = [None] * self.world_size
        dist.all_gather_object(found, value)
        return found

    # The training step

    def share(self, inputs: Any, targets: Any) -> tuple[Any, Any] | None:
        """This rank's rows of a global batch; None when the batch has fewer rows than ranks."""
        rows = batch_rows(targets)
        if rows < self.world_size:
            return None
        base, extra = divmod(rows, self.world_size)
        low = self.rank * base + min(self.rank, extra)
        high = low + base + (1 if self.rank < extra else 0)
        return slice_rows(inputs, low, high), slice_rows(targets, low, high)

    def reduce_gradients(self, model: nn.Module, loss: Tensor) -> Tensor:
        """Sum every trainable parameter's gradient over the ranks; returns `loss` summed likewise.

        Each rank's loss is already scaled by its share of the global batch, so the sums are
        the global batch's gradient and mean loss. A gradient no rank produced stays None
        (an optimizer skips it, as in one process); one only some ranks produced counts as
        zeros elsewhere. One all-reduce per dtype: which gradients exist, and the loss, ride
        at the end of the float32 (or float64) buffer.
        """
        params = [p for p in model.parameters() if p.requires_grad]
        signature = tuple(id(p) for p in params)
        if signature != self._signature:
            self._signature, self._settle = signature, True
        groups: dict[torch.dtype, list[nn.Parameter]] = {}
        for param in params:
            if param.grad is not None and param.grad.is_sparse:
                raise InvalidArgument.for_field("model", "sparse gradients are not supported in data-parallel runs")
            groups.setdefault(param.dtype, []).append(param)
        carrier = next((dtype for dtype in (torch.float32, torch.float64) if dtype in groups), torch.float64)
        present = torch.tensor([p.grad is not None for p in params], dtype=carrier, device=loss.device)
        meta = torch.cat([present, loss.detach().reshape(1).to(carrier)])
        flats = {}
        for dtype, group in groups.items():
            parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group]
            if dtype == carrier:
                parts.append(meta.to(parts[0].device))
            flats[dtype] = self._all_reduce(torch.cat(parts))
        meta = flats[carrier][-len(meta) :] if carrier in flats else self._all_reduce(meta)
        produced = meta[:-1].tolist()
        position = {id(p): index for index, p in enumerate(params)}
        for dtype, group in groups.items():
            flat, offset = flats[dtype], 0
            for param in group:
                count = param.numel()
                if produced[position[id(param)]]:
                    value = flat[offset : offset + count].view_as(param).to(param.device)
                    if param.grad is None:
                        param.grad = value.clone()
                    else:
                        param.grad.copy_(value)
                offset += count
        return meta[-1].to(loss.device, loss.dtype)

    def _all_reduce(self, tensor: Tensor) -> Tensor:
        """`tensor` summed over the ranks, on the collective's device."""
        reduced = tensor.to(self._collective_device)
        dist.all_reduce(reduced)
        return reduced

    def settle(self, model: nn.Module) -> None:
        """After a step on a new set of trainable parameters: every rank takes rank 0's values.

        A seed may set its new parameters from the activations of its first training step
        (a width seed starts its units alive, esper.kasmina.units), which are this rank's
        share of the batch; from then on the summed gradients keep the ranks together.
        """
        if self._settle:
            self._settle = False
            self.sync_model(model)

    def sync_model(self, model: nn.Module) -> None:
        """Every rank takes rank 0's parameters and buffers (a user's model may be initialized per process)."""
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                _broadcast_tensor(tensor, self._collective_device)
        self._signature = tuple(id(p) for p in model.parameters() if p.requires_grad)
        self._settle = False

    def sync_buffers(self, model: nn.Module) -> None:
        """Every rank takes rank 0's buffers (running statistics each rank gathered on its own rows)."""
        with torch.no_grad():
            for tensor in model.buffers():
                _broadcast_tensor(tensor, self._collective_device)

    def reduce_totals(self, totals: Tensor) -> Tensor:
        """An epoch's summed statistics (float64 on any device), summed over the ranks."""
        reduced = totals.to(self._collective_device, torch.float64)
        dist.all_reduce(reduced)
        return reduced.to(totals.device)

    # The boundary

    def check_agreement(self, epoch: int, model: nn.Module, applied: Sequence[str], refused: Sequence[str]) -> None:
        """Stop the run when the ranks came out of a boundary different (a command refused on one rank only)."""
        mine = {
            "applied": list(applied),
            "refused": list(refused),
            "layout": [[name, list(p.shape), p.requires_grad] for name, p in model.named_parameters()],
        }
        views = self.gather(mine)
        for rank, view in enumerate(views):
            if view != views[0]:
                differs = ", ".join(key for key in mine if view[key] != views[0][key])
                raise RanksDisagree(f"after epoch {epoch}'s boundary rank {rank} differs from rank 0 in: {differs}")

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            # Every rank reaches this point before any tears its connections down: a rank that
            # destroys its group while a peer is still talking makes gloo abort that peer
            # (SIGABRT, seen on a loaded machine). On gloo a rank that never comes (it crashed)
            # is waited for a minute, not forever.
            with contextlib.suppress(RuntimeError):
                if self.backend == "gloo":
                    dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
                else:
                    dist.barrier()
            dist.destroy_process_group()

    @property
    def _collective_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")


class RanksDisagree(RuntimeError):
    """The ranks of a data-parallel run no longer hold the same model; training cannot go on."""


def _broadcast_tensor(tensor: Tensor, device: torch.device) -> None:
    if tensor.device == device:
        dist.broadcast(tensor.data, src=0)
        return
    staged = tensor.detach().to(device)
    dist.broadcast(staged, src=0)
    tensor.data.copy_(staged)


# Joining a run


def launched_by_torchrun() -> bool:
    """True when this process is one of several torchrun started."""
    return all(name in os.environ for name in _TORCHRUN_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


def join(device: torch.device) -> DataParallel | None:
    """This process's rank: the process group already set up, or the one torchrun describes; None alone.

    torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) starts
    a group with gloo on the CPU, NCCL on CUDA (one GPU per local rank).
    """
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() == 1:
            return None
        backend = str(dist.get_backend())
        if backend == "nccl" and device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        return DataParallel(dist.get_rank(), dist.get_world_size(), device, backend, owns_group=False)
    if not launched_by_torchrun():
        return None
    rank, world, local = (int(os.environ[name]) for name in _TORCHRUN_VARIABLES)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    # torch._dynamo imported after the group exists (by a first optimizer step, a kernel load)
    # makes about one exit in five abort ("terminate called without an active exception").
    importlib.import_module("torch._dynamo")
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    logger.info("rank %d of %d on %s (%s)", rank, world, device, backend)
    return DataParallel(rank, world, device, backend)


# One Tamiyo for every rank


class LeaderController:
    """Rank 0's controller: steps the real one and hands every rank the same answer."""

    def __init__(self, inner: Any, ranks: DataParallel) -> None:
        self.inner = inner
        self._ranks = ranks

    def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
        try:
            response: tamiyo_pb2.StepResponse = self.inner.step(request)
        except EsperError as exc:
            self._ranks.broadcast(("error", type(exc).__name__, exc.message, exc.reason))
            raise
        except BaseException as exc:
            # The other ranks wait for this boundary's answer: they must fail with this rank.
            self._ranks.broadcast(("crash", type(exc).__name__, str(exc)[:500], ""))
            raise
        self._ranks.broadcast(("answer", response.SerializeToString(), "", ""))
        return response

    def export_controller_state(
        self, request: tamiyo_pb2.ExportControllerStateRequest
    ) -> tamiyo_pb2.ExportControllerStateResponse:
        response: tamiyo_pb2.ExportControllerStateResponse = self.inner.export_controller_state(request)
        return response

    def restore_controller_state(
        self, request: tamiyo_pb2.RestoreControllerStateRequest
    ) -> tamiyo_pb2.RestoreControllerStateResponse:
        response: tamiyo_pb2.RestoreControllerStateResponse = self.inner.restore_controller_state(request)
        return response


class FollowerController:
    """Another rank's controller: returns rank 0's answer, or raises what rank 0's Tamiyo raised.

    Tamiyo's state lives on rank 0 only: this one exports an empty state and ignores a
    restore (rank 0's checkpoint holds the real one).
    """

    def __init__(self, ranks: DataParallel) -> None:
        self._ranks = ranks

    def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
        kind, payload, message, reason = self._ranks.broadcast(None)
        if kind == "error":
            # The same error as on rank 0, so this rank's boundary goes the same way (conservative
            # mode when Tamiyo is unreachable, the run's failure otherwise).
            error = getattr(errors, str(payload), None)
            cls = error if isinstance(error, type) and issubclass(error, EsperError) else Unavailable
            raise cls(f"rank 0's Tamiyo: {message}", reason=reason or None)
        if kind == "crash":
            raise RuntimeError(f"rank 0's boundary failed ({payload}): {message}")
        return tamiyo_pb2.StepResponse.FromString(payload)

    def export_controller_state(
        self, request: tamiyo_pb2.ExportControllerStateRequest
    ) -> tamiyo_pb2.ExportControllerStateResponse:
        return tamiyo_pb2.ExportControllerStateResponse(state=tamiyo_pb2.TamiyoControllerState(run_id=request.run_id))

    def restore_controller_state(
        self, request: tamiyo_pb2.RestoreControllerStateRequest
    ) -> tamiyo_pb2.RestoreControllerStateResponse:
        return tamiyo_pb2.RestoreControllerStateResponse()


def controller_for_rank(controller: Any, ranks: DataParallel) -> Any:
    """The controller this rank's trainer steps: the leader's wrapper on rank 0, a follower elsewhere."""
    return LeaderController(controller, ranks) if ranks.is_main else FollowerController(ranks)


# What every rank did


def ranks_summary(ranks: DataParallel | None, events: Iterable[Any], model: nn.Module) -> dict[str, Any]:
    """summary.json's `world_size` and, for a data-parallel run, what every rank did (they must agree)."""
    if ranks is None:
        return {"world_size": 1}
    digests = ranks.gather(rank_digest(events, model))
    return {
        "world_size": ranks.world_size,
        "ranks": digests,
        "ranks_agree": all(digest == digests[0] for digest in digests),
    }


def rank_digest(events: Iterable[Any], model: nn.Module) -> dict[str, str]:
    """Digests of this rank's decisions (commands and seed transitions, by epoch) and of its final weights.

    Reasons are left out: a transition's reason may quote numbers measured on this rank.
    """
    moves: list[list[Any]] = []
    for event in events:
        kind = event.WhichOneof("payload")
        if kind == "decision":
            d = event.decision
            moves.append(["decision", d.epoch, d.seed_id, d.command_id, int(d.command_type)])
        elif kind == "seed_transition":
            t = event.seed_transition
            moves.append(["transition", t.epoch, t.seed_id, int(t.from_stage), int(t.to_stage)])
    weights = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        weights.update(name.encode())
        weights.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return {
        "decisions": hashlib.sha256(json.dumps(moves).encode()).hexdigest(),
        "decision_count": str(sum(1 for move in moves if move[0] == "decision")),
        "weights": weights.hexdigest(),
    }
