"""Block bodies shared by templates: each factory returns a `Body` for `TemplateSpec`.

Bodies that act on "the last dim" fit features ([D]) and sequences ([T, D]) alike.
"""

from __future__ import annotations

from esper.ir import IRBuilder
from esper.karn.templates.spec import LAST_LAYER_INIT_SCALE, Body, Requirement
from esper.leyline.v1 import blueprint_pb2

OPS = blueprint_pb2.OpType
RELU, GELU, SILU, TANH = OPS.OP_TYPE_RELU, OPS.OP_TYPE_GELU, OPS.OP_TYPE_SILU, OPS.OP_TYPE_TANH
SIGMOID = OPS.OP_TYPE_SIGMOID
ACTIVATION_NAMES = {RELU: "ReLU", GELU: "GELU", SILU: "SiLU", TANH: "tanh"}


def hidden_width(dim: int, expansion: float) -> int:
    return max(1, round(dim * expansion))


def mlp(activation: int, *, expansion: float = 1.0, hidden: int = 0, prenorm: bool = False) -> Body:
    """[LayerNorm] -> Linear(D -> H) -> act -> Linear(H -> D, small)."""

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        width = hidden or hidden_width(dim, expansion)
        x = b.layer_norm(b.input) if prenorm else b.input
        x = b.activation(activation, b.linear(x, width))
        return b.linear(x, dim, init_scale=LAST_LAYER_INIT_SCALE)

    return body


def deep_mlp(activation: int, depth: int, *, expansion: float = 1.0, init_scale: float = 1.0) -> Body:
    """`depth` hidden Linear -> act layers, then Linear(-> D, small)."""

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        x = b.input
        for _ in range(depth):
            x = b.activation(activation, b.linear(x, hidden_width(dim, expansion), init_scale=init_scale))
        return b.linear(x, dim, init_scale=LAST_LAYER_INIT_SCALE)

    return body


def linear_chain(depth: int) -> Body:
    """`depth` Linear(D -> D) layers with no activation, the last one small."""

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        x = b.input
        for layer in range(depth):
            x = b.linear(x, dim, init_scale=LAST_LAYER_INIT_SCALE if layer == depth - 1 else 1.0)
        return x

    return body


def gated_mlp(value_activation: int | None, *, expansion: float, prenorm: bool = False) -> Body:
    """value = [act](Linear(x)), gate = sigmoid(Linear(x)) or SiLU-gated; out = Linear(value * gate, small).

    With `value_activation` None the gate is a sigmoid (GLU); otherwise the value
    goes through the activation and the gate is linear (SwiGLU for SiLU).
    """

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        width = hidden_width(dim, expansion)
        x = b.layer_norm(b.input) if prenorm else b.input
        if value_activation is None:
            value, gate = b.linear(x, width), b.activation(SIGMOID, b.linear(x, width))
        else:
            value, gate = b.activation(value_activation, b.linear(x, width)), b.linear(x, width)
        return b.linear(b.mul(value, gate), dim, init_scale=LAST_LAYER_INIT_SCALE)

    return body


def input_gate() -> Body:
    """x * sigmoid(Linear(x)), then a SCALE starting small: a learned feature-wise gate."""

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        gate = b.activation(SIGMOID, b.linear(b.input, dim))
        return b.scale(b.mul(b.input, gate), LAST_LAYER_INIT_SCALE)

    return body


def low_rank(rank: int, activation: int | None = None) -> Body:
    """Linear(D -> r, no bias) -> [act] -> Linear(r -> D, no bias, small): a LoRA-style adapter."""

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        x = b.linear(b.input, rank, bias=False)
        if activation is not None:
            x = b.activation(activation, x)
        return b.linear(x, dim, bias=False, init_scale=LAST_LAYER_INIT_SCALE)

    return body


def rank_at_most_dim(rank: int) -> Requirement:
    def requires(shape: tuple[int, ...]) -> str | None:
        return None if rank <= shape[-1] else f"rank {rank} exceeds the width {shape[-1]}"

    return requires


def scale_only() -> Body:
    def body(b: IRBuilder) -> str:
        return b.scale(b.input, LAST_LAYER_INIT_SCALE)

    return body


def norm_scale() -> Body:
    def body(b: IRBuilder) -> str:
        return b.scale(b.layer_norm(b.input), LAST_LAYER_INIT_SCALE)

    return body


def inner_residual_mlp(activation: int, *, expansion: float) -> Body:
    """h = Linear(x); h = h + MLP(h); out = Linear(h, small): a residual stack inside the block."""

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        width = hidden_width(dim, expansion)
        h = b.linear(b.input, width)
        inner = b.linear(b.activation(activation, b.linear(h, width)), width, init_scale=LAST_LAYER_INIT_SCALE)
        return b.linear(b.add_(h, inner), dim, init_scale=LAST_LAYER_INIT_SCALE)

    return body


def product_chain(depth: int) -> Body:
    """y <- y * Linear(y) repeated: each step squares the scale of the activation."""

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        y = b.input
        for _ in range(depth):
            y = b.mul(y, b.linear(y, dim, init_scale=2.0))
        return b.linear(y, dim, init_scale=LAST_LAYER_INIT_SCALE)

    return body


def attention(num_heads: int, *, prenorm: bool = False, causal: bool = False) -> Body:
    """[LayerNorm] -> self-attention (causal: token t reads tokens 0..t) whose output projection starts small."""

    def body(b: IRBuilder) -> str:
        x = b.layer_norm(b.input) if prenorm else b.input
        return b.self_attention(x, num_heads, init_scale=LAST_LAYER_INIT_SCALE, causal=causal)

    return body


def heads_divide_dim(num_heads: int) -> Requirement:
    def requires(shape: tuple[int, ...]) -> str | None:
        dim = shape[-1]
        return None if dim % num_heads == 0 else f"{num_heads} heads do not divide the model dim {dim}"

    return requires
