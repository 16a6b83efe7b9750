"""Base classifiers in the reference layout, and their checkpoints.

:func:`get_architecture` builds ``Sequential(NormalizeLayer, net)`` (Cohen et al.);
:func:`save_checkpoint` / :func:`load_checkpoint` write and read the reference checkpoint format
``{'arch', 'state_dict', 'epoch', 'optimizer', ...}`` as data, never code (TorchScript,
``torch.export`` and whole-module files only with ``trust=True``). Models of other libraries
(``hf:DIR``, ``timm:NAME``, ``torchvision:NAME``, and Hugging Face model folders wherever a
checkpoint is) come from :mod:`.pretrained`.
"""

from .architectures import (
    ARCHITECTURES,
    DEFAULT_DATASET,
    CifarResNet,
    DataParallel,
    Digits32CNN,
    DigitsCNN,
    InputCenterLayer,
    NormalizeLayer,
    ResNet50,
    build_net,
    normalization_layer,
)
from .checkpoint import (
    adapt_state_dict,
    file_sha256,
    load_checkpoint,
    load_model,
    save_checkpoint,
    train_noise,
)
from .pretrained import PretrainedClassifier, get_architecture, is_pretrained_arch

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_DATASET",
    "CifarResNet",
    "DataParallel",
    "Digits32CNN",
    "DigitsCNN",
    "InputCenterLayer",
    "NormalizeLayer",
    "PretrainedClassifier",
    "ResNet50",
    "adapt_state_dict",
    "build_net",
    "file_sha256",
    "get_architecture",
    "is_pretrained_arch",
    "load_checkpoint",
    "load_model",
    "normalization_layer",
    "save_checkpoint",
    "train_noise",
]
