"""The ``digits32`` data set (digits at 3 x 32 x 32, d = 3072) and its ``digits32_cnn``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smoothcert.data import load_dataset
from smoothcert.data.datasets import NORMALIZATION
from smoothcert.models import get_architecture


@pytest.fixture(scope="module")
def pair():
    return load_dataset("digits", "train"), load_dataset("digits32", "train")


def test_digits32_is_digits_upsampled_on_three_channels(pair):
    """digits32 holds the digits' own images and labels, bilinearly upsampled to 3x32x32."""
    small, big = pair
    assert big.input_shape == (3, 32, 32) and len(big) == len(small) == 1437
    assert torch.equal(big.targets, small.targets)
    c = big.data
    assert torch.equal(c[:, 0], c[:, 1]) and torch.equal(c[:, 0], c[:, 2])
    want = torch.nn.functional.interpolate(
        small.data, size=(32, 32), mode="bilinear", align_corners=False
    )
    assert torch.equal(big.data[:, :1], want)
    # bilinear weights are a convex combination: the unit interval is kept (no clamping needed)
    assert float(big.data.min()) >= 0.0 and float(big.data.max()) <= 1.0
    test = load_dataset("digits32", "test")
    assert len(test) == 360 and torch.equal(test.targets, load_dataset("digits", "test").targets)


def test_digits32_normalization_constants_are_its_train_statistics(pair):
    """The digits32 normalization constants are the mean and std of its train split (4 dp)."""
    x = pair[1].data.numpy().astype(np.float64)
    means, sds = NORMALIZATION["digits32"]
    assert means == (round(x.mean(), 4),) * 3
    assert sds == (round(x.std(), 4),) * 3


def test_digits32_cnn_is_cheap_and_fits_digits32():
    """digits32_cnn maps a 3x32x32 batch to 10 scores with under 1e6 multiply-adds per image."""
    model = get_architecture("digits32_cnn", "digits32").eval()
    x = load_dataset("digits32", "test").data[:5]
    assert model(x).shape == (5, 10)
    macs = 0

    def count(mod, inp, out):
        nonlocal macs
        if isinstance(mod, torch.nn.Conv2d):
            macs += out[0].numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, torch.nn.Linear):
            macs += mod.in_features * mod.out_features

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    model(x[:1])
    for h in hooks:
        h.remove()
    assert 5e5 < macs < 1e6
