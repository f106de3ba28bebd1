from esper.leyline.v1 import access_pb2 as _access_pb2
from esper.leyline.v1 import kernel_pb2 as _kernel_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetValidationReportRequest(_message.Message):
    __slots__ = ("kernel_id",)
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    kernel_id: str
    def __init__(self, kernel_id: _Optional[str] = ...) -> None: ...

class GetValidationReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: _kernel_pb2.UrabraskValidationReport
    def __init__(self, report: _Optional[_Union[_kernel_pb2.UrabraskValidationReport, _Mapping]] = ...) -> None: ...

class ListValidationReportsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "passed")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    passed: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., passed: _Optional[bool] = ...) -> None: ...

class ListValidationReportsResponse(_message.Message):
    __slots__ = ("reports", "next_page_token")
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[_kernel_pb2.UrabraskValidationReport]
    next_page_token: str
    def __init__(self, reports: _Optional[_Iterable[_Union[_kernel_pb2.UrabraskValidationReport, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
