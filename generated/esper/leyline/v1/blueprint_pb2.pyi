import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OpType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OP_TYPE_UNSPECIFIED: _ClassVar[OpType]
    OP_TYPE_INPUT: _ClassVar[OpType]
    OP_TYPE_LINEAR: _ClassVar[OpType]
    OP_TYPE_CONV2D: _ClassVar[OpType]
    OP_TYPE_LAYER_NORM: _ClassVar[OpType]
    OP_TYPE_GROUP_NORM: _ClassVar[OpType]
    OP_TYPE_RELU: _ClassVar[OpType]
    OP_TYPE_GELU: _ClassVar[OpType]
    OP_TYPE_SILU: _ClassVar[OpType]
    OP_TYPE_TANH: _ClassVar[OpType]
    OP_TYPE_SIGMOID: _ClassVar[OpType]
    OP_TYPE_ADD: _ClassVar[OpType]
    OP_TYPE_MUL: _ClassVar[OpType]
    OP_TYPE_GLOBAL_AVG_POOL: _ClassVar[OpType]
    OP_TYPE_RESHAPE: _ClassVar[OpType]
    OP_TYPE_SELF_ATTENTION: _ClassVar[OpType]
    OP_TYPE_SCALE: _ClassVar[OpType]
    OP_TYPE_MAX_POOL2D: _ClassVar[OpType]

class GrowthKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROWTH_KIND_UNSPECIFIED: _ClassVar[GrowthKind]
    GROWTH_KIND_DEPTH: _ClassVar[GrowthKind]
    GROWTH_KIND_WIDTH: _ClassVar[GrowthKind]

class BlueprintTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BLUEPRINT_TIER_UNSPECIFIED: _ClassVar[BlueprintTier]
    BLUEPRINT_TIER_SAFE: _ClassVar[BlueprintTier]
    BLUEPRINT_TIER_EXPERIMENTAL: _ClassVar[BlueprintTier]
    BLUEPRINT_TIER_ADVERSARIAL: _ClassVar[BlueprintTier]

class InputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_KIND_UNSPECIFIED: _ClassVar[InputKind]
    INPUT_KIND_FEATURES: _ClassVar[InputKind]
    INPUT_KIND_IMAGE: _ClassVar[InputKind]
    INPUT_KIND_SEQUENCE: _ClassVar[InputKind]
    INPUT_KIND_CAUSAL_SEQUENCE: _ClassVar[InputKind]

class BlueprintStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BLUEPRINT_STATUS_UNSPECIFIED: _ClassVar[BlueprintStatus]
    BLUEPRINT_STATUS_SUBMITTED: _ClassVar[BlueprintStatus]
    BLUEPRINT_STATUS_COMPILING: _ClassVar[BlueprintStatus]
    BLUEPRINT_STATUS_COMPILED: _ClassVar[BlueprintStatus]
    BLUEPRINT_STATUS_VALIDATED: _ClassVar[BlueprintStatus]
    BLUEPRINT_STATUS_FAILED: _ClassVar[BlueprintStatus]
    BLUEPRINT_STATUS_REJECTED: _ClassVar[BlueprintStatus]
OP_TYPE_UNSPECIFIED: OpType
OP_TYPE_INPUT: OpType
OP_TYPE_LINEAR: OpType
OP_TYPE_CONV2D: OpType
OP_TYPE_LAYER_NORM: OpType
OP_TYPE_GROUP_NORM: OpType
OP_TYPE_RELU: OpType
OP_TYPE_GELU: OpType
OP_TYPE_SILU: OpType
OP_TYPE_TANH: OpType
OP_TYPE_SIGMOID: OpType
OP_TYPE_ADD: OpType
OP_TYPE_MUL: OpType
OP_TYPE_GLOBAL_AVG_POOL: OpType
OP_TYPE_RESHAPE: OpType
OP_TYPE_SELF_ATTENTION: OpType
OP_TYPE_SCALE: OpType
OP_TYPE_MAX_POOL2D: OpType
GROWTH_KIND_UNSPECIFIED: GrowthKind
GROWTH_KIND_DEPTH: GrowthKind
GROWTH_KIND_WIDTH: GrowthKind
BLUEPRINT_TIER_UNSPECIFIED: BlueprintTier
BLUEPRINT_TIER_SAFE: BlueprintTier
BLUEPRINT_TIER_EXPERIMENTAL: BlueprintTier
BLUEPRINT_TIER_ADVERSARIAL: BlueprintTier
INPUT_KIND_UNSPECIFIED: InputKind
INPUT_KIND_FEATURES: InputKind
INPUT_KIND_IMAGE: InputKind
INPUT_KIND_SEQUENCE: InputKind
INPUT_KIND_CAUSAL_SEQUENCE: InputKind
BLUEPRINT_STATUS_UNSPECIFIED: BlueprintStatus
BLUEPRINT_STATUS_SUBMITTED: BlueprintStatus
BLUEPRINT_STATUS_COMPILING: BlueprintStatus
BLUEPRINT_STATUS_COMPILED: BlueprintStatus
BLUEPRINT_STATUS_VALIDATED: BlueprintStatus
BLUEPRINT_STATUS_FAILED: BlueprintStatus
BLUEPRINT_STATUS_REJECTED: BlueprintStatus

class TensorShape(_message.Message):
    __slots__ = ("dims",)
    DIMS_FIELD_NUMBER: _ClassVar[int]
    dims: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dims: _Optional[_Iterable[int]] = ...) -> None: ...

class AttributeValue(_message.Message):
    __slots__ = ("int_value", "float_value", "ints_value")
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    INTS_VALUE_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    float_value: float
    ints_value: IntList
    def __init__(self, int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., ints_value: _Optional[_Union[IntList, _Mapping]] = ...) -> None: ...

class IntList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class IRNode(_message.Message):
    __slots__ = ("node_id", "op_type", "attributes", "input_shapes", "output_shape")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AttributeValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AttributeValue, _Mapping]] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    OP_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    op_type: OpType
    attributes: _containers.MessageMap[str, AttributeValue]
    input_shapes: _containers.RepeatedCompositeFieldContainer[TensorShape]
    output_shape: TensorShape
    def __init__(self, node_id: _Optional[str] = ..., op_type: _Optional[_Union[OpType, str]] = ..., attributes: _Optional[_Mapping[str, AttributeValue]] = ..., input_shapes: _Optional[_Iterable[_Union[TensorShape, _Mapping]]] = ..., output_shape: _Optional[_Union[TensorShape, _Mapping]] = ...) -> None: ...

class IREdge(_message.Message):
    __slots__ = ("source_node_id", "target_node_id", "target_port")
    SOURCE_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_PORT_FIELD_NUMBER: _ClassVar[int]
    source_node_id: str
    target_node_id: str
    target_port: int
    def __init__(self, source_node_id: _Optional[str] = ..., target_node_id: _Optional[str] = ..., target_port: _Optional[int] = ...) -> None: ...

class BlueprintIR(_message.Message):
    __slots__ = ("input_kind", "input_shape", "output_shape", "nodes", "edges", "output_node_id", "init_seed", "growth_kind")
    INPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    INIT_SEED_FIELD_NUMBER: _ClassVar[int]
    GROWTH_KIND_FIELD_NUMBER: _ClassVar[int]
    input_kind: InputKind
    input_shape: TensorShape
    output_shape: TensorShape
    nodes: _containers.RepeatedCompositeFieldContainer[IRNode]
    edges: _containers.RepeatedCompositeFieldContainer[IREdge]
    output_node_id: str
    init_seed: int
    growth_kind: GrowthKind
    def __init__(self, input_kind: _Optional[_Union[InputKind, str]] = ..., input_shape: _Optional[_Union[TensorShape, _Mapping]] = ..., output_shape: _Optional[_Union[TensorShape, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[IRNode, _Mapping]]] = ..., edges: _Optional[_Iterable[_Union[IREdge, _Mapping]]] = ..., output_node_id: _Optional[str] = ..., init_seed: _Optional[int] = ..., growth_kind: _Optional[_Union[GrowthKind, str]] = ...) -> None: ...

class BlueprintTemplate(_message.Message):
    __slots__ = ("template_id", "name", "tier", "description", "input_kind", "ir", "parameter_estimate", "tags", "growth_kind")
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    IR_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    GROWTH_KIND_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    name: str
    tier: BlueprintTier
    description: str
    input_kind: InputKind
    ir: BlueprintIR
    parameter_estimate: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    growth_kind: GrowthKind
    def __init__(self, template_id: _Optional[str] = ..., name: _Optional[str] = ..., tier: _Optional[_Union[BlueprintTier, str]] = ..., description: _Optional[str] = ..., input_kind: _Optional[_Union[InputKind, str]] = ..., ir: _Optional[_Union[BlueprintIR, _Mapping]] = ..., parameter_estimate: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., growth_kind: _Optional[_Union[GrowthKind, str]] = ...) -> None: ...

class Blueprint(_message.Message):
    __slots__ = ("blueprint_id", "template_id", "name", "tier", "ir", "ir_sha256", "status", "failure_reason", "parameter_estimate", "tags", "create_time", "update_time")
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    IR_FIELD_NUMBER: _ClassVar[int]
    IR_SHA256_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    blueprint_id: str
    template_id: str
    name: str
    tier: BlueprintTier
    ir: BlueprintIR
    ir_sha256: str
    status: BlueprintStatus
    failure_reason: str
    parameter_estimate: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, blueprint_id: _Optional[str] = ..., template_id: _Optional[str] = ..., name: _Optional[str] = ..., tier: _Optional[_Union[BlueprintTier, str]] = ..., ir: _Optional[_Union[BlueprintIR, _Mapping]] = ..., ir_sha256: _Optional[str] = ..., status: _Optional[_Union[BlueprintStatus, str]] = ..., failure_reason: _Optional[str] = ..., parameter_estimate: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
