"""Esper's block hosts: a small causal transformer for text and a residual CNN for images.

Both are stacks of identical blocks in a ModuleList, so `esper.wrap`'s default sites
are the block outputs: a depth seed there is one more block, blended in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Transformer heads are this wide; a width that is no multiple of it gets one head.
HEAD_DIM = 16
MLP_EXPANSION = 4


def head_count(width: int) -> int:
    return width // HEAD_DIM if width % HEAD_DIM == 0 else 1


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where token t reads tokens 0..t; mode-free (no dropout)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.heads = heads

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)  # [batch, heads, T, hd]
        return self.out(attended.transpose(1, 2).reshape(batch, tokens, width))


class TransformerBlock(nn.Module):
    """A pre-norm transformer layer: x + attn(LN(x)), then + MLP(LN(.)) with a GELU module."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, MLP_EXPANSION * width), nn.GELU(), nn.Linear(MLP_EXPANSION * width, width)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CausalTransformer(nn.Module):
    """A character-level causal language model: token ids [batch, T] -> next-token logits [batch, T, vocab].

    Token and learned position embeddings, `depth` pre-norm blocks of `width` (heads of
    HEAD_DIM), a final LayerNorm and a linear head. Blocks live in `blocks` (seed sites
    `blocks.0`, `blocks.1`, ...).
    """

    def __init__(self, vocab: int, context: int, width: int, depth: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.zeros(context, width))
        self.blocks = nn.ModuleList(TransformerBlock(width, head_count(width)) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        nn.init.normal_(self.position, std=0.02)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed(tokens) + self.position[: tokens.shape[1]]  # [batch, T, width]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))  # [batch, T, vocab]


class ResidualBlock(nn.Module):
    """relu(x + conv(relu(conv(x)))) with 3x3 convolutions that keep the shape."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.act2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act2(x + self.conv2(self.act1(self.conv1(x))))


class ResidualCNN(nn.Module):
    """A 3x3 stem conv to `width` channels and a 2x2 max pool, `depth` residual blocks, global average pool, linear.

    Blocks live in `blocks` (seed sites `blocks.0`, ...); no normalization or dropout.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        channels, height, _ = input_shape
        self.stem = nn.Conv2d(channels, width, kernel_size=3, padding=1)
        self.stem_act = nn.ReLU()
        self.pool = nn.MaxPool2d(2) if height >= 8 else nn.Identity()
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(depth))
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.stem_act(self.stem(x)))  # [batch, width, h, w]
        for block in self.blocks:
            x = block(x)
        return self.classifier(x.mean(dim=(2, 3)))


def transformer_parameters(vocab: int, context: int, width: int, depth: int) -> int:
    """Parameter count of `CausalTransformer(vocab, context, width, depth)`, for budgets and reports."""
    block = 2 * 2 * width + (3 * width * width + 3 * width) + (width * width + width)
    block += MLP_EXPANSION * width * width + MLP_EXPANSION * width + MLP_EXPANSION * width * width + width
    return vocab * width + context * width + depth * block + 2 * width + width * vocab + vocab
