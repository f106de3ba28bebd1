from esper.leyline.v1 import access_pb2 as _access_pb2
from esper.leyline.v1 import blueprint_pb2 as _blueprint_pb2
from esper.leyline.v1 import control_pb2 as _control_pb2
from esper.leyline.v1 import kernel_pb2 as _kernel_pb2
from esper.leyline.v1 import lifecycle_pb2 as _lifecycle_pb2
from esper.leyline.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StepRequest(_message.Message):
    __slots__ = ("packet", "seed_layout", "telemetry", "parameter_count", "final_epoch", "device_kind", "host_layers")
    PACKET_FIELD_NUMBER: _ClassVar[int]
    SEED_LAYOUT_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    FINAL_EPOCH_FIELD_NUMBER: _ClassVar[int]
    DEVICE_KIND_FIELD_NUMBER: _ClassVar[int]
    HOST_LAYERS_FIELD_NUMBER: _ClassVar[int]
    packet: _telemetry_pb2.SystemStatePacket
    seed_layout: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.SeedDescriptor]
    telemetry: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.SeedTelemetry]
    parameter_count: int
    final_epoch: int
    device_kind: str
    host_layers: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.HostLayer]
    def __init__(self, packet: _Optional[_Union[_telemetry_pb2.SystemStatePacket, _Mapping]] = ..., seed_layout: _Optional[_Iterable[_Union[_telemetry_pb2.SeedDescriptor, _Mapping]]] = ..., telemetry: _Optional[_Iterable[_Union[_telemetry_pb2.SeedTelemetry, _Mapping]]] = ..., parameter_count: _Optional[int] = ..., final_epoch: _Optional[int] = ..., device_kind: _Optional[str] = ..., host_layers: _Optional[_Iterable[_Union[_telemetry_pb2.HostLayer, _Mapping]]] = ...) -> None: ...

class StepResponse(_message.Message):
    __slots__ = ("commands", "signal", "decisions", "field_reports")
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    FIELD_REPORTS_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedCompositeFieldContainer[_control_pb2.AdaptationCommand]
    signal: _control_pb2.AdaptationSignal
    decisions: _containers.RepeatedCompositeFieldContainer[_control_pb2.AdaptationDecision]
    field_reports: _containers.RepeatedCompositeFieldContainer[_control_pb2.FieldReport]
    def __init__(self, commands: _Optional[_Iterable[_Union[_control_pb2.AdaptationCommand, _Mapping]]] = ..., signal: _Optional[_Union[_control_pb2.AdaptationSignal, _Mapping]] = ..., decisions: _Optional[_Iterable[_Union[_control_pb2.AdaptationDecision, _Mapping]]] = ..., field_reports: _Optional[_Iterable[_Union[_control_pb2.FieldReport, _Mapping]]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("policy_id", "current_epoch", "validation_accuracy", "active_adaptations", "conservative_mode", "tracked_runs", "policy_version", "policy_fallbacks", "policy_pinned")
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ADAPTATIONS_FIELD_NUMBER: _ClassVar[int]
    CONSERVATIVE_MODE_FIELD_NUMBER: _ClassVar[int]
    TRACKED_RUNS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    POLICY_PINNED_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    current_epoch: int
    validation_accuracy: float
    active_adaptations: int
    conservative_mode: bool
    tracked_runs: int
    policy_version: int
    policy_fallbacks: int
    policy_pinned: bool
    def __init__(self, policy_id: _Optional[str] = ..., current_epoch: _Optional[int] = ..., validation_accuracy: _Optional[float] = ..., active_adaptations: _Optional[int] = ..., conservative_mode: _Optional[bool] = ..., tracked_runs: _Optional[int] = ..., policy_version: _Optional[int] = ..., policy_fallbacks: _Optional[int] = ..., policy_pinned: _Optional[bool] = ...) -> None: ...

class LoadPolicyRequest(_message.Message):
    __slots__ = ("policy_id", "follow_updates")
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UPDATES_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    follow_updates: bool
    def __init__(self, policy_id: _Optional[str] = ..., follow_updates: _Optional[bool] = ...) -> None: ...

class LoadPolicyResponse(_message.Message):
    __slots__ = ("policy_id", "policy_version", "pinned")
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    policy_version: int
    pinned: bool
    def __init__(self, policy_id: _Optional[str] = ..., policy_version: _Optional[int] = ..., pinned: _Optional[bool] = ...) -> None: ...

class TamiyoControllerState(_message.Message):
    __slots__ = ("run_id", "best_val_accuracy", "epochs_since_improvement", "last_epoch", "embargo_until", "pre_metric", "germination_epoch", "germination_command", "commands_issued", "conservative_mode", "eval_gain", "active_adaptations", "blueprint_scores", "growth_steps")
    class EmbargoUntilEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class PreMetricEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class GerminationEpochEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class GerminationCommandEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class EvalGainEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class BlueprintScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    BEST_VAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_SINCE_IMPROVEMENT_FIELD_NUMBER: _ClassVar[int]
    LAST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    EMBARGO_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PRE_METRIC_FIELD_NUMBER: _ClassVar[int]
    GERMINATION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    GERMINATION_COMMAND_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_ISSUED_FIELD_NUMBER: _ClassVar[int]
    CONSERVATIVE_MODE_FIELD_NUMBER: _ClassVar[int]
    EVAL_GAIN_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ADAPTATIONS_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_SCORES_FIELD_NUMBER: _ClassVar[int]
    GROWTH_STEPS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    best_val_accuracy: float
    epochs_since_improvement: int
    last_epoch: int
    embargo_until: _containers.ScalarMap[str, int]
    pre_metric: _containers.ScalarMap[str, float]
    germination_epoch: _containers.ScalarMap[str, int]
    germination_command: _containers.ScalarMap[str, str]
    commands_issued: int
    conservative_mode: bool
    eval_gain: _containers.ScalarMap[str, float]
    active_adaptations: _containers.RepeatedCompositeFieldContainer[ActiveAdaptation]
    blueprint_scores: _containers.ScalarMap[str, int]
    growth_steps: _containers.RepeatedCompositeFieldContainer[GrowthStep]
    def __init__(self, run_id: _Optional[str] = ..., best_val_accuracy: _Optional[float] = ..., epochs_since_improvement: _Optional[int] = ..., last_epoch: _Optional[int] = ..., embargo_until: _Optional[_Mapping[str, int]] = ..., pre_metric: _Optional[_Mapping[str, float]] = ..., germination_epoch: _Optional[_Mapping[str, int]] = ..., germination_command: _Optional[_Mapping[str, str]] = ..., commands_issued: _Optional[int] = ..., conservative_mode: _Optional[bool] = ..., eval_gain: _Optional[_Mapping[str, float]] = ..., active_adaptations: _Optional[_Iterable[_Union[ActiveAdaptation, _Mapping]]] = ..., blueprint_scores: _Optional[_Mapping[str, int]] = ..., growth_steps: _Optional[_Iterable[_Union[GrowthStep, _Mapping]]] = ...) -> None: ...

class GrowthStep(_message.Message):
    __slots__ = ("seed_id", "growth_kind", "parameter_count", "accuracy_gain", "epoch")
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    GROWTH_KIND_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_GAIN_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    seed_id: str
    growth_kind: _blueprint_pb2.GrowthKind
    parameter_count: int
    accuracy_gain: float
    epoch: int
    def __init__(self, seed_id: _Optional[str] = ..., growth_kind: _Optional[_Union[_blueprint_pb2.GrowthKind, str]] = ..., parameter_count: _Optional[int] = ..., accuracy_gain: _Optional[float] = ..., epoch: _Optional[int] = ...) -> None: ...

class ActiveAdaptation(_message.Message):
    __slots__ = ("seed_id", "germination_command_id", "kernel_id", "blueprint_id", "germination_epoch", "pre_metric", "selected_for_tags", "eval_gain", "kernel_report", "last_stage", "stage_entry_epoch")
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    GERMINATION_COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    GERMINATION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PRE_METRIC_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FOR_TAGS_FIELD_NUMBER: _ClassVar[int]
    EVAL_GAIN_FIELD_NUMBER: _ClassVar[int]
    KERNEL_REPORT_FIELD_NUMBER: _ClassVar[int]
    LAST_STAGE_FIELD_NUMBER: _ClassVar[int]
    STAGE_ENTRY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    seed_id: str
    germination_command_id: str
    kernel_id: str
    blueprint_id: str
    germination_epoch: int
    pre_metric: float
    selected_for_tags: _containers.RepeatedScalarFieldContainer[str]
    eval_gain: float
    kernel_report: _kernel_pb2.UrabraskValidationReport
    last_stage: _lifecycle_pb2.SeedStage
    stage_entry_epoch: int
    def __init__(self, seed_id: _Optional[str] = ..., germination_command_id: _Optional[str] = ..., kernel_id: _Optional[str] = ..., blueprint_id: _Optional[str] = ..., germination_epoch: _Optional[int] = ..., pre_metric: _Optional[float] = ..., selected_for_tags: _Optional[_Iterable[str]] = ..., eval_gain: _Optional[float] = ..., kernel_report: _Optional[_Union[_kernel_pb2.UrabraskValidationReport, _Mapping]] = ..., last_stage: _Optional[_Union[_lifecycle_pb2.SeedStage, str]] = ..., stage_entry_epoch: _Optional[int] = ...) -> None: ...

class ExportControllerStateRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ExportControllerStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: TamiyoControllerState
    def __init__(self, state: _Optional[_Union[TamiyoControllerState, _Mapping]] = ...) -> None: ...

class RestoreControllerStateRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: TamiyoControllerState
    def __init__(self, state: _Optional[_Union[TamiyoControllerState, _Mapping]] = ...) -> None: ...

class RestoreControllerStateResponse(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...
