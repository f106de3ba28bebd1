from esper.leyline.v1 import access_pb2 as _access_pb2
from esper.leyline.v1 import blueprint_pb2 as _blueprint_pb2
from esper.leyline.v1 import control_pb2 as _control_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListTemplatesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "tier", "tag", "input_kind", "growth_kind")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    INPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    GROWTH_KIND_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    tier: _blueprint_pb2.BlueprintTier
    tag: str
    input_kind: _blueprint_pb2.InputKind
    growth_kind: _blueprint_pb2.GrowthKind
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., tier: _Optional[_Union[_blueprint_pb2.BlueprintTier, str]] = ..., tag: _Optional[str] = ..., input_kind: _Optional[_Union[_blueprint_pb2.InputKind, str]] = ..., growth_kind: _Optional[_Union[_blueprint_pb2.GrowthKind, str]] = ...) -> None: ...

class ListTemplatesResponse(_message.Message):
    __slots__ = ("templates", "next_page_token", "total_size")
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[_blueprint_pb2.BlueprintTemplate]
    next_page_token: str
    total_size: int
    def __init__(self, templates: _Optional[_Iterable[_Union[_blueprint_pb2.BlueprintTemplate, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class GetTemplateRequest(_message.Message):
    __slots__ = ("template_id",)
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    def __init__(self, template_id: _Optional[str] = ...) -> None: ...

class GetTemplateResponse(_message.Message):
    __slots__ = ("template",)
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    template: _blueprint_pb2.BlueprintTemplate
    def __init__(self, template: _Optional[_Union[_blueprint_pb2.BlueprintTemplate, _Mapping]] = ...) -> None: ...

class QueryTemplatesRequest(_message.Message):
    __slots__ = ("input_kind", "input_shape", "tiers", "tags_all", "max_parameter_estimate", "limit", "growth_kind", "output_shape")
    INPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    TAGS_ALL_FIELD_NUMBER: _ClassVar[int]
    MAX_PARAMETER_ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    GROWTH_KIND_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    input_kind: _blueprint_pb2.InputKind
    input_shape: _blueprint_pb2.TensorShape
    tiers: _containers.RepeatedScalarFieldContainer[_blueprint_pb2.BlueprintTier]
    tags_all: _containers.RepeatedScalarFieldContainer[str]
    max_parameter_estimate: int
    limit: int
    growth_kind: _blueprint_pb2.GrowthKind
    output_shape: _blueprint_pb2.TensorShape
    def __init__(self, input_kind: _Optional[_Union[_blueprint_pb2.InputKind, str]] = ..., input_shape: _Optional[_Union[_blueprint_pb2.TensorShape, _Mapping]] = ..., tiers: _Optional[_Iterable[_Union[_blueprint_pb2.BlueprintTier, str]]] = ..., tags_all: _Optional[_Iterable[str]] = ..., max_parameter_estimate: _Optional[int] = ..., limit: _Optional[int] = ..., growth_kind: _Optional[_Union[_blueprint_pb2.GrowthKind, str]] = ..., output_shape: _Optional[_Union[_blueprint_pb2.TensorShape, _Mapping]] = ...) -> None: ...

class QueryTemplatesResponse(_message.Message):
    __slots__ = ("templates",)
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[_blueprint_pb2.BlueprintTemplate]
    def __init__(self, templates: _Optional[_Iterable[_Union[_blueprint_pb2.BlueprintTemplate, _Mapping]]] = ...) -> None: ...

class SubmitFieldReportsRequest(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[_control_pb2.FieldReport]
    def __init__(self, reports: _Optional[_Iterable[_Union[_control_pb2.FieldReport, _Mapping]]] = ...) -> None: ...

class SubmitFieldReportsResponse(_message.Message):
    __slots__ = ("accepted_count", "duplicate_count")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    duplicate_count: int
    def __init__(self, accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ...) -> None: ...
