import datetime

from esper.leyline.v1 import kernel_pb2 as _kernel_pb2
from esper.leyline.v1 import lifecycle_pb2 as _lifecycle_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AdaptationCommand(_message.Message):
    __slots__ = ("command_id", "run_id", "seed_id", "command_type", "kernel_id", "blueprint_id", "target_stage", "grafting_strategy", "selected_for_tags", "reason", "epoch", "priority", "issue_time")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_TYPE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_STAGE_FIELD_NUMBER: _ClassVar[int]
    GRAFTING_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FOR_TAGS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    run_id: str
    seed_id: str
    command_type: _lifecycle_pb2.CommandType
    kernel_id: str
    blueprint_id: str
    target_stage: _lifecycle_pb2.SeedStage
    grafting_strategy: _lifecycle_pb2.GraftingStrategy
    selected_for_tags: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    epoch: int
    priority: _lifecycle_pb2.MessagePriority
    issue_time: _timestamp_pb2.Timestamp
    def __init__(self, command_id: _Optional[str] = ..., run_id: _Optional[str] = ..., seed_id: _Optional[str] = ..., command_type: _Optional[_Union[_lifecycle_pb2.CommandType, str]] = ..., kernel_id: _Optional[str] = ..., blueprint_id: _Optional[str] = ..., target_stage: _Optional[_Union[_lifecycle_pb2.SeedStage, str]] = ..., grafting_strategy: _Optional[_Union[_lifecycle_pb2.GraftingStrategy, str]] = ..., selected_for_tags: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., epoch: _Optional[int] = ..., priority: _Optional[_Union[_lifecycle_pb2.MessagePriority, str]] = ..., issue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AdaptationSignal(_message.Message):
    __slots__ = ("conservative_mode", "emergency_rollback_required", "optimizer_rebuild_required", "reason")
    CONSERVATIVE_MODE_FIELD_NUMBER: _ClassVar[int]
    EMERGENCY_ROLLBACK_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_REBUILD_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    conservative_mode: bool
    emergency_rollback_required: bool
    optimizer_rebuild_required: bool
    reason: str
    def __init__(self, conservative_mode: _Optional[bool] = ..., emergency_rollback_required: _Optional[bool] = ..., optimizer_rebuild_required: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class AdaptationDecision(_message.Message):
    __slots__ = ("epoch", "seed_id", "command_id", "command_type", "reason")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    seed_id: str
    command_id: str
    command_type: _lifecycle_pb2.CommandType
    reason: str
    def __init__(self, epoch: _Optional[int] = ..., seed_id: _Optional[str] = ..., command_id: _Optional[str] = ..., command_type: _Optional[_Union[_lifecycle_pb2.CommandType, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class FieldReport(_message.Message):
    __slots__ = ("report_id", "run_id", "seed_id", "blueprint_id", "kernel_id", "outcome", "pre_metric", "post_metric", "eval_metrics", "epochs_active", "germination_command_id", "selected_for_tags", "kernel_report", "reason", "report_time", "metric_direction")
    class EvalMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PRE_METRIC_FIELD_NUMBER: _ClassVar[int]
    POST_METRIC_FIELD_NUMBER: _ClassVar[int]
    EVAL_METRICS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    GERMINATION_COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FOR_TAGS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_REPORT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REPORT_TIME_FIELD_NUMBER: _ClassVar[int]
    METRIC_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    run_id: str
    seed_id: str
    blueprint_id: str
    kernel_id: str
    outcome: _lifecycle_pb2.AdaptationOutcome
    pre_metric: float
    post_metric: float
    eval_metrics: _containers.ScalarMap[str, float]
    epochs_active: int
    germination_command_id: str
    selected_for_tags: _containers.RepeatedScalarFieldContainer[str]
    kernel_report: _kernel_pb2.UrabraskValidationReport
    reason: str
    report_time: _timestamp_pb2.Timestamp
    metric_direction: _lifecycle_pb2.MetricDirection
    def __init__(self, report_id: _Optional[str] = ..., run_id: _Optional[str] = ..., seed_id: _Optional[str] = ..., blueprint_id: _Optional[str] = ..., kernel_id: _Optional[str] = ..., outcome: _Optional[_Union[_lifecycle_pb2.AdaptationOutcome, str]] = ..., pre_metric: _Optional[float] = ..., post_metric: _Optional[float] = ..., eval_metrics: _Optional[_Mapping[str, float]] = ..., epochs_active: _Optional[int] = ..., germination_command_id: _Optional[str] = ..., selected_for_tags: _Optional[_Iterable[str]] = ..., kernel_report: _Optional[_Union[_kernel_pb2.UrabraskValidationReport, _Mapping]] = ..., reason: _Optional[str] = ..., report_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metric_direction: _Optional[_Union[_lifecycle_pb2.MetricDirection, str]] = ...) -> None: ...

class PolicyUpdate(_message.Message):
    __slots__ = ("policy_id", "version", "parent_policy_id", "field_report_count", "sha256", "artifact_uri", "metrics", "create_time", "card_json", "transition_count", "feature_schema_version")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARENT_POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_REPORT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_URI_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    version: int
    parent_policy_id: str
    field_report_count: int
    sha256: str
    artifact_uri: str
    metrics: _containers.ScalarMap[str, float]
    create_time: _timestamp_pb2.Timestamp
    card_json: str
    transition_count: int
    feature_schema_version: int
    def __init__(self, policy_id: _Optional[str] = ..., version: _Optional[int] = ..., parent_policy_id: _Optional[str] = ..., field_report_count: _Optional[int] = ..., sha256: _Optional[str] = ..., artifact_uri: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., card_json: _Optional[str] = ..., transition_count: _Optional[int] = ..., feature_schema_version: _Optional[int] = ...) -> None: ...
