"""Realistic sample messages for benchmarks and contract tests.

Values are drawn to be representative of a live run (mid-range accuracies,
variances above 1, long ids), not minimal, so sizes measured on them are honest.
"""

from __future__ import annotations

import random
import uuid

from esper.leyline.v1 import bus_pb2, control_pb2, kernel_pb2, lifecycle_pb2, telemetry_pb2
from esper.state.packet import SCHEMA_VERSION, pack_system_state


def sample_seed_telemetry(count: int, rng: random.Random) -> list[telemetry_pb2.SeedTelemetry]:
    stages = [name for name in lifecycle_pb2.SeedStage.keys() if not name.endswith("_UNSPECIFIED")]
    return [
        telemetry_pb2.SeedTelemetry(
            run_id="run-5f0c2a9e",
            seed_id=f"blocks.{i}.mlp",
            epoch=37,
            stage=rng.choice(stages),
            chunk_variance=rng.uniform(0.0, 12.0),
            dead_node_ratio=rng.random(),
            avg_correlation=rng.random(),
            alpha=rng.random(),
            epochs_since_graft=rng.randint(0, 60),
            is_ready_for_transition=rng.random() < 0.3,
        )
        for i in range(count)
    ]


def sample_state_packet(seeds: int = 16, seed: int = 0) -> telemetry_pb2.SystemStatePacket:
    rng = random.Random(seed)
    return pack_system_state(
        run_id="run-5f0c2a9e",
        epoch=37,
        global_step=1_234_567,
        training_loss=0.4321,
        validation_loss=0.5123,
        validation_accuracy=0.9134,
        epoch_ms=2_345,
        seeds=sample_seed_telemetry(seeds, rng),
    )


def sample_adaptation_command() -> control_pb2.AdaptationCommand:
    command = control_pb2.AdaptationCommand(
        command_id=uuid.UUID(int=1).hex,
        run_id="run-5f0c2a9e",
        seed_id="blocks.3.mlp",
        command_type=lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION,
        kernel_id="3f9a1c2b7d4e-cpu_x86_64-standard-9b8c7d6e",
        blueprint_id="bp-3f9a1c2b7d4e5f60",
        grafting_strategy=lifecycle_pb2.GRAFTING_STRATEGY_LINEAR_RAMP,
        selected_for_tags=["low_memory", "medium_speed"],
        reason="plateau 3 epochs; dead_node_ratio 0.41 highest",
        epoch=37,
        priority=lifecycle_pb2.MESSAGE_PRIORITY_NORMAL,
    )
    command.issue_time.GetCurrentTime()
    return command


def sample_field_report() -> control_pb2.FieldReport:
    report = control_pb2.FieldReport(
        report_id=uuid.UUID(int=2).hex,
        run_id="run-5f0c2a9e",
        seed_id="blocks.3.mlp",
        blueprint_id="bp-3f9a1c2b7d4e5f60",
        kernel_id="3f9a1c2b7d4e-cpu_x86_64-standard-9b8c7d6e",
        outcome=lifecycle_pb2.ADAPTATION_OUTCOME_FOSSILIZED,
        pre_metric=0.871,
        post_metric=0.913,
        eval_metrics={"eval_gain": 0.012, "params_added": 8256.0},
        epochs_active=9,
        germination_command_id=uuid.UUID(int=1).hex,
        selected_for_tags=["low_memory", "medium_speed"],
        kernel_report=kernel_pb2.UrabraskValidationReport(
            kernel_id="3f9a1c2b7d4e-cpu_x86_64-standard-9b8c7d6e",
            passed=True,
            latency_ms_mean=0.041,
            latency_ms_p99=0.083,
            throughput_ops_per_sec=24_000.0,
            memory_mb_peak=1.7,
            precision_drift_vs_fp32=0.0,
            benchmark_batch_size=64,
            tags=["low_memory", "medium_speed", "numerically_stable"],
            hardware_target="cpu_x86_64",
        ),
        reason="eval gain 1.2 points over alpha=0",
    )
    report.report_time.GetCurrentTime()
    return report


def sample_envelope() -> bus_pb2.BusEnvelope:
    envelope = bus_pb2.BusEnvelope(
        message_type=bus_pb2.BUS_MESSAGE_TYPE_SYSTEM_STATE,
        schema_version=SCHEMA_VERSION,
        idempotency_key=uuid.UUID(int=3).hex,
        trace_context=bus_pb2.TraceContext(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        source="tolaria",
        priority=lifecycle_pb2.MESSAGE_PRIORITY_NORMAL,
        payload=sample_state_packet().SerializeToString(),
        hmac_sha256=bytes(32),
        hmac_key_id="k1",
    )
    envelope.publish_time.GetCurrentTime()
    return envelope
