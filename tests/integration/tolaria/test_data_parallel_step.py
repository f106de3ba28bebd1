"""One data-parallel step over two gloo processes is the one-process step over the whole batch.

Each rank trains on its rows of the batch, its loss scaled by its share; after the
gradients are summed over the ranks, both ranks hold the whole batch's gradient and
loss, a parameter no rank used keeps no gradient, and after a step on a new parameter
set both ranks hold rank 0's values.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from esper.tolaria.data_parallel import DataParallel, RanksDisagree
from esper.tolaria.loop import train_epoch
from esper.tolaria.objective import Objective
from esper.tolaria.optimizers import OptimizerSet, adam_factory

pytestmark = pytest.mark.integration

WORLD = 2
ROWS = 7  # shares of 4 and 3 rows: unequal on purpose


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 4)
        self.unused = nn.Linear(2, 2)  # trainable, never called: no gradient on any rank
        self.register_buffer("runs", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.runs += float(dist.get_rank() if dist.is_initialized() else 0) + 1.0
        return self.layer(x)

    def host_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def seed_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {}


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return torch.randn(ROWS, 3, generator=generator), torch.randint(0, 4, (ROWS,), generator=generator)


def _rank(rank: int, store: str, results: Any) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(100 + rank)  # different initial values: sync_model must make them rank 0's
        model = Model()
        ranks = DataParallel(rank, WORLD, torch.device("cpu"), "gloo")
        ranks.sync_model(model)
        x, y = _batch()
        mine = ranks.share(x, y)
        assert mine is not None
        share_x, share_y = mine
        loss = nn.functional.cross_entropy(model(share_x), share_y)
        (loss * len(share_y) / ROWS).backward()
        total = ranks.reduce_gradients(model, loss.detach() * len(share_y) / ROWS)
        grads = {name: (p.grad.tolist() if p.grad is not None else None) for name, p in model.named_parameters()}

        # A new parameter set (a seed joined): after its first step every rank holds rank 0's values.
        model.extra = nn.Linear(3, 4)
        torch.nn.init.constant_(model.extra.weight, float(rank))
        model.zero_grad()
        ranks.reduce_gradients(model, torch.zeros(()))
        ranks.settle(model)

        # A whole epoch through the training loop: the statistics are the whole epoch's on every rank.
        optimizers = OptimizerSet(model, adam_factory(0.01, 0.0), adam_factory(0.01, 0.0))
        stats = train_epoch(model, optimizers, [(x, y), (x[:1], y[:1])], objective=Objective(), ranks=ranks)
        # Plain values: tensors through a queue would be shared memory the exiting child takes away.
        state = {name: t.tolist() for name, t in model.state_dict().items()}
        disagreement = _disagreement(ranks, model)
        results.put((rank, len(share_y), float(total), grads, model.extra.weight.tolist(), stats, state, disagreement))
        dist.barrier()  # no rank tears its connections down while the other still talks (gloo aborts it)
    finally:
        dist.destroy_process_group()


def _disagreement(ranks: DataParallel, model: nn.Module) -> str:
    """What a boundary after which rank 1 refused a command rank 0 applied raises."""
    try:
        ranks.check_agreement(3, model, ["c-1"], [] if ranks.is_main else ["c-1"])
    except RanksDisagree as exc:
        return str(exc)
    return "agreed"


@pytest.fixture(scope="module")
def ranks_results(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Any]:
    store = tmp_path_factory.mktemp("store") / "rendezvous"
    context = mp.get_context("spawn")
    results = context.Queue()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    processes = [context.Process(target=_rank, args=(rank, str(store), results)) for rank in range(WORLD)]
    for process in processes:
        process.start()
    found = {}
    for _ in processes:
        rank, *values = results.get(timeout=300)
        found[rank] = values
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    return found


def test_the_shares_cover_the_batch_with_sizes_differing_by_at_most_one(ranks_results: dict[int, Any]) -> None:
    assert [ranks_results[rank][0] for rank in range(WORLD)] == [4, 3]


def test_summed_gradients_and_loss_are_the_whole_batch_s_on_every_rank(ranks_results: dict[int, Any]) -> None:
    torch.manual_seed(100)  # rank 0's initial values, which every rank took
    model = Model()
    x, y = _batch()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    whole = dict(model.named_parameters())
    for rank in range(WORLD):
        _, total, grads, *_ = ranks_results[rank]
        assert total == pytest.approx(float(loss.detach()), rel=1e-6)
        assert grads["unused.weight"] is None and grads["unused.bias"] is None
        for name in ("layer.weight", "layer.bias"):
            torch.testing.assert_close(torch.tensor(grads[name]), whole[name].grad)


def test_after_a_step_on_a_new_parameter_set_every_rank_holds_rank_0_s_values(
    ranks_results: dict[int, Any],
) -> None:
    assert ranks_results[1][3] == ranks_results[0][3] == torch.zeros(4, 3).tolist()


def test_an_epoch_leaves_every_rank_with_the_same_model_and_statistics(ranks_results: dict[int, Any]) -> None:
    (_, _, _, _, stats0, state0, _), (_, _, _, _, stats1, state1, _) = ranks_results[0], ranks_results[1]
    # The second batch has one row, fewer than ranks: skipped on both.
    assert stats0 == stats1 and stats0.steps == 1
    assert state0.keys() == state1.keys()
    for name in state0:
        assert state0[name] == state1[name], name
    # Buffers are rank 0's after the epoch (each rank counted its own forwards differently).
    assert state0["runs"] == state1["runs"] == [2.0]


def test_ranks_that_disagree_after_a_boundary_stop_with_an_error(ranks_results: dict[int, Any]) -> None:
    expected = "after epoch 3's boundary rank 1 differs from rank 0 in: refused"
    assert [ranks_results[rank][6] for rank in range(WORLD)] == [expected, expected]
