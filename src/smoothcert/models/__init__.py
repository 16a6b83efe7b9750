"""Base classifiers in the reference layout, and their checkpoints.

:func:`get_architecture` builds ``Sequential(NormalizeLayer, net)`` (Cohen et al.);
:func:`save_checkpoint` / :func:`load_checkpoint` write and read the reference checkpoint format
``{'arch', 'state_dict', 'epoch', 'optimizer', ...}`` as data, never code (TorchScript,
``torch.export`` and whole-module files only with ``trust=True``).
"""

from .architectures import (
    ARCHITECTURES,
    DEFAULT_DATASET,
    CifarResNet,
    DataParallel,
    DigitsCNN,
    InputCenterLayer,
    NormalizeLayer,
    ResNet50,
    build_net,
    get_architecture,
    normalization_layer,
)
from .checkpoint import adapt_state_dict, load_checkpoint, save_checkpoint

__all__ = ["ARCHITECTURES", "DEFAULT_DATASET", "CifarResNet", "DataParallel", "DigitsCNN",
           "InputCenterLayer", "NormalizeLayer", "ResNet50", "adapt_state_dict", "build_net",
           "get_architecture", "load_checkpoint", "normalization_layer", "save_checkpoint"]
