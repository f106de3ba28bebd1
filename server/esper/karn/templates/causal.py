"""Templates for causal token sequences [T, D] (a causal language model's residual stream).

Every block keeps causality: attention is causal (token t reads tokens 0..t) and
everything else acts on each token's features alone. The block's output is the delta
a depth seed blends in, so `x + block(x)` at alpha = 1 is exactly one more layer of a
pre-norm transformer.
"""

from __future__ import annotations

from esper.ir import IRBuilder
from esper.karn.templates import blocks
from esper.karn.templates.blocks import GELU
from esper.karn.templates.spec import (
    CAUSAL_SEQUENCE,
    EXPERIMENTAL,
    LAST_LAYER_INIT_SCALE,
    SAFE,
    Body,
    TemplateSpec,
    template,
)

_GENTLE = "Its last layer starts at a tenth of the default init, so grafting starts gently."


def causal_block(num_heads: int, expansion: int) -> Body:
    """A pre-norm transformer layer as a delta: a = attn(LN(x)); delta = a + MLP(LN(x + a))."""

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[-1]
        attended = b.self_attention(b.layer_norm(b.input), num_heads, init_scale=LAST_LAYER_INIT_SCALE, causal=True)
        h = b.add_(b.input, attended)
        hidden = b.activation(GELU, b.linear(b.layer_norm(h), expansion * dim))
        return b.add_(attended, b.linear(hidden, dim, init_scale=LAST_LAYER_INIT_SCALE))

    return body


def _safe() -> list[TemplateSpec]:
    specs = [
        template(
            f"causal_block_h{heads}",
            f"Causal transformer layer, {heads} head(s)",
            SAFE,
            CAUSAL_SEQUENCE,
            f"One more pre-norm transformer layer: causal {heads}-head attention with its residual, then a 4x "
            f"GELU MLP; blended in at alpha = 1 it is exactly a deeper transformer. Needs D divisible by "
            f"{heads}. {_GENTLE}",
            ("attention", "mlp", "prenorm", "layer_norm", "residual", "causal"),
            causal_block(heads, 4),
            blocks.heads_divide_dim(heads),
        )
        for heads in (2, 4)
    ]
    specs += [
        template(
            f"causal_prenorm_attn_h{heads}",
            f"Causal pre-norm self-attention, {heads} head(s)",
            SAFE,
            CAUSAL_SEQUENCE,
            f"LayerNorm, then causal {heads}-head self-attention (token t reads tokens 0..t). Needs D "
            f"divisible by {heads}. {_GENTLE}",
            ("attention", "residual", "prenorm", "layer_norm", "causal"),
            blocks.attention(heads, prenorm=True, causal=True),
            blocks.heads_divide_dim(heads),
        )
        for heads in (1, 2)
    ]
    return specs


def _experimental() -> list[TemplateSpec]:
    specs = [
        template(
            f"causal_prenorm_mlp_gelu_e{expansion}",
            f"Token-wise pre-norm MLP, gelu, hidden {expansion}x",
            EXPERIMENTAL,
            CAUSAL_SEQUENCE,
            f"LayerNorm, then a two-layer GELU MLP on every token's features alone, hidden width "
            f"{expansion} x D. {_GENTLE}",
            ("mlp", "residual", "gelu", "prenorm", "layer_norm", "causal"),
            blocks.mlp(GELU, expansion=float(expansion), prenorm=True),
        )
        for expansion in (2, 4)
    ]
    return [
        *specs,
        template(
            "causal_attn_h2",
            "Causal self-attention, 2 heads",
            EXPERIMENTAL,
            CAUSAL_SEQUENCE,
            f"Causal two-head self-attention on the raw residual stream, no norm. Needs D divisible by 2. {_GENTLE}",
            ("attention", "residual", "causal"),
            blocks.attention(2, causal=True),
            blocks.heads_divide_dim(2),
        ),
        template(
            "causal_seq_lora_r4",
            "Token-wise low-rank adapter, rank 4",
            EXPERIMENTAL,
            CAUSAL_SEQUENCE,
            f"A rank-4 linear adapter on every token's features, no bias. {_GENTLE}",
            ("low_rank", "adapter", "linear", "causal"),
            blocks.low_rank(4),
            blocks.rank_at_most_dim(4),
        ),
    ]


TEMPLATES: tuple[TemplateSpec, ...] = (*_safe(), *_experimental())
