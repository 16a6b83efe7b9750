"""Data sets as torch ``Dataset`` objects of ``(x, y)``: ``x`` float32 (C,H,W) in [0,1], ``y`` int.

See :func:`load_dataset` (digits, cifar10, imagenet, or a custom folder / .npz / .pt path) and
:func:`dataset_normalization` (the per-channel constants of the normalization layer).
"""

from .datasets import (
    DATASETS,
    DIGITS_TEST_SIZE,
    ImageFolderDataset,
    TensorImageDataset,
    dataset_normalization,
    is_dataset_path,
    load_dataset,
    load_tensor_file,
)
from .indices import select_indices

__all__ = [
    "DATASETS",
    "DIGITS_TEST_SIZE",
    "ImageFolderDataset",
    "TensorImageDataset",
    "dataset_normalization",
    "is_dataset_path",
    "load_dataset",
    "load_tensor_file",
    "select_indices",
]
