"""Width templates, "add k units": new units for a layer L, as a block from what enters L
to what the new units add to the next layer N's output.

A width seed adds `alpha * block(x)` to N's pre-activation, so at alpha = 1 the host
computes exactly what it would with L widened by k units (below). The block repeats
the host's own pattern between L and N, which is why a width seed is only placed
where that pattern is one of these (esper.kasmina.wrapping checks it numerically):

  features  Linear(D_in -> k) -> ReLU -> Linear(k -> D_out, no bias)
            L = Linear, N = Linear.
  images    Conv3x3(C_in -> k, padding 1) -> ReLU [-> MaxPool2d(2)] -> Conv3x3(k -> C_out, no bias)
            L and N = 3x3 'same' convs; the pool is there when N's map is half of L's
            (the output shape says which).
  images    Conv3x3(C_in -> k) -> ReLU -> MaxPool2d(2) -> Flatten -> Linear(k*h*w -> D_out, no bias)
            into a classifier after pooling and flattening, as Esper's CNN hosts end.

The second layer has no bias because widening L adds input columns to N, not a bias;
it starts at `LAST_LAYER_INIT_SCALE` of the default init so grafting starts gently.
Flattening a [C + k, h, w] map puts the k new channels after the C old ones, so the
Linear's columns are exactly the columns a widened N would have for them.
"""

from __future__ import annotations

from esper.errors import InvalidArgument
from esper.ir import IRBuilder
from esper.ir.analysis import invalid_ir
from esper.karn.templates.blocks import RELU
from esper.karn.templates.spec import (
    FEATURES,
    IMAGE,
    LAST_LAYER_INIT_SCALE,
    SAFE,
    TemplateSpec,
    WidthBody,
    width_template,
)

UNIT_COUNTS = (1, 2, 4, 8, 16)
_CONV_KERNEL = 3
_POOL = 2


def linear_units(units: int) -> WidthBody:
    def body(b: IRBuilder, output_shape: tuple[int, ...]) -> str:
        if len(output_shape) != 1:
            raise _mismatch(f"features widen into features, not {list(output_shape)}")
        hidden = b.activation(RELU, b.linear(b.input, units))
        return b.linear(hidden, output_shape[0], bias=False, init_scale=LAST_LAYER_INIT_SCALE)

    return body


def conv_units(units: int) -> WidthBody:
    def body(b: IRBuilder, output_shape: tuple[int, ...]) -> str:
        _, height, width = b.shape(b.input)
        hidden = b.activation(RELU, b.conv2d(b.input, units, _CONV_KERNEL))
        if len(output_shape) == 1:
            flat = b.max_pool2d(hidden, _POOL)
            pooled = b.shape(flat)
            flat = b.reshape(flat, (pooled[0] * pooled[1] * pooled[2],))
            return b.linear(flat, output_shape[0], bias=False, init_scale=LAST_LAYER_INIT_SCALE)
        if len(output_shape) != 3:
            raise _mismatch(f"a map widens into a map or into features, not {list(output_shape)}")
        out_channels, out_height, out_width = output_shape
        if (out_height, out_width) == (height // _POOL, width // _POOL):
            hidden = b.max_pool2d(hidden, _POOL)
        elif (out_height, out_width) != (height, width):
            raise _mismatch(
                f"the next conv's {out_height}x{out_width} map is neither the layer's {height}x{width} "
                f"nor half of it after a {_POOL}x{_POOL} max pool"
            )
        return b.conv2d(hidden, out_channels, _CONV_KERNEL, bias=False, init_scale=LAST_LAYER_INIT_SCALE)

    return body


def _mismatch(message: str) -> InvalidArgument:
    return invalid_ir("output_shape", message)


def _templates() -> list[TemplateSpec]:
    specs = []
    for units in UNIT_COUNTS:
        plural = "unit" if units == 1 else "units"
        specs.append(
            width_template(
                f"widen_k{units}",
                f"Widen a Linear layer by {units} {plural}",
                SAFE,
                FEATURES,
                f"{units} new ReLU {plural} for a Linear layer: they read what enters it and feed the next "
                "Linear layer, exactly as if the layer were that much wider.",
                ("width", "widen", "relu"),
                linear_units(units),
            )
        )
        plural = "channel" if units == 1 else "channels"
        specs.append(
            width_template(
                f"widen_conv3_k{units}",
                f"Widen a 3x3 conv by {units} {plural}",
                SAFE,
                IMAGE,
                f"{units} new ReLU {plural} for a 3x3 conv: they read what enters it and feed the next conv "
                "(after the host's 2x2 max pool, if it has one) or the classifier after pooling and "
                "flattening, exactly as if the conv had that many more channels.",
                ("width", "widen", "relu", "conv"),
                conv_units(units),
            )
        )
    return specs


TEMPLATES: tuple[TemplateSpec, ...] = tuple(_templates())
