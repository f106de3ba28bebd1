import datetime

from esper.leyline.v1 import access_pb2 as _access_pb2
from esper.leyline.v1 import control_pb2 as _control_pb2
from esper.leyline.v1 import policy_pb2 as _policy_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingJobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_JOB_STATUS_UNSPECIFIED: _ClassVar[TrainingJobStatus]
    TRAINING_JOB_STATUS_QUEUED: _ClassVar[TrainingJobStatus]
    TRAINING_JOB_STATUS_RUNNING: _ClassVar[TrainingJobStatus]
    TRAINING_JOB_STATUS_SUCCEEDED: _ClassVar[TrainingJobStatus]
    TRAINING_JOB_STATUS_FAILED: _ClassVar[TrainingJobStatus]

class TrainingAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_ALGORITHM_UNSPECIFIED: _ClassVar[TrainingAlgorithm]
    TRAINING_ALGORITHM_BEHAVIOUR_CLONING: _ClassVar[TrainingAlgorithm]
    TRAINING_ALGORITHM_PPO: _ClassVar[TrainingAlgorithm]
TRAINING_JOB_STATUS_UNSPECIFIED: TrainingJobStatus
TRAINING_JOB_STATUS_QUEUED: TrainingJobStatus
TRAINING_JOB_STATUS_RUNNING: TrainingJobStatus
TRAINING_JOB_STATUS_SUCCEEDED: TrainingJobStatus
TRAINING_JOB_STATUS_FAILED: TrainingJobStatus
TRAINING_ALGORITHM_UNSPECIFIED: TrainingAlgorithm
TRAINING_ALGORITHM_BEHAVIOUR_CLONING: TrainingAlgorithm
TRAINING_ALGORITHM_PPO: TrainingAlgorithm

class RecordFieldReportsRequest(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[_control_pb2.FieldReport]
    def __init__(self, reports: _Optional[_Iterable[_Union[_control_pb2.FieldReport, _Mapping]]] = ...) -> None: ...

class RecordFieldReportsResponse(_message.Message):
    __slots__ = ("accepted_count", "duplicate_count")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    duplicate_count: int
    def __init__(self, accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ...) -> None: ...

class ListFieldReportsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "run_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    run_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class ListFieldReportsResponse(_message.Message):
    __slots__ = ("reports", "next_page_token", "total_size")
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[_control_pb2.FieldReport]
    next_page_token: str
    total_size: int
    def __init__(self, reports: _Optional[_Iterable[_Union[_control_pb2.FieldReport, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class TrainPolicyRequest(_message.Message):
    __slots__ = ("base_policy_id", "max_steps", "algorithm", "iterations", "policy_id", "gate_suite", "gate_seeds", "gate_tolerance")
    BASE_POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    GATE_SUITE_FIELD_NUMBER: _ClassVar[int]
    GATE_SEEDS_FIELD_NUMBER: _ClassVar[int]
    GATE_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    base_policy_id: str
    max_steps: int
    algorithm: TrainingAlgorithm
    iterations: int
    policy_id: str
    gate_suite: str
    gate_seeds: int
    gate_tolerance: float
    def __init__(self, base_policy_id: _Optional[str] = ..., max_steps: _Optional[int] = ..., algorithm: _Optional[_Union[TrainingAlgorithm, str]] = ..., iterations: _Optional[int] = ..., policy_id: _Optional[str] = ..., gate_suite: _Optional[str] = ..., gate_seeds: _Optional[int] = ..., gate_tolerance: _Optional[float] = ...) -> None: ...

class TrainPolicyResponse(_message.Message):
    __slots__ = ("job_id", "status", "policy", "error_message", "create_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: TrainingJobStatus
    policy: _control_pb2.PolicyUpdate
    error_message: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[_Union[TrainingJobStatus, str]] = ..., policy: _Optional[_Union[_control_pb2.PolicyUpdate, _Mapping]] = ..., error_message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("policy_id", "include_weights")
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    include_weights: bool
    def __init__(self, policy_id: _Optional[str] = ..., include_weights: _Optional[bool] = ...) -> None: ...

class GetPolicyResponse(_message.Message):
    __slots__ = ("policy", "weights")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    policy: _control_pb2.PolicyUpdate
    weights: bytes
    def __init__(self, policy: _Optional[_Union[_control_pb2.PolicyUpdate, _Mapping]] = ..., weights: _Optional[bytes] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies", "next_page_token")
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[_control_pb2.PolicyUpdate]
    next_page_token: str
    def __init__(self, policies: _Optional[_Iterable[_Union[_control_pb2.PolicyUpdate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecordTransitionsRequest(_message.Message):
    __slots__ = ("transitions",)
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    transitions: _containers.RepeatedCompositeFieldContainer[_policy_pb2.PolicyTransition]
    def __init__(self, transitions: _Optional[_Iterable[_Union[_policy_pb2.PolicyTransition, _Mapping]]] = ...) -> None: ...

class RecordTransitionsResponse(_message.Message):
    __slots__ = ("accepted_count", "duplicate_count")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    duplicate_count: int
    def __init__(self, accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ...) -> None: ...

class TrainingJob(_message.Message):
    __slots__ = ("job_id", "status", "algorithm", "policy", "error_message", "published", "create_time", "update_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: TrainingJobStatus
    algorithm: TrainingAlgorithm
    policy: _control_pb2.PolicyUpdate
    error_message: str
    published: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[_Union[TrainingJobStatus, str]] = ..., algorithm: _Optional[_Union[TrainingAlgorithm, str]] = ..., policy: _Optional[_Union[_control_pb2.PolicyUpdate, _Mapping]] = ..., error_message: _Optional[str] = ..., published: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...
