"""smoothcert: certified robustness of any black-box classifier by randomized smoothing.

Gaussian noise (Cohen et al., 2019) and the non-Gaussian families of "Filling the soap bubbles":
see :mod:`smoothcert.noises`, :mod:`smoothcert.certificates` and :class:`smoothcert.Smooth`.

The names below are imported on first use (PEP 562), so that ``import smoothcert`` and the
command line's start-up (``smoothcert --help``, ``analyze``) do not import torch.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata

from .errors import SmoothCertError

try:
    __version__ = _metadata.version("smoothcert")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "get_certificate": ".certificates",
    "FAMILIES": ".noises",
    "Gaussian": ".noises",
    "L2Family": ".noises",
    "LinfMixed": ".noises",
    "LinfPure": ".noises",
    "Noise": ".noises",
    "make_noise": ".noises",
    "AdaptiveCertificate": ".sequential",
    "AdaptivePrediction": ".sequential",
    "Smooth": ".smooth",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:  # a submodule, e.g. smoothcert.noises after a bare ``import smoothcert``
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "SmoothCertError",
    "FAMILIES",
    "Noise",
    "Gaussian",
    "L2Family",
    "LinfMixed",
    "LinfPure",
    "make_noise",
    "get_certificate",
    "Smooth",
    "AdaptiveCertificate",
    "AdaptivePrediction",
    "__version__",
]
