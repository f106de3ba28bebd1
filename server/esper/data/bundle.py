"""The dataset bundle a training run consumes: fixed splits as CPU tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from esper.leyline.v1 import blueprint_pb2


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train, validation and test splits of one dataset, ready for training.

    Features are float32 and labels int64 class indices in [0, num_classes). A text
    dataset (`metric` "bits_per_character") holds int64 character ids [N, context] as
    inputs and the next characters [N, context] as labels; `num_classes` is the size of
    its `vocabulary`.
    `input_shape` is one sample's shape without the batch dimension: `(D,)` for
    FEATURES, `(C, H, W)` for IMAGE. The validation rows come from the training
    data only; the test rows are never seen before the final evaluation.
    `feature_mean`/`feature_std` are the training statistics FEATURES inputs were
    standardized with (`x = (raw - mean) / std`), to apply the same to new data;
    None for IMAGE inputs, which stay in their [0, 1] pixel scale.
    """

    name: str
    input_kind: blueprint_pb2.InputKind
    input_shape: tuple[int, ...]
    num_classes: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    feature_mean: torch.Tensor | None = None
    feature_std: torch.Tensor | None = None
    metric: str = "accuracy"
    vocabulary: str | None = None

    def describe(self) -> dict[str, Any]:
        """Sizes and shapes, for the run folder's summary."""
        return {
            "name": self.name,
            "input_kind": blueprint_pb2.InputKind.Name(self.input_kind),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "train_size": int(self.y_train.shape[0]),
            "val_size": int(self.y_val.shape[0]),
            "test_size": int(self.y_test.shape[0]),
            "metric": self.metric,
        }
