"""Templates for image feature maps [C, H, W]: convolutions, norms, squeeze-excitation.

Every convolution keeps H and W (stride 1, padding kernel_size // 2), so the
block's output has the host's shape.
"""

from __future__ import annotations

from esper.karn.templates.blocks import ACTIVATION_NAMES, GELU, RELU, SILU
from esper.karn.templates.image_blocks import (
    bottleneck,
    channel_attention,
    channels_divisible,
    conv_stack,
    depthwise_separable,
    gated_conv,
    grouped_conv,
    inverted_residual,
    norm_conv,
    scale_channels,
    se_conv,
    squeeze_excitation,
    tanh_conv_chain,
)
from esper.karn.templates.spec import ADVERSARIAL, EXPERIMENTAL, IMAGE, SAFE, TemplateSpec, template

_GENTLE = "Its last layer starts at a tenth of the default init, so grafting starts gently."


def _safe() -> list[TemplateSpec]:
    specs = [
        template(
            f"conv3x3_{ACTIVATION_NAMES[act].lower()}",
            f"Conv 3x3 pair, {ACTIVATION_NAMES[act]}",
            SAFE,
            IMAGE,
            f"Two 3x3 convolutions with a {ACTIVATION_NAMES[act]} between them, the classic residual branch. {_GENTLE}",
            ("conv", "residual", ACTIVATION_NAMES[act].lower()),
            conv_stack(act, 3),
        )
        for act in (RELU, SILU)
    ]
    specs += [
        template(
            f"conv3x3_wide_e{factor}",
            f"Wide conv 3x3 pair, x{factor}",
            SAFE,
            IMAGE,
            f"Conv 3x3 C -> {factor}C, ReLU, conv 3x3 back to C (a wide residual branch): adds capacity to a "
            f"narrow network. {_GENTLE}",
            ("conv", "residual", "relu", "wide"),
            conv_stack(RELU, 3, width_factor=factor),
        )
        for factor in (2, 4)
    ]
    specs += [
        template(
            "inverted_residual_e4",
            "Inverted residual, expansion 4",
            SAFE,
            IMAGE,
            f"1x1 expansion to 4C, ReLU, depthwise 3x3, ReLU, 1x1 projection back to C (MobileNetV2): wide "
            f"per-pixel capacity at a depthwise convolution's cost. {_GENTLE}",
            ("conv", "inverted_residual", "depthwise_separable", "residual", "wide"),
            inverted_residual(4),
        ),
        template(
            "conv3x3_single",
            "Single conv 3x3",
            SAFE,
            IMAGE,
            f"One 3x3 convolution C -> C: the smallest spatial correction. {_GENTLE}",
            ("conv", "residual"),
            conv_stack(RELU, 3, depth=1),
        ),
        template(
            "conv1x1_relu",
            "Pointwise conv pair",
            SAFE,
            IMAGE,
            f"Two 1x1 convolutions with a ReLU: a per-pixel MLP across channels. {_GENTLE}",
            ("conv", "pointwise", "residual", "relu"),
            conv_stack(RELU, 1),
        ),
        *(
            template(
                f"bottleneck_r{ratio}",
                f"Bottleneck, reduction {ratio}",
                SAFE,
                IMAGE,
                f"1x1 reduction to C/{ratio} channels (at least 1), a 3x3 convolution, 1x1 expansion "
                f"back to C (ResNet bottleneck). {_GENTLE}",
                ("conv", "bottleneck", "residual"),
                bottleneck(ratio),
            )
            for ratio in (2, 4)
        ),
        *(
            template(
                f"dwsep_conv3x3_{ACTIVATION_NAMES[act].lower()}",
                f"Depthwise-separable conv 3x3, {ACTIVATION_NAMES[act]}",
                SAFE,
                IMAGE,
                f"Depthwise 3x3 (groups = C), {ACTIVATION_NAMES[act]}, pointwise 1x1: spatial mixing at a "
                f"fraction of a full convolution's cost. {_GENTLE}",
                ("conv", "depthwise_separable", "residual"),
                depthwise_separable(3, act),
            )
            for act in (RELU, GELU)
        ),
        *(
            template(
                f"gn_conv3x3_g{groups}",
                f"GroupNorm conv 3x3, {groups} groups",
                SAFE,
                IMAGE,
                f"GroupNorm with {groups} groups, then conv 3x3 -> ReLU -> conv 3x3. Needs C divisible by "
                f"{groups}. {_GENTLE}",
                ("conv", "group_norm", "prenorm", "residual"),
                norm_conv(groups),
                channels_divisible(groups),
            )
            for groups in (2, 4)
        ),
        *(
            template(
                f"se_r{ratio}",
                f"Squeeze-excitation, ratio {ratio}",
                SAFE,
                IMAGE,
                f"Global average pool, Linear C -> C/{ratio} (at least 1) -> ReLU -> Linear -> sigmoid "
                f"gates the channels; a per-channel scale starting at 0.1 keeps the start gentle.",
                ("squeeze_excitation", "gated", "channel_attention"),
                squeeze_excitation(ratio),
            )
            for ratio in (2, 4, 8)
        ),
        template(
            "scale_channels",
            "Channel scale",
            SAFE,
            IMAGE,
            "A learnable per-channel scale starting at 0.1: the smallest possible adaptation.",
            ("scale", "minimal"),
            scale_channels(),
        ),
    ]
    return specs


def _experimental() -> list[TemplateSpec]:
    return [
        template(
            "conv5x5_relu",
            "Conv 5x5 pair, ReLU",
            EXPERIMENTAL,
            IMAGE,
            f"Two 5x5 convolutions with a ReLU: a wider receptive field. {_GENTLE}",
            ("conv", "residual", "relu", "large_kernel"),
            conv_stack(RELU, 5),
        ),
        template(
            "dwsep_conv5x5_relu",
            "Depthwise-separable conv 5x5",
            EXPERIMENTAL,
            IMAGE,
            f"Depthwise 5x5 (groups = C), ReLU, pointwise 1x1. {_GENTLE}",
            ("conv", "depthwise_separable", "residual", "large_kernel"),
            depthwise_separable(5, RELU),
        ),
        template(
            "se_conv3x3_r4",
            "SE-ResNet branch, ratio 4",
            EXPERIMENTAL,
            IMAGE,
            f"Conv 3x3 -> ReLU -> conv 3x3, rescaled per channel by its own squeeze-excitation gate. {_GENTLE}",
            ("conv", "squeeze_excitation", "gated", "residual"),
            se_conv(4),
        ),
        template(
            "gated_conv3x3",
            "Gated conv 3x3",
            EXPERIMENTAL,
            IMAGE,
            f"conv 3x3 times sigmoid(conv 3x3), mixed by a 1x1 convolution. {_GENTLE}",
            ("conv", "gated", "residual"),
            gated_conv(),
        ),
        template(
            "grouped_conv3x3_g4",
            "Grouped conv 3x3, 4 groups",
            EXPERIMENTAL,
            IMAGE,
            f"Two 3x3 convolutions in 4 channel groups with a ReLU. Needs C divisible by 4. {_GENTLE}",
            ("conv", "grouped", "residual"),
            grouped_conv(4),
            channels_divisible(4),
        ),
        template(
            "ln_conv3x3_gelu",
            "LayerNorm conv 3x3, GELU",
            EXPERIMENTAL,
            IMAGE,
            f"LayerNorm over C, H, W, then conv 3x3 -> GELU -> conv 3x3. {_GENTLE}",
            ("conv", "layer_norm", "prenorm", "residual"),
            norm_conv(None),
        ),
        template(
            "conv3x3_stack3",
            "Conv 3x3 stack of three",
            EXPERIMENTAL,
            IMAGE,
            f"Three 3x3 convolutions with ReLUs between them. {_GENTLE}",
            ("conv", "residual", "deep"),
            conv_stack(RELU, 3, depth=3),
        ),
        template(
            "channel_attention_h1",
            "Channel self-attention",
            EXPERIMENTAL,
            IMAGE,
            f"Treats each channel's H x W map as a token and applies one-head self-attention across "
            f"channels. {_GENTLE}",
            ("attention", "channel_attention", "reshape"),
            channel_attention(1),
        ),
    ]


def _adversarial() -> list[TemplateSpec]:
    return [
        template(
            "conv3x3_chain_12",
            "Deep conv chain, 12 layers",
            ADVERSARIAL,
            IMAGE,
            "Twelve 3x3 convolutions with ReLUs and no normalization: stresses gradient flow.",
            ("conv", "deep", "stress"),
            conv_stack(RELU, 3, depth=12),
        ),
        template(
            "conv7x7_wide_x4",
            "Wide conv 7x7, 4x channels",
            ADVERSARIAL,
            IMAGE,
            "7x7 convolution to 4 x C channels, GELU, 7x7 back: stresses compute and memory.",
            ("conv", "wide", "large_kernel", "stress"),
            conv_stack(GELU, 7, width_factor=4),
        ),
        template(
            "conv15x15",
            "Conv 15x15",
            ADVERSARIAL,
            IMAGE,
            "Two 15x15 convolutions, the largest kernel the IR allows: mostly padding on small maps.",
            ("conv", "large_kernel", "stress"),
            conv_stack(RELU, 15),
        ),
        template(
            "tanh_conv_chain_6",
            "Saturating tanh conv chain",
            ADVERSARIAL,
            IMAGE,
            "Six conv 3x3 -> tanh layers at 3x the default init, so the units saturate.",
            ("conv", "deep", "saturating", "tanh", "stress"),
            tanh_conv_chain(6),
        ),
        template(
            "channel_attention_many_heads",
            "Channel attention, many heads",
            ADVERSARIAL,
            IMAGE,
            "Channels as tokens with as many heads as divide H x W (up to 256): degenerate tiny heads.",
            ("attention", "channel_attention", "many_heads", "stress"),
            channel_attention(None),
        ),
    ]


TEMPLATES: tuple[TemplateSpec, ...] = (*_safe(), *_experimental(), *_adversarial())
