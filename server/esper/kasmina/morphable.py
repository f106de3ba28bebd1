"""A host model with Kasmina seeds placed after some of its modules.

`MorphableModel.forward` is the host's forward: seeds act through forward hooks on
their host modules, attached only while they are not an identity, so a model whose
seeds are all dormant runs exactly the host's code path.

Training-loop contract (Tolaria): call `step(loss)` after every optimizer step (it
advances ramps and stage counters and arms the sampled checks), rebuild seed
optimizers whenever `version` changes, and run the validation pass inside
`collecting_telemetry()`.

The layout can grow during a run: a fossilized seed's site gets a dormant child
seed (`add_seed`), appended after every seed already there, so the state_dict keys
of existing seeds never move. Several seeds at one site act in layout order (a
child's block reads its parent's output). `set_layout` puts the model back to a
checkpoint's layout.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from esper.errors import InvalidArgument, NotFound
from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.records import IsolationViolation
from esper.kasmina.seed import KasminaSeed
from esper.kasmina.widening import merge_width, resize_to
from esper.leyline.v1 import blueprint_pb2, telemetry_pb2

logger = logging.getLogger(__name__)

# Called with the seed and its violation; must cull the seed (the operator records why).
IsolationHandler = Callable[[KasminaSeed, IsolationViolation], None]


@dataclass(frozen=True)
class ParameterGroups:
    """The host's parameters and, per seed id, the kernel parameters that learn in its current stage."""

    host: list[nn.Parameter]
    seeds: dict[str, list[nn.Parameter]]


class MorphableModel(nn.Module):
    """`host` with one KasminaSeed per descriptor, in layout order (the order activations flow)."""

    def __init__(self, host: nn.Module, layout: Sequence[telemetry_pb2.SeedDescriptor], config: KasminaConfig) -> None:
        super().__init__()
        self.host = host
        self.config = config
        self.seeds = nn.ModuleList(KasminaSeed(descriptor, config) for descriptor in layout)
        self.epoch = 0
        self.global_step = 0
        self.isolation_handler: IsolationHandler | None = None
        # When host layers are replaced (a width seed merged, or a load resized them),
        # `host_growth` maps each new host parameter to the one it grew from, for the optimizer.
        self.host_growth: dict[Tensor, Tensor] = {}
        self._by_id: dict[str, KasminaSeed] = {}
        # Cached: step() runs after every optimizer step and must cost ~nothing when all seeds are dormant.
        self._seed_tuple: tuple[KasminaSeed, ...] = tuple(seed for seed in self.seeds if isinstance(seed, KasminaSeed))
        for seed in self._seed_tuple:
            if seed.seed_id in self._by_id:
                raise InvalidArgument.for_field("seed_layout", f"seed {seed.seed_id!r} appears twice")
            self._bind(seed)
            self._by_id[seed.seed_id] = seed

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.host(x)
        return out

    def _bind(self, seed: KasminaSeed) -> None:
        """Hook `seed` onto its host module(s); InvalidArgument naming the layout if the host lacks them."""
        host_ids = frozenset(id(param) for param in self.host.parameters())
        target = self._host_module(seed.site)
        output_target = self._host_module(seed.descriptor.output_site) if seed.is_width else None
        seed.bind(target, host_ids, self._on_violation, output_target=output_target)

    def _host_module(self, path: str) -> nn.Module:
        try:
            return self.host.get_submodule(path) if path else self.host.get_submodule("-")
        except AttributeError:
            raise InvalidArgument.for_field("seed_layout", f"host has no module at path {path!r}") from None

    # Seeds

    def seed_list(self) -> list[KasminaSeed]:
        return list(self._seed_tuple)

    def seed(self, seed_id: str) -> KasminaSeed:
        """The seed with that id; NotFound (SEED_NOT_FOUND) otherwise."""
        seed = self._by_id.get(seed_id)
        if seed is None:
            raise NotFound(f"no seed {seed_id!r} in this model", reason="SEED_NOT_FOUND")
        return seed

    def seed_ids(self) -> list[str]:
        return list(self._by_id)

    def seed_layout(self) -> list[telemetry_pb2.SeedDescriptor]:
        return [seed.descriptor for seed in self.seed_list()]

    def merge_width_seed(self, seed_id: str) -> bool:
        """Write a fossilized width seed's units into the host's layers (esper.kasmina.widening).

        The model computes the same function; the seed then holds no kernel. False, changing
        nothing, when its kernel has no trainable weights to write (a frozen compiled kernel).
        """
        seed = self.seed(seed_id)
        adaptation = seed.adaptation
        if seed.kernel is None or adaptation is None or adaptation.ir is None or not seed.kernel_parameters():
            return False
        growth = merge_width(self.host, seed.kernel, adaptation.ir, seed.site, seed.descriptor.output_site)
        seed.release_merged_kernel()
        self.host_growth.update(growth)
        self._host_replaced()
        self.follow_host_shapes()
        return True

    def follow_host_shapes(self) -> list[str]:
        """Dormant width seeds take the shapes their layers have now; returns the seeds whose shapes changed.

        A dormant width seed reads all that enters its layer and writes all of the next
        layer's output, so the units merged since it was placed are part of what it
        grows from. Seeds under way or fossilized keep the shapes their kernels have.
        """
        changed = []
        for seed in self._seed_tuple:
            if not seed.is_width or seed.stage not in lc.IDENTITY_STAGES:
                continue
            descriptor = telemetry_pb2.SeedDescriptor()
            descriptor.CopyFrom(seed.descriptor)
            _set_units(descriptor.input_shape, _units_in(self.host.get_submodule(seed.site)))
            _set_units(descriptor.output_shape, _units_out(self.host.get_submodule(descriptor.output_site)))
            if descriptor != seed.descriptor:
                seed.descriptor.CopyFrom(descriptor)
                changed.append(seed.seed_id)
        return changed

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load weights, first resizing host layers to the shapes saved (a host that had grown, or not yet)."""
        if resize_to(self.host, state_dict, prefix="host."):
            self._host_replaced()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _host_replaced(self) -> None:
        """Host layers are new objects: every seed hooks onto them again, in layout order."""
        for seed in self._seed_tuple:
            seed.unbind()
        for seed in self._seed_tuple:
            self._bind(seed)

    def add_seed(self, descriptor: telemetry_pb2.SeedDescriptor) -> KasminaSeed:
        """A new dormant seed at the end of the layout; InvalidArgument if its id is taken or its site missing."""
        if descriptor.seed_id in self._by_id:
            raise InvalidArgument.for_field("seed_layout", f"seed {descriptor.seed_id!r} appears twice")
        seed = KasminaSeed(descriptor, self.config)
        self._bind(seed)
        self.seeds.append(seed)
        self._seed_tuple = (*self._seed_tuple, seed)
        self._by_id[seed.seed_id] = seed
        return seed

    def set_layout(self, layout: Sequence[telemetry_pb2.SeedDescriptor]) -> None:
        """Make the seeds exactly `layout`, in its order: seeds already here are kept as they are
        (their stage and kernel are restored separately), missing ones are added dormant, the
        others leave the model with their hooks. Weights must be loaded afterwards."""
        wanted = [descriptor.seed_id for descriptor in layout]
        for descriptor in layout:
            kept = self._by_id.get(descriptor.seed_id)
            if kept is not None and kept.descriptor != descriptor:
                kept.descriptor.CopyFrom(descriptor)  # a dormant width seed's shapes follow the host
        if wanted == [seed.seed_id for seed in self._seed_tuple]:
            return
        if len(set(wanted)) != len(wanted):
            raise InvalidArgument.for_field("seed_layout", "a seed id appears twice")
        keep = set(wanted)
        for seed in self._seed_tuple:
            if seed.seed_id not in keep:
                seed.unbind()
        seeds = []
        for descriptor in layout:
            kept = self._by_id.get(descriptor.seed_id)
            if kept is None:
                kept = KasminaSeed(descriptor, self.config)
                self._bind(kept)
            seeds.append(kept)
        self.seeds = nn.ModuleList(seeds)
        self._seed_tuple = tuple(seeds)
        self._by_id = {seed.seed_id: seed for seed in seeds}

    # Parameters

    def host_parameters(self) -> list[nn.Parameter]:
        return list(self.host.parameters())

    def seed_parameters(self, seed_id: str) -> list[nn.Parameter]:
        """The seed's kernel parameters that learn in its current stage (empty if none do)."""
        return self.seed(seed_id).trainable_parameters()

    def seed_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Every parameter of each seed holding a kernel, frozen ones included, by seed id."""
        return {seed.seed_id: seed.kernel_parameters() for seed in self.seed_list() if seed.kernel is not None}

    def parameter_groups(self) -> ParameterGroups:
        """Host parameters and each seed's currently trainable kernel parameters (seeds with none omitted)."""
        seeds = {seed.seed_id: seed.trainable_parameters() for seed in self.seed_list()}
        return ParameterGroups(self.host_parameters(), {key: params for key, params in seeds.items() if params})

    @property
    def version(self) -> int:
        """Changes whenever any seed's trainable parameter set changes."""
        return sum(seed.version for seed in self.seed_list())

    # Training-loop hooks

    def step(self, loss: Tensor | float | None = None) -> None:
        """After each optimizer step: advance ramps and counters, arm sampled checks.

        `loss` (this step's training loss) is read only while a DRIFT_CONTROLLED ramp runs.
        """
        self.global_step += 1
        active = [seed for seed in self._seed_tuple if seed.stage not in lc.IDENTITY_STAGES]
        if not active:
            return
        loss_value = float(loss) if loss is not None and any(seed.needs_loss for seed in active) else None
        for seed in active:
            seed.on_step(loss_value)
        every = self.config.isolation_check_every
        if every and self.global_step % every == 0:
            for seed in active:
                seed.arm_isolation_check()
        every = self.config.gradient_sample_every
        if every and self.global_step % every == 0:
            for seed in active:
                seed.arm_gradient_sample()

    def arm_epoch_checks(self) -> None:
        """Isolation is checked on the first training step of every epoch."""
        for seed in self._seed_tuple:
            seed.arm_isolation_check()

    @contextlib.contextmanager
    def collecting_telemetry(self) -> Iterator[None]:
        """Gather every seed's activation statistics over the forwards run inside (the validation pass)."""
        seeds = self.seed_list()
        for seed in seeds:
            seed.begin_telemetry()
        try:
            yield
        finally:
            for seed in seeds:
                seed.end_telemetry()

    @contextlib.contextmanager
    def forced_alpha(self, alpha: float, seed_ids: Iterable[str] | None = None) -> Iterator[None]:
        """Blend the given seeds (default: all) at `alpha` while inside."""
        seeds = self.seed_list() if seed_ids is None else [self.seed(seed_id) for seed_id in seed_ids]
        with contextlib.ExitStack() as stack:
            for seed in seeds:
                stack.enter_context(seed.forced_alpha(alpha))
            yield

    def _on_violation(self, seed: KasminaSeed, kind: str, detail: str) -> None:
        violation = IsolationViolation(
            seed_id=seed.seed_id,
            kind=kind,
            detail=detail,
            epoch=self.epoch,
            global_step=self.global_step,
            violations=seed.isolation_violations,
        )
        if self.isolation_handler is not None:
            self.isolation_handler(seed, violation)
        if seed.stage == lc.TRAINING:
            seed.enter(lc.CULLED, epoch=self.epoch, reason=f"isolation violation ({kind}): {detail}")


def _units_in(module: nn.Module) -> int:
    return int(module.in_features if isinstance(module, nn.Linear) else module.in_channels)  # type: ignore[arg-type]


def _units_out(module: nn.Module) -> int:
    return int(module.out_features if isinstance(module, nn.Linear) else module.out_channels)  # type: ignore[arg-type]


def _set_units(shape: blueprint_pb2.TensorShape, units: int) -> None:
    """The unit dim of a shape without batch: features [D], or channels of [C, H, W]."""
    if shape.dims:
        shape.dims[0] = units
