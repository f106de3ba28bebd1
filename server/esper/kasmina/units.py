"""Starting a width seed's new units alive and distinct ("live" init).

A compiled kernel carries its IR's deterministic initial weights, so every seed
that loads the same width kernel starts with the same units, and a regrown child
repeats its parent's start. With ReLU units and the small activations of a narrow
host, a unit whose bias happens to sit below every input never fires, gets no
gradient, and the seed adds nothing (measured: both units of a 2-channel width
seed dead on the digits at host width 1, eval gain exactly 0).

So on its first TRAINING step, before it computes anything, a width seed redraws
the weights of its new units from a generator seeded by its own id and kernel
(PyTorch's default bound 1/sqrt(fan_in); the outgoing weights keep the kernel's
small initialization) and sets each unit's bias to minus the median of its
pre-activation over that first batch, so every unit fires on about half of what
it sees. The step is deterministic: the same run makes the same units, resumed or not.
"""

from __future__ import annotations

import hashlib
import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esper.ir import width_input_layer
from esper.ir.attributes import resolve_attributes
from esper.ir.ops import OP_SPECS
from esper.leyline.v1 import blueprint_pb2

logger = logging.getLogger(__name__)


@torch.no_grad()
def init_live_units(kernel: nn.Module, ir: blueprint_pb2.BlueprintIR, x: Tensor, *, key: str) -> bool:
    """Redraw the new units' weights and centre their biases on `x` (what enters the widened layer).

    Returns False, changing nothing, when the kernel's parameters are not those its IR names.
    """
    node = width_input_layer(ir)
    if node is None:
        return False
    params = dict(kernel.named_parameters())
    weight = params.get(f"ops.n_{node.node_id}.weight")
    bias = params.get(f"ops.n_{node.node_id}.bias")
    if weight is None or bias is None:
        logger.info("width kernel without the parameters its IR names; its units keep their initialization")
        return False
    bound = 1.0 / math.sqrt(weight[0].numel())
    fresh = torch.empty(weight.shape).uniform_(-bound, bound, generator=_generator(key))
    weight.copy_(fresh.to(device=weight.device, dtype=weight.dtype))
    attrs = resolve_attributes(OP_SPECS[node.op_type].attributes, node.attributes)
    source = x.detach().to(weight.dtype)
    if node.op_type == blueprint_pb2.OP_TYPE_CONV2D:
        z = F.conv2d(
            source,
            weight,
            None,
            stride=attrs.get_int("stride"),
            padding=attrs.get_int("padding"),
            groups=attrs.get_int("groups"),
        )  # [batch, k, h, w]
        rows = z.movedim(1, -1).reshape(-1, z.shape[1])
    else:
        z = F.linear(source, weight)
        rows = z.reshape(-1, z.shape[-1])
    bias.copy_(-rows.median(dim=0).values)
    return True


def _generator(key: str) -> torch.Generator:
    digest = hashlib.sha256(f"esper/width-units/{key}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") & (2**63 - 1))
