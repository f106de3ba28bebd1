"""Datasets for training runs: built-in sets and .npz files, as CPU tensors."""

from esper.data.batching import batch_count, batches
from esper.data.bundle import Dataset
from esper.data.loading import DATASET_NAMES, load_dataset

__all__ = ["DATASET_NAMES", "Dataset", "batch_count", "batches", "load_dataset"]
