"""One seed slot: an adaptation site in the host, and its forward by lifecycle stage.

A seed blends `h + alpha * kernel(x)` into the host: a depth seed at the output of
one host module (h = x, that module's output), a width seed across two (x what
enters the layer L it widens, h the output of the layer N after L). Forward by stage:
  DORMANT, GERMINATED, LOADING, CULLED, CANCELLED, ROLLED_BACK: the identity (h).
  TRAINING: the straight-through blend (esper.kasmina.isolation): the value is
    exactly the host's h and the host's gradients exactly what they would be
    without the seed (the kernel reads x detached), while the kernel learns from the
    task-loss gradient it would get if grafted at `training_blend_alpha` (1.0 by
    default: the blend it reaches at the end of the ramp, so what it learns is what
    it will be asked to do), a depth seed with a proximal term that bounds its output
    (`training_reach`, esper.kasmina.isolation).
  GRAFTING: h + alpha * kernel(x), alpha advanced each training step by the ramp.
  STABILIZATION, EVALUATING: h + kernel(x) with the kernel frozen.
  FINE_TUNING: h + kernel(x), the kernel trained on the task loss with the host.
  FOSSILIZED: h + kernel(x), frozen for good.

A depth seed runs through a forward hook on its module. A width seed has two: one
on L that keeps L's input (and observes L's output for telemetry), one on N that
adds the kernel's output to N's; between them the host runs unchanged, so at alpha
= 1 the model computes exactly what it would with L widened by the kernel's units
(esper.karn.templates.width). Hooks are attached only while the seed is not an
identity or while telemetry is collected, so a dormant seed costs nothing. The
lifecycle, the straight-through TRAINING, the isolation checks and the grafting
ramp are the same code for both kinds. Stage changes go through `enter`, which
refuses any transition the lifecycle forbids.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from esper.errors import FailedPrecondition
from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.isolation import GradientProbe, LeakProbe, forward_mismatch, shared_parameters, straight_through
from esper.kasmina.ramp import AlphaRamp, strategy_from_name
from esper.kasmina.records import Adaptation, SeedSnapshot
from esper.kasmina.telemetry import ActivationStats, ActivationSummary, GradientSample
from esper.kasmina.units import init_live_units
from esper.leyline.v1 import blueprint_pb2, telemetry_pb2

logger = logging.getLogger(__name__)

# (seed, kind, detail): must cull the seed before returning.
ViolationHandler = Callable[["KasminaSeed", str, str], None]

_FROZEN_STAGES = frozenset({lc.STABILIZATION, lc.EVALUATING, lc.FOSSILIZED})


class KasminaSeed(nn.Module):
    """One seed slot. `kernel` is a private trainable module, present from LOADING to the outcome."""

    kernel: nn.Module | None
    _target: nn.Module | None
    _output_target: nn.Module | None
    _handles: tuple[RemovableHandle, ...]
    _host_ids: frozenset[int]
    _on_violation: ViolationHandler | None
    _captured: Tensor | None

    def __init__(self, descriptor: telemetry_pb2.SeedDescriptor, config: KasminaConfig) -> None:
        super().__init__()
        self.descriptor = telemetry_pb2.SeedDescriptor()
        self.descriptor.CopyFrom(descriptor)
        self.seed_id = descriptor.seed_id
        self.config = config
        self.kernel = None
        self.stage: int = lc.DORMANT
        self.alpha = 0.0
        self.ramp: AlphaRamp | None = None
        self.steps_in_stage = 0
        self.stage_entry_epoch = 0
        self.embargo_until_epoch = 0
        self.isolation_violations = 0
        self.last_transition_reason = ""
        self.last_command_id = ""
        self.adaptation: Adaptation | None = None
        # Changes whenever the set of trainable parameters changes (optimizers rebuild on it).
        self.version = 0
        self.gradient_norm = 0.0
        self._seed_loss_sum = 0.0
        self._seed_loss_count = 0
        self._forced_alpha: float | None = None
        self._stats: ActivationStats | None = None
        self.activation_summary = ActivationSummary()
        self._check_armed = False
        self._sample_armed = False
        self._sample: GradientSample | None = None
        self._units_initialized = False
        # Plain attributes, not submodules: host modules must not appear under the seed.
        object.__setattr__(self, "_target", None)
        object.__setattr__(self, "_output_target", None)
        object.__setattr__(self, "_handles", ())
        object.__setattr__(self, "_host_ids", frozenset())
        object.__setattr__(self, "_on_violation", None)
        # What entered a width seed's layer in the current forward, until the next layer uses it.
        object.__setattr__(self, "_captured", None)

    @property
    def is_width(self) -> bool:
        return self.descriptor.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH

    @property
    def site(self) -> str:
        """Host module path the seed acts at (a width seed: the layer it widens)."""
        return self.descriptor.site or self.seed_id

    def bind(
        self,
        target: nn.Module,
        host_parameter_ids: frozenset[int],
        on_violation: ViolationHandler,
        *,
        output_target: nn.Module | None = None,
    ) -> None:
        """Place the seed after `target` (a width seed: across `target` and `output_target`, the layer after it).

        `on_violation` must cull the seed (the model or the operator does).
        """
        if self.is_width != (output_target is not None):
            raise ValueError(f"seed {self.seed_id}: a width seed needs the layer after its own, a depth seed none")
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_output_target", output_target)
        object.__setattr__(self, "_host_ids", host_parameter_ids)
        object.__setattr__(self, "_on_violation", on_violation)
        self._refresh_hook()

    def unbind(self) -> None:
        """Take the seed's hooks off the host (the seed leaves the model)."""
        for handle in self._handles:
            handle.remove()
        object.__setattr__(self, "_handles", ())
        object.__setattr__(self, "_target", None)
        object.__setattr__(self, "_output_target", None)
        object.__setattr__(self, "_captured", None)

    # Lifecycle

    def enter(self, stage: int, *, epoch: int, reason: str = "", command_id: str = "") -> int:
        """Move to `stage` and apply its effects; returns the previous stage.

        Raises FailedPrecondition (ILLEGAL_TRANSITION) and changes nothing when the
        lifecycle forbids the move, or when a kernel stage is entered without a kernel.
        """
        lc.check_transition(self.stage, stage)
        if stage in lc.KERNEL_STAGES and self.kernel is None:
            raise FailedPrecondition(
                f"seed {self.seed_id}: {lc.stage_name(stage)} needs a loaded kernel",
                reason="ILLEGAL_TRANSITION",
            )
        previous, self.stage = self.stage, stage
        self.steps_in_stage = 0
        self._units_initialized = False
        self.gradient_norm = 0.0  # a gradient of the previous stage says nothing about this one
        self.stage_entry_epoch = epoch
        self.last_transition_reason = reason
        self.last_command_id = command_id
        self._apply_stage_effects(stage, epoch)
        self._refresh_hook()
        return previous

    def _apply_stage_effects(self, stage: int, epoch: int) -> None:
        self._check_armed = stage == lc.TRAINING
        if stage in lc.IDENTITY_STAGES:
            self.alpha = 0.0
            self.ramp = None
            self._drop_kernel()
        if stage == lc.CULLED:
            self.embargo_until_epoch = epoch + self.config.embargo_epochs
        if stage == lc.DORMANT:
            self.adaptation = None
        if stage == lc.GRAFTING:
            self.ramp = AlphaRamp(self._strategy(), self.config.ramp_steps, smoothing=self.config.drift_smoothing)
            self.alpha = self.ramp.alpha
            if self.adaptation is not None:
                self.adaptation.graft_epoch = epoch
        elif stage in lc.KERNEL_STAGES:
            self.ramp = None
            self.alpha = 1.0 if stage in lc.BLENDING_STAGES else 0.0
        if stage == lc.FOSSILIZED and self.adaptation is not None:
            self.adaptation.fossilization_epoch = epoch
        if stage in lc.KERNEL_STAGES:
            self._set_kernel_trainable(stage not in _FROZEN_STAGES)

    def _strategy(self) -> int:
        chosen = self.adaptation.grafting_strategy if self.adaptation is not None else 0
        return chosen or strategy_from_name(self.config.grafting_strategy)

    def attach_kernel(self, kernel: nn.Module) -> None:
        """Hold `kernel` (only while LOADING); it becomes part of the model's parameters."""
        if self.stage != lc.LOADING:
            raise FailedPrecondition(
                f"seed {self.seed_id}: a kernel is attached while LOADING, not {lc.stage_name(self.stage)}"
            )
        self.kernel = kernel
        self.version += 1

    def _drop_kernel(self) -> None:
        self._finish_sample()
        if self.kernel is not None:
            self.kernel = None
            self.version += 1

    def _set_kernel_trainable(self, trainable: bool) -> None:
        assert self.kernel is not None
        changed = False
        for param in self.kernel.parameters():
            if param.requires_grad != trainable:
                param.requires_grad_(trainable)
                changed = True
        if changed:
            self.version += 1

    @property
    def merged(self) -> bool:
        """A fossilized width seed whose units now are host weights (it holds no kernel any more)."""
        return self.adaptation is not None and self.adaptation.merged

    def release_merged_kernel(self) -> nn.Module:
        """The FOSSILIZED width seed's kernel, which the model has just written into the host; the seed drops it."""
        if self.stage != lc.FOSSILIZED or not self.is_width or self.kernel is None or self.adaptation is None:
            raise FailedPrecondition(f"seed {self.seed_id}: only a fossilized width seed holding its kernel merges")
        kernel, self.kernel = self.kernel, None
        self.adaptation.merged = True
        self.version += 1
        self._refresh_hook()
        return kernel

    @property
    def has_trainable_kernel(self) -> bool:
        return self.kernel is not None and any(True for _ in self.kernel.parameters())

    def kernel_parameters(self) -> list[nn.Parameter]:
        """Every parameter of the kernel, frozen ones included; empty without a kernel."""
        return list(self.kernel.parameters()) if self.kernel is not None else []

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The kernel parameters that learn in the current stage."""
        if self.stage not in lc.TRAINABLE_STAGES:
            return []
        return [param for param in self.kernel_parameters() if param.requires_grad]

    @property
    def is_ready_for_transition(self) -> bool:
        """The seed has done its stage's work and waits for a command."""
        if self.stage == lc.TRAINING:
            return self.steps_in_stage >= self.config.training_min_steps
        if self.stage == lc.GRAFTING:
            return self.ramp is not None and self.ramp.done
        if self.stage == lc.STABILIZATION:
            return self.steps_in_stage >= self.config.stabilization_steps
        if self.stage == lc.EVALUATING:
            return self.adaptation is not None and self.adaptation.eval_gain is not None
        if self.stage == lc.FINE_TUNING:
            return self.steps_in_stage >= self.config.fine_tuning_min_steps
        return False

    @property
    def needs_loss(self) -> bool:
        return self.stage == lc.GRAFTING and self.ramp is not None and self.ramp.needs_loss

    def snapshot(self) -> SeedSnapshot:
        ramp = self.ramp
        return SeedSnapshot(
            stage=self.stage,
            alpha=self.alpha,
            ramp_step=ramp.step if ramp is not None else None,
            ramp_loss_average=ramp.loss_average if ramp is not None else None,
            steps_in_stage=self.steps_in_stage,
            stage_entry_epoch=self.stage_entry_epoch,
            embargo_until_epoch=self.embargo_until_epoch,
            isolation_violations=self.isolation_violations,
            last_transition_reason=self.last_transition_reason,
            last_command_id=self.last_command_id,
            gradient_norm=self.gradient_norm,
            adaptation=dataclasses.replace(self.adaptation) if self.adaptation is not None else None,
        )

    def restore(self, snapshot: SeedSnapshot, kernel: nn.Module | None) -> None:
        """Put the seed back in a checkpointed state (a restore, not a transition).

        `kernel` is a fresh instance of the snapshot's kernel, required exactly when the
        stage holds one; its weights are loaded afterwards with the model's state_dict.
        """
        merged = snapshot.adaptation is not None and snapshot.adaptation.merged
        if (snapshot.stage in lc.KERNEL_STAGES and not merged) != (kernel is not None):
            raise FailedPrecondition(
                f"seed {self.seed_id}: restoring {lc.stage_name(snapshot.stage)} "
                f"{'needs' if kernel is None else 'takes no'} kernel"
            )
        self._finish_sample()
        self.kernel = kernel
        self.version += 1
        self.stage = snapshot.stage
        self.ramp = None
        # Before the stage effects: the ramp's strategy comes from the adaptation.
        self.adaptation = dataclasses.replace(snapshot.adaptation) if snapshot.adaptation else None
        if snapshot.stage in lc.KERNEL_STAGES and kernel is not None:
            self._apply_stage_effects(snapshot.stage, snapshot.stage_entry_epoch)
        if self.ramp is not None and snapshot.ramp_step is not None:
            self.ramp.step = min(snapshot.ramp_step, self.ramp.steps)
            self.ramp.loss_average = snapshot.ramp_loss_average
        self.alpha = snapshot.alpha
        self.steps_in_stage = snapshot.steps_in_stage
        self.stage_entry_epoch = snapshot.stage_entry_epoch
        self.embargo_until_epoch = snapshot.embargo_until_epoch
        self.isolation_violations = snapshot.isolation_violations
        self.last_transition_reason = snapshot.last_transition_reason
        self.last_command_id = snapshot.last_command_id
        self.gradient_norm = snapshot.gradient_norm
        self._check_armed = self._sample_armed = False
        self._units_initialized = False
        self._refresh_hook()

    # Training steps and sampling

    def on_step(self, loss: float | None) -> None:
        """One optimizer step happened: advance the stage's counters and the ramp."""
        if self.stage in lc.IDENTITY_STAGES:
            return
        self.steps_in_stage += 1
        if self.stage == lc.GRAFTING and self.ramp is not None:
            self.alpha = self.ramp.advance(loss)
        self._finish_sample()

    def arm_isolation_check(self) -> None:
        """Check isolation on the next training forward (TRAINING seeds only)."""
        if self.stage == lc.TRAINING:
            self._check_armed = True

    def arm_gradient_sample(self) -> None:
        """Record gradient statistics on the next training step (seeds whose kernel learns)."""
        if self.stage in lc.TRAINABLE_STAGES:
            self._sample_armed = True

    def _finish_sample(self) -> None:
        sample, self._sample = self._sample, None
        if sample is None:
            return
        norm, loss = sample.finish()
        if norm is not None:
            self.gradient_norm = norm
        if loss is not None:
            self._seed_loss_sum += loss
            self._seed_loss_count += 1

    def take_seed_loss(self) -> float:
        """Mean sampled seed loss since the last call (0 without samples); resets the mean."""
        mean = self._seed_loss_sum / self._seed_loss_count if self._seed_loss_count else 0.0
        self._seed_loss_sum, self._seed_loss_count = 0.0, 0
        return mean

    # Telemetry

    def begin_telemetry(self) -> None:
        self._stats = ActivationStats(
            self.descriptor.input_kind,
            max_units=self.config.correlation_max_units,
            max_rows=self.config.correlation_max_rows,
        )
        self._refresh_hook()

    def end_telemetry(self) -> None:
        if self._stats is not None:
            self.activation_summary = self._stats.summary()
        self._stats = None
        self._refresh_hook()

    @contextlib.contextmanager
    def forced_alpha(self, alpha: float) -> Iterator[None]:
        """Blend at `alpha` instead of the stage's own while inside (EVALUATING measures alpha=0)."""
        previous, self._forced_alpha = self._forced_alpha, alpha
        try:
            yield
        finally:
            self._forced_alpha = previous

    # Module behaviour

    def train(self, mode: bool = True) -> KasminaSeed:
        # Kernels are mode-free, and exported programs refuse train()/eval(): do not recurse.
        self.training = mode
        return self

    def forward(self, h: Tensor, x: Tensor | None = None) -> Tensor:
        """The blend at the seed's stage: `h` is the host value it adds to, `x` the kernel's input.

        A depth seed passes only `h` (its kernel reads the activation it adds to).
        """
        source = h if x is None else x
        kernel = self.kernel
        if kernel is None or self.stage in lc.IDENTITY_STAGES:
            return h
        source = self._fit_input(source)
        if self.stage == lc.TRAINING:
            return self._training_forward(h, source, kernel)
        alpha = self.alpha if self._forced_alpha is None else self._forced_alpha
        if alpha == 0.0:
            return h
        self._begin_sample(kernel)
        return h + self._fit_output(alpha * kernel(_dense(source)), h)

    def _training_forward(self, h: Tensor, x: Tensor, kernel: nn.Module) -> Tensor:
        if not torch.is_grad_enabled() and self._stats is None:
            return h  # no gradient to learn from, and the value is h anyway
        if self.is_width and self.steps_in_stage == 0 and torch.is_grad_enabled() and not self._units_initialized:
            self._initialize_units(kernel, x)
        sample = self._begin_sample(kernel)
        check = self._check_armed and torch.is_grad_enabled()
        if not check:
            out, s = self._training_output(h, x)
        else:
            self._check_armed = False
            shared = shared_parameters(kernel, self._host_ids)
            if shared:
                self._violate("parameters", f"kernel shares host parameters: {', '.join(shared)}")
                return h
            # Aliases used only by the seed: their gradients are exactly what the seed hands the host.
            tap = h.view_as(h) if h.requires_grad else h
            source = tap if x is h else (x.view_as(x) if x.requires_grad else x)
            out, s = self._training_output(tap, source)
            mismatch = forward_mismatch(h, out)
            if mismatch is not None:
                self._violate("forward", mismatch)
                return h
            if tap is not h:
                GradientProbe(tap, out, lambda detail: self._violate("gradient", detail))
            if source is not tap and source is not x:
                LeakProbe(source, lambda detail: self._violate("gradient", detail))
        if sample is not None and out.requires_grad:
            sample.watch_output(out, s, self.config.training_blend_alpha)
        return out

    def _initialize_units(self, kernel: nn.Module, x: Tensor) -> None:
        """Before a width seed's first TRAINING step: its new units start alive and its own (units.py)."""
        self._units_initialized = True
        adaptation = self.adaptation
        if self.config.width_init != "live" or adaptation is None or adaptation.ir is None:
            return
        key = f"{self.seed_id}/{adaptation.kernel_id}/{adaptation.germination_epoch}"
        init_live_units(kernel, adaptation.ir, x, key=key)

    def _training_output(self, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """(output, kernel output) of the straight-through blend; the kernel reads `x` detached."""
        assert self.kernel is not None
        s = self._fit_output(self.kernel(_dense(x.detach())), h)
        reach = self.config.width_training_reach if self.is_width else self.config.training_reach
        return straight_through(h, s, self.config.training_blend_alpha, reach), s

    def _fit_input(self, x: Tensor) -> Tensor:
        """What the kernel reads: the first units of its input when the host has grown there since."""
        wanted = self.descriptor.input_shape.dims
        if not wanted or tuple(x.shape[1:]) == tuple(wanted):
            return x
        dim = _unit_dim(x)
        return x.narrow(dim, 0, int(wanted[0] if dim == 1 else wanted[-1]))

    def _fit_output(self, s: Tensor, h: Tensor) -> Tensor:
        """What the kernel adds, zero-padded to the host's units when they have grown since it was placed."""
        if s.shape == h.shape:
            return s
        dim = _unit_dim(h)
        missing = h.shape[dim] - s.shape[dim]
        pad = [0, 0] * (h.dim() - 1 - (dim % h.dim())) + [0, missing]
        return torch.nn.functional.pad(s, pad)

    def _begin_sample(self, kernel: nn.Module) -> GradientSample | None:
        if not self._sample_armed or not torch.is_grad_enabled() or not self.training:
            return None
        self._sample_armed = False
        self._finish_sample()
        self._sample = GradientSample(kernel)
        return self._sample

    def _violate(self, kind: str, detail: str) -> None:
        self.isolation_violations += 1
        logger.warning("seed %s: isolation violation (%s): %s", self.seed_id, kind, detail)
        handler: ViolationHandler | None = self._on_violation
        if handler is None:
            raise RuntimeError(f"seed {self.seed_id} is not bound to a model")
        handler(self, kind, detail)

    # Hooks

    def _needs_hook(self) -> bool:
        return self._stats is not None or (self.kernel is not None and self.stage not in lc.IDENTITY_STAGES)

    def _refresh_hook(self) -> None:
        target: nn.Module | None = self._target
        if target is None:
            return
        handles: tuple[RemovableHandle, ...] = self._handles
        if self._needs_hook() and not handles:
            output_target: nn.Module | None = self._output_target
            if output_target is None:
                handles = (target.register_forward_hook(self._hook),)
            else:
                handles = (
                    target.register_forward_hook(self._layer_hook),
                    output_target.register_forward_hook(self._next_layer_hook),
                )
            object.__setattr__(self, "_handles", handles)
        elif not self._needs_hook() and handles:
            for handle in handles:
                handle.remove()
            object.__setattr__(self, "_handles", ())
            object.__setattr__(self, "_captured", None)

    @property
    def hooked(self) -> bool:
        return bool(self._handles)

    def _hook(self, module: nn.Module, args: Any, output: Tensor) -> Tensor:
        stats = self._stats
        if stats is None:
            result: Tensor = self(output)
            return result
        stats.observe(output)
        start = time.perf_counter()
        result = self(output)
        stats.record_latency(time.perf_counter() - start)
        return result

    def _layer_hook(self, module: nn.Module, args: Any, output: Tensor) -> None:
        """On the widened layer L: keep what entered it for the next layer's hook; observe L's units."""
        if self._stats is not None:
            self._stats.observe(output)
        active = self.kernel is not None and self.stage not in lc.IDENTITY_STAGES
        # Exported kernels were traced on contiguous inputs and may `view` what they compute from
        # it; a strided input made a width kernel at a conv -> linear site fail in a run.
        object.__setattr__(self, "_captured", args[0].contiguous() if active else None)

    def _next_layer_hook(self, module: nn.Module, args: Any, output: Tensor) -> Tensor:
        """On the layer N after L: add the new units' contribution to N's output."""
        captured: Tensor | None = self._captured
        object.__setattr__(self, "_captured", None)
        if captured is None:
            return output
        stats = self._stats
        if stats is None:
            result: Tensor = self(output, captured)
            return result
        start = time.perf_counter()
        result = self(output, captured)
        stats.record_latency(time.perf_counter() - start)
        return result


def _dense(x: Tensor) -> Tensor:
    """`x` in contiguous memory: an exported kernel traced on contiguous examples may `view` its input,
    and a host's activations can arrive in another layout (a convolution over a one-channel image
    may answer in channels-last strides)."""
    return x.contiguous()


def _unit_dim(x: Tensor) -> int:
    """The dim holding units: channels of [batch, C, H, W], features of [batch, ..., D]."""
    return 1 if x.dim() == 4 else x.dim() - 1
