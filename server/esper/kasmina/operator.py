"""KasminaOperator: the seed operator of one run, driving a MorphableModel's seeds by command.

It implements the KasminaService API (apply_command, list_seed_states,
stream_telemetry) plus what Tolaria calls at epoch boundaries. Commands take effect
when applied; Tolaria applies them at the boundary (between epochs) and rebuilds
seed optimizers when `model.version` changes. Every transition is recorded as a
SeedTransition, which Tolaria drains. FieldReports are Tamiyo's: she reports every
finished adaptation, including those Kasmina ends on its own (seen in the packet).
A kernel that fails to load, for any reason, culls its seed: the run goes on.

Regrowth: when a seed fossilizes, its site gets a new dormant child seed (a CHILD_OF
edge in the seed graph, docs/lifecycle.md), so the site can grow again as long as growth
pays: a depth child stacks its block on its parent's output, a width child adds
more units to the same layer. The child's birth is recorded as a transition into
DORMANT. Checkpoints carry the layout, so a restore puts back the seeds that
existed then.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from torch import nn

from esper.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from esper.kasmina import convert
from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.morphable import MorphableModel
from esper.kasmina.records import Adaptation, IsolationViolation
from esper.kasmina.requests import (
    check_apply_command,
    check_list_seed_states,
    check_stream_telemetry,
)
from esper.kasmina.seed import KasminaSeed
from esper.kasmina.source import KernelSource, load_checked_kernel, on_device_of
from esper.kasmina.streaming import TelemetryHub, TelemetryStream
from esper.kasmina.telemetry import ActivationSummary
from esper.kasmina.tracing import command_span, germination_parent, phase_span
from esper.leyline.v1 import kasmina_pb2, lifecycle_pb2, run_pb2, telemetry_pb2
from esper.observability import metrics
from esper.paging import encode_page_token

logger = logging.getLogger(__name__)

_CMD = lifecycle_pb2.CommandType
STATE_FORMAT = 1
_MEASURED_STAGES = frozenset({lc.EVALUATING, lc.FINE_TUNING})
_IN_FLIGHT_BLENDING = lc.BLENDING_STAGES & lc.ACTIVE_STAGES


class KasminaOperator:
    """Lifecycle commands, boundary bookkeeping, telemetry and checkpoints for one run's seeds."""

    def __init__(
        self,
        model: MorphableModel,
        kernels: KernelSource,
        config: KasminaConfig | None = None,
        *,
        run_id: str,
        on_isolation_violation: Callable[[IsolationViolation], None] | None = None,
    ) -> None:
        if not run_id:
            raise ValueError("run_id must be set")
        self.model = model
        self.config = config if config is not None else model.config
        self.run_id = run_id
        self._kernels = kernels
        self._on_violation = on_isolation_violation
        self._lock = threading.RLock()
        self._boundary_epoch = 0
        self._last_score = 0.0
        self._commands: OrderedDict[str, tuple[str, kasmina_pb2.ApplyCommandResponse]] = OrderedDict()
        self._transitions: list[run_pb2.SeedTransition] = []
        self._hub = TelemetryHub()
        model.isolation_handler = self._on_isolation_violation
        model.arm_epoch_checks()

    # KasminaService

    def apply_command(self, request: kasmina_pb2.ApplyCommandRequest) -> kasmina_pb2.ApplyCommandResponse:
        check_apply_command(request)
        command = request.command
        self._check_run(command.run_id, "command.run_id")
        fingerprint = _fingerprint(command)
        with self._lock:
            seen = self._commands.get(command.command_id)
            if seen is not None:
                if seen[0] != fingerprint:
                    raise AlreadyExists(f"command id {command.command_id!r} was already used for a different command")
                replay = kasmina_pb2.ApplyCommandResponse()
                replay.CopyFrom(seen[1])
                replay.reason = f"already applied: {seen[1].reason}"
                return replay
            seed = self.model.seed(command.seed_id)
            with command_span(self.run_id, seed, command):
                note = self._dispatch(seed, command)
            response = kasmina_pb2.ApplyCommandResponse(accepted=True, stage=seed.stage, reason=note)  # type: ignore[arg-type]
            self._commands[command.command_id] = (fingerprint, response)
            while len(self._commands) > self.config.max_remembered_commands:
                self._commands.popitem(last=False)
            return response

    def list_seed_states(self, request: kasmina_pb2.ListSeedStatesRequest) -> kasmina_pb2.ListSeedStatesResponse:
        page = check_list_seed_states(request)
        self._check_run(request.run_id, "run_id")
        with self._lock:
            seeds = self.model.seed_list()
            chosen = seeds[page.offset : page.offset + page.page_size]
            response = kasmina_pb2.ListSeedStatesResponse(seeds=[convert.seed_state(seed) for seed in chosen])
        end = page.offset + len(chosen)
        if end < len(seeds):
            response.next_page_token = encode_page_token(end, page.fingerprint)
        return response

    def stream_telemetry(self, request: kasmina_pb2.StreamTelemetryRequest) -> TelemetryStream:
        """Reports from the next epoch boundary on; close() the stream to leave early."""
        check_stream_telemetry(request)
        self._check_run(request.run_id, "run_id")
        for seed_id in request.seed_ids:
            self.model.seed(seed_id)
        return self._hub.subscribe(request.seed_ids)

    # Tolaria

    def on_epoch_end(self, epoch: int, *, validation_score: float | None = None) -> list[telemetry_pb2.SeedTelemetry]:
        """Boundary bookkeeping after `epoch` (and its validation pass): returns every seed's report.

        `validation_score` (the run's metric, higher is better) becomes the `pre_metric`
        of the next germination.

        CULLED and CANCELLED seeds return to DORMANT; reports are built from the last
        `collecting_telemetry()` pass and the sampled gradients, and streamed.
        """
        with self._lock:
            self._boundary_epoch = epoch
            if validation_score is not None:
                self._last_score = validation_score
            for seed in self.model.seed_list():
                if seed.stage in lc.RETURNING_STAGES:
                    self._transition(seed, lc.DORMANT, reason="returned to DORMANT at the epoch boundary")
            now = _now()
            reports = [
                convert.seed_telemetry(
                    seed,
                    run_id=self.run_id,
                    epoch=epoch,
                    global_step=self.model.global_step,
                    seed_loss=seed.take_seed_loss(),
                    report_time=now,
                )
                for seed in self.model.seed_list()
            ]
            for seed in self.model.seed_list():
                seed.activation_summary = ActivationSummary()
            self.model.epoch = epoch + 1
            self.model.arm_epoch_checks()
        self._hub.publish(reports)
        return reports

    def measured_seed_ids(self) -> list[str]:
        """Seeds whose contribution Tolaria measures each epoch (validation with alpha vs alpha=0).

        EVALUATING seeds for the gate; FINE_TUNING seeds too, so a drop in accuracy while
        they fine-tune is judged against what the seed contributes now, not at evaluation.
        """
        return [seed.seed_id for seed in self.model.seed_list() if seed.stage in _MEASURED_STAGES]

    def record_eval_gain(self, seed_id: str, gain: float) -> None:
        """Validation score with the seed blended minus with alpha=0; makes an EVALUATING seed ready."""
        with self._lock:
            seed = self.model.seed(seed_id)
            if seed.stage not in _MEASURED_STAGES or seed.adaptation is None:
                raise FailedPrecondition(
                    f"seed {seed_id} is {lc.stage_name(seed.stage)}, not EVALUATING or FINE_TUNING"
                )
            seed.adaptation.eval_gain = float(gain)

    def roll_back(
        self, seed_ids: Iterable[str], *, reason: str, command_id: str = "", epoch: int | None = None
    ) -> None:
        """Lock these seeds as ROLLED_BACK (after a rollback); the lock survives restores.

        `epoch` stamps the transitions when the restored state's boundary is older than now.
        """
        with self._lock:
            for seed_id in seed_ids:
                seed = self.model.seed(seed_id)
                if seed.stage != lc.ROLLED_BACK:
                    self._finish(seed, lc.ROLLED_BACK, reason=reason, command_id=command_id, epoch=epoch)

    def active_seed_ids(self) -> list[str]:
        """Seeds with an adaptation under way (those an emergency rollback locks)."""
        return [seed.seed_id for seed in self.model.seed_list() if seed.stage in lc.ACTIVE_STAGES]

    def blending_seed_ids(self) -> list[str]:
        """Seeds under way whose output reaches the model (GRAFTING to FINE_TUNING): not yet part of it."""
        return [seed.seed_id for seed in self.model.seed_list() if seed.stage in _IN_FLIGHT_BLENDING]

    def drain_transitions(self) -> list[run_pb2.SeedTransition]:
        with self._lock:
            drained, self._transitions = self._transitions, []
        return drained

    @property
    def telemetry_subscribers(self) -> int:
        """Open StreamTelemetry subscriptions."""
        return self._hub.subscriber_count

    def close(self) -> None:
        """The run ended: telemetry streams finish."""
        self._hub.close()

    # Checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Seed states, command memory and the model's weights; torch.load(weights_only=True)-safe."""
        with self._lock:
            return {
                "format": STATE_FORMAT,
                "run_id": self.run_id,
                "boundary_epoch": self._boundary_epoch,
                "last_score": self._last_score,
                "epoch": self.model.epoch,
                "global_step": self.model.global_step,
                "layout": [json_format.MessageToDict(seed.descriptor) for seed in self.model.seed_list()],
                "seeds": {seed.seed_id: convert.snapshot_to_dict(seed.snapshot()) for seed in self.model.seed_list()},
                "commands": [
                    [command_id, fingerprint, int(response.stage), response.reason]
                    for command_id, (fingerprint, response) in self._commands.items()
                ],
                "model": self.model.state_dict(),
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore seeds (re-instantiating their kernels), the model's weights and command memory.

        Seeds locked ROLLED_BACK stay locked: the rollback that restores an earlier
        checkpoint must not resurrect the adaptation it undid. The seeds are those of
        the checkpoint's layout: children grown since are removed, children grown before
        (when resuming into a fresh model) are added.
        """
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"Kasmina state format {state.get('format')!r}, expected {STATE_FORMAT}")
        with self._lock:
            if "layout" in state:
                layout = [json_format.ParseDict(entry, telemetry_pb2.SeedDescriptor()) for entry in state["layout"]]
                self.model.set_layout(layout)
            locked = {seed.seed_id for seed in self.model.seed_list() if seed.stage == lc.ROLLED_BACK}
            for seed in self.model.seed_list():
                if seed.seed_id in locked:
                    continue
                snapshot = convert.snapshot_from_dict(state["seeds"][seed.seed_id])
                kernel = None
                merged = snapshot.adaptation is not None and snapshot.adaptation.merged
                if snapshot.stage in lc.KERNEL_STAGES and not merged:
                    assert snapshot.adaptation is not None
                    kernel = on_device_of(self._kernels.instantiate(snapshot.adaptation.kernel_id), self.model.host)
                seed.restore(snapshot, kernel)
            locked_prefixes = tuple(
                f"seeds.{index}." for index, seed in enumerate(self.model.seed_list()) if seed.seed_id in locked
            )
            weights = {key: value for key, value in state["model"].items() if not key.startswith(locked_prefixes)}
            self.model.load_state_dict(weights, strict=not locked_prefixes)
            self.model.epoch = int(state["epoch"])
            self.model.global_step = int(state["global_step"])
            self._boundary_epoch = int(state["boundary_epoch"])
            self._last_score = float(state.get("last_score", state.get("last_accuracy", 0.0)))
            self._commands = OrderedDict(
                (
                    command_id,
                    (
                        fingerprint,
                        kasmina_pb2.ApplyCommandResponse(accepted=True, stage=stage, reason=reason),
                    ),
                )
                for command_id, fingerprint, stage, reason in state["commands"]
            )

    # Command handling

    def _dispatch(self, seed: KasminaSeed, command: Any) -> str:
        kind, target = command.command_type, command.target_stage
        if kind == _CMD.COMMAND_TYPE_ADVANCE:
            if target == lc.GERMINATED and not command.kernel_id:
                raise InvalidArgument.for_field("command.kernel_id", "is required to germinate")
            kind = {
                lc.GERMINATED: _CMD.COMMAND_TYPE_REQUEST_GERMINATION,
                lc.FOSSILIZED: _CMD.COMMAND_TYPE_FOSSILIZE,
                lc.CULLED: _CMD.COMMAND_TYPE_CULL,
                lc.CANCELLED: _CMD.COMMAND_TYPE_CANCEL_GERMINATION,
                lc.ROLLED_BACK: _CMD.COMMAND_TYPE_EMERGENCY_ROLLBACK,
            }.get(target, kind)
        reason = command.reason or _CMD.Name(kind).removeprefix("COMMAND_TYPE_").lower()
        if kind == _CMD.COMMAND_TYPE_REQUEST_GERMINATION:
            return self._germinate(seed, command, reason)
        if kind == _CMD.COMMAND_TYPE_FOSSILIZE:
            return self._finish(seed, lc.FOSSILIZED, reason=reason, command_id=command.command_id)
        if kind == _CMD.COMMAND_TYPE_CULL:
            return self._finish(seed, lc.CULLED, reason=reason, command_id=command.command_id)
        if kind == _CMD.COMMAND_TYPE_CANCEL_GERMINATION:
            return self._finish(seed, lc.CANCELLED, reason=reason, command_id=command.command_id)
        if kind == _CMD.COMMAND_TYPE_EMERGENCY_ROLLBACK:
            return self._finish(seed, lc.ROLLED_BACK, reason=reason, command_id=command.command_id)
        if target == lc.LOADING:
            return self._load(seed, command.command_id, reason)
        if target == lc.FINE_TUNING and not seed.has_trainable_kernel:
            raise FailedPrecondition(
                f"seed {seed.seed_id}: a fixed-function kernel cannot fine-tune; fossilize or cull it",
                reason="ILLEGAL_TRANSITION",
            )
        self._transition(seed, target, reason=reason, command_id=command.command_id)
        return f"{lc.stage_name(target)}"

    def _germinate(self, seed: KasminaSeed, command: Any, reason: str) -> str:
        if self._boundary_epoch < seed.embargo_until_epoch:
            raise FailedPrecondition(
                f"seed {seed.seed_id} is embargoed until epoch {seed.embargo_until_epoch} after a cull "
                f"(now {self._boundary_epoch})",
                metadata={"embargo_until_epoch": str(seed.embargo_until_epoch)},
            )
        self._transition(seed, lc.GERMINATED, reason=reason, command_id=command.command_id)
        seed.adaptation = Adaptation(
            kernel_id=command.kernel_id,
            blueprint_id=command.blueprint_id,
            grafting_strategy=command.grafting_strategy,
            selected_for_tags=tuple(command.selected_for_tags),
            germination_command_id=command.command_id,
            germination_epoch=self._boundary_epoch,
            pre_metric=self._last_score,
            trace_parent=germination_parent(),
        )
        return f"germinated with kernel {command.kernel_id}"

    def _load(self, seed: KasminaSeed, command_id: str, reason: str) -> str:
        """GERMINATED -> LOADING -> TRAINING (trainable kernel) or GRAFTING; CULLED if the load fails."""
        lc.check_transition(seed.stage, lc.LOADING)
        adaptation = seed.adaptation
        if adaptation is None:
            raise FailedPrecondition(f"seed {seed.seed_id} has no kernel to load; germinate it first")
        self._transition(seed, lc.LOADING, reason=reason, command_id=command_id)
        try:
            with phase_span("kasmina.kernel_fetch", seed, **{"esper.kernel_id": adaptation.kernel_id}):
                kernel = self._instantiate(seed, adaptation)
        except Exception as exc:
            logger.warning("seed %s: kernel %s failed to load: %s", seed.seed_id, adaptation.kernel_id, exc)
            return self._finish(
                seed,
                lc.CULLED,
                reason=f"kernel {adaptation.kernel_id} failed to load: {exc}",
                command_id=command_id,
            )
        with phase_span("kasmina.graft", seed, **{"esper.kernel_id": adaptation.kernel_id}):
            seed.attach_kernel(kernel)
        target = lc.TRAINING if seed.has_trainable_kernel else lc.GRAFTING
        self._transition(seed, target, reason=f"kernel {adaptation.kernel_id} loaded", command_id=command_id)
        return f"kernel {adaptation.kernel_id} loaded; {lc.stage_name(target)}"

    def _instantiate(self, seed: KasminaSeed, adaptation: Adaptation) -> nn.Module:
        if seed.is_width:
            self._fit_width_seed_to_kernel(seed, self._kernels.describe(adaptation.kernel_id).artifact)
        kernel, description = load_checked_kernel(self._kernels, adaptation.kernel_id, self.model.host, seed.descriptor)
        adaptation.blueprint_id = adaptation.blueprint_id or description.artifact.blueprint_id
        adaptation.template_id = description.template_id or description.artifact.template_id
        adaptation.ir = description.ir
        adaptation.parameter_count = sum(p.numel() for p in kernel.parameters())
        return kernel

    @staticmethod
    def _fit_width_seed_to_kernel(seed: KasminaSeed, artifact: Any) -> None:
        """A kernel chosen for the shapes the seed had when Tamiyo decided, before a width fossil in the
        same step grew the host around it, still fits: the seed then reads and writes the units the kernel
        was built for, the first ones of its grown layers."""
        built = (list(artifact.input_shape.dims), list(artifact.output_shape.dims))
        now = (list(seed.descriptor.input_shape.dims), list(seed.descriptor.output_shape.dims))
        if not all(built) or built == now:
            return
        fits = all(len(b) == len(n) and b[1:] == n[1:] and 1 <= b[0] <= n[0] for b, n in zip(built, now, strict=True))
        if fits:
            del seed.descriptor.input_shape.dims[:], seed.descriptor.output_shape.dims[:]
            seed.descriptor.input_shape.dims.extend(built[0])
            seed.descriptor.output_shape.dims.extend(built[1])

    def _finish(
        self, seed: KasminaSeed, outcome: int, *, reason: str, command_id: str = "", epoch: int | None = None
    ) -> str:
        """Move to an outcome stage (FOSSILIZED, CULLED, CANCELLED, ROLLED_BACK) with its reason."""
        self._transition(seed, outcome, reason=reason, command_id=command_id, epoch=epoch)
        if outcome == lc.FOSSILIZED:
            if seed.is_width and self.config.merge_width_fossils and self.model.merge_width_seed(seed.seed_id):
                logger.info(
                    "seed %s: its units are now rows of %s and columns of %s",
                    seed.seed_id,
                    seed.site,
                    seed.descriptor.output_site,
                )
            self._grow_child(seed, command_id=command_id)
        return f"{lc.stage_name(outcome)}: {reason}"

    def _grow_child(self, parent: KasminaSeed, *, command_id: str) -> None:
        """A dormant child seed at the fossilized parent's site, unless the model is at `max_seeds`."""
        seeds = self.model.seed_list()
        if len(seeds) >= self.config.max_seeds:
            logger.info("seed %s fossilized; no child: the model has %d seeds (max_seeds)", parent.seed_id, len(seeds))
            return
        root, generation = parent.seed_id, 1
        while True:
            ancestor = self.model.seed(root).descriptor.parent_seed_id
            if not ancestor:
                break
            root, generation = ancestor, generation + 1
        child_id = f"{root}/{generation + 1}"
        if child_id in self.model.seed_ids():
            return
        descriptor = telemetry_pb2.SeedDescriptor()
        descriptor.CopyFrom(parent.descriptor)
        descriptor.seed_id = child_id
        descriptor.parent_seed_id = parent.seed_id
        descriptor.site = parent.site
        self.model.add_seed(descriptor)
        self.model.follow_host_shapes()
        reason = f"grew at {parent.site} from fossilized {parent.seed_id} (CHILD_OF {parent.seed_id})"
        self._transitions.append(
            convert.seed_transition(
                child_id,
                lifecycle_pb2.SEED_STAGE_UNSPECIFIED,
                lc.DORMANT,
                reason=reason,
                command_id=command_id,
                epoch=self._boundary_epoch,
            )
        )
        logger.info("seed %s: %s", child_id, reason)

    def _transition(
        self, seed: KasminaSeed, to_stage: int, *, reason: str, command_id: str = "", epoch: int | None = None
    ) -> None:
        stamp = self._boundary_epoch if epoch is None else epoch
        from_stage = seed.enter(to_stage, epoch=stamp, reason=reason, command_id=command_id)
        self._transitions.append(
            convert.seed_transition(
                seed.seed_id, from_stage, to_stage, reason=reason, command_id=command_id, epoch=stamp
            )
        )
        logger.info("seed %s: %s -> %s (%s)", seed.seed_id, lc.stage_name(from_stage), lc.stage_name(to_stage), reason)

    def _on_isolation_violation(self, seed: KasminaSeed, violation: IsolationViolation) -> None:
        reason = f"isolation violation ({violation.kind}): {violation.detail}"
        metrics.KASMINA_ISOLATION_VIOLATIONS.inc()
        with self._lock:
            if seed.stage == lc.TRAINING:
                self._finish(seed, lc.CULLED, reason=reason, epoch=violation.epoch)
        if self._on_violation is not None:
            try:
                self._on_violation(violation)
            except Exception:
                logger.exception("seed %s: the event sink failed on an isolation violation", seed.seed_id)

    def _check_run(self, run_id: str, field: str) -> None:
        if run_id != self.run_id:
            raise NotFound(f"{field}: no run {run_id!r} here (this is run {self.run_id!r})", reason="RUN_NOT_FOUND")


def _fingerprint(command: Any) -> str:
    return "|".join(
        str(part)
        for part in (
            command.seed_id,
            command.command_type,
            command.kernel_id,
            command.target_stage,
            command.run_id,
        )
    )


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp
