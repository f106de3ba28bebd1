"""Learned Tamiyo vs heuristic-v1: held-out tasks and decision latency.

1. The held-out suite (esper.simic.curriculum "heldout": mnist5k and generated checker,
   shapes and twist tasks, all under-capacity starts, none of them or their families in
   training): each policy plays every task with the same seeds, greedily, as `esper run`
   would. Per task and policy: test accuracy mean ± sample std, parameters added,
   germinations, culls, fallbacks to the heuristic, and the reward score against the
   static twin. Then the verdict of the issue's bar: the learned policy is no worse than
   the heuristic on any task (within 0.5 point of mean test accuracy) and, on at least
   half the tasks, better by at least 1 point or as accurate (within 0.5 point) with at
   most 75 % of the heuristic's added parameters.
2. Decision latency of the learned policy on synthetic runs of 10, 100, 1,000 and 10,000
   seeds (the whole decision: bookkeeping, kernel candidates, graph, network, commands;
   median of repeats, one torch thread), in the controller's steady state: the packet's
   arrays at hand and the run's seed layout kept from its first boundary (building that
   layout once is shown beside). Targets: < 20 ms at 1,000, < 100 ms at 10,000.

    .venv/bin/python bench/policy.py [--policy gnn-v1] [--seeds 5] [--workers 2] [--skip-suite] [--skip-latency]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.simic.curriculum import suite
from esper.simic.episodes import EpisodeResult, EpisodeSpec, EpisodeWorkers
from esper.simic.gate import outcome
from esper.simic.reward import RewardConfig, episode_score
from esper.simic.twins import StaticTwins

HEURISTIC = "heuristic-v1"


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def play_suite(policies: list[str], seeds: int, workers: int, work: Path, assets_dir: str) -> dict[str, Any]:
    tasks = list(suite("heldout"))
    pairs = [(task, seed) for task in tasks for seed in range(seeds)]
    results: dict[str, dict[str, list[EpisodeResult]]] = {}
    with EpisodeWorkers(workers) as pool:
        twins = StaticTwins(work / "static-twins", assets_dir=assets_dir, tasks_dir=str(work)).results(pairs, pool)
        for policy in policies:
            specs = [
                EpisodeSpec(task, seed, policy, record=False, assets_dir=assets_dir, tasks_dir=str(work))
                for task, seed in pairs
            ]
            for (task, _), result in zip(pairs, pool.play(specs), strict=True):
                if result.error:
                    raise RuntimeError(f"{policy} on {task.name} seed {result.seed}: {result.error}")
                results.setdefault(policy, {}).setdefault(task.name, []).append(result)
    return {"tasks": [task.name for task in tasks], "results": results, "twins": twins}


def summarize(played: dict[str, Any], reward: RewardConfig) -> dict[str, Any]:
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for policy, by_task in played["results"].items():
        for task, results in by_task.items():
            test = [100 * r.test_accuracy for r in results]
            added = [r.params_final - r.params_initial for r in results]
            scores = [episode_score(outcome(r, played["twins"][(task, r.seed)]), reward) for r in results]
            static = [100 * played["twins"][(task, r.seed)].test_accuracy for r in results]
            rows.setdefault(task, {})[policy] = {
                "test_mean": statistics.mean(test),
                "test_std": _std(test),
                "static_test_mean": statistics.mean(static),
                "params_added": statistics.mean(added),
                "germinations": statistics.mean(r.germinated for r in results),
                "culls": statistics.mean(r.culled for r in results),
                "fallbacks": statistics.mean(r.fallbacks for r in results),
                "score": statistics.mean(scores),
            }
    return rows


def verdict(rows: dict[str, dict[str, dict[str, float]]], learned: str) -> tuple[list[str], bool]:
    lines, no_worse, wins = [], True, 0
    for task, by_policy in rows.items():
        h, g = by_policy[HEURISTIC], by_policy[learned]
        diff = g["test_mean"] - h["test_mean"]
        frugal = h["params_added"] > 0 and g["params_added"] <= 0.75 * h["params_added"]
        better = diff >= 1.0 or (abs(diff) <= 0.5 and frugal) or (diff > 0.5 and frugal)
        worse = diff < -0.5
        no_worse &= not worse
        wins += int(better and not worse)
        lines.append(
            f"- {task}: {learned} - heuristic = {diff:+.2f} points; params added {g['params_added']:.0f} vs "
            f"{h['params_added']:.0f} ({100 * g['params_added'] / max(1.0, h['params_added']):.0f} %) -> "
            f"{'WORSE' if worse else 'better' if better else 'no worse'}"
        )
    passed = no_worse and wins * 2 >= len(rows)
    lines.append(
        f"- no worse on every task: {'yes' if no_worse else 'NO'}; better on {wins} of {len(rows)} "
        f"(need {(len(rows) + 1) // 2}) -> the bar is {'MET' if passed else 'NOT met'}"
    )
    return lines, passed


def table(rows: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    lines = [
        "| task | policy | test accuracy % (mean ± std) | static % | params added | germinations | culls | "
        "fallbacks | score |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, by_policy in rows.items():
        for policy, r in by_policy.items():
            lines.append(
                f"| {task} | {policy} | {r['test_mean']:.2f} ± {r['test_std']:.2f} | {r['static_test_mean']:.2f} | "
                f"{r['params_added']:,.0f} | {r['germinations']:.1f} | {r['culls']:.1f} | {r['fallbacks']:.1f} | "
                f"{r['score']:+.2f} |"
            )
    return lines


# --- latency ------------------------------------------------------------------------------------


def synthetic_observation(seeds: int, *, seed: int = 0) -> Any:
    """A run of `seeds` seeds, 4 per layer alternating two site shapes, mostly dormant, some adapting."""
    from google.protobuf import timestamp_pb2

    from esper.leyline.v1 import blueprint_pb2, lifecycle_pb2, telemetry_pb2
    from esper.state import SeedFeatures, pack_system_state
    from esper.tamiyo.issued import Boundary
    from esper.tamiyo.observation import Observation, PackedFeatures, SeedLayout, SeedView

    rng = np.random.default_rng(seed)
    views = []
    for i in range(seeds):
        descriptor = telemetry_pb2.SeedDescriptor(
            seed_id=f"layer{i // 4}.seed{i % 4}", layer_index=i // 4, input_kind=blueprint_pb2.INPUT_KIND_FEATURES
        )
        descriptor.input_shape.dims.append(32 if i % 2 else 64)
        stage = lifecycle_pb2.SEED_STAGE_TRAINING if i % 97 == 5 else lifecycle_pb2.SEED_STAGE_DORMANT
        dead, corr, var = (float(v) for v in rng.uniform(0, 1, 3))
        features = SeedFeatures(descriptor.seed_id, stage, 0.0, var, dead, corr, 0, False)
        telemetry = telemetry_pb2.SeedTelemetry(
            seed_id=descriptor.seed_id,
            stage=stage,
            chunk_variance=var,
            dead_node_ratio=dead,
            avg_correlation=corr,
            activation_mean=float(rng.normal()),
            activation_std=1.0,
        )
        views.append(SeedView(descriptor=descriptor, features=features, telemetry=telemetry))
    seeds_in_order = tuple(views)
    packet = pack_system_state(
        run_id="bench",
        epoch=10,
        global_step=1000,
        training_loss=0.8,
        validation_loss=0.9,
        validation_accuracy=0.7,
        epoch_ms=100,
        seeds=[view.telemetry for view in seeds_in_order if view.telemetry is not None],
    )
    # The controller's steady state: the packet's arrays, and the run's layout kept from its first boundary.
    return Observation(
        boundary=Boundary(run_id="bench", epoch=10, score=0.7, time=timestamp_pb2.Timestamp()),
        training_loss=0.8,
        validation_loss=0.9,
        seeds=seeds_in_order,
        model_parameters=50 * seeds + 1000,
        final_epoch=40,
        packed=PackedFeatures.of(packet),
        known_layout=SeedLayout.of(seeds_in_order),
    )


class _Kernels:
    """A KernelDirectory of six validated kernels per site shape (no Urza: the decision, not the query)."""

    def __init__(self) -> None:
        from esper.leyline.v1 import blueprint_pb2, kernel_pb2

        self.kernels = []
        for width in (32, 64):
            for k, params in enumerate((64, 256, 1024, 2048, 4096, 8192)):
                kernel = kernel_pb2.KernelArtifact(
                    kernel_id=f"k{width}-{k}",
                    blueprint_id=f"bp{width}-{k}",
                    template_id=(
                        "mlp_relu_e1",
                        "lora_r4",
                        "mlp_gelu_e2",
                        "gated_mlp_e1",
                        "mlp_relu_e4",
                        "mlp_relu_h64",
                    )[k],
                    status=kernel_pb2.KERNEL_STATUS_VALIDATED,
                    input_kind=blueprint_pb2.INPUT_KIND_FEATURES,
                    parameter_count=params,
                    tags=["numerically_stable"],
                )
                kernel.input_shape.dims.append(width)
                kernel.validation_report.latency_ms_mean = 0.01 * (k + 1)
                kernel.validation_report.passed = True
                self.kernels.append(kernel)

    def query_kernels(self, request: Any) -> Any:
        from esper.leyline.v1 import kernel_pb2, urza_pb2

        dims = list(request.query.input_shape.dims)
        found = [k for k in self.kernels if list(k.input_shape.dims) == dims]
        return urza_pb2.QueryKernelsResponse(result=kernel_pb2.KernelQueryResult(kernels=found, total_size=len(found)))


def latency(policy: str, sizes: list[int], repeats: int) -> list[dict[str, float]]:
    from esper.tamiyo import TamiyoConfig
    from esper.tamiyo.acting import act
    from esper.tamiyo.context import decision_context
    from esper.tamiyo.observation import SeedLayout
    from esper.tamiyo.policies import find_artifact, learned_policy
    from esper.tamiyo.state import RunState

    config = TamiyoConfig(warmup_epochs=0, max_concurrent_seeds=64, policy_timeout_ms=1e9)
    artifact = find_artifact(policy)
    if artifact is None:
        raise SystemExit(f"policy {policy!r} not found")
    learned = learned_policy(artifact, config)
    kernels = _Kernels()
    rows = []
    for size in sizes:
        observation = synthetic_observation(size)
        state = RunState(run_id="bench", stepped=True, best_val_score=0.7, last_epoch=9)
        totals, graph_ms, net_ms = [], [], []
        first_boundary = []
        for _ in range(repeats):
            fresh = copy.copy(observation)
            fresh.__dict__.pop("layout", None)
            fresh.__dict__.pop("stages", None)
            laid_out = time.perf_counter()
            SeedLayout.of(observation.seeds)
            first_boundary.append((time.perf_counter() - laid_out) * 1e3)
            run = copy.deepcopy(state)
            started = time.perf_counter()
            learned.decide(run, fresh, kernels)
            totals.append((time.perf_counter() - started) * 1e3)
            built = time.perf_counter()
            context = decision_context(config, copy.deepcopy(state), fresh, kernels)
            graph_ms.append((time.perf_counter() - built) * 1e3)
            acted = time.perf_counter()
            act(learned.net, context.graph, context.mask, context.kernel_mask, free_slots=context.free_slots)
            net_ms.append((time.perf_counter() - acted) * 1e3)
        if learned.fallbacks:
            raise SystemExit(f"the policy fell back to the heuristic {learned.fallbacks} times at {size} seeds")
        rows.append(
            {
                "seeds": size,
                "decision_ms": statistics.median(totals),
                "context_ms": statistics.median(graph_ms),
                "network_ms": statistics.median(net_ms),
                "layout_ms_first_boundary": statistics.median(first_boundary),
                "kernel_candidates": len(context.candidates),
                "fits_edges": int(context.graph.edges[("kernel", "fits", "seed")].shape[1]),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="gnn-v1")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", help="keep task files and static twins here (default: a temporary folder)")
    parser.add_argument("--assets-dir", default="")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    figures: dict[str, Any] = {"policy": args.policy, "seeds": args.seeds}
    if not args.skip_latency:
        rows = latency(args.policy, [10, 100, 1000, 10000], args.repeats)
        figures["latency"] = rows
        print(f"decision latency of {args.policy} (median of {args.repeats}, one torch thread):\n")
        print(
            "| seeds | decision ms | context (candidates, masks, graph) ms | network ms | kernels | fits edges "
            "| layout, first boundary only, ms |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            print(
                f"| {row['seeds']:,} | {row['decision_ms']:.1f} | {row['context_ms']:.1f} | {row['network_ms']:.1f} | "
                f"{row['kernel_candidates']} | {row['fits_edges']:,} | {row['layout_ms_first_boundary']:.1f} |"
            )
        at = {row["seeds"]: row["decision_ms"] for row in rows}
        print(
            f"\ntargets: < 20 ms at 1,000 seeds: {'met' if at[1000] < 20 else 'NOT met'} ({at[1000]:.1f} ms); "
            f"< 100 ms at 10,000: {'met' if at[10000] < 100 else 'NOT met'} ({at[10000]:.1f} ms)\n"
        )
    if not args.skip_suite:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(args.work) if args.work else Path(tmp)
            played = play_suite([HEURISTIC, args.policy], args.seeds, args.workers, work, args.assets_dir)
        rows = summarize(played, RewardConfig())
        figures["heldout"] = rows
        print(f"held-out suite, {args.seeds} seeds per task, greedy policies, default `esper run` settings:\n")
        print("\n".join(table(rows)))
        lines, passed = verdict(rows, args.policy)
        figures["bar_met"] = passed
        print()
        print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
