"""`esper.Trainer`: fit a researcher's own model on their own DataLoaders, growing it as it learns."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esper.sdk.run import FitResult, SdkRun, check_arguments, check_distributed
from esper.tamiyo.config import HEURISTIC_POLICY_ID
from esper.tolaria.batches import Batch, IterableData
from esper.tolaria.config import EsperConfig


class Trainer:
    """Trains `model` on `train_data`, validating on `val_data` each epoch, while Esper grows it.

    - `model`: any `nn.Module` (wrapped with `esper.wrap`'s default sites), or a model
      `esper.wrap` returned (your own sites).
    - `train_data`, `val_data` (and `test_data`): re-iterable sources of `(inputs,
      targets)` batches, such as `DataLoader`s; the model is called as `model(inputs)`.
    - `loss_fn(outputs, targets)`: the batch's mean loss (default: cross-entropy over the
      last dim, which also serves a language model's `[batch, T, vocab]` logits).
    - `metric`: what judges a validation: a callable `(outputs, targets) -> batch mean`
      (higher is better), a `(callable, higher_is_better)` pair, a `esper.Metric`, or a
      built-in name ("accuracy", the default; "bits_per_character"). Tamiyo's plateau and
      gain rules and the never-worse-than-static rollbacks follow its direction.
    - `optimizer`: a factory from parameters to an optimizer, used for the host and for
      each seed (default: Adam at `config.run.learning_rate` and
      `config.tolaria.seed_learning_rate`).
    - `policy`: "heuristic-v1" (Tamiyo's heuristic) or "static" (no growth: the twin).
    - `device`: "auto" (CUDA when there is one), "cpu", "cuda" or a torch.device.
    - `out`: a folder to write the run into, the same run folder as `esper run`.
    - `config`: an `esper.load_config(...)` for everything else (Kasmina, Tamiyo, Tolaria
      and asset settings); without one, defaults, and the first epoch does not wait for
      kernels to compile.
    - `seed` seeds torch's RNG when `fit` starts; `example_input` (default: the first
      validation batch's first two inputs) is what `esper.wrap` traces the model with.
    - `distributed`: data-parallel training when the script runs under `torchrun` (None,
      the default: whenever torchrun started several processes or a `torch.distributed`
      process group is set up; True: insist on it; False: train alone). Every rank reads
      every batch of `train_data` and trains on its share of its rows, so give a shuffling
      `DataLoader` a seeded `generator`; rank 0 decides for every rank and writes `out`.
      See docs/sdk.md, "Several processes".

    `fit()` returns a `FitResult`: `.model` (the grown model, at its best validated
    state), `.history` (one dict per epoch, as metrics.jsonl) and `.summary` (what
    summary.json holds).
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Iterable[Batch],
        val_data: Iterable[Batch],
        *,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
        metric: Any = None,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
        epochs: int,
        policy: str = HEURISTIC_POLICY_ID,
        device: str | torch.device = "auto",
        out: str | Path | None = None,
        config: EsperConfig | None = None,
        test_data: Iterable[Batch] | None = None,
        example_input: Any = None,
        seed: int = 0,
        distributed: bool | None = None,
    ) -> None:
        self._arguments = {
            "model": model,
            "train_data": train_data,
            "val_data": val_data,
            "loss_fn": loss_fn,
            "metric": metric,
            "optimizer": optimizer,
            "epochs": epochs,
            "policy": policy,
            "device": device,
            "out": out,
            "config": config,
            "test_data": test_data,
            "example_input": example_input,
            "seed": seed,
            "distributed": distributed,
        }
        # Refuse what fit() would refuse, now, naming the argument.
        check_arguments(policy=policy, epochs=epochs, seed=seed, config=config, out=out)
        check_distributed(distributed)
        IterableData(train_data, val_data, test_data)

    def fit(self) -> FitResult:
        """Train for the configured epochs (plus any a rollback discarded); returns the result."""
        run = SdkRun(**self._arguments)
        try:
            _, history = run.trainer.train()
        except BaseException:
            if run.services is not None:
                run.services.close()
            run.events.close()
            if run.ranks is not None:
                run.ranks.close()
            raise
        return run.finish(history)
