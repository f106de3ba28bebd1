"""Templates for token sequences [T, D]: self-attention and MLPs on the last dim."""

from __future__ import annotations

from esper.ir import IRBuilder
from esper.ir.limits import MAX_HEADS
from esper.karn.templates import blocks
from esper.karn.templates.blocks import GELU, RELU, SILU, TANH
from esper.karn.templates.spec import (
    ADVERSARIAL,
    EXPERIMENTAL,
    LAST_LAYER_INIT_SCALE,
    SAFE,
    SEQUENCE,
    Body,
    TemplateSpec,
    template,
)

_GENTLE = "Its last layer starts at a tenth of the default init, so grafting starts gently."


def transformer_block(num_heads: int) -> Body:
    """h = x + attention(LayerNorm(x)); out = MLP(LayerNorm(h)) with a small last layer."""

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        h = b.add_(b.input, b.self_attention(b.layer_norm(b.input), num_heads))
        x = b.activation(GELU, b.linear(b.layer_norm(h), 4 * dim))
        return b.linear(x, dim, init_scale=LAST_LAYER_INIT_SCALE)

    return body


def attention_stack(depth: int, num_heads: int) -> Body:
    def body(b: IRBuilder) -> str:
        x = b.input
        for layer in range(depth):
            x = b.self_attention(x, num_heads, init_scale=LAST_LAYER_INIT_SCALE if layer == depth - 1 else 1.0)
        return x

    return body


def attention_many_heads() -> Body:
    """The most heads (at most MAX_HEADS) that divide D: head dim 1 for D <= 256."""

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        heads = max(h for h in range(1, min(dim, MAX_HEADS) + 1) if dim % h == 0)
        return b.self_attention(b.input, heads, init_scale=LAST_LAYER_INIT_SCALE)

    return body


def _safe() -> list[TemplateSpec]:
    specs = [
        template(
            f"attn_h{heads}",
            f"Self-attention, {heads} head(s)",
            SAFE,
            SEQUENCE,
            f"Multi-head self-attention with {heads} head(s) across the tokens. Needs D divisible by "
            f"{heads}. {_GENTLE}",
            ("attention", "residual"),
            blocks.attention(heads),
            blocks.heads_divide_dim(heads),
        )
        for heads in (1, 2, 4)
    ]
    specs += [
        template(
            f"prenorm_attn_h{heads}",
            f"Pre-norm self-attention, {heads} heads",
            SAFE,
            SEQUENCE,
            f"LayerNorm, then {heads}-head self-attention, as in a pre-norm transformer. Needs D divisible "
            f"by {heads}. {_GENTLE}",
            ("attention", "residual", "prenorm", "layer_norm"),
            blocks.attention(heads, prenorm=True),
            blocks.heads_divide_dim(heads),
        )
        for heads in (2, 4)
    ]
    for activation, expansion, prenorm in (
        (GELU, 2, False),
        (GELU, 4, False),
        (RELU, 2, False),
        (GELU, 4, True),
    ):
        act = "gelu" if activation == GELU else "relu"
        prefix = "seq_prenorm_mlp" if prenorm else "seq_mlp"
        specs.append(
            template(
                f"{prefix}_{act}_e{expansion}",
                f"Token-wise {'pre-norm ' if prenorm else ''}MLP, {act}, hidden {expansion}x",
                SAFE,
                SEQUENCE,
                f"{'LayerNorm, then a' if prenorm else 'A'} two-layer {act} MLP applied to every token's "
                f"features (the last dim), hidden width {expansion} x D. {_GENTLE}",
                ("mlp", "residual", act, *(("prenorm", "layer_norm") if prenorm else ())),
                blocks.mlp(activation, expansion=float(expansion), prenorm=prenorm),
            )
        )
    specs += [
        template(
            "seq_lora_r4",
            "Token-wise low-rank adapter, rank 4",
            SAFE,
            SEQUENCE,
            f"A rank-4 linear adapter on every token's features, no bias. {_GENTLE}",
            ("low_rank", "adapter", "linear"),
            blocks.low_rank(4),
            blocks.rank_at_most_dim(4),
        ),
        template(
            "seq_scale",
            "Token feature scale",
            SAFE,
            SEQUENCE,
            "A learnable per-feature scale shared by all tokens, starting at 0.1.",
            ("scale", "minimal"),
            blocks.scale_only(),
        ),
    ]
    return specs


def _experimental() -> list[TemplateSpec]:
    return [
        template(
            "transformer_block_h2",
            "Transformer block, 2 heads",
            EXPERIMENTAL,
            SEQUENCE,
            f"A pre-norm transformer layer: attention with its own residual, then a 4x GELU MLP whose "
            f"output is the delta. Needs D divisible by 2. {_GENTLE}",
            ("attention", "mlp", "prenorm", "layer_norm", "residual", "inner_residual"),
            transformer_block(2),
            blocks.heads_divide_dim(2),
        ),
        template(
            "seq_gated_mlp_e2",
            "Token-wise gated MLP, hidden 2x",
            EXPERIMENTAL,
            SEQUENCE,
            f"A sigmoid-gated MLP on every token's features. {_GENTLE}",
            ("gated", "mlp", "residual"),
            blocks.gated_mlp(None, expansion=2.0),
        ),
        template(
            "seq_swiglu_e2",
            "Token-wise SwiGLU, hidden 2x",
            EXPERIMENTAL,
            SEQUENCE,
            f"SiLU(Linear(x)) * Linear(x) on every token, projected back to D. {_GENTLE}",
            ("gated", "mlp", "residual", "silu"),
            blocks.gated_mlp(SILU, expansion=2.0),
        ),
        template(
            "attn_h8",
            "Self-attention, 8 heads",
            EXPERIMENTAL,
            SEQUENCE,
            f"Eight-head self-attention; narrow heads on small D. Needs D divisible by 8. {_GENTLE}",
            ("attention", "residual"),
            blocks.attention(8),
            blocks.heads_divide_dim(8),
        ),
    ]


def _adversarial() -> list[TemplateSpec]:
    return [
        template(
            "attn_many_heads",
            "Self-attention, one head per dim",
            ADVERSARIAL,
            SEQUENCE,
            "As many heads as divide D (up to 256), head dim 1 on small D: degenerate attention.",
            ("attention", "many_heads", "stress"),
            attention_many_heads(),
        ),
        template(
            "attn_stack_6",
            "Stack of six attention layers",
            ADVERSARIAL,
            SEQUENCE,
            "Six single-head self-attention layers with no norm and no residual: rank collapse and "
            "vanishing gradients.",
            ("attention", "deep", "stress"),
            attention_stack(6, 1),
        ),
        template(
            "seq_tanh_chain_6",
            "Saturating tanh chain on tokens",
            ADVERSARIAL,
            SEQUENCE,
            "Six Linear -> tanh layers at 3x the default init on every token: saturating units.",
            ("deep", "saturating", "tanh", "stress"),
            blocks.deep_mlp(TANH, 6, init_scale=3.0),
        ),
    ]


TEMPLATES: tuple[TemplateSpec, ...] = (*_safe(), *_experimental(), *_adversarial())
