import datetime

from esper.leyline.v1 import blueprint_pb2 as _blueprint_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CompilationPipeline(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPILATION_PIPELINE_UNSPECIFIED: _ClassVar[CompilationPipeline]
    COMPILATION_PIPELINE_FAST: _ClassVar[CompilationPipeline]
    COMPILATION_PIPELINE_STANDARD: _ClassVar[CompilationPipeline]
    COMPILATION_PIPELINE_AGGRESSIVE: _ClassVar[CompilationPipeline]

class KernelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KERNEL_STATUS_UNSPECIFIED: _ClassVar[KernelStatus]
    KERNEL_STATUS_COMPILED: _ClassVar[KernelStatus]
    KERNEL_STATUS_VALIDATING: _ClassVar[KernelStatus]
    KERNEL_STATUS_VALIDATED: _ClassVar[KernelStatus]
    KERNEL_STATUS_REJECTED: _ClassVar[KernelStatus]

class CompileJobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPILE_JOB_STATUS_UNSPECIFIED: _ClassVar[CompileJobStatus]
    COMPILE_JOB_STATUS_QUEUED: _ClassVar[CompileJobStatus]
    COMPILE_JOB_STATUS_RUNNING: _ClassVar[CompileJobStatus]
    COMPILE_JOB_STATUS_SUCCEEDED: _ClassVar[CompileJobStatus]
    COMPILE_JOB_STATUS_FAILED: _ClassVar[CompileJobStatus]
    COMPILE_JOB_STATUS_SKIPPED: _ClassVar[CompileJobStatus]
COMPILATION_PIPELINE_UNSPECIFIED: CompilationPipeline
COMPILATION_PIPELINE_FAST: CompilationPipeline
COMPILATION_PIPELINE_STANDARD: CompilationPipeline
COMPILATION_PIPELINE_AGGRESSIVE: CompilationPipeline
KERNEL_STATUS_UNSPECIFIED: KernelStatus
KERNEL_STATUS_COMPILED: KernelStatus
KERNEL_STATUS_VALIDATING: KernelStatus
KERNEL_STATUS_VALIDATED: KernelStatus
KERNEL_STATUS_REJECTED: KernelStatus
COMPILE_JOB_STATUS_UNSPECIFIED: CompileJobStatus
COMPILE_JOB_STATUS_QUEUED: CompileJobStatus
COMPILE_JOB_STATUS_RUNNING: CompileJobStatus
COMPILE_JOB_STATUS_SUCCEEDED: CompileJobStatus
COMPILE_JOB_STATUS_FAILED: CompileJobStatus
COMPILE_JOB_STATUS_SKIPPED: CompileJobStatus

class UrabraskValidationReport(_message.Message):
    __slots__ = ("kernel_id", "passed", "failure_reason", "latency_ms_mean", "latency_ms_p99", "throughput_ops_per_sec", "memory_mb_peak", "precision_drift_vs_fp32", "power_watts_avg", "benchmark_batch_size", "tags", "hardware_target", "create_time")
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_MEAN_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_P99_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_OPS_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_PEAK_FIELD_NUMBER: _ClassVar[int]
    PRECISION_DRIFT_VS_FP32_FIELD_NUMBER: _ClassVar[int]
    POWER_WATTS_AVG_FIELD_NUMBER: _ClassVar[int]
    BENCHMARK_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_TARGET_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    kernel_id: str
    passed: bool
    failure_reason: str
    latency_ms_mean: float
    latency_ms_p99: float
    throughput_ops_per_sec: float
    memory_mb_peak: float
    precision_drift_vs_fp32: float
    power_watts_avg: float
    benchmark_batch_size: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    hardware_target: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, kernel_id: _Optional[str] = ..., passed: _Optional[bool] = ..., failure_reason: _Optional[str] = ..., latency_ms_mean: _Optional[float] = ..., latency_ms_p99: _Optional[float] = ..., throughput_ops_per_sec: _Optional[float] = ..., memory_mb_peak: _Optional[float] = ..., precision_drift_vs_fp32: _Optional[float] = ..., power_watts_avg: _Optional[float] = ..., benchmark_batch_size: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., hardware_target: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class KernelArtifact(_message.Message):
    __slots__ = ("kernel_id", "blueprint_id", "pipeline", "hardware_target", "sha256", "size_bytes", "status", "tags", "input_kind", "input_shape", "parameter_count", "toolchain_hash", "compile_duration", "validation_report", "create_time", "update_time", "template_id", "growth_kind", "output_shape", "signature")
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_TARGET_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    INPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOOLCHAIN_HASH_FIELD_NUMBER: _ClassVar[int]
    COMPILE_DURATION_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_REPORT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    GROWTH_KIND_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    kernel_id: str
    blueprint_id: str
    pipeline: CompilationPipeline
    hardware_target: str
    sha256: str
    size_bytes: int
    status: KernelStatus
    tags: _containers.RepeatedScalarFieldContainer[str]
    input_kind: _blueprint_pb2.InputKind
    input_shape: _blueprint_pb2.TensorShape
    parameter_count: int
    toolchain_hash: str
    compile_duration: _duration_pb2.Duration
    validation_report: UrabraskValidationReport
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    template_id: str
    growth_kind: _blueprint_pb2.GrowthKind
    output_shape: _blueprint_pb2.TensorShape
    signature: KernelSignature
    def __init__(self, kernel_id: _Optional[str] = ..., blueprint_id: _Optional[str] = ..., pipeline: _Optional[_Union[CompilationPipeline, str]] = ..., hardware_target: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., status: _Optional[_Union[KernelStatus, str]] = ..., tags: _Optional[_Iterable[str]] = ..., input_kind: _Optional[_Union[_blueprint_pb2.InputKind, str]] = ..., input_shape: _Optional[_Union[_blueprint_pb2.TensorShape, _Mapping]] = ..., parameter_count: _Optional[int] = ..., toolchain_hash: _Optional[str] = ..., compile_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., validation_report: _Optional[_Union[UrabraskValidationReport, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., template_id: _Optional[str] = ..., growth_kind: _Optional[_Union[_blueprint_pb2.GrowthKind, str]] = ..., output_shape: _Optional[_Union[_blueprint_pb2.TensorShape, _Mapping]] = ..., signature: _Optional[_Union[KernelSignature, _Mapping]] = ...) -> None: ...

class KernelSignature(_message.Message):
    __slots__ = ("signature", "key_id")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    key_id: str
    def __init__(self, signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class KernelQuery(_message.Message):
    __slots__ = ("blueprint_id", "status", "pipeline", "tags_all", "input_kind", "input_shape", "max_parameter_count", "template_id", "growth_kind", "output_shape", "device_kind")
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    TAGS_ALL_FIELD_NUMBER: _ClassVar[int]
    INPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    MAX_PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    GROWTH_KIND_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_KIND_FIELD_NUMBER: _ClassVar[int]
    blueprint_id: str
    status: KernelStatus
    pipeline: CompilationPipeline
    tags_all: _containers.RepeatedScalarFieldContainer[str]
    input_kind: _blueprint_pb2.InputKind
    input_shape: _blueprint_pb2.TensorShape
    max_parameter_count: int
    template_id: str
    growth_kind: _blueprint_pb2.GrowthKind
    output_shape: _blueprint_pb2.TensorShape
    device_kind: str
    def __init__(self, blueprint_id: _Optional[str] = ..., status: _Optional[_Union[KernelStatus, str]] = ..., pipeline: _Optional[_Union[CompilationPipeline, str]] = ..., tags_all: _Optional[_Iterable[str]] = ..., input_kind: _Optional[_Union[_blueprint_pb2.InputKind, str]] = ..., input_shape: _Optional[_Union[_blueprint_pb2.TensorShape, _Mapping]] = ..., max_parameter_count: _Optional[int] = ..., template_id: _Optional[str] = ..., growth_kind: _Optional[_Union[_blueprint_pb2.GrowthKind, str]] = ..., output_shape: _Optional[_Union[_blueprint_pb2.TensorShape, _Mapping]] = ..., device_kind: _Optional[str] = ...) -> None: ...

class KernelQueryResult(_message.Message):
    __slots__ = ("kernels", "next_page_token", "total_size")
    KERNELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    kernels: _containers.RepeatedCompositeFieldContainer[KernelArtifact]
    next_page_token: str
    total_size: int
    def __init__(self, kernels: _Optional[_Iterable[_Union[KernelArtifact, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class CompileJob(_message.Message):
    __slots__ = ("job_id", "blueprint_id", "pipeline", "status", "attempts", "max_attempts", "last_error", "worker_id", "lease_token", "lease_expire_time", "kernel_id", "ir", "create_time", "update_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    IR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    blueprint_id: str
    pipeline: CompilationPipeline
    status: CompileJobStatus
    attempts: int
    max_attempts: int
    last_error: str
    worker_id: str
    lease_token: str
    lease_expire_time: _timestamp_pb2.Timestamp
    kernel_id: str
    ir: _blueprint_pb2.BlueprintIR
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., blueprint_id: _Optional[str] = ..., pipeline: _Optional[_Union[CompilationPipeline, str]] = ..., status: _Optional[_Union[CompileJobStatus, str]] = ..., attempts: _Optional[int] = ..., max_attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., worker_id: _Optional[str] = ..., lease_token: _Optional[str] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kernel_id: _Optional[str] = ..., ir: _Optional[_Union[_blueprint_pb2.BlueprintIR, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
