"""The feature schema of Tamiyo's observation graph: node and edge types, feature columns, version.

A policy reads only graphs of the schema version it was trained on; any change to the
columns below is a new `FEATURE_SCHEMA_VERSION`. Columns named for a score hold the run's
validation metric oriented so that higher is better, as heuristic-v1 compares it
(esper.tamiyo.issued.Boundary): a classification run's accuracy, a loss or bits per
character negated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from esper.leyline.v1 import blueprint_pb2, kernel_pb2, lifecycle_pb2

FEATURE_SCHEMA_VERSION = 1

SEED, LAYER, GLOBAL, KERNEL = "seed", "layer", "global", "kernel"
NODE_TYPES = (SEED, LAYER, GLOBAL, KERNEL)
EdgeType = tuple[str, str, str]
SEQUENTIAL: EdgeType = (SEED, "sequential", SEED)
LAYER_FORWARD: EdgeType = (LAYER, "layer_forward", LAYER)
LAYER_BACKWARD: EdgeType = (LAYER, "layer_backward", LAYER)
MONITORS: EdgeType = (SEED, "monitors", LAYER)
MONITORED_BY: EdgeType = (LAYER, "monitored_by", SEED)
CONTAINS: EdgeType = (SEED, "contains", SEED)
CHILD_OF: EdgeType = (SEED, "child_of", SEED)
FITS: EdgeType = (KERNEL, "fits", SEED)
FITTED_BY: EdgeType = (SEED, "fitted_by", KERNEL)
EDGE_TYPES: tuple[EdgeType, ...] = (
    SEQUENTIAL,
    LAYER_FORWARD,
    LAYER_BACKWARD,
    MONITORS,
    MONITORED_BY,
    CONTAINS,
    CHILD_OF,
    FITS,
    FITTED_BY,
)

STAGES = tuple(stage for stage in lifecycle_pb2.SeedStage.values() if stage != lifecycle_pb2.SEED_STAGE_UNSPECIFIED)
KINDS = (blueprint_pb2.INPUT_KIND_FEATURES, blueprint_pb2.INPUT_KIND_IMAGE, blueprint_pb2.INPUT_KIND_SEQUENCE)
LAYER_TYPES = ("Linear", "Conv2d")
PIPELINES = (
    kernel_pb2.COMPILATION_PIPELINE_FAST,
    kernel_pb2.COMPILATION_PIPELINE_STANDARD,
    kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE,
)
KERNEL_TAGS = (
    "high_speed",
    "medium_speed",
    "low_speed",
    "low_memory",
    "high_memory",
    "low_power",
    "high_power",
    "numerically_stable",
)
# Template families hash into this many buckets, so a catalog that grows keeps the schema.
FAMILY_BUCKETS = 16

SEED_FEATURES: tuple[str, ...] = (
    *(f"stage_{lifecycle_pb2.SeedStage.Name(s).removeprefix('SEED_STAGE_').lower()}" for s in STAGES),
    "alpha",
    "log_variance",
    "dead_node_ratio",
    "avg_correlation",
    "activation_mean",
    "log_activation_std",
    "log_gradient_norm",
    "epochs_since_graft",
    "epochs_in_stage",
    "ready",
    "eval_gain",
    "log_parameters",
    "parameter_ratio",
    "isolation_violated",
    "embargoed",
    "embargo_left",
    "tracked",
    "score_since_germination",
    "epochs_active",
    "relative_depth",
    "log_width",
    "kind_features",
    "kind_image",
    "kind_sequence",
    "bottleneck_dead",
    "bottleneck_redundant",
    "bottleneck_collapsed",
    "is_child",
    "has_telemetry",
    "growth_width",
    "log_output_width",
    "log_layer_units",
)
LAYER_FEATURES: tuple[str, ...] = (
    "type_linear",
    "type_conv2d",
    "type_other",
    "log_in_width",
    "log_out_width",
    "log_parameters",
    "relative_depth",
    "seeds_watching",
)
GLOBAL_FEATURES: tuple[str, ...] = (
    "epoch_fraction",
    "epochs_left",
    "final_epoch_known",
    "validation_score",
    "best_validation_score",
    "score_change",
    "epochs_since_improvement",
    "plateau",
    "warmup",
    "log_training_loss",
    "log_validation_loss",
    "generalization_gap",
    "log_parameters",
    "parameter_budget_used",
    "parameter_budget_set",
    "concurrency_used",
    "conservative_mode",
    "recent_failures",
    "finite",
    "log_seeds",
)
KERNEL_FEATURES: tuple[str, ...] = (
    *(f"family_{i}" for i in range(FAMILY_BUCKETS)),
    "log_parameters",
    "parameter_ratio",
    "pipeline_fast",
    "pipeline_standard",
    "pipeline_aggressive",
    *(f"tag_{tag}" for tag in KERNEL_TAGS),
    "log_latency_ms",
    "log_latency_p99_ms",
    "log_memory_mb",
    "log_precision_drift",
    "passed",
    "has_report",
    "blueprint_score",
    "changes_width",
)
SEED_COLUMN = {name: column for column, name in enumerate(SEED_FEATURES)}

FEATURE_DIMS: Mapping[str, int] = {
    SEED: len(SEED_FEATURES),
    LAYER: len(LAYER_FEATURES),
    GLOBAL: len(GLOBAL_FEATURES),
    KERNEL: len(KERNEL_FEATURES),
}


@dataclass(frozen=True)
class KernelCandidate:
    """A validated kernel a germination could use, and the seeds (rows) whose site it fits."""

    kernel: kernel_pb2.KernelArtifact
    seed_rows: tuple[int, ...]
    allowed: bool = True
