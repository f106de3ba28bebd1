from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class SeedStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEED_STAGE_UNSPECIFIED: _ClassVar[SeedStage]
    SEED_STAGE_DORMANT: _ClassVar[SeedStage]
    SEED_STAGE_GERMINATED: _ClassVar[SeedStage]
    SEED_STAGE_LOADING: _ClassVar[SeedStage]
    SEED_STAGE_TRAINING: _ClassVar[SeedStage]
    SEED_STAGE_GRAFTING: _ClassVar[SeedStage]
    SEED_STAGE_STABILIZATION: _ClassVar[SeedStage]
    SEED_STAGE_EVALUATING: _ClassVar[SeedStage]
    SEED_STAGE_FINE_TUNING: _ClassVar[SeedStage]
    SEED_STAGE_FOSSILIZED: _ClassVar[SeedStage]
    SEED_STAGE_CULLED: _ClassVar[SeedStage]
    SEED_STAGE_CANCELLED: _ClassVar[SeedStage]
    SEED_STAGE_ROLLED_BACK: _ClassVar[SeedStage]

class CommandType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMAND_TYPE_UNSPECIFIED: _ClassVar[CommandType]
    COMMAND_TYPE_REQUEST_GERMINATION: _ClassVar[CommandType]
    COMMAND_TYPE_CANCEL_GERMINATION: _ClassVar[CommandType]
    COMMAND_TYPE_ADVANCE: _ClassVar[CommandType]
    COMMAND_TYPE_FOSSILIZE: _ClassVar[CommandType]
    COMMAND_TYPE_CULL: _ClassVar[CommandType]
    COMMAND_TYPE_EMERGENCY_ROLLBACK: _ClassVar[CommandType]

class AdaptationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADAPTATION_OUTCOME_UNSPECIFIED: _ClassVar[AdaptationOutcome]
    ADAPTATION_OUTCOME_FOSSILIZED: _ClassVar[AdaptationOutcome]
    ADAPTATION_OUTCOME_CULLED: _ClassVar[AdaptationOutcome]
    ADAPTATION_OUTCOME_ROLLED_BACK: _ClassVar[AdaptationOutcome]
    ADAPTATION_OUTCOME_CANCELLED: _ClassVar[AdaptationOutcome]

class GraftingStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRAFTING_STRATEGY_UNSPECIFIED: _ClassVar[GraftingStrategy]
    GRAFTING_STRATEGY_LINEAR_RAMP: _ClassVar[GraftingStrategy]
    GRAFTING_STRATEGY_COSINE_RAMP: _ClassVar[GraftingStrategy]
    GRAFTING_STRATEGY_DRIFT_CONTROLLED: _ClassVar[GraftingStrategy]

class MessagePriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_PRIORITY_UNSPECIFIED: _ClassVar[MessagePriority]
    MESSAGE_PRIORITY_NORMAL: _ClassVar[MessagePriority]
    MESSAGE_PRIORITY_EMERGENCY: _ClassVar[MessagePriority]

class MetricDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_DIRECTION_UNSPECIFIED: _ClassVar[MetricDirection]
    METRIC_DIRECTION_HIGHER_IS_BETTER: _ClassVar[MetricDirection]
    METRIC_DIRECTION_LOWER_IS_BETTER: _ClassVar[MetricDirection]
SEED_STAGE_UNSPECIFIED: SeedStage
SEED_STAGE_DORMANT: SeedStage
SEED_STAGE_GERMINATED: SeedStage
SEED_STAGE_LOADING: SeedStage
SEED_STAGE_TRAINING: SeedStage
SEED_STAGE_GRAFTING: SeedStage
SEED_STAGE_STABILIZATION: SeedStage
SEED_STAGE_EVALUATING: SeedStage
SEED_STAGE_FINE_TUNING: SeedStage
SEED_STAGE_FOSSILIZED: SeedStage
SEED_STAGE_CULLED: SeedStage
SEED_STAGE_CANCELLED: SeedStage
SEED_STAGE_ROLLED_BACK: SeedStage
COMMAND_TYPE_UNSPECIFIED: CommandType
COMMAND_TYPE_REQUEST_GERMINATION: CommandType
COMMAND_TYPE_CANCEL_GERMINATION: CommandType
COMMAND_TYPE_ADVANCE: CommandType
COMMAND_TYPE_FOSSILIZE: CommandType
COMMAND_TYPE_CULL: CommandType
COMMAND_TYPE_EMERGENCY_ROLLBACK: CommandType
ADAPTATION_OUTCOME_UNSPECIFIED: AdaptationOutcome
ADAPTATION_OUTCOME_FOSSILIZED: AdaptationOutcome
ADAPTATION_OUTCOME_CULLED: AdaptationOutcome
ADAPTATION_OUTCOME_ROLLED_BACK: AdaptationOutcome
ADAPTATION_OUTCOME_CANCELLED: AdaptationOutcome
GRAFTING_STRATEGY_UNSPECIFIED: GraftingStrategy
GRAFTING_STRATEGY_LINEAR_RAMP: GraftingStrategy
GRAFTING_STRATEGY_COSINE_RAMP: GraftingStrategy
GRAFTING_STRATEGY_DRIFT_CONTROLLED: GraftingStrategy
MESSAGE_PRIORITY_UNSPECIFIED: MessagePriority
MESSAGE_PRIORITY_NORMAL: MessagePriority
MESSAGE_PRIORITY_EMERGENCY: MessagePriority
METRIC_DIRECTION_UNSPECIFIED: MetricDirection
METRIC_DIRECTION_HIGHER_IS_BETTER: MetricDirection
METRIC_DIRECTION_LOWER_IS_BETTER: MetricDirection
