import datetime

from esper.leyline.v1 import lifecycle_pb2 as _lifecycle_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TensorElementType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TENSOR_ELEMENT_TYPE_UNSPECIFIED: _ClassVar[TensorElementType]
    TENSOR_ELEMENT_TYPE_FLOAT32: _ClassVar[TensorElementType]
    TENSOR_ELEMENT_TYPE_INT64: _ClassVar[TensorElementType]
    TENSOR_ELEMENT_TYPE_BOOL: _ClassVar[TensorElementType]

class SeedAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEED_ACTION_UNSPECIFIED: _ClassVar[SeedAction]
    SEED_ACTION_WAIT: _ClassVar[SeedAction]
    SEED_ACTION_GERMINATE: _ClassVar[SeedAction]
    SEED_ACTION_ADVANCE: _ClassVar[SeedAction]
    SEED_ACTION_CULL: _ClassVar[SeedAction]
    SEED_ACTION_FOSSILIZE: _ClassVar[SeedAction]
TENSOR_ELEMENT_TYPE_UNSPECIFIED: TensorElementType
TENSOR_ELEMENT_TYPE_FLOAT32: TensorElementType
TENSOR_ELEMENT_TYPE_INT64: TensorElementType
TENSOR_ELEMENT_TYPE_BOOL: TensorElementType
SEED_ACTION_UNSPECIFIED: SeedAction
SEED_ACTION_WAIT: SeedAction
SEED_ACTION_GERMINATE: SeedAction
SEED_ACTION_ADVANCE: SeedAction
SEED_ACTION_CULL: SeedAction
SEED_ACTION_FOSSILIZE: SeedAction

class Tensor(_message.Message):
    __slots__ = ("shape", "element_type", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    element_type: TensorElementType
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., element_type: _Optional[_Union[TensorElementType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class GraphNodeSet(_message.Message):
    __slots__ = ("node_type", "features", "ids")
    NODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    node_type: str
    features: Tensor
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_type: _Optional[str] = ..., features: _Optional[_Union[Tensor, _Mapping]] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GraphEdgeSet(_message.Message):
    __slots__ = ("source_type", "relation", "target_type", "edge_index")
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_TYPE_FIELD_NUMBER: _ClassVar[int]
    EDGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    source_type: str
    relation: str
    target_type: str
    edge_index: Tensor
    def __init__(self, source_type: _Optional[str] = ..., relation: _Optional[str] = ..., target_type: _Optional[str] = ..., edge_index: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class ObservationGraph(_message.Message):
    __slots__ = ("feature_schema_version", "node_sets", "edge_sets")
    FEATURE_SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_SETS_FIELD_NUMBER: _ClassVar[int]
    EDGE_SETS_FIELD_NUMBER: _ClassVar[int]
    feature_schema_version: int
    node_sets: _containers.RepeatedCompositeFieldContainer[GraphNodeSet]
    edge_sets: _containers.RepeatedCompositeFieldContainer[GraphEdgeSet]
    def __init__(self, feature_schema_version: _Optional[int] = ..., node_sets: _Optional[_Iterable[_Union[GraphNodeSet, _Mapping]]] = ..., edge_sets: _Optional[_Iterable[_Union[GraphEdgeSet, _Mapping]]] = ...) -> None: ...

class PolicyTransition(_message.Message):
    __slots__ = ("transition_id", "run_id", "epoch", "policy_id", "policy_version", "observation", "action_mask", "kernel_mask", "seed_actions", "kernel_id", "log_prob", "value", "fallback", "fallback_reason", "validation_score", "parameter_count", "final_epoch", "transition_time", "free_slots", "metric_direction")
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    ACTION_MASK_FIELD_NUMBER: _ClassVar[int]
    KERNEL_MASK_FIELD_NUMBER: _ClassVar[int]
    SEED_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    LOG_PROB_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_SCORE_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    FINAL_EPOCH_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    METRIC_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    transition_id: str
    run_id: str
    epoch: int
    policy_id: str
    policy_version: int
    observation: ObservationGraph
    action_mask: Tensor
    kernel_mask: Tensor
    seed_actions: _containers.RepeatedScalarFieldContainer[SeedAction]
    kernel_id: str
    log_prob: float
    value: float
    fallback: bool
    fallback_reason: str
    validation_score: float
    parameter_count: int
    final_epoch: int
    transition_time: _timestamp_pb2.Timestamp
    free_slots: int
    metric_direction: _lifecycle_pb2.MetricDirection
    def __init__(self, transition_id: _Optional[str] = ..., run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., policy_id: _Optional[str] = ..., policy_version: _Optional[int] = ..., observation: _Optional[_Union[ObservationGraph, _Mapping]] = ..., action_mask: _Optional[_Union[Tensor, _Mapping]] = ..., kernel_mask: _Optional[_Union[Tensor, _Mapping]] = ..., seed_actions: _Optional[_Iterable[_Union[SeedAction, str]]] = ..., kernel_id: _Optional[str] = ..., log_prob: _Optional[float] = ..., value: _Optional[float] = ..., fallback: _Optional[bool] = ..., fallback_reason: _Optional[str] = ..., validation_score: _Optional[float] = ..., parameter_count: _Optional[int] = ..., final_epoch: _Optional[int] = ..., transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., free_slots: _Optional[int] = ..., metric_direction: _Optional[_Union[_lifecycle_pb2.MetricDirection, str]] = ...) -> None: ...
