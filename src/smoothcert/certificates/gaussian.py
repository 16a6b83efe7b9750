"""The closed-form certificate of the Gaussian (Cohen et al., Corollary 1 / Theorem 3)."""

from __future__ import annotations

import math

import numpy as np
from scipy import special  # scipy.optimize and .stats where used: fast start-up

from ..noises import Noise
from .base import Certificate, _scalar_or_array, check_probability, check_radius

_EPS = 2.0**-52  # one unit in the last place of 1.0


def _round_down(x, rel):
    """x moved toward -inf by at least ``rel * |x|`` (covers a relative error <= rel of x)."""
    x = np.asarray(x, dtype=float)
    return np.nextafter(x - np.abs(x) * rel, -np.inf)


def _round_up(x, rel):
    """x moved toward +inf by at least ``rel * |x|``."""
    x = np.asarray(x, dtype=float)
    return np.nextafter(x + np.abs(x) * rel, np.inf)


class GaussianCertificate(Certificate):
    """Corollary 1: R = sigma Phi^-1(p) for l2; sigma Phi^-1(p) / sqrt(d) for l-inf (Theorem 3).
    Exact; also used for the l2 family with k = 0, which is the Gaussian.

    Every result is rounded toward the safe side of the real-number value: ``radius`` and
    ``value`` (and the bilateral radius) down, ``threshold`` up. The steps come from measuring
    scipy against 40-50 digit mpmath: ``ndtri`` (Phi^-1) errs by at most 4.4 ulps over 105k p in
    (1/2, 1) (p - 1/2 down to 1e-16, 1 - p down to 1e-16), so with the scale sigma / sqrt(d)
    (<= 1.5 ulps) and the product the radius errs by < 6.5 * 2^-52 relative; it is rounded
    down by 16 * 2^-52 (3.6e-15) relative, a factor 2.5. ``ndtr`` (Phi) errs by <= 0.7 * 2^-52
    relative for x >= 0 and by <= 0.35 (8 + 4 x^2) 2^-52 for x < 0 (the argument's rounding is
    amplified by |x|), so it is moved by 4 * 2^-52 and (8 + 4 x^2) 2^-52 respectively (a factor
    >= 2.9); values below 1e-300 (subnormal) become 0."""

    method = "closed-form"
    #: relative rounding steps (units of 2^-52), see the class docstring
    RADIUS_STEP, ARG_STEP, CDF_STEP = 16 * _EPS, 4 * _EPS, 4 * _EPS

    def __init__(self, noise: Noise, norm: str):
        super().__init__(noise, norm)
        self.scale = noise.sigma / (math.sqrt(noise.dim) if norm == "linf" else 1.0)

    def _quantile(self, p, up: bool):
        """Phi^-1(p) rounded down (or up)."""
        q = special.ndtri(p)
        return _round_up(q, self.RADIUS_STEP) if up else _round_down(q, self.RADIUS_STEP)

    def _cdf_down(self, x):
        """A lower bound of Phi(x) (0 where it underflows)."""
        x = np.asarray(x, dtype=float)
        v = _round_down(special.ndtr(x), (8 + 4 * np.minimum(x, 0.0) ** 2) * _EPS)
        return np.where(v >= 1e-300, v, 0.0)

    def radius(self, p, *, exact: bool = False):
        """sigma Phi^-1(p) (/ sqrt(d) for l-inf), rounded down; exact already (``exact`` is
        accepted for the common signature and changes nothing)."""
        arr = check_probability(p)
        r = _round_down(self.scale * special.ndtri(arr), self.RADIUS_STEP)
        return _scalar_or_array(np.maximum(r, 0.0), p)

    def threshold(self, r):
        x = _round_up(check_radius(r) / self.scale, self.ARG_STEP)
        return _scalar_or_array(_round_up(special.ndtr(x), self.CDF_STEP), r)

    def value(self, p, r):
        p = float(check_probability(p))
        x = _round_up(float(check_radius(r)) / self.scale, self.ARG_STEP)
        y = np.nextafter(self._quantile(p, up=False) - x, -np.inf)  # the subtraction's rounding
        return float(self._cdf_down(y))

    def bilateral_radius(self, p_a, p_b):
        check_probability(p_a, "p_a")
        check_probability(p_b, "p_b")
        gap = np.nextafter(self._quantile(p_a, up=False) - self._quantile(p_b, up=True), -np.inf)
        r = _round_down(0.5 * self.scale * gap, self.ARG_STEP)
        return max(float(self.radius(p_a)), float(r))


def closed_form_certificate(noise: Noise, norm: str, **_options) -> GaussianCertificate:
    """The ``"closed-form"`` engine (no table, no options: the Monte Carlo ones are ignored)."""
    return GaussianCertificate(noise, norm)
