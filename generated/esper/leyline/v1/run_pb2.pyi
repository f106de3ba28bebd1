import datetime

from esper.leyline.v1 import alert_pb2 as _alert_pb2
from esper.leyline.v1 import control_pb2 as _control_pb2
from esper.leyline.v1 import lifecycle_pb2 as _lifecycle_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_PENDING: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_SUCCEEDED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_PENDING: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_SUCCEEDED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_CANCELLED: RunStatus

class RunConfig(_message.Message):
    __slots__ = ("dataset", "epochs", "seed", "host_width", "static", "out_dir", "config_yaml")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    HOST_WIDTH_FIELD_NUMBER: _ClassVar[int]
    STATIC_FIELD_NUMBER: _ClassVar[int]
    OUT_DIR_FIELD_NUMBER: _ClassVar[int]
    CONFIG_YAML_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    epochs: int
    seed: int
    host_width: int
    static: bool
    out_dir: str
    config_yaml: str
    def __init__(self, dataset: _Optional[str] = ..., epochs: _Optional[int] = ..., seed: _Optional[int] = ..., host_width: _Optional[int] = ..., static: _Optional[bool] = ..., out_dir: _Optional[str] = ..., config_yaml: _Optional[str] = ...) -> None: ...

class RunSummary(_message.Message):
    __slots__ = ("final_test_accuracy", "best_val_accuracy", "params_initial", "params_final", "seeds_germinated", "seeds_fossilized", "seeds_culled", "epochs", "wall_seconds", "hook_ms_p50", "hook_ms_p95", "isolation_violations", "metric_name", "metric_direction", "final_test_metric", "best_val_metric")
    FINAL_TEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    BEST_VAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PARAMS_INITIAL_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FINAL_FIELD_NUMBER: _ClassVar[int]
    SEEDS_GERMINATED_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FOSSILIZED_FIELD_NUMBER: _ClassVar[int]
    SEEDS_CULLED_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HOOK_MS_P50_FIELD_NUMBER: _ClassVar[int]
    HOOK_MS_P95_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    METRIC_NAME_FIELD_NUMBER: _ClassVar[int]
    METRIC_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    FINAL_TEST_METRIC_FIELD_NUMBER: _ClassVar[int]
    BEST_VAL_METRIC_FIELD_NUMBER: _ClassVar[int]
    final_test_accuracy: float
    best_val_accuracy: float
    params_initial: int
    params_final: int
    seeds_germinated: int
    seeds_fossilized: int
    seeds_culled: int
    epochs: int
    wall_seconds: float
    hook_ms_p50: float
    hook_ms_p95: float
    isolation_violations: int
    metric_name: str
    metric_direction: _lifecycle_pb2.MetricDirection
    final_test_metric: float
    best_val_metric: float
    def __init__(self, final_test_accuracy: _Optional[float] = ..., best_val_accuracy: _Optional[float] = ..., params_initial: _Optional[int] = ..., params_final: _Optional[int] = ..., seeds_germinated: _Optional[int] = ..., seeds_fossilized: _Optional[int] = ..., seeds_culled: _Optional[int] = ..., epochs: _Optional[int] = ..., wall_seconds: _Optional[float] = ..., hook_ms_p50: _Optional[float] = ..., hook_ms_p95: _Optional[float] = ..., isolation_violations: _Optional[int] = ..., metric_name: _Optional[str] = ..., metric_direction: _Optional[_Union[_lifecycle_pb2.MetricDirection, str]] = ..., final_test_metric: _Optional[float] = ..., best_val_metric: _Optional[float] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "config", "status", "current_epoch", "summary", "error_message", "create_time", "start_time", "end_time", "out_dir")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    OUT_DIR_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    config: RunConfig
    status: RunStatus
    current_epoch: int
    summary: RunSummary
    error_message: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    out_dir: str
    def __init__(self, run_id: _Optional[str] = ..., config: _Optional[_Union[RunConfig, _Mapping]] = ..., status: _Optional[_Union[RunStatus, str]] = ..., current_epoch: _Optional[int] = ..., summary: _Optional[_Union[RunSummary, _Mapping]] = ..., error_message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., out_dir: _Optional[str] = ...) -> None: ...

class EpochMetrics(_message.Message):
    __slots__ = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "parameter_count", "hook_ms", "seed_stages", "train_metric", "val_metric")
    class SeedStagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    VAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    VAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    HOOK_MS_FIELD_NUMBER: _ClassVar[int]
    SEED_STAGES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_METRIC_FIELD_NUMBER: _ClassVar[int]
    VAL_METRIC_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    parameter_count: int
    hook_ms: float
    seed_stages: _containers.ScalarMap[str, str]
    train_metric: float
    val_metric: float
    def __init__(self, epoch: _Optional[int] = ..., train_loss: _Optional[float] = ..., train_accuracy: _Optional[float] = ..., val_loss: _Optional[float] = ..., val_accuracy: _Optional[float] = ..., parameter_count: _Optional[int] = ..., hook_ms: _Optional[float] = ..., seed_stages: _Optional[_Mapping[str, str]] = ..., train_metric: _Optional[float] = ..., val_metric: _Optional[float] = ...) -> None: ...

class SeedTransition(_message.Message):
    __slots__ = ("seed_id", "from_stage", "to_stage", "reason", "command_id", "epoch")
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STAGE_FIELD_NUMBER: _ClassVar[int]
    TO_STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    seed_id: str
    from_stage: _lifecycle_pb2.SeedStage
    to_stage: _lifecycle_pb2.SeedStage
    reason: str
    command_id: str
    epoch: int
    def __init__(self, seed_id: _Optional[str] = ..., from_stage: _Optional[_Union[_lifecycle_pb2.SeedStage, str]] = ..., to_stage: _Optional[_Union[_lifecycle_pb2.SeedStage, str]] = ..., reason: _Optional[str] = ..., command_id: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run_id", "sequence", "event_time", "epoch_completed", "seed_transition", "decision", "status_change", "alert", "field_report", "notice")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    EPOCH_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    SEED_TRANSITION_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGE_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    FIELD_REPORT_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    sequence: int
    event_time: _timestamp_pb2.Timestamp
    epoch_completed: EpochMetrics
    seed_transition: SeedTransition
    decision: _control_pb2.AdaptationDecision
    status_change: RunStatus
    alert: _alert_pb2.Alert
    field_report: _control_pb2.FieldReport
    notice: str
    def __init__(self, run_id: _Optional[str] = ..., sequence: _Optional[int] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., epoch_completed: _Optional[_Union[EpochMetrics, _Mapping]] = ..., seed_transition: _Optional[_Union[SeedTransition, _Mapping]] = ..., decision: _Optional[_Union[_control_pb2.AdaptationDecision, _Mapping]] = ..., status_change: _Optional[_Union[RunStatus, str]] = ..., alert: _Optional[_Union[_alert_pb2.Alert, _Mapping]] = ..., field_report: _Optional[_Union[_control_pb2.FieldReport, _Mapping]] = ..., notice: _Optional[str] = ...) -> None: ...
