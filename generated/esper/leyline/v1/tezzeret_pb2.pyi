import datetime

from esper.leyline.v1 import access_pb2 as _access_pb2
from esper.leyline.v1 import kernel_pb2 as _kernel_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetWorkerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetWorkerStatusResponse(_message.Message):
    __slots__ = ("worker_id", "queue_depth", "conservative_mode", "current_job", "jobs_succeeded", "attempts_failed", "jobs_recovered", "toolchain_hash", "start_time")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    CONSERVATIVE_MODE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_JOB_FIELD_NUMBER: _ClassVar[int]
    JOBS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    JOBS_RECOVERED_FIELD_NUMBER: _ClassVar[int]
    TOOLCHAIN_HASH_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    queue_depth: int
    conservative_mode: bool
    current_job: _kernel_pb2.CompileJob
    jobs_succeeded: int
    attempts_failed: int
    jobs_recovered: int
    toolchain_hash: str
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, worker_id: _Optional[str] = ..., queue_depth: _Optional[int] = ..., conservative_mode: _Optional[bool] = ..., current_job: _Optional[_Union[_kernel_pb2.CompileJob, _Mapping]] = ..., jobs_succeeded: _Optional[int] = ..., attempts_failed: _Optional[int] = ..., jobs_recovered: _Optional[int] = ..., toolchain_hash: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListWorkerJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkerJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_kernel_pb2.CompileJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[_kernel_pb2.CompileJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
