import datetime

from esper.leyline.v1 import lifecycle_pb2 as _lifecycle_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BusMessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUS_MESSAGE_TYPE_UNSPECIFIED: _ClassVar[BusMessageType]
    BUS_MESSAGE_TYPE_SEED_TELEMETRY: _ClassVar[BusMessageType]
    BUS_MESSAGE_TYPE_ADAPTATION_COMMAND: _ClassVar[BusMessageType]
    BUS_MESSAGE_TYPE_FIELD_REPORT: _ClassVar[BusMessageType]
    BUS_MESSAGE_TYPE_POLICY_UPDATE: _ClassVar[BusMessageType]
    BUS_MESSAGE_TYPE_COMPILE_JOB: _ClassVar[BusMessageType]
    BUS_MESSAGE_TYPE_SYSTEM_STATE: _ClassVar[BusMessageType]
    BUS_MESSAGE_TYPE_RUN_EVENT: _ClassVar[BusMessageType]
    BUS_MESSAGE_TYPE_POLICY_TRANSITION: _ClassVar[BusMessageType]
BUS_MESSAGE_TYPE_UNSPECIFIED: BusMessageType
BUS_MESSAGE_TYPE_SEED_TELEMETRY: BusMessageType
BUS_MESSAGE_TYPE_ADAPTATION_COMMAND: BusMessageType
BUS_MESSAGE_TYPE_FIELD_REPORT: BusMessageType
BUS_MESSAGE_TYPE_POLICY_UPDATE: BusMessageType
BUS_MESSAGE_TYPE_COMPILE_JOB: BusMessageType
BUS_MESSAGE_TYPE_SYSTEM_STATE: BusMessageType
BUS_MESSAGE_TYPE_RUN_EVENT: BusMessageType
BUS_MESSAGE_TYPE_POLICY_TRANSITION: BusMessageType

class TraceContext(_message.Message):
    __slots__ = ("traceparent", "tracestate")
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    traceparent: str
    tracestate: str
    def __init__(self, traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class BusEnvelope(_message.Message):
    __slots__ = ("message_type", "schema_version", "idempotency_key", "trace_context", "source", "priority", "publish_time", "payload", "hmac_sha256", "hmac_key_id", "subject")
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    HMAC_SHA256_FIELD_NUMBER: _ClassVar[int]
    HMAC_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    message_type: BusMessageType
    schema_version: int
    idempotency_key: str
    trace_context: TraceContext
    source: str
    priority: _lifecycle_pb2.MessagePriority
    publish_time: _timestamp_pb2.Timestamp
    payload: bytes
    hmac_sha256: bytes
    hmac_key_id: str
    subject: str
    def __init__(self, message_type: _Optional[_Union[BusMessageType, str]] = ..., schema_version: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., trace_context: _Optional[_Union[TraceContext, _Mapping]] = ..., source: _Optional[str] = ..., priority: _Optional[_Union[_lifecycle_pb2.MessagePriority, str]] = ..., publish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payload: _Optional[bytes] = ..., hmac_sha256: _Optional[bytes] = ..., hmac_key_id: _Optional[str] = ..., subject: _Optional[str] = ...) -> None: ...
