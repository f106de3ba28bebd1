from esper.leyline.v1 import access_pb2 as _access_pb2
from esper.leyline.v1 import blueprint_pb2 as _blueprint_pb2
from esper.leyline.v1 import kernel_pb2 as _kernel_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateBlueprintRequest(_message.Message):
    __slots__ = ("ir", "template_id", "name", "tier", "pipelines", "tags")
    IR_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ir: _blueprint_pb2.BlueprintIR
    template_id: str
    name: str
    tier: _blueprint_pb2.BlueprintTier
    pipelines: _containers.RepeatedScalarFieldContainer[_kernel_pb2.CompilationPipeline]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ir: _Optional[_Union[_blueprint_pb2.BlueprintIR, _Mapping]] = ..., template_id: _Optional[str] = ..., name: _Optional[str] = ..., tier: _Optional[_Union[_blueprint_pb2.BlueprintTier, str]] = ..., pipelines: _Optional[_Iterable[_Union[_kernel_pb2.CompilationPipeline, str]]] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateBlueprintResponse(_message.Message):
    __slots__ = ("blueprint", "created")
    BLUEPRINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    blueprint: _blueprint_pb2.Blueprint
    created: bool
    def __init__(self, blueprint: _Optional[_Union[_blueprint_pb2.Blueprint, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetBlueprintRequest(_message.Message):
    __slots__ = ("blueprint_id",)
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    blueprint_id: str
    def __init__(self, blueprint_id: _Optional[str] = ...) -> None: ...

class GetBlueprintResponse(_message.Message):
    __slots__ = ("blueprint", "kernels", "compile_jobs")
    BLUEPRINT_FIELD_NUMBER: _ClassVar[int]
    KERNELS_FIELD_NUMBER: _ClassVar[int]
    COMPILE_JOBS_FIELD_NUMBER: _ClassVar[int]
    blueprint: _blueprint_pb2.Blueprint
    kernels: _containers.RepeatedCompositeFieldContainer[_kernel_pb2.KernelArtifact]
    compile_jobs: _containers.RepeatedCompositeFieldContainer[_kernel_pb2.CompileJob]
    def __init__(self, blueprint: _Optional[_Union[_blueprint_pb2.Blueprint, _Mapping]] = ..., kernels: _Optional[_Iterable[_Union[_kernel_pb2.KernelArtifact, _Mapping]]] = ..., compile_jobs: _Optional[_Iterable[_Union[_kernel_pb2.CompileJob, _Mapping]]] = ...) -> None: ...

class ListBlueprintsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: _blueprint_pb2.BlueprintStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[_blueprint_pb2.BlueprintStatus, str]] = ...) -> None: ...

class ListBlueprintsResponse(_message.Message):
    __slots__ = ("blueprints", "next_page_token")
    BLUEPRINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    blueprints: _containers.RepeatedCompositeFieldContainer[_blueprint_pb2.Blueprint]
    next_page_token: str
    def __init__(self, blueprints: _Optional[_Iterable[_Union[_blueprint_pb2.Blueprint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class QueryKernelsRequest(_message.Message):
    __slots__ = ("query", "page_size", "page_token")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    query: _kernel_pb2.KernelQuery
    page_size: int
    page_token: str
    def __init__(self, query: _Optional[_Union[_kernel_pb2.KernelQuery, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class QueryKernelsResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _kernel_pb2.KernelQueryResult
    def __init__(self, result: _Optional[_Union[_kernel_pb2.KernelQueryResult, _Mapping]] = ...) -> None: ...

class GetKernelRequest(_message.Message):
    __slots__ = ("kernel_id",)
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    kernel_id: str
    def __init__(self, kernel_id: _Optional[str] = ...) -> None: ...

class GetKernelResponse(_message.Message):
    __slots__ = ("kernel",)
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    kernel: _kernel_pb2.KernelArtifact
    def __init__(self, kernel: _Optional[_Union[_kernel_pb2.KernelArtifact, _Mapping]] = ...) -> None: ...

class DownloadKernelRequest(_message.Message):
    __slots__ = ("kernel_id", "chunk_size")
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    kernel_id: str
    chunk_size: int
    def __init__(self, kernel_id: _Optional[str] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class DownloadKernelResponse(_message.Message):
    __slots__ = ("chunk_data", "offset", "total_size", "sha256", "kernel")
    CHUNK_DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    chunk_data: bytes
    offset: int
    total_size: int
    sha256: str
    kernel: _kernel_pb2.KernelArtifact
    def __init__(self, chunk_data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ..., sha256: _Optional[str] = ..., kernel: _Optional[_Union[_kernel_pb2.KernelArtifact, _Mapping]] = ...) -> None: ...

class ClaimCompileJobRequest(_message.Message):
    __slots__ = ("worker_id", "pipelines", "lease_seconds", "preferred_blueprint_ids")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_BLUEPRINT_IDS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    pipelines: _containers.RepeatedScalarFieldContainer[_kernel_pb2.CompilationPipeline]
    lease_seconds: int
    preferred_blueprint_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., pipelines: _Optional[_Iterable[_Union[_kernel_pb2.CompilationPipeline, str]]] = ..., lease_seconds: _Optional[int] = ..., preferred_blueprint_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ClaimCompileJobResponse(_message.Message):
    __slots__ = ("job", "queue_depth")
    JOB_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    job: _kernel_pb2.CompileJob
    queue_depth: int
    def __init__(self, job: _Optional[_Union[_kernel_pb2.CompileJob, _Mapping]] = ..., queue_depth: _Optional[int] = ...) -> None: ...

class CompleteCompileJobRequest(_message.Message):
    __slots__ = ("job_id", "lease_token", "kernel", "artifact")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    lease_token: str
    kernel: _kernel_pb2.KernelArtifact
    artifact: bytes
    def __init__(self, job_id: _Optional[str] = ..., lease_token: _Optional[str] = ..., kernel: _Optional[_Union[_kernel_pb2.KernelArtifact, _Mapping]] = ..., artifact: _Optional[bytes] = ...) -> None: ...

class CompleteCompileJobResponse(_message.Message):
    __slots__ = ("kernel",)
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    kernel: _kernel_pb2.KernelArtifact
    def __init__(self, kernel: _Optional[_Union[_kernel_pb2.KernelArtifact, _Mapping]] = ...) -> None: ...

class FailCompileJobRequest(_message.Message):
    __slots__ = ("job_id", "lease_token", "error_message", "retryable", "interrupted")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    lease_token: str
    error_message: str
    retryable: bool
    interrupted: bool
    def __init__(self, job_id: _Optional[str] = ..., lease_token: _Optional[str] = ..., error_message: _Optional[str] = ..., retryable: _Optional[bool] = ..., interrupted: _Optional[bool] = ...) -> None: ...

class FailCompileJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _kernel_pb2.CompileJob
    def __init__(self, job: _Optional[_Union[_kernel_pb2.CompileJob, _Mapping]] = ...) -> None: ...

class GetCompileJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetCompileJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _kernel_pb2.CompileJob
    def __init__(self, job: _Optional[_Union[_kernel_pb2.CompileJob, _Mapping]] = ...) -> None: ...

class ListCompileJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: _kernel_pb2.CompileJobStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[_kernel_pb2.CompileJobStatus, str]] = ...) -> None: ...

class ListCompileJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_kernel_pb2.CompileJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[_kernel_pb2.CompileJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ClaimValidationJobRequest(_message.Message):
    __slots__ = ("worker_id", "lease_seconds", "hardware_target")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_TARGET_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    lease_seconds: int
    hardware_target: str
    def __init__(self, worker_id: _Optional[str] = ..., lease_seconds: _Optional[int] = ..., hardware_target: _Optional[str] = ...) -> None: ...

class ClaimValidationJobResponse(_message.Message):
    __slots__ = ("kernel", "ir", "lease_token")
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    IR_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    kernel: _kernel_pb2.KernelArtifact
    ir: _blueprint_pb2.BlueprintIR
    lease_token: str
    def __init__(self, kernel: _Optional[_Union[_kernel_pb2.KernelArtifact, _Mapping]] = ..., ir: _Optional[_Union[_blueprint_pb2.BlueprintIR, _Mapping]] = ..., lease_token: _Optional[str] = ...) -> None: ...

class SubmitValidationReportRequest(_message.Message):
    __slots__ = ("kernel_id", "lease_token", "report")
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    kernel_id: str
    lease_token: str
    report: _kernel_pb2.UrabraskValidationReport
    def __init__(self, kernel_id: _Optional[str] = ..., lease_token: _Optional[str] = ..., report: _Optional[_Union[_kernel_pb2.UrabraskValidationReport, _Mapping]] = ...) -> None: ...

class SubmitValidationReportResponse(_message.Message):
    __slots__ = ("kernel",)
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    kernel: _kernel_pb2.KernelArtifact
    def __init__(self, kernel: _Optional[_Union[_kernel_pb2.KernelArtifact, _Mapping]] = ...) -> None: ...
