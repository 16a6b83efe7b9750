"""Base classifiers in the layout of the reference code, so that published checkpoints load.

:func:`get_architecture` returns ``torch.nn.Sequential(NormalizeLayer(means, sds), net)`` as in
Cohen et al. (locuslab/smoothing, ``code/architectures.py``): the normalization is the first layer
of the classifier, so that noise is added (and radii certified) in [0,1] pixel space. Its
constants are not in the state dict, whose keys are therefore ``1.<net key>``:

- ``cifar_resnet20``, ``cifar_resnet110``: the CIFAR ResNet of the reference
  (``archs/cifar_resnet.py``, from bearpaw/pytorch-classification): ``1.conv1.weight``,
  ``1.bn1.*``, ``1.layer{1,2,3}.<i>.{conv1,bn1,conv2,bn2}.*``, ``1.layer{2,3}.0.downsample.{0,1}.*``
  (1x1 conv + BN shortcut), ``1.fc.{weight,bias}``.
- ``resnet50``: torchvision's ResNet-50 (stride in the 3x3 conv of the bottleneck) wrapped in
  ``DataParallel``: ``1.module.conv1.weight``, ``1.module.layer4.2.bn3.*``, ``1.module.fc.*``.
- ``imagenet32_resnet110``: the CIFAR ResNet-110 with 1000 outputs (Salman et al.).
- ``digits_cnn``: a small CNN for the 8x8 digits: ``1.conv1.*``, ``1.conv2.*``, ``1.fc.*``.
- ``digits32_cnn``: a small strided CNN for 3x32x32 inputs (``digits32``, or CIFAR-10 when a
  cheap model is wanted): ``1.conv{1,2,3}.*``, ``1.fc.*``.

:class:`InputCenterLayer` (Salman et al., x - mean) can replace the normalization layer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from itertools import chain

import torch
from torch import nn

from ..data.datasets import DATASETS, NORMALIZATION, is_dataset_path
from ..errors import SmoothCertError

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_DATASET",
    "NormalizeLayer",
    "InputCenterLayer",
    "DataParallel",
    "CifarResNet",
    "ResNet50",
    "DigitsCNN",
    "Digits32CNN",
    "get_architecture",
    "build_net",
    "normalization_layer",
]

ARCHITECTURES = (
    "cifar_resnet20",
    "cifar_resnet110",
    "resnet50",
    "digits_cnn",
    "digits32_cnn",
    "imagenet32_resnet110",
)

# Data set whose normalization an architecture uses when none is given.
DEFAULT_DATASET = {
    "cifar_resnet20": "cifar10",
    "cifar_resnet110": "cifar10",
    "resnet50": "imagenet",
    "digits_cnn": "digits",
    "digits32_cnn": "digits32",
    "imagenet32_resnet110": "imagenet32",
}

_DATASET_CLASSES = {
    "digits": 10,
    "digits32": 10,
    "cifar10": 10,
    "imagenet": 1000,
    "imagenet32": 1000,
}


# ----------------------------------------------------------------------------- first layers
def _floats(values) -> list[float]:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    return [float(v) for v in values]


class NormalizeLayer(nn.Module):
    """``(x - means) / sds`` per channel of a (N,C,H,W) batch (Cohen et al.).

    ``means`` and ``sds`` are non-persistent buffers: they follow ``.to(device)`` but are not in
    the state dict, as in the reference (where they are plain tensors). A single value applies to
    every channel."""

    def __init__(self, means: Sequence[float], sds: Sequence[float]):
        super().__init__()
        means, sds = _floats(means), _floats(sds)
        if len(means) != len(sds) or not means:
            raise SmoothCertError(
                f"NormalizeLayer: {len(means)} means for {len(sds)} standard deviations"
            )
        if not all(s > 0 for s in sds):
            raise SmoothCertError("NormalizeLayer: standard deviations must be > 0")
        self.register_buffer("means", torch.tensor(means), persistent=False)
        self.register_buffer("sds", torch.tensor(sds), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.means.view(1, -1, 1, 1)) / self.sds.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"means={self.means.tolist()}, sds={self.sds.tolist()}"


class InputCenterLayer(nn.Module):
    """``x - means`` per channel (Salman et al.); ``means`` is not in the state dict."""

    def __init__(self, means: Sequence[float]):
        super().__init__()
        means = _floats(means)
        if not means:
            raise SmoothCertError("InputCenterLayer: no means")
        self.register_buffer("means", torch.tensor(means), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.means.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"means={self.means.tolist()}"


class DataParallel(nn.DataParallel):
    """``nn.DataParallel`` (state dict keys ``module.*``) that also runs where its module is not
    on ``cuda:device_ids[0]`` (on CPU, or on another GPU): it then calls the module directly.
    It never moves the module by itself."""

    def __init__(self, module: nn.Module):
        super().__init__(nn.Module())  # with one GPU, DataParallel moves its module there
        self.module = module

    def forward(self, *inputs, **kwargs):
        if not self.device_ids:
            return self.module(*inputs, **kwargs)
        first = next(chain(self.module.parameters(), self.module.buffers()), None)
        if first is None or first.device != self.src_device_obj:
            return self.module(*inputs, **kwargs)
        return super().forward(*inputs, **kwargs)


# ----------------------------------------------------------------------------- CIFAR ResNet
def _initializable(net: nn.Module):
    """The submodules to initialize (none on the meta device, where init is slow and moot)."""
    return [m for m in net.modules() if not any(p.is_meta for p in m.parameters(recurse=False))]


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class _CifarBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class CifarResNet(nn.Module):
    """The reference CIFAR ResNet (depth 6n+2, basic blocks, 16/32/64 channels, 1x1 conv + BN
    shortcuts). Global average pooling is adaptive (equal to the reference's AvgPool2d(8) on
    32x32 inputs) so that other input sizes work too."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise SmoothCertError(f"CIFAR ResNet depth must be 6n+2 (20, 110, ...), got {depth}")
        n = (depth - 2) // 6
        self.inplanes = 16
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n)
        self.layer2 = self._make_layer(32, n, stride=2)
        self.layer3 = self._make_layer(64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in _initializable(self):
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        layers = [_CifarBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [_CifarBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------- ResNet-50
class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """torchvision's ``resnet50()`` layout and initialization (no torchvision needed)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2)
        self.layer4 = self._make_layer(512, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * _Bottleneck.expansion, num_classes)
        for m in _initializable(self):
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * _Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(
                    self.inplanes,
                    planes * _Bottleneck.expansion,
                    kernel_size=1,
                    stride=stride,
                    bias=False,
                ),
                nn.BatchNorm2d(planes * _Bottleneck.expansion),
            )
        layers = [_Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * _Bottleneck.expansion
        layers += [_Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------- digits CNN
class DigitsCNN(nn.Module):
    """conv3x3(32) - ReLU - conv3x3(64) - ReLU - max-pool to 4x4 - linear. About 99% clean
    accuracy on the digits test split after a few seconds of training on CPU."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveMaxPool2d(4)
        self.fc = nn.Linear(64 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class Digits32CNN(nn.Module):
    """conv4x4(16, stride 2) - ReLU - conv3x3(32, stride 2) - ReLU - conv3x3(64, stride 2) -
    ReLU - linear: 3x32x32 down to 64x4x4 with about 0.8 million multiply-adds per image (1/25
    of ``digits_cnn`` applied at 32x32), so that certification with 10^4 noise draws per image
    at d = 3072 stays cheap on a CPU."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(64 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv3(self.relu(self.conv2(self.relu(self.conv1(x))))))
        return self.fc(torch.flatten(self.pool(x), 1))


# ----------------------------------------------------------------------------- factory
def _check_arch(arch) -> str:
    name = str(arch).lower() if isinstance(arch, str) else None
    if name not in ARCHITECTURES:
        raise SmoothCertError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return name


def build_net(
    arch: str, num_classes: int | None = None, in_channels: int | None = None, parallel: bool = True
) -> nn.Module:
    """The network of ``arch`` alone (no normalization layer), ``resnet50`` in
    :class:`DataParallel` unless ``parallel`` is false. Defaults: 10 classes (1000 for
    resnet50 and imagenet32_resnet110), 3 input channels (1 for digits_cnn)."""
    arch = _check_arch(arch)
    big = arch in ("resnet50", "imagenet32_resnet110")
    k = int(num_classes) if num_classes is not None else (1000 if big else 10)
    c = int(in_channels) if in_channels is not None else (1 if arch == "digits_cnn" else 3)
    if k < 1 or c < 1:
        raise SmoothCertError(f"{arch}: num_classes and in_channels must be >= 1")
    if arch == "cifar_resnet20":
        return CifarResNet(20, k, c)
    if arch in ("cifar_resnet110", "imagenet32_resnet110"):
        return CifarResNet(110, k, c)
    if arch == "digits_cnn":
        return DigitsCNN(k, c)
    if arch == "digits32_cnn":
        return Digits32CNN(k, c)
    net = ResNet50(k, c)
    return DataParallel(net) if parallel else net


def normalization_layer(
    dataset: str, input_center: bool = False, channels: int | None = None
) -> nn.Module:
    """The first layer for ``dataset``: its :class:`NormalizeLayer` (or :class:`InputCenterLayer`
    when ``input_center``); identity constants (mean 0, sd 1) for a custom data set path."""
    key = os.fspath(dataset)
    if key.lower() in NORMALIZATION:
        means, sds = NORMALIZATION[key.lower()]
        if channels is not None and len(means) not in (1, channels):
            raise SmoothCertError(
                f"dataset {key} has {len(means)} channels, the network expects {channels}"
            )
    elif is_dataset_path(key):
        means, sds = (0.0,), (1.0,)
    else:
        raise SmoothCertError(
            f"unknown dataset {key!r}: use one of {', '.join(DATASETS)}, "
            "or a path to a custom data set"
        )
    return InputCenterLayer(means) if input_center else NormalizeLayer(means, sds)


def _dataset_shape(dataset: str) -> tuple[int | None, int | None]:
    """``(num_classes, channels)`` of a data set, known or custom (a custom one is loaded)."""
    key = os.fspath(dataset)
    if key.lower() in NORMALIZATION:
        return _DATASET_CLASSES[key.lower()], len(NORMALIZATION[key.lower()][0])
    if not is_dataset_path(key):
        return None, None
    from ..data import load_dataset

    ds = load_dataset(key, "train")
    return int(ds.num_classes), int(ds.input_shape[0])


def get_architecture(
    arch: str,
    dataset: str,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    input_center: bool = False,
) -> nn.Module:
    """``Sequential(normalization, net)`` with random weights, on CPU, in train mode.

    ``dataset`` picks the normalization constants (and, unless given, ``num_classes`` and
    ``in_channels``: a custom data set path is loaded to read them). ``input_center`` uses
    Salman et al.'s :class:`InputCenterLayer` instead of :class:`NormalizeLayer`. Unknown arch
    or dataset: :class:`SmoothCertError`."""
    arch = _check_arch(arch)
    if num_classes is None or in_channels is None:
        k, c = _dataset_shape(dataset)
        num_classes = num_classes if num_classes is not None else k
        in_channels = in_channels if in_channels is not None else c
    first = normalization_layer(dataset, input_center, in_channels)
    return nn.Sequential(first, build_net(arch, num_classes, in_channels))
