"""The host architecture spec: enough to rebuild one of Esper's default hosts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from esper import checks
from esper.errors import InvalidArgument

HostKind = Literal["mlp", "cnn", "transformer", "rescnn"]
HOST_KINDS: tuple[HostKind, ...] = ("mlp", "cnn", "transformer", "rescnn")
MAX_WIDTH = 4096
MAX_DEPTH = 8


@dataclass(frozen=True)
class HostSpec:
    """One default host: an MLP over features, a small CNN or residual CNN over images, or a
    causal transformer over token ids.

    `width` is the hidden width (MLP), the channel count of every conv block (CNN,
    residual CNN) or the model width (transformer); `depth` the number of hidden layers,
    conv blocks, residual blocks or transformer blocks. A transformer's `input_shape` is
    `[context]` (tokens per sequence) and `num_classes` its vocabulary. `init_seed` fixes
    the initial weights. Recorded in lineage.json, so a saved model can be rebuilt.
    """

    kind: HostKind
    input_shape: tuple[int, ...]
    num_classes: int
    width: int
    depth: int = 2
    init_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if self.kind not in HOST_KINDS:
            raise InvalidArgument.for_field("host.kind", f"must be one of {HOST_KINDS}, got {self.kind!r}")
        checks.in_range("host.width", self.width, 1, MAX_WIDTH)
        checks.in_range("host.depth", self.depth, 1, MAX_DEPTH)
        checks.at_least("host.num_classes", self.num_classes, 2)
        checks.non_negative("host.init_seed", self.init_seed)
        if any(d < 1 for d in self.input_shape):
            raise InvalidArgument.for_field(
                "host.input_shape", f"dimensions must be >= 1, got {list(self.input_shape)}"
            )
        self._check_shape()

    def _check_shape(self) -> None:
        if self.kind == "mlp" and len(self.input_shape) != 1:
            raise InvalidArgument.for_field(
                "host.input_shape", f"an mlp takes [features], got {list(self.input_shape)}"
            )
        if self.kind == "transformer" and len(self.input_shape) != 1:
            raise InvalidArgument.for_field(
                "host.input_shape", f"a transformer takes [context] token ids, got {list(self.input_shape)}"
            )
        if self.kind == "rescnn" and len(self.input_shape) != 3:
            raise InvalidArgument.for_field(
                "host.input_shape", f"a rescnn takes [channels, height, width], got {list(self.input_shape)}"
            )
        if self.kind == "cnn":
            if len(self.input_shape) != 3:
                raise InvalidArgument.for_field(
                    "host.input_shape", f"a cnn takes [channels, height, width], got {list(self.input_shape)}"
                )
            smallest = 2**self.depth
            if min(self.input_shape[1:]) < smallest:
                raise InvalidArgument.for_field(
                    "host.input_shape",
                    f"images of {self.input_shape[1]}x{self.input_shape[2]} are too small for "
                    f"{self.depth} pooling blocks (need at least {smallest}x{smallest})",
                )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (`input_shape` as a list)."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostSpec:
        """Rebuild a spec from `to_dict` output; unknown or missing keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgument.for_field(
                f"host.{unknown[0]}", f"unknown key; known keys: {', '.join(sorted(known))}"
            )
        missing = [name for name in ("kind", "input_shape", "num_classes", "width") if name not in data]
        if missing:
            raise InvalidArgument.for_field(f"host.{missing[0]}", "required key is missing")
        shape = data["input_shape"]
        if not isinstance(shape, list | tuple) or not all(type(d) is int for d in shape):
            raise InvalidArgument.for_field("host.input_shape", f"must be a list of ints, got {shape!r}")
        for name in ("num_classes", "width", "depth", "init_seed"):
            if name in data and type(data[name]) is not int:
                raise InvalidArgument.for_field(f"host.{name}", f"must be an int, got {data[name]!r}")
        return cls(**{**data, "input_shape": tuple(shape)})
