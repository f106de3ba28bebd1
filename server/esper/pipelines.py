"""The compilation pipelines by name: "fast", "standard", "aggressive" <-> CompilationPipeline.

Names are what configs, flags, kernel ids and bus subjects use; the enum is what
travels in Leyline messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from esper.leyline.v1 import kernel_pb2

BY_NAME: Mapping[str, kernel_pb2.CompilationPipeline] = MappingProxyType(
    {
        "fast": kernel_pb2.COMPILATION_PIPELINE_FAST,
        "standard": kernel_pb2.COMPILATION_PIPELINE_STANDARD,
        "aggressive": kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE,
    }
)
NAMES: Mapping[int, str] = MappingProxyType({value: name for name, value in BY_NAME.items()})


def pipeline_name(pipeline: int) -> str:
    """The pipeline's lowercase name; KeyError for UNSPECIFIED or an unknown value."""
    return NAMES[pipeline]
