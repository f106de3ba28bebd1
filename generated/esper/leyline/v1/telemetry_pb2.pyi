import datetime

from esper.leyline.v1 import blueprint_pb2 as _blueprint_pb2
from esper.leyline.v1 import lifecycle_pb2 as _lifecycle_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SeedDescriptor(_message.Message):
    __slots__ = ("seed_id", "layer_index", "input_kind", "input_shape", "growth_kind", "output_shape", "site", "output_site", "parent_seed_id", "layer_units")
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    LAYER_INDEX_FIELD_NUMBER: _ClassVar[int]
    INPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    GROWTH_KIND_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SITE_FIELD_NUMBER: _ClassVar[int]
    PARENT_SEED_ID_FIELD_NUMBER: _ClassVar[int]
    LAYER_UNITS_FIELD_NUMBER: _ClassVar[int]
    seed_id: str
    layer_index: int
    input_kind: _blueprint_pb2.InputKind
    input_shape: _blueprint_pb2.TensorShape
    growth_kind: _blueprint_pb2.GrowthKind
    output_shape: _blueprint_pb2.TensorShape
    site: str
    output_site: str
    parent_seed_id: str
    layer_units: int
    def __init__(self, seed_id: _Optional[str] = ..., layer_index: _Optional[int] = ..., input_kind: _Optional[_Union[_blueprint_pb2.InputKind, str]] = ..., input_shape: _Optional[_Union[_blueprint_pb2.TensorShape, _Mapping]] = ..., growth_kind: _Optional[_Union[_blueprint_pb2.GrowthKind, str]] = ..., output_shape: _Optional[_Union[_blueprint_pb2.TensorShape, _Mapping]] = ..., site: _Optional[str] = ..., output_site: _Optional[str] = ..., parent_seed_id: _Optional[str] = ..., layer_units: _Optional[int] = ...) -> None: ...

class HostLayer(_message.Message):
    __slots__ = ("module_path", "layer_index", "module_type", "in_width", "out_width", "parameter_count", "seed_ids")
    MODULE_PATH_FIELD_NUMBER: _ClassVar[int]
    LAYER_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODULE_TYPE_FIELD_NUMBER: _ClassVar[int]
    IN_WIDTH_FIELD_NUMBER: _ClassVar[int]
    OUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_IDS_FIELD_NUMBER: _ClassVar[int]
    module_path: str
    layer_index: int
    module_type: str
    in_width: int
    out_width: int
    parameter_count: int
    seed_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, module_path: _Optional[str] = ..., layer_index: _Optional[int] = ..., module_type: _Optional[str] = ..., in_width: _Optional[int] = ..., out_width: _Optional[int] = ..., parameter_count: _Optional[int] = ..., seed_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SeedState(_message.Message):
    __slots__ = ("descriptor", "stage", "kernel_id", "blueprint_id", "alpha", "stage_entry_epoch", "is_ready_for_transition", "embargo_until_epoch", "isolation_violations", "last_transition_reason", "parameter_count", "last_command_id")
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    STAGE_ENTRY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    IS_READY_FOR_TRANSITION_FIELD_NUMBER: _ClassVar[int]
    EMBARGO_UNTIL_EPOCH_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_TRANSITION_REASON_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    descriptor: SeedDescriptor
    stage: _lifecycle_pb2.SeedStage
    kernel_id: str
    blueprint_id: str
    alpha: float
    stage_entry_epoch: int
    is_ready_for_transition: bool
    embargo_until_epoch: int
    isolation_violations: int
    last_transition_reason: str
    parameter_count: int
    last_command_id: str
    def __init__(self, descriptor: _Optional[_Union[SeedDescriptor, _Mapping]] = ..., stage: _Optional[_Union[_lifecycle_pb2.SeedStage, str]] = ..., kernel_id: _Optional[str] = ..., blueprint_id: _Optional[str] = ..., alpha: _Optional[float] = ..., stage_entry_epoch: _Optional[int] = ..., is_ready_for_transition: _Optional[bool] = ..., embargo_until_epoch: _Optional[int] = ..., isolation_violations: _Optional[int] = ..., last_transition_reason: _Optional[str] = ..., parameter_count: _Optional[int] = ..., last_command_id: _Optional[str] = ...) -> None: ...

class SeedTelemetry(_message.Message):
    __slots__ = ("run_id", "seed_id", "epoch", "global_step", "stage", "chunk_variance", "dead_node_ratio", "avg_correlation", "activation_mean", "activation_std", "gradient_norm", "alpha", "epochs_since_graft", "is_ready_for_transition", "isolation_violations", "execution_latency_us", "seed_loss", "report_time", "eval_gain", "parameter_count", "kernel_id", "added_units")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_STEP_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_VARIANCE_FIELD_NUMBER: _ClassVar[int]
    DEAD_NODE_RATIO_FIELD_NUMBER: _ClassVar[int]
    AVG_CORRELATION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_MEAN_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_STD_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_NORM_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_SINCE_GRAFT_FIELD_NUMBER: _ClassVar[int]
    IS_READY_FOR_TRANSITION_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    SEED_LOSS_FIELD_NUMBER: _ClassVar[int]
    REPORT_TIME_FIELD_NUMBER: _ClassVar[int]
    EVAL_GAIN_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    ADDED_UNITS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    seed_id: str
    epoch: int
    global_step: int
    stage: _lifecycle_pb2.SeedStage
    chunk_variance: float
    dead_node_ratio: float
    avg_correlation: float
    activation_mean: float
    activation_std: float
    gradient_norm: float
    alpha: float
    epochs_since_graft: int
    is_ready_for_transition: bool
    isolation_violations: int
    execution_latency_us: float
    seed_loss: float
    report_time: _timestamp_pb2.Timestamp
    eval_gain: float
    parameter_count: int
    kernel_id: str
    added_units: int
    def __init__(self, run_id: _Optional[str] = ..., seed_id: _Optional[str] = ..., epoch: _Optional[int] = ..., global_step: _Optional[int] = ..., stage: _Optional[_Union[_lifecycle_pb2.SeedStage, str]] = ..., chunk_variance: _Optional[float] = ..., dead_node_ratio: _Optional[float] = ..., avg_correlation: _Optional[float] = ..., activation_mean: _Optional[float] = ..., activation_std: _Optional[float] = ..., gradient_norm: _Optional[float] = ..., alpha: _Optional[float] = ..., epochs_since_graft: _Optional[int] = ..., is_ready_for_transition: _Optional[bool] = ..., isolation_violations: _Optional[int] = ..., execution_latency_us: _Optional[float] = ..., seed_loss: _Optional[float] = ..., report_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., eval_gain: _Optional[float] = ..., parameter_count: _Optional[int] = ..., kernel_id: _Optional[str] = ..., added_units: _Optional[int] = ...) -> None: ...

class SystemStatePacket(_message.Message):
    __slots__ = ("schema_version", "run_id", "epoch", "global_step", "training_loss", "validation_loss", "validation_accuracy", "packet_time", "layout_hash", "seed_stages", "seed_alpha_bp", "seed_variance_bp", "seed_dead_bp", "seed_correlation_bp", "seed_epochs_since_graft", "ready_mask", "epoch_ms", "validation_metric", "metric_direction")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_STEP_FIELD_NUMBER: _ClassVar[int]
    TRAINING_LOSS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PACKET_TIME_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_HASH_FIELD_NUMBER: _ClassVar[int]
    SEED_STAGES_FIELD_NUMBER: _ClassVar[int]
    SEED_ALPHA_BP_FIELD_NUMBER: _ClassVar[int]
    SEED_VARIANCE_BP_FIELD_NUMBER: _ClassVar[int]
    SEED_DEAD_BP_FIELD_NUMBER: _ClassVar[int]
    SEED_CORRELATION_BP_FIELD_NUMBER: _ClassVar[int]
    SEED_EPOCHS_SINCE_GRAFT_FIELD_NUMBER: _ClassVar[int]
    READY_MASK_FIELD_NUMBER: _ClassVar[int]
    EPOCH_MS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_METRIC_FIELD_NUMBER: _ClassVar[int]
    METRIC_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    run_id: str
    epoch: int
    global_step: int
    training_loss: float
    validation_loss: float
    validation_accuracy: float
    packet_time: _timestamp_pb2.Timestamp
    layout_hash: int
    seed_stages: _containers.RepeatedScalarFieldContainer[_lifecycle_pb2.SeedStage]
    seed_alpha_bp: _containers.RepeatedScalarFieldContainer[int]
    seed_variance_bp: _containers.RepeatedScalarFieldContainer[int]
    seed_dead_bp: _containers.RepeatedScalarFieldContainer[int]
    seed_correlation_bp: _containers.RepeatedScalarFieldContainer[int]
    seed_epochs_since_graft: _containers.RepeatedScalarFieldContainer[int]
    ready_mask: int
    epoch_ms: int
    validation_metric: float
    metric_direction: _lifecycle_pb2.MetricDirection
    def __init__(self, schema_version: _Optional[int] = ..., run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., global_step: _Optional[int] = ..., training_loss: _Optional[float] = ..., validation_loss: _Optional[float] = ..., validation_accuracy: _Optional[float] = ..., packet_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., layout_hash: _Optional[int] = ..., seed_stages: _Optional[_Iterable[_Union[_lifecycle_pb2.SeedStage, str]]] = ..., seed_alpha_bp: _Optional[_Iterable[int]] = ..., seed_variance_bp: _Optional[_Iterable[int]] = ..., seed_dead_bp: _Optional[_Iterable[int]] = ..., seed_correlation_bp: _Optional[_Iterable[int]] = ..., seed_epochs_since_graft: _Optional[_Iterable[int]] = ..., ready_mask: _Optional[int] = ..., epoch_ms: _Optional[int] = ..., validation_metric: _Optional[float] = ..., metric_direction: _Optional[_Union[_lifecycle_pb2.MetricDirection, str]] = ...) -> None: ...
