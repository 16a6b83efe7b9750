"""The certificate contract: from a lower bound p of p_A to a certified radius.

Every certificate offers ``radius(p, *, exact=False)``, ``threshold(r)`` (an upper bound of the
smallest p_A that certifies r), ``certifies(p, r)``, ``value(p, r)`` where it gives bound values,
``bilateral_radius(p_a, p_b)`` and ``describe()``. The engines live in :mod:`.gaussian` (closed
form), :mod:`.table` (a radius table, built by :mod:`.quadrature` or :mod:`.montecarlo`);
:mod:`.registry` picks the one a noise names.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import SmoothCertError
from ..noises import Noise
from ..noises.base import check_norm

#: part of every table's cache key: bump it when a builder's numbers change
ENGINE_VERSION = 2


def _as_float_array(x, name: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise SmoothCertError(
            f"{name} must be a number or an array of numbers, got {x!r}"
        ) from None


def check_probability(p, name: str = "p") -> np.ndarray:
    arr = _as_float_array(p, name)
    if arr.size == 0:
        raise SmoothCertError(f"{name} is empty")
    if not np.all(np.isfinite(arr)) or np.any((arr <= 0) | (arr >= 1)):
        bad = arr[~(np.isfinite(arr) & (arr > 0) & (arr < 1))].ravel()[0]
        raise SmoothCertError(f"{name} must lie strictly between 0 and 1, got {bad}")
    return arr


def check_radius(r, name: str = "radius") -> np.ndarray:
    arr = _as_float_array(r, name)
    if arr.size == 0:
        raise SmoothCertError(f"{name} is empty")
    if not np.all(arr >= 0):  # negative or NaN (+inf is allowed: never certified)
        bad = arr[~(arr >= 0)].ravel()[0]
        raise SmoothCertError(f"{name} must be a number >= 0, got {bad}")
    return arr


def _scalar_or_array(x: np.ndarray, like):
    return float(x) if np.ndim(like) == 0 else x


class Certificate:
    """Certified radius of a noise against an l_p threat model (p = 2 or infinity)."""

    method = "abstract"

    def __init__(self, noise: Noise, norm: str, failure_prob: float = 0.0):
        self.noise, self.norm, self.failure_prob = noise, check_norm(norm), float(failure_prob)

    # -- to be provided ---------------------------------------------------------------------
    def radius(self, p, *, exact: bool = False):
        """Certified radius for a lower bound ``p`` of p_A (0 where nothing is certified).

        ``exact=True`` asks for the engine's most precise radius: a table refines between its
        grid radii where it has an exact engine; elsewhere (closed form: exact already; Monte
        Carlo table: no exact engine) it changes nothing."""
        raise NotImplementedError

    def threshold(self, r):
        """An upper bound of the smallest p_A that certifies radius ``r``."""
        raise NotImplementedError

    def value(self, p: float, r: float) -> float:
        """Lower bound V(p, r) of min over the ball of the smoothed score (eq. 5)."""
        raise SmoothCertError(f"the {self.method} certificate gives radii, not bound values")

    # -- derived ------------------------------------------------------------------------------
    def certifies(self, p: float, r: float) -> bool:
        """True when a p_A lower bound ``p`` certifies radius ``r`` (Algorithm 2's question)."""
        if np.ndim(p) or np.ndim(r):
            raise SmoothCertError("certifies takes one p and one radius (numbers)")
        p = float(check_probability(p))
        r = float(check_radius(r))
        if not math.isfinite(r):
            raise SmoothCertError(f"radius must be a finite number >= 0, got {r}")
        return bool(p > self.threshold(r))

    def bilateral_radius(self, p_a: float, p_b: float) -> float:
        """Radius of the multi-class bilateral certificate of appendix D, from a lower bound
        ``p_a`` of the top class and an upper bound ``p_b`` of the runner-up: the largest r with
        V(p_a, r) > 1 - V(1 - p_b, r). Never below the binary radius."""
        check_probability(p_a, "p_a")
        check_probability(p_b, "p_b")
        binary = self.radius(p_a)
        if p_b >= p_a:
            return binary

        def margin(r):
            return self.value(p_a, r) + self.value(1 - p_b, r) - 1

        hi = max(binary, 1e-6 * self.noise.sigma)
        while margin(hi) > 0:
            hi *= 2
            if hi > 1e6 * self.noise.sigma:
                break
        if margin(0.0) <= 0:
            return binary
        from scipy import optimize

        r = optimize.brentq(margin, 0.0, hi, xtol=1e-12 * self.noise.sigma, rtol=1e-10)
        return max(binary, r * (1 - 1e-9))

    def describe(self) -> dict:
        """Everything that defines this certificate, for result files and ``--json``."""
        return {
            **self.noise.params(),
            "norm": self.norm,
            "method": self.method,
            "failure_prob": self.failure_prob,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.noise!r}, norm={self.norm!r}, method={self.method})"
