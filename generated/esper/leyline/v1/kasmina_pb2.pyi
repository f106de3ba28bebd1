from esper.leyline.v1 import access_pb2 as _access_pb2
from esper.leyline.v1 import control_pb2 as _control_pb2
from esper.leyline.v1 import lifecycle_pb2 as _lifecycle_pb2
from esper.leyline.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamTelemetryRequest(_message.Message):
    __slots__ = ("run_id", "seed_ids")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_IDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    seed_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., seed_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamTelemetryResponse(_message.Message):
    __slots__ = ("telemetry",)
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    telemetry: _telemetry_pb2.SeedTelemetry
    def __init__(self, telemetry: _Optional[_Union[_telemetry_pb2.SeedTelemetry, _Mapping]] = ...) -> None: ...

class ApplyCommandRequest(_message.Message):
    __slots__ = ("command",)
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    command: _control_pb2.AdaptationCommand
    def __init__(self, command: _Optional[_Union[_control_pb2.AdaptationCommand, _Mapping]] = ...) -> None: ...

class ApplyCommandResponse(_message.Message):
    __slots__ = ("accepted", "stage", "reason")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    stage: _lifecycle_pb2.SeedStage
    reason: str
    def __init__(self, accepted: _Optional[bool] = ..., stage: _Optional[_Union[_lifecycle_pb2.SeedStage, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ListSeedStatesRequest(_message.Message):
    __slots__ = ("run_id", "page_size", "page_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    page_size: int
    page_token: str
    def __init__(self, run_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSeedStatesResponse(_message.Message):
    __slots__ = ("seeds", "next_page_token")
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    seeds: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.SeedState]
    next_page_token: str
    def __init__(self, seeds: _Optional[_Iterable[_Union[_telemetry_pb2.SeedState, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
