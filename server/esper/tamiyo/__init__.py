"""Tamiyo, the strategic controller: decides at each epoch boundary where to grow the model and how.

The in-process API is `TamiyoController` (the TamiyoService rpcs as methods); the
heuristic policy is `heuristic-v1`; kernels are found through a `KernelDirectory`.
"""

from esper.tamiyo.config import HEURISTIC_POLICY_ID, TamiyoConfig
from esper.tamiyo.controller import TamiyoController
from esper.tamiyo.kernels import KernelDirectory

__all__ = ["HEURISTIC_POLICY_ID", "KernelDirectory", "TamiyoConfig", "TamiyoController"]
