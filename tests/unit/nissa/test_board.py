"""RunBoard: what it builds from telemetry envelopes, idempotency, ordering, bounds and summaries."""

from __future__ import annotations

import json
import random

import pytest
from google.protobuf.message import Message

from esper.errors import InvalidArgument, NotFound
from esper.leyline.v1 import alert_pb2, control_pb2, lifecycle_pb2, run_pb2, telemetry_pb2
from esper.nissa.board import BOARD_CONSUMER, RunBoard, RunBoardConfig, board_intake
from esper.nissa.board_run import RecordLimits, SequenceWindow
from esper.oona.config import OonaConfig
from esper.oona.envelope import OpenedEnvelope, seal
from esper.oona.memory import InProcessBus
from esper.oona.subjects import run_event_subject, telemetry_subject
from esper.state.packet import layout_hash

RUN = "run-board1"
T0 = 1_700_000_000


def opened(message: Message, source: str = "tolaria") -> OpenedEnvelope:
    return OpenedEnvelope(seal(message, source=source), message)


def event(sequence: int, run_id: str = RUN, when: float | None = None, **payload: object) -> run_pb2.RunEvent:
    result = run_pb2.RunEvent(run_id=run_id, sequence=sequence, **payload)  # type: ignore[arg-type]
    result.event_time.FromNanoseconds(int((when if when is not None else T0 + sequence) * 1e9))
    return result


def epoch(
    sequence: int, number: int, val: float, *, params: int = 100, hook: float = 1.0, run_id: str = RUN, **stages: str
) -> run_pb2.RunEvent:
    metrics = run_pb2.EpochMetrics(
        epoch=number,
        train_loss=1.0 / (number + 1),
        train_accuracy=val - 0.05,
        val_loss=1.1 / (number + 1),
        val_accuracy=val,
        parameter_count=params,
        hook_ms=hook,
        seed_stages=stages,
    )
    return event(sequence, run_id=run_id, epoch_completed=metrics)


def transition(sequence: int, seed: str, to: int, at: int, reason: str = "why") -> run_pb2.RunEvent:
    return event(
        sequence,
        seed_transition=run_pb2.SeedTransition(
            seed_id=seed, from_stage=lifecycle_pb2.SEED_STAGE_DORMANT, to_stage=to, reason=reason, epoch=at
        ),
    )  # type: ignore[arg-type]


def decision(sequence: int, at: int, reason: str, seed: str = "") -> run_pb2.RunEvent:
    return event(sequence, decision=control_pb2.AdaptationDecision(epoch=at, seed_id=seed, reason=reason))


def telemetry(
    seed: str, at: int, stage: int, alpha: float = 0.0, *, run_id: str = RUN, violations: int = 0, kernel: str = ""
) -> telemetry_pb2.SeedTelemetry:
    report = telemetry_pb2.SeedTelemetry(
        run_id=run_id,
        seed_id=seed,
        epoch=at,
        global_step=10 * (at + 1),
        stage=stage,
        alpha=alpha,  # type: ignore[arg-type]
        isolation_violations=violations,
        kernel_id=kernel,
    )
    report.report_time.FromSeconds(T0 + at)
    return report


def a_run() -> list[Message]:
    """Two seeds over three epochs, in the order Tolaria publishes: the boundary's events, then its telemetry."""
    return [
        event(1, notice="asset pipeline: 2 blueprints"),
        event(2, status_change=run_pb2.RUN_STATUS_RUNNING),
        decision(3, 0, "no germination during warm-up"),
        epoch(4, 0, 0.20, params=200, hook=0.5, **{"net.0": "DORMANT", "net.2": "DORMANT"}),
        telemetry("net.0", 0, lifecycle_pb2.SEED_STAGE_DORMANT),
        telemetry("net.2", 0, lifecycle_pb2.SEED_STAGE_DORMANT),
        decision(5, 1, "germinate: plateau", seed="net.2"),
        transition(6, "net.2", lifecycle_pb2.SEED_STAGE_GERMINATED, 1, "germinate: plateau"),
        epoch(7, 1, 0.40, params=300, hook=2.0, **{"net.0": "DORMANT", "net.2": "GERMINATED"}),
        telemetry("net.0", 1, lifecycle_pb2.SEED_STAGE_DORMANT),
        telemetry("net.2", 1, lifecycle_pb2.SEED_STAGE_DORMANT),  # reported before the boundary's transition
        decision(8, 2, "GRAFTING done: alpha reached 1.00; stabilize", seed="net.2"),
        transition(9, "net.2", lifecycle_pb2.SEED_STAGE_FOSSILIZED, 2, "measured improvement"),
        event(
            10,
            field_report=control_pb2.FieldReport(
                report_id="r1", run_id=RUN, seed_id="net.2", blueprint_id="bp-1234", kernel_id="k-1"
            ),
        ),
        epoch(11, 2, 0.35, params=300, hook=4.0, **{"net.0": "DORMANT", "net.2": "FOSSILIZED"}),
        telemetry("net.0", 2, lifecycle_pb2.SEED_STAGE_DORMANT),
        telemetry("net.2", 2, lifecycle_pb2.SEED_STAGE_GRAFTING, alpha=0.75, violations=0, kernel="k-1"),
    ]


def feed(board: RunBoard, messages: list[Message]) -> None:
    for message in messages:
        board.observe(opened(message))


def without_clock(snapshot: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in snapshot.items() if key != "time"}


def test_a_run_shows_its_curve_seeds_by_layer_decisions_and_status() -> None:
    board = RunBoard()
    feed(board, a_run())
    [run] = board.snapshot()["runs"]
    assert run["run_id"] == RUN and run["status"] == "RUNNING" and run["source"] == "tolaria"
    assert [p["epoch"] for p in run["curve"]] == [0, 1, 2]
    assert [p["val_accuracy"] for p in run["curve"]] == [0.20, 0.40, 0.35]
    assert run["latest"]["val_accuracy"] == 0.35 and run["best_val_accuracy"] == 0.40
    assert run["last_epoch"] == 2
    # Layers follow the order Kasmina reports its seeds in.
    assert [(layer["layer"], [s["seed_id"] for s in layer["seeds"]]) for layer in run["layers"]] == [
        (0, ["net.0"]),
        (1, ["net.2"]),
    ]
    seed = run["layers"][1]["seeds"][0]
    # The FOSSILIZED transition of epoch 2 is later than that epoch's telemetry (GRAFTING).
    assert seed["stage"] == "FOSSILIZED" and seed["alpha"] == 0.75
    assert seed["blueprint_id"] == "bp-1234" and seed["kernel_id"] == "k-1"
    assert seed["last_reason"] == "measured improvement"
    assert [d["reason"] for d in run["decisions"]] == [
        "GRAFTING done: alpha reached 1.00; stabilize",
        "germinate: plateau",
        "no germination during warm-up",
    ]
    assert run["decisions"][0]["seed_id"] == "net.2" and run["decisions"][2]["command_type"] == "WAIT"
    assert [(m["epoch"], m["to_stage"]) for m in run["marks"]] == [(1, "GERMINATED"), (2, "FOSSILIZED")]
    assert run["notices"][0]["text"] == "asset pipeline: 2 blueprints"
    assert run["counts"] == {"fossilized": 1, "germinated": 1}
    json.dumps(board.snapshot(), allow_nan=False)


def test_every_message_delivered_twice_changes_nothing() -> None:
    once, twice = RunBoard(), RunBoard()
    messages = a_run()
    feed(once, messages)
    feed(twice, messages)
    version = twice.version
    feed(twice, messages)
    assert twice.version == version
    assert without_clock(twice.snapshot()) == without_clock(once.snapshot())
    assert twice.summary(RUN) == once.summary(RUN)


def test_any_delivery_order_gives_the_same_board() -> None:
    in_order = RunBoard()
    feed(in_order, a_run())
    expected = without_clock(in_order.snapshot())["runs"][0]  # type: ignore[index]
    for seed in range(5):
        # Telemetry keeps its relative order (one subject per seed); events may interleave anywhere.
        shuffled = RunBoard()
        messages = a_run()
        events = [m for m in messages if isinstance(m, run_pb2.RunEvent)]
        random.Random(seed).shuffle(events)
        reports = [m for m in messages if not isinstance(m, run_pb2.RunEvent)]
        feed(shuffled, reports[:2] + events + reports[2:])
        run = without_clock(shuffled.snapshot())["runs"][0]  # type: ignore[index]
        for key in ("curve", "decisions", "marks", "status", "counts", "notices", "last_epoch"):
            assert run[key] == expected[key], key
        stages = {s["seed_id"]: (s["stage"], s["alpha"]) for layer in run["layers"] for s in layer["seeds"]}
        assert stages == {"net.0": ("DORMANT", 0.0), "net.2": ("FOSSILIZED", 0.75)}


def test_telemetry_of_a_later_epoch_moves_the_stage_on_and_an_older_one_does_not() -> None:
    board = RunBoard()
    feed(board, [transition(1, "net.0", lifecycle_pb2.SEED_STAGE_GERMINATED, 3)])
    feed(board, [telemetry("net.0", 3, lifecycle_pb2.SEED_STAGE_DORMANT)])
    assert board.snapshot()["runs"][0]["layers"][0]["seeds"][0]["stage"] == "GERMINATED"
    feed(board, [telemetry("net.0", 4, lifecycle_pb2.SEED_STAGE_TRAINING, alpha=0.0)])
    feed(board, [telemetry("net.0", 2, lifecycle_pb2.SEED_STAGE_DORMANT, alpha=0.9)])
    seed = board.snapshot()["runs"][0]["layers"][0]["seeds"][0]
    assert (seed["stage"], seed["alpha"], seed["epoch"]) == ("TRAINING", 0.0, 4)


def test_a_later_status_wins_whatever_the_delivery_order() -> None:
    board = RunBoard()
    feed(board, [event(5, status_change=run_pb2.RUN_STATUS_SUCCEEDED, when=T0 + 50)])
    feed(board, [event(1, status_change=run_pb2.RUN_STATUS_RUNNING, when=T0)])
    run = board.snapshot()["runs"][0]
    assert run["status"] == "SUCCEEDED" and run["finished"] is True
    assert board.run_window(RUN) == (T0, T0 + 50)
    assert board.run_window("run-unknown") is None


def test_run_alerts_keep_the_latest_state_of_each_alert() -> None:
    firing = alert_pb2.Alert(
        alert_id="a1",
        name="kasmina_isolation_violation",
        severity=alert_pb2.ALERT_SEVERITY_CRITICAL,
        state=alert_pb2.ALERT_STATE_FIRING,
    )
    resolved = alert_pb2.Alert()
    resolved.CopyFrom(firing)
    resolved.state = alert_pb2.ALERT_STATE_RESOLVED
    board = RunBoard()
    feed(board, [event(2, alert=resolved), event(1, alert=firing)])
    [shown] = board.snapshot()["runs"][0]["alerts"]
    assert (shown["name"], shown["severity"], shown["state"]) == ("kasmina_isolation_violation", "CRITICAL", "RESOLVED")


def test_lists_are_bounded_to_the_newest_entries() -> None:
    limits = RecordLimits(decisions=3, transitions=2, notices=2, epochs=4, seeds=2, alerts=1)
    board = RunBoard(RunBoardConfig(limits=limits))
    messages: list[Message] = [decision(n, n, f"reason {n}") for n in range(1, 11)]
    messages += [transition(10 + n, f"s{n}", lifecycle_pb2.SEED_STAGE_GERMINATED, n) for n in range(1, 6)]
    messages += [event(20 + n, notice=f"notice {n}") for n in range(1, 6)]
    messages += [epoch(30 + n, n, 0.1 * n) for n in range(10)]
    messages += [event(50 + n, alert=alert_pb2.Alert(alert_id=f"a{n}", name=f"rule{n}")) for n in range(3)]
    feed(board, messages)
    run = board.snapshot()["runs"][0]
    assert [d["reason"] for d in run["decisions"]] == ["reason 10", "reason 9", "reason 8"]
    assert [m["seed_id"] for m in run["marks"]] == ["s4", "s5"]
    assert [n["text"] for n in run["notices"]] == ["notice 5", "notice 4"]
    assert [p["epoch"] for p in run["curve"]] == [6, 7, 8, 9]
    assert [s["seed_id"] for layer in run["layers"] for s in layer["seeds"]] == ["s1", "s2"]
    assert [a["name"] for a in run["alerts"]] == ["rule2"]
    # Counters are not bounded by the lists they summarize.
    assert board.summary(RUN).summary.seeds_germinated == 5


def test_finished_runs_are_forgotten_first_then_the_least_recently_heard() -> None:
    board = RunBoard(RunBoardConfig(max_runs=2))
    feed(board, [event(1, run_id="run-a", when=T0 + 1, status_change=run_pb2.RUN_STATUS_SUCCEEDED)])
    feed(board, [event(1, run_id="run-b", when=T0 + 2, notice="b")])
    feed(board, [event(1, run_id="run-c", when=T0 + 3, notice="c")])
    assert board.run_ids() == ["run-c", "run-b"]
    feed(board, [event(1, run_id="run-d", when=T0 + 4, notice="d")])
    assert board.run_ids() == ["run-d", "run-c"]
    with pytest.raises(NotFound):
        board.summary("run-a")


def test_runs_are_listed_newest_first() -> None:
    board = RunBoard()
    feed(board, [event(1, run_id="run-old", when=T0), event(1, run_id="run-new", when=T0 + 60)])
    feed(board, [event(2, run_id="run-old", when=T0 + 120, notice="still going")])
    assert board.run_ids() == ["run-new", "run-old"]
    assert [run["run_id"] for run in board.snapshot()["runs"]] == ["run-new", "run-old"]


def test_an_unknown_run_has_no_summary() -> None:
    board = RunBoard()
    feed(board, a_run())
    with pytest.raises(NotFound) as raised:
        board.summary("run-nobody")
    assert raised.value.reason == "RUN_NOT_FOUND"


def test_summary_fills_what_the_bus_shows() -> None:
    board = RunBoard()
    feed(board, [*a_run(), telemetry("net.0", 3, lifecycle_pb2.SEED_STAGE_TRAINING, violations=2)])
    response = board.summary(RUN)
    summary = response.summary
    assert response.run_id == RUN and response.last_epoch == 3 and not response.alerts
    assert summary.best_val_accuracy == pytest.approx(0.40)
    assert (summary.params_initial, summary.params_final) == (200, 300)
    assert (summary.seeds_germinated, summary.seeds_fossilized, summary.seeds_culled) == (1, 1, 0)
    assert summary.epochs == 3
    assert summary.hook_ms_p50 == pytest.approx(2.0) and summary.hook_ms_p95 == pytest.approx(4.0)
    assert summary.isolation_violations == 2
    assert summary.wall_seconds == pytest.approx(11.0)  # first report at T0 (epoch 0), last event at T0 + 11
    assert summary.final_test_accuracy == 0.0  # no run event carries it


def test_a_state_packet_gives_a_curve_point_and_per_seed_state_when_its_layout_matches() -> None:
    board = RunBoard()
    feed(
        board,
        [
            telemetry("net.0", 0, lifecycle_pb2.SEED_STAGE_DORMANT),
            telemetry("net.2", 0, lifecycle_pb2.SEED_STAGE_DORMANT),
        ],
    )
    packet = telemetry_pb2.SystemStatePacket(
        schema_version=1,
        run_id=RUN,
        epoch=1,
        global_step=20,
        training_loss=0.9,
        validation_loss=0.8,
        validation_accuracy=0.5,
        layout_hash=layout_hash(["net.0", "net.2"]),
        seed_stages=[lifecycle_pb2.SEED_STAGE_DORMANT, lifecycle_pb2.SEED_STAGE_GRAFTING],
        seed_alpha_bp=[0, 2500],
    )
    feed(board, [packet])
    run = board.snapshot()["runs"][0]
    assert run["layout_confirmed"] is True
    assert run["curve"][-1]["val_accuracy"] == pytest.approx(0.5) and run["curve"][-1]["train_accuracy"] is None
    seed = run["layers"][1]["seeds"][0]
    assert (seed["stage"], seed["alpha"]) == ("GRAFTING", 0.25)
    # The epoch's own metrics replace the packet's point.
    feed(board, [epoch(1, 1, 0.55)])
    assert board.snapshot()["runs"][0]["curve"][-1]["train_accuracy"] == pytest.approx(0.50)


def test_a_packet_of_another_layout_leaves_the_seeds_alone() -> None:
    board = RunBoard()
    feed(board, [telemetry("net.0", 0, lifecycle_pb2.SEED_STAGE_DORMANT)])
    packet = telemetry_pb2.SystemStatePacket(
        run_id=RUN,
        epoch=1,
        layout_hash=layout_hash(["other"]),
        seed_stages=[lifecycle_pb2.SEED_STAGE_CULLED],
    )
    feed(board, [packet])
    run = board.snapshot()["runs"][0]
    assert run["layout_confirmed"] is False and run["layers"][0]["seeds"][0]["stage"] == "DORMANT"


def test_non_finite_numbers_become_null_in_the_snapshot() -> None:
    board = RunBoard()
    feed(
        board,
        [
            event(
                1,
                epoch_completed=run_pb2.EpochMetrics(
                    epoch=0, train_loss=float("nan"), val_loss=float("inf"), val_accuracy=0.1
                ),
            )
        ],
    )
    text = json.dumps(board.snapshot(), allow_nan=False)
    assert '"train_loss":null' in text.replace(" ", "")


def test_messages_the_board_cannot_use_are_refused() -> None:
    board = RunBoard()
    with pytest.raises(InvalidArgument):
        board.observe(opened(control_pb2.FieldReport(report_id="r", run_id=RUN)))
    with pytest.raises(InvalidArgument):
        board.observe(opened(telemetry("net.0", 0, lifecycle_pb2.SEED_STAGE_DORMANT, run_id="")))
    assert board.run_ids() == [] and board.version == 0


def test_the_intake_feeds_the_board_and_acks_what_it_cannot_use() -> None:
    bus = InProcessBus(OonaConfig())
    board = RunBoard()
    subscription = board_intake(board)(bus)
    try:
        nameless = telemetry("net.0", 0, lifecycle_pb2.SEED_STAGE_DORMANT, run_id="")
        bus.publish(telemetry_subject(RUN, "net.0"), bus.seal(nameless, source="tolaria"))
        for message in a_run():
            subject = (
                run_event_subject(RUN)
                if isinstance(message, run_pb2.RunEvent)
                else telemetry_subject(RUN, message.seed_id)
            )  # type: ignore[attr-defined]
            bus.publish(subject, bus.seal(message, source="tolaria"))
        assert bus.flush(5)
        stats = bus.stats()
        assert stats.handled == len(a_run()) + 1
        assert stats.handler_failures == 0 and stats.dead_lettered_total == 0
        assert board.run_ids() == [RUN]
        assert board.snapshot()["runs"][0]["epochs_seen"] == 3
    finally:
        subscription.stop()
        bus.close()
    assert BOARD_CONSUMER.durable == "nissa" and BOARD_CONSUMER.subjects == ("esper.telemetry.>",)


def test_wait_for_change_returns_the_new_version() -> None:
    board = RunBoard()
    assert board.wait_for_change(0, timeout=0.01) == 0
    feed(board, [event(1, notice="x")])
    assert board.wait_for_change(0, timeout=0.01) == 1


def test_sequence_window_drops_repeats_and_gives_up_on_gaps_past_its_limit() -> None:
    window = SequenceWindow(limit=3)
    assert [window.add(n) for n in (2, 1, 2, 3, 1)] == [True, True, False, True, False]
    assert window.through == 3
    assert [window.add(n) for n in (5, 6, 7)] == [True, True, True]
    assert window.through == 3  # 4 may still come
    assert window.add(8) is True  # four waiting: 4 is given up for lost
    assert window.through == 8 and window.add(4) is False
