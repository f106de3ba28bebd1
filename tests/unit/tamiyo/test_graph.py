"""Tamiyo's observation graph: nodes, features, edges (seed 004 C.3) and its proto form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from esper.leyline.v1 import kernel_pb2, lifecycle_pb2, policy_pb2, telemetry_pb2
from esper.tamiyo import TamiyoConfig
from esper.tamiyo.context import decision_context
from esper.tamiyo.convert import observation_from_request
from esper.tamiyo.graph import (
    CHILD_OF,
    CONTAINS,
    FEATURE_DIMS,
    FITS,
    FITTED_BY,
    GLOBAL,
    KERNEL,
    LAYER,
    LAYER_FORWARD,
    MONITORS,
    SEED,
    SEQUENTIAL,
    build_graph,
)
from esper.tamiyo.graph_proto import graph_from_proto, graph_to_proto, tensor_to_proto
from esper.tamiyo.observation import Observation
from esper.tamiyo.requests import check_step
from esper.tamiyo.schema import KERNEL_FEATURES, SEED_FEATURES
from esper.tamiyo.state import Adaptation, RunState
from tests.support.tamiyo import FakeKernels, SeedSimulator, descriptor, kernel

CHUNKED = (
    descriptor("net.1.a", 0),
    descriptor("net.1.b", 0),
    descriptor("net.3", 1, dims=(16,)),
)


def _observation(sim: SeedSimulator, epoch: int = 3, accuracy: float = 0.6, **repeated: Any) -> Observation:
    message = sim.request(epoch, accuracy)
    for key, values in repeated.items():
        getattr(message, key).extend(values)
    return observation_from_request(message, check_step(message))


def _column(name: str) -> int:
    return SEED_FEATURES.index(name)


def test_nodes_follow_the_layout_and_carry_the_schema_s_features() -> None:
    sim = SeedSimulator(layout=CHUNKED)
    sim.seeds["net.1.b"].dead = 0.7
    observation = _observation(sim)
    graph = build_graph(observation, RunState(run_id="run-1"), TamiyoConfig())
    assert graph.seed_ids == ("net.1.a", "net.1.b", "net.3")
    assert {t: graph.features[t].shape[1] for t in FEATURE_DIMS} == dict(FEATURE_DIMS)
    assert (graph.count(SEED), graph.count(LAYER), graph.count(GLOBAL), graph.count(KERNEL)) == (3, 2, 1, 0)
    seeds = graph.features[SEED]
    assert seeds[:, _column("stage_dormant")].tolist() == [1.0, 1.0, 1.0]
    assert seeds[:, _column("dead_node_ratio")] == pytest.approx([0.1, 0.7, 0.1])
    # The heuristic's bottleneck signal, normalised across the run's seeds.
    assert seeds[:, _column("bottleneck_dead")].tolist() == [0.0, 1.0, 0.0]
    assert seeds[:, _column("relative_depth")].tolist() == [0.0, 0.0, 1.0]
    assert graph.features[GLOBAL][0, 3] == pytest.approx(0.6)  # validation accuracy


def test_edges_link_adjacent_seeds_layers_and_what_each_seed_watches() -> None:
    observation = _observation(SeedSimulator(layout=CHUNKED))
    graph = build_graph(observation, RunState(run_id="run-1"), TamiyoConfig(), parents={"net.3": "net.1.b"})
    pairs = {edge: sorted(map(tuple, graph.edges[edge].T.tolist())) for edge in graph.edges}
    assert pairs[SEQUENTIAL] == [(0, 1), (1, 0)]  # the two chunks of layer 0, both ways
    assert pairs[LAYER_FORWARD] == [(0, 1)]
    assert pairs[MONITORS] == [(0, 0), (1, 0), (2, 1)]
    assert pairs[CONTAINS] == [(1, 2)]
    assert pairs[CHILD_OF] == [(2, 1)]
    assert graph.features[SEED][:, _column("is_child")].tolist() == [0.0, 0.0, 1.0]


def test_host_layers_say_which_layer_each_seed_watches() -> None:
    layers = [
        telemetry_pb2.HostLayer(
            module_path="net.0", module_type="Linear", in_width=2, out_width=32, seed_ids=["net.1"]
        ),
        telemetry_pb2.HostLayer(
            module_path="net.2", module_type="Linear", in_width=32, out_width=32, seed_ids=["net.3"]
        ),
        telemetry_pb2.HostLayer(module_path="net.4", module_type="Linear", in_width=32, out_width=3),
    ]
    observation = _observation(SeedSimulator(), host_layers=layers)
    graph = build_graph(observation, RunState(run_id="run-1"), TamiyoConfig())
    assert graph.ids[LAYER] == ("net.0", "net.2", "net.4")
    assert graph.edges[MONITORS].T.tolist() == [[0, 0], [1, 1]]
    assert graph.features[LAYER][:, 0].tolist() == [1.0, 1.0, 1.0]  # all Linear


def test_kernel_candidates_fit_every_open_seed_of_their_site() -> None:
    sim = SeedSimulator(layout=CHUNKED)
    kernels = FakeKernels([kernel("k-small", params=40), kernel("k-big", params=4000), kernel("k16", dims=(16,))])
    observation = _observation(sim)
    state = RunState(run_id="run-1", stepped=True)
    context = decision_context(TamiyoConfig(warmup_epochs=0), state, observation, kernels)
    graph = context.graph
    assert graph.kernel_ids == ("k-big", "k-small", "k16")
    fits = sorted(map(tuple, graph.edges[FITS].T.tolist()))
    assert fits == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2)]
    assert sorted(map(tuple, graph.edges[FITTED_BY].T.tolist())) == sorted((s, k) for k, s in fits)
    params = graph.features[KERNEL][:, KERNEL_FEATURES.index("log_parameters")]
    assert params[0] > params[1]
    assert graph.features[KERNEL][:, KERNEL_FEATURES.index("tag_numerically_stable")].tolist() == [1.0, 1.0, 1.0]


def test_run_state_shows_in_the_tracked_seed_s_row() -> None:
    sim = SeedSimulator()
    sim.seeds["net.3"].stage = lifecycle_pb2.SEED_STAGE_FINE_TUNING
    observation = _observation(sim, epoch=9, accuracy=0.7)
    state = RunState(run_id="run-1", stepped=True, embargo_until={"net.1": 11})
    state.adaptations["net.3"] = Adaptation(
        seed_id="net.3",
        germination_command_id="c",
        kernel_id="k",
        blueprint_id="b",
        germination_epoch=3,
        pre_metric=0.6,
        selected_for_tags=(),
        kernel_report=kernel_pb2.UrabraskValidationReport(),
        last_stage=lifecycle_pb2.SEED_STAGE_FINE_TUNING,
        stage_entry_epoch=8,
    )
    seeds = build_graph(observation, state, TamiyoConfig()).features[SEED]
    assert seeds[:, _column("tracked")].tolist() == [0.0, 1.0]
    assert seeds[1, _column("epochs_in_stage")] == pytest.approx(0.2)
    assert seeds[1, _column("score_since_germination")] == pytest.approx(1.0)
    assert seeds[:, _column("embargoed")].tolist() == [1.0, 0.0]


def test_the_graph_round_trips_through_its_proto() -> None:
    kernels = FakeKernels([kernel("k1"), kernel("k2", params=900)])
    observation = _observation(SeedSimulator(layout=CHUNKED, final_epoch=20))
    context = decision_context(TamiyoConfig(warmup_epochs=0), RunState(run_id="run-1"), observation, kernels)
    back = graph_from_proto(graph_to_proto(context.graph))
    assert back.ids == context.graph.ids
    for node_type, features in context.graph.features.items():
        np.testing.assert_array_equal(back.features[node_type], features)
    for edge_type, index in context.graph.edges.items():
        np.testing.assert_array_equal(back.edges[edge_type], index)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda g: g.node_sets[0].features.shape.__setitem__(1, 3), r"node_sets\[seed\].features: tensor data"),
        (
            lambda g: g.edge_sets[0].edge_index.__setattr__("data", b"\x00"),
            r"edge_sets\[sequential\].edge_index: tensor data",
        ),
        (lambda g: g.node_sets[0].__setattr__("node_type", "cell"), "unknown node type"),
        (lambda g: g.edge_sets[7].edge_index.CopyFrom(tensor_to_proto(np.array([[9], [0]]))), "out of range"),
    ],
)
def test_a_malformed_graph_is_refused_with_what_is_wrong(
    spoil: Callable[[policy_pb2.ObservationGraph], object], message: str
) -> None:
    kernels = FakeKernels([kernel("k1")])
    observation = _observation(SeedSimulator())
    graph = graph_to_proto(
        decision_context(TamiyoConfig(warmup_epochs=0), RunState(run_id="r"), observation, kernels).graph
    )
    spoil(graph)
    with pytest.raises(ValueError, match=message):
        graph_from_proto(graph)
