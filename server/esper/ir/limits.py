"""Bounds that keep a blueprint IR small enough to compile, load and run in a seed.

A blueprint is a small block grafted into a host at one site; anything beyond these
bounds is treated as a malformed IR, not as a big model.
"""

from __future__ import annotations

# Every non-batch dimension of every shape.
MIN_DIM = 1
MAX_DIM = 65536
# Non-batch rank of any activation (input ranks are 1, 2 or 3; reshapes may add one).
MAX_RANK = 4
# Graph size.
MAX_NODES = 256
MAX_EDGES = 1024
# Trainable parameters of the whole block.
MAX_PARAMETERS = 50_000_000
# Elements of one activation per sample, so a block cannot ask for gigabytes.
MAX_ACTIVATION_ELEMENTS = 1 << 22
# Convolution hyper-parameters.
MAX_KERNEL_SIZE = 15
MAX_STRIDE = 8
# Attention: sequence length (scores are T x T per head) and heads.
MAX_SEQUENCE_LENGTH = 4096
MAX_HEADS = 256
# Real-valued hyper-parameters.
MAX_INIT_SCALE = 10.0
MAX_EPS = 1.0
