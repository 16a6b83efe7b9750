"""Smoothing noises: one module per family on the contract of :mod:`.base`."""

from __future__ import annotations

from ..errors import SmoothCertError
from .base import NORMS, Noise, NoiseStats, matched_sigma
from .gaussian import Gaussian
from .l2_family import L2Family
from .linf_mixed import LinfMixed
from .linf_pure import LinfPure

FAMILIES = {cls.name: cls for cls in (Gaussian, L2Family, LinfMixed, LinfPure)}


def make_noise(
    name: str, dim: int, *, k: float = 0.0, sigma: float | None = None, sigma0: float | None = None
) -> Noise:
    """Build a noise by name. Give ``sigma`` directly, or ``sigma0`` to apply the paper's
    sigma-matching rule sigma = sqrt((d-1)/(d-1-k)) sigma0 (section 5)."""
    if not isinstance(name, str) or name not in FAMILIES:
        raise SmoothCertError(f"unknown noise {name!r}; choose one of {', '.join(FAMILIES)}")
    if (sigma is None) == (sigma0 is None):
        raise SmoothCertError("give exactly one of sigma and sigma0")
    if name == "gaussian" and k:
        raise SmoothCertError("the gaussian noise has no shape parameter: leave k at 0")
    if sigma is None:
        sigma = matched_sigma(sigma0, dim, k)
    return FAMILIES[name](dim, sigma=sigma, k=k)


__all__ = [
    "NORMS",
    "FAMILIES",
    "Noise",
    "NoiseStats",
    "Gaussian",
    "L2Family",
    "LinfMixed",
    "LinfPure",
    "make_noise",
    "matched_sigma",
]
