"""Templates for feature vectors [D]: MLPs, gates, low-rank adapters, feature attention."""

from __future__ import annotations

from esper.ir import IRBuilder
from esper.karn.templates import blocks
from esper.karn.templates.blocks import ACTIVATION_NAMES, GELU, RELU, SILU, TANH
from esper.karn.templates.spec import (
    ADVERSARIAL,
    EXPERIMENTAL,
    FEATURES,
    LAST_LAYER_INIT_SCALE,
    SAFE,
    Body,
    Requirement,
    TemplateSpec,
    template,
)

_GENTLE = "Its last layer starts at a tenth of the default init, so grafting starts gently."


def _expansion_label(expansion: float) -> str:
    return "05" if expansion == 0.5 else str(int(expansion))


def _mlps() -> list[TemplateSpec]:
    specs = []
    for activation, expansions in ((RELU, (0.5, 1, 2, 4)), (GELU, (1, 2, 4)), (SILU, (1, 2, 4))):
        act = ACTIVATION_NAMES[activation]
        for expansion in expansions:
            specs.append(
                template(
                    f"mlp_{act.lower()}_e{_expansion_label(expansion)}",
                    f"Residual MLP, {act}, hidden {expansion}x",
                    SAFE,
                    FEATURES,
                    f"Two-layer {act} MLP on the features with hidden width {expansion} x D, added to the "
                    f"host as a residual delta. {_GENTLE}",
                    ("mlp", "residual", act.lower()),
                    blocks.mlp(activation, expansion=float(expansion)),
                )
            )
    for hidden in (16, 32, 64, 128, 256):
        specs.append(
            template(
                f"mlp_relu_h{hidden}",
                f"Residual MLP, ReLU, hidden {hidden}",
                SAFE,
                FEATURES,
                f"Two-layer ReLU MLP with a fixed hidden width of {hidden}, whatever the host width. {_GENTLE}",
                ("mlp", "residual", "relu", "fixed_width"),
                blocks.mlp(RELU, hidden=hidden),
            )
        )
    for activation, expansion in ((RELU, 2), (GELU, 2), (GELU, 4), (SILU, 2)):
        act = ACTIVATION_NAMES[activation]
        specs.append(
            template(
                f"prenorm_mlp_{act.lower()}_e{expansion}",
                f"Pre-norm MLP, {act}, hidden {expansion}x",
                SAFE,
                FEATURES,
                f"LayerNorm, then a two-layer {act} MLP of hidden width {expansion} x D, as in a transformer "
                f"feed-forward branch. {_GENTLE}",
                ("mlp", "residual", "prenorm", "layer_norm", act.lower()),
                blocks.mlp(activation, expansion=float(expansion), prenorm=True),
            )
        )
    return specs


def _gates_and_adapters() -> list[TemplateSpec]:
    specs = [
        template(
            f"gated_mlp_e{expansion}",
            f"Gated MLP (GLU), hidden {expansion}x",
            SAFE,
            FEATURES,
            f"A linear value multiplied by a sigmoid gate, both of width {expansion} x D, then projected "
            f"back to D. {_GENTLE}",
            ("gated", "mlp", "residual"),
            blocks.gated_mlp(None, expansion=float(expansion)),
        )
        for expansion in (1, 2)
    ]
    specs += [
        template(
            f"lora_r{rank}",
            f"Low-rank adapter, rank {rank}",
            SAFE,
            FEATURES,
            f"A rank-{rank} linear adapter (D -> {rank} -> D, no bias): a cheap correction of the "
            f"host's features. {_GENTLE}",
            ("low_rank", "adapter", "linear"),
            blocks.low_rank(rank),
            blocks.rank_at_most_dim(rank),
        )
        for rank in (2, 4, 8, 16)
    ]
    specs.append(
        template(
            "scale_only",
            "Feature scale",
            SAFE,
            FEATURES,
            "A learnable per-feature scale, starting at 0.1: the smallest possible adaptation.",
            ("scale", "minimal"),
            blocks.scale_only(),
        )
    )
    return specs


def _tokens(count: int) -> Requirement:
    def requires(shape: tuple[int, ...]) -> str | None:
        return None if shape[0] % count == 0 else f"width {shape[0]} is not divisible into {count} tokens"

    return requires


def feature_attention(tokens: int, num_heads: int | None) -> Body:
    """Reshape [D] into [tokens, D / tokens], self-attend, reshape back.

    `num_heads` None uses one head per token-dim element (head dim 1).
    """

    def body(b: IRBuilder) -> str:
        dim = b.shape(b.input)[0]
        heads = num_heads or min(dim // tokens, 256)
        x = b.reshape(b.input, (tokens, dim // tokens))
        x = b.self_attention(x, heads, init_scale=LAST_LAYER_INIT_SCALE)
        return b.reshape(x, (dim,))

    return body


def _experimental() -> list[TemplateSpec]:
    specs = [
        template(
            "mlp_tanh_e2",
            "Residual MLP, tanh, hidden 2x",
            EXPERIMENTAL,
            FEATURES,
            f"Two-layer tanh MLP of hidden width 2 x D; bounded activations. {_GENTLE}",
            ("mlp", "residual", "tanh"),
            blocks.mlp(TANH, expansion=2.0),
        ),
        template(
            "mlp_deep3_gelu_e1",
            "Deep MLP, GELU, 3 hidden layers",
            EXPERIMENTAL,
            FEATURES,
            f"Three GELU hidden layers of width D before the output projection. {_GENTLE}",
            ("mlp", "residual", "gelu", "deep"),
            blocks.deep_mlp(GELU, 3),
        ),
        template(
            "swiglu_e2",
            "SwiGLU, hidden 2x",
            EXPERIMENTAL,
            FEATURES,
            f"SiLU(Linear(x)) * Linear(x) of width 2 x D, projected back to D. {_GENTLE}",
            ("gated", "mlp", "residual", "silu"),
            blocks.gated_mlp(SILU, expansion=2.0),
        ),
        template(
            "prenorm_gated_mlp_e2",
            "Pre-norm gated MLP, hidden 2x",
            EXPERIMENTAL,
            FEATURES,
            f"LayerNorm, then a sigmoid-gated MLP of width 2 x D. {_GENTLE}",
            ("gated", "mlp", "residual", "prenorm", "layer_norm"),
            blocks.gated_mlp(None, expansion=2.0, prenorm=True),
        ),
        template(
            "mlp_inner_residual_e2",
            "MLP with an inner residual, hidden 2x",
            EXPERIMENTAL,
            FEATURES,
            f"Projects to 2 x D, adds a GELU MLP residually in that space, projects back. {_GENTLE}",
            ("mlp", "residual", "gelu", "inner_residual"),
            blocks.inner_residual_mlp(GELU, expansion=2.0),
        ),
        template(
            "lora_gelu_r8",
            "Non-linear low-rank adapter, rank 8",
            EXPERIMENTAL,
            FEATURES,
            f"D -> 8 -> GELU -> D without bias: a low-rank adapter with a non-linearity. {_GENTLE}",
            ("low_rank", "adapter", "gelu"),
            blocks.low_rank(8, GELU),
            blocks.rank_at_most_dim(8),
        ),
        template(
            "input_gate",
            "Feature gate",
            EXPERIMENTAL,
            FEATURES,
            "x * sigmoid(Linear(x)) followed by a scale starting at 0.1: the block learns which features to amplify.",
            ("gated", "scale"),
            blocks.input_gate(),
        ),
        template(
            "layernorm_scale",
            "Normalized feature scale",
            EXPERIMENTAL,
            FEATURES,
            "LayerNorm of the features times a learnable scale starting at 0.1: adds a normalized copy.",
            ("scale", "layer_norm"),
            blocks.norm_scale(),
        ),
    ]
    for tokens, heads in ((4, 1), (4, 2), (8, 2)):
        specs.append(
            template(
                f"feature_attention_t{tokens}_h{heads}",
                f"Feature attention, {tokens} tokens, {heads} head(s)",
                EXPERIMENTAL,
                FEATURES,
                f"Splits the D features into {tokens} tokens of D/{tokens}, applies {heads}-head "
                f"self-attention and flattens back. Needs D divisible by {tokens} and D/{tokens} by "
                f"{heads}. {_GENTLE}",
                ("attention", "feature_attention", "reshape"),
                feature_attention(tokens, heads),
                _tokens(tokens),
            )
        )
    return specs


def _adversarial() -> list[TemplateSpec]:
    return [
        *(
            template(
                f"deep_linear_chain_{depth}",
                f"Deep linear chain, {depth} layers",
                ADVERSARIAL,
                FEATURES,
                f"{depth} stacked D x D linear layers without activations: stresses gradient flow and conditioning.",
                ("deep", "linear", "stress"),
                blocks.linear_chain(depth),
            )
            for depth in (16, 32)
        ),
        template(
            "mlp_relu_e16",
            "Huge expansion MLP, hidden 16x",
            ADVERSARIAL,
            FEATURES,
            "A ReLU MLP of hidden width 16 x D: stresses parameter and memory budgets.",
            ("mlp", "wide", "stress"),
            blocks.mlp(RELU, expansion=16.0),
        ),
        template(
            "tanh_chain_8",
            "Saturating tanh chain",
            ADVERSARIAL,
            FEATURES,
            "Eight Linear -> tanh layers initialized at 3x the default scale, so the tanh units saturate "
            "and gradients vanish.",
            ("deep", "saturating", "tanh", "stress"),
            blocks.deep_mlp(TANH, 8, init_scale=3.0),
        ),
        template(
            "feature_attention_many_heads",
            "Feature attention, one head per dim",
            ADVERSARIAL,
            FEATURES,
            "Four tokens of D/4 with as many heads as dims (head dim 1): degenerate attention that stresses "
            "the kernel's reshapes.",
            ("attention", "feature_attention", "many_heads", "stress"),
            feature_attention(4, None),
            _tokens(4),
        ),
        template(
            "product_chain_3",
            "Multiplicative chain",
            ADVERSARIAL,
            FEATURES,
            "Three steps of y * Linear(y): the activation's scale grows polynomially, probing overflow "
            "and the stability gates.",
            ("gated", "stress", "unstable"),
            blocks.product_chain(3),
        ),
    ]


TEMPLATES: tuple[TemplateSpec, ...] = (*_mlps(), *_gates_and_adapters(), *_experimental(), *_adversarial())
