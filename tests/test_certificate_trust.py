"""Trust in certificate numbers: the Gaussian closed form rounded toward the safe side (checked
against 50-digit mpmath), and the on-disk certificate cache refusing doctored, foreign, partial
or inconsistent tables (digest, plausibility, spot-check against the exact engine, lock).

The mpmath references are independent of scipy: Phi^-1(p) = sqrt(2) erfinv(2p - 1) and
Phi(x) = ncdf(x) at 50 significant digits, evaluated at the exact float inputs.
"""

import functools
import math

import mpmath as mp
import numpy as np
import pytest

from smoothcert.certificates import GaussianCertificate, get_certificate
from smoothcert.noises import Gaussian, L2Family

mp.mp.dps = 50
EPS = 2.0**-52

# ============================================================================ Gaussian rounding


def _p_grid():
    """2,400+ p values in (1/2, 1): uniform, p - 1/2 down to one float step, 1 - p down to one
    float step, and the float neighbours of both ends."""
    rng = np.random.default_rng(2024)
    ps = np.concatenate([
        rng.uniform(0.5, 1.0, 800),
        0.5 + np.geomspace(1e-16, 0.4999, 700),
        1.0 - np.geomspace(1.2e-16, 0.4999, 700),
        0.5 + np.arange(1, 101) * 2.0**-53,
        1.0 - np.arange(1, 101) * 2.0**-53,
        [0.6, 0.8, 0.9, 0.95, 0.99, 0.999, 0.999999, 1 - 1e-15, 0.5 + 1e-15],
    ])
    return np.unique(ps[(ps > 0.5) & (ps < 1.0)])


@functools.cache
def _exact_quantiles():
    ps = _p_grid()
    return ps, [mp.sqrt(2) * mp.erfinv(2 * mp.mpf(float(p)) - 1) for p in ps]


# (sigma, d, norm): the l2 scale sigma and the Theorem 3 scale sigma / sqrt(d)
SCALES = [(0.25, 1, "l2"), (1 / 3, 5, "l2"), (0.12, 3072, "linf"), (0.5, 150528, "linf"),
          (math.pi, 7, "linf")]


def _exact_scale(sigma, d, norm):
    return mp.mpf(sigma) / (mp.sqrt(d) if norm == "linf" else 1)


@pytest.mark.parametrize("sigma,d,norm", SCALES)
def test_gaussian_radius_never_above_the_exact_value(sigma, d, norm):
    """The closed-form radius sigma Phi^-1(p) (/ sqrt(d) for l-inf) is never above its 50-digit
    value, over 2,400+ p including p - 1/2 and 1 - p of one float step, and within 24 * 2^-52
    relative of it (tight)."""
    ps, quantiles = _exact_quantiles()
    cert = get_certificate(Gaussian(d, sigma=sigma), norm)
    assert isinstance(cert, GaussianCertificate)
    got = cert.radius(ps)
    scale = _exact_scale(sigma, d, norm)
    exact = [scale * q for q in quantiles]
    gap = np.array([float((e - mp.mpf(float(g))) / e) for g, e in zip(got, exact, strict=True)])
    assert gap.min() >= 0, f"radius above the exact value at p = {ps[np.argmin(gap)]!r}"
    assert gap.max() <= 24 * EPS
    # scalars take the same path
    assert cert.radius(float(ps[7])) == got[7]


def test_gaussian_threshold_never_below_the_exact_value():
    """threshold(r) = Phi(r / scale) is an upper bound of its 50-digit value (the smallest p_A
    that certifies r), within 8 * 2^-52 relative, from r = 0 to where Phi rounds to 1."""
    rng = np.random.default_rng(7)
    for sigma, d, norm in SCALES[:3]:
        cert = get_certificate(Gaussian(d, sigma=sigma), norm)
        scale = _exact_scale(sigma, d, norm)
        rs = np.concatenate([[0.0], float(cert.scale) * np.concatenate(
            [np.geomspace(1e-17, 9.0, 400), rng.uniform(0, 4, 200)])])
        got = cert.threshold(rs)
        exact = [mp.ncdf(mp.mpf(float(r)) / scale) for r in rs]
        gap = np.array([float((mp.mpf(float(g)) - e) / e) for g, e in zip(got, exact, strict=True)])
        assert gap.min() >= 0, f"threshold below the exact value at r = {rs[np.argmin(gap)]!r}"
        assert gap.max() <= 8 * EPS


def test_gaussian_value_never_above_the_exact_value():
    """value(p, r) = Phi(Phi^-1(p) - r / scale), the lower bound of the smoothed score over the
    ball, is never above its 50-digit value (down to 1e-300), and tight: within the measured
    conditioning (Phi's relative sensitivity |y| times the argument's rounding)."""
    rng = np.random.default_rng(11)
    ps = np.concatenate([rng.uniform(0.5, 1.0, 300), 1 - np.geomspace(1.2e-16, 0.4, 150),
                         rng.uniform(0.01, 0.5, 100)])
    rs = rng.uniform(0.0, 3.0, ps.size) * rng.choice([0.01, 1.0, 5.0], ps.size)
    for sigma, d, norm in SCALES[1:3]:
        cert = get_certificate(Gaussian(d, sigma=sigma), norm)
        scale = _exact_scale(sigma, d, norm)
        for p, r in zip(ps, float(cert.scale) * rs, strict=True):
            got = cert.value(float(p), float(r))
            q = mp.sqrt(2) * mp.erfinv(2 * mp.mpf(float(p)) - 1)
            x = mp.mpf(float(r)) / scale
            exact = mp.ncdf(q - x)
            assert mp.mpf(got) <= exact, (p, r)
            if exact > 1e-290:
                y = abs(float(q - x))
                bound = (16 + 8 * y * y + 2 * max(y, 1.0) * (32 * abs(float(q)) + 8 * float(x)))
                assert float((exact - mp.mpf(got)) / exact) <= bound * EPS, (p, r)


def test_gaussian_bilateral_radius_never_above_the_exact_value():
    """The bilateral radius max(scale Phi^-1(pA), scale (Phi^-1(pA) - Phi^-1(pB)) / 2) of
    appendix D is never above its 50-digit value, and within 64 * 2^-52 of the quantiles."""
    rng = np.random.default_rng(5)
    cert = get_certificate(Gaussian(3072, sigma=0.12), "linf")
    scale = _exact_scale(0.12, 3072, "linf")
    p_a = np.concatenate([rng.uniform(0.5, 1.0, 300), 1 - np.geomspace(1.2e-16, 0.4, 100)])
    p_b = rng.uniform(1e-12, 1.0, p_a.size) * (1 - p_a)
    for a, b in zip(p_a, p_b, strict=True):
        got = cert.bilateral_radius(float(a), float(b))
        qa = mp.sqrt(2) * mp.erfinv(2 * mp.mpf(float(a)) - 1)
        qb = mp.sqrt(2) * mp.erfinv(2 * mp.mpf(float(b)) - 1)
        exact = max(scale * qa, scale * (qa - qb) / 2, mp.mpf(0))
        assert mp.mpf(got) <= exact, (a, b)
        assert float(exact - mp.mpf(got)) <= 64 * EPS * float(scale * (abs(qa) + abs(qb)))


def test_gaussian_rounding_keeps_the_l2_family_k0_identical():
    """k = 0 of the l2 family is the same rounded closed form as the Gaussian (one code path)."""
    ps = _p_grid()[::10]
    a = get_certificate(Gaussian(10, sigma=0.5), "linf").radius(ps)
    b = get_certificate(L2Family(10, sigma=0.5, k=0), "linf").radius(ps)
    np.testing.assert_array_equal(a, b)
