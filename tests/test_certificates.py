"""Certificates: closed forms, the exact l2-family quadrature, Monte Carlo tables and the cache.

Reference values are computed independently of the code under test: Phi for the Gaussian,
numpy Monte Carlo of the (radius, cosine) reduction with the log ratio written out from eq. (8),
a deterministic integration of the same reduction (trapezoid in log rho, bisection for the root
of the log ratio, scipy's Beta CDF), brentq roots of the threshold, and an independent exact
sampler for the mixed l-infinity noise (conftest).

Statistical checks use fixed seeds. Their tolerances are set so that a fresh seed would fail
with probability about 1e-4 or less:

* estimates vs exact values: 5 Monte Carlo standard errors (two-sided 6e-7 each);
* coverage over S seeds of a bound with failure probability beta: the number of seeds where the
  bound is violated must stay <= binom.isf(1e-4, S, beta). Each coverage test also shows that it
  has power: the same statistic without the confidence margin exceeds that limit.
"""

import json
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

import smoothcert.certificates as certs
from smoothcert.certificates import (
    GaussianCertificate,
    TableCertificate,
    cache,
    get_certificate,
)
from smoothcert.certificates.exact_l2 import L2FamilyQuadrature
from smoothcert.certificates.montecarlo import (
    distance_estimate,
    dkw_epsilon,
    dkw_threshold,
    log_ratio_samples,
)
from smoothcert.errors import SmoothCertError
from smoothcert.noises import Gaussian, L2Family, LinfMixed, LinfPure

FALSE_ALARM = 1e-4


# ------------------------------------------------------------ the paper's Algorithms 1 and 2
# Not used by the library (its Monte Carlo tables use the DKW band, tighter and uniform in p);
# kept here as the paper's bounds (Theorem 7), whose coverage the tests below check.
def dkw_value(ell: np.ndarray, p: float, beta: float) -> float:
    """Lower bound of V(p, r) valid (with probability >= 1 - beta) simultaneously for all p."""
    n = ell.size
    eps = dkw_epsilon(n, beta)
    i = math.ceil(n * (p - eps))
    if i < 1:
        return 0.0
    c = np.partition(ell, i - 1)[i - 1]
    return max(0.0, 1.0 - eps - np.count_nonzero(ell <= -c) / n)


def hoeffding_value(ell: np.ndarray, p: float, lam: float, beta: float) -> float:
    """Theorem 7: lambda p - D_hat(lambda) - lambda sqrt(log(1/beta)/(2N)), a lower bound of
    V(p, r) with probability >= 1 - beta (one-sided)."""
    eps = lam * math.sqrt(math.log(1.0 / beta) / (2.0 * ell.size))
    return lam * p - distance_estimate(ell, lam) - eps


@dataclass
class AlgorithmResult:
    certified: bool
    bound: float  #: the rigorous lower bound b of the smoothed score at the radius
    lam: float  #: the lambda used for the bound
    failure_prob: float  #: probability that ``bound`` is not a lower bound (distance term only)


def algorithm1(ell: np.ndarray, p: float, lambdas, beta: float) -> AlgorithmResult:
    """Algorithm 1: the best Hoeffding bound over a grid of lambdas, each at level beta/|grid|
    (union bound), on the same samples."""
    lambdas = np.asarray(lambdas, dtype=float)
    b = [hoeffding_value(ell, p, lam, beta / lambdas.size) for lam in lambdas]
    i = int(np.argmax(b))
    return AlgorithmResult(b[i] > 0.5, float(b[i]), float(lambdas[i]), beta)


def algorithm2(
    pilot: np.ndarray,
    fresh: np.ndarray,
    p: float,
    beta: float,
    lambdas=None,
    lambda_rule: str = "grid",
) -> AlgorithmResult:
    """Algorithm 2: choose lambda on ``pilot`` samples (grid search of the estimated bound, or
    the optimal quantile rule lambda = exp(c_p)), then bound with the independent ``fresh``
    samples at level beta."""
    if lambda_rule == "quantile":
        cp = np.quantile(pilot, min(max(p, 0.0), 1.0))
        lam = float(math.exp(min(cp, 700.0)))
    else:
        if lambdas is None:
            lambdas = np.exp(np.linspace(-8, 8, 321))
        est = [lam * p - distance_estimate(pilot, lam) for lam in lambdas]
        lam = float(np.asarray(lambdas)[int(np.argmax(est))])
    b = hoeffding_value(fresh, p, lam, beta)
    return AlgorithmResult(b > 0.5, float(b), lam, beta)


def dkw_eps(n, beta):
    """The DKW half-width with Massart's constant, written out (not the code under test)."""
    return math.sqrt(math.log(2 / beta) / (2 * n))


def coverage_limit(seeds, beta):
    """Largest number of violations out of ``seeds`` accepted for failure probability beta."""
    return int(stats.binom.isf(FALSE_ALARM, seeds, beta))


def gaussian_value(p, r):
    """V(p, r) of N(0, I) against l2 radius r (Corollary 1)."""
    return stats.norm.cdf(stats.norm.ppf(p) - r)


def gaussian_distance(lam, r):
    """D(lambda) = E_pi0 (lambda - pi_delta/pi_0)_+ for N(0, I), |delta| = r: ell ~ N(-r^2/2, r^2)
    under pi_0 and N(r^2/2, r^2) under pi_delta."""
    c = math.log(lam)
    return lam * stats.norm.cdf((c + r * r / 2) / r) - stats.norm.cdf((c - r * r / 2) / r)


def root_radius(engine, p, margin=0.0):
    """The exact radius: the root in r of engine.threshold(r) + margin = p (sigma = 1)."""

    def f(r):
        return float(engine.threshold(np.array([r]))[0]) + margin - p

    hi = 0.5
    while f(hi) < 0:
        hi *= 2
    return optimize.brentq(f, 1e-12, hi, xtol=1e-15, rtol=1e-14)


# ----------------------------------------------------------------------------- fixtures
L2_CASES = [(10, 5.0, 0.37), (1000, 900.0, 1.0)]


@pytest.fixture(scope="module")
def quadrature_tables(tmp_path_factory):
    """Quadrature certificates (l2 and linf: one build) by (d, k, sigma), built once per module
    in a private cache."""
    built = {}

    def get(d, k, sigma):
        if (d, k, sigma) not in built:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("SMOOTHCERT_CACHE", str(tmp_path_factory.mktemp("quadrature")))
                noise = L2Family(d, sigma=sigma, k=k)
                built[d, k, sigma] = (
                    noise,
                    get_certificate(noise, "l2"),
                    get_certificate(noise, "linf"),
                    L2FamilyQuadrature(d, k),
                )
        return built[d, k, sigma]

    return get


@pytest.fixture(scope="module", params=L2_CASES, ids=lambda c: f"d{c[0]}-k{c[1]:g}")
def l2_tables(request, quadrature_tables):
    return quadrature_tables(*request.param)


# ============================================================================ closed forms
P_GRID = np.array([1e-6, 0.1, 0.5, 0.5000001, 0.6, 0.9, 0.99, 0.999999])


@pytest.mark.parametrize("d", [1, 2, 10, 3072])
@pytest.mark.parametrize("sigma", [0.25, 1.7])
@pytest.mark.parametrize("family", ["gaussian", "l2-family"])
def test_k0_is_cohen_closed_form(d, sigma, family):
    """k = 0: R = sigma Phi^-1(p) for l2 and sigma Phi^-1(p) / sqrt(d) for l-inf (Theorem 3)."""
    noise = Gaussian(d, sigma=sigma) if family == "gaussian" else L2Family(d, sigma=sigma, k=0)
    for norm, scale in (("l2", sigma), ("linf", sigma / math.sqrt(d))):
        cert = get_certificate(noise, norm)
        assert isinstance(cert, GaussianCertificate) and cert.failure_prob == 0
        want = np.maximum(scale * stats.norm.ppf(P_GRID), 0.0)
        np.testing.assert_allclose(cert.radius(P_GRID), want, rtol=1e-9, atol=1e-12)
        assert cert.radius(0.9) == pytest.approx(scale * stats.norm.ppf(0.9), rel=1e-9)
        r = np.array([0.0, 0.01, 0.3, 2.0]) * scale
        np.testing.assert_allclose(cert.threshold(r), stats.norm.cdf(r / scale), rtol=1e-12)
        assert cert.value(0.8, 0.3 * scale) == pytest.approx(gaussian_value(0.8, 0.3), rel=1e-12)
        assert cert.certifies(0.9, 0.99 * cert.radius(0.9))
        assert not cert.certifies(0.9, 1.01 * cert.radius(0.9))
        # appendix D: R = sigma / 2 (Phi^-1(pA) - Phi^-1(pB)), never below the binary radius
        assert cert.bilateral_radius(0.7, 0.1) == pytest.approx(
            0.5 * scale * (stats.norm.ppf(0.7) - stats.norm.ppf(0.1)), rel=1e-12
        )
        assert cert.bilateral_radius(0.7, 0.35) == pytest.approx(cert.radius(0.7), rel=1e-12)


R_GRID = np.array([1e-3, 0.01, 0.1, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0])


@pytest.mark.parametrize("d", [10, 3072, 150528])
def test_quadrature_k0_is_phi(d):
    q = L2FamilyQuadrature(d, 0)
    np.testing.assert_allclose(q.threshold(R_GRID), stats.norm.cdf(R_GRID), rtol=0, atol=1e-9)
    np.testing.assert_allclose(q.median(R_GRID), -(R_GRID**2) / 2, rtol=1e-9, atol=1e-12)
    c = np.array([-2.0, -0.1, 0.0, 0.5])
    np.testing.assert_allclose(q.cdf(c, 0.8), stats.norm.cdf((c + 0.32) / 0.8), atol=1e-9)
    for p, r in ((0.6, 0.2), (0.9, 1.0), (0.999, 2.5)):
        assert q.value(p, r) == pytest.approx(gaussian_value(p, r), abs=1e-8)


@pytest.mark.parametrize("d", [2, 3])
def test_quadrature_k0_is_phi_to_1e9_in_low_dimension(d):
    """d = 2, 3 (the cosine law's sqrt / kink edges at u = +-1): p*(r) = Phi(r) to 1e-9, which
    needs the panels split at the kinks of the integrand (the fixed rule gave 2e-7 / 5e-9)."""
    q = L2FamilyQuadrature(d, 0)
    np.testing.assert_allclose(q.threshold(R_GRID), stats.norm.cdf(R_GRID), rtol=0, atol=1e-9)


@pytest.mark.parametrize("d,achieved", [(2, 1e-11), (3, 1e-13)])
def test_quadrature_k0_low_dimension_accuracy_and_margin(d, achieved):
    """What d = 2, 3 do achieve with the panels split at the kinks (2.7e-12 / 1e-16), and
    (d = 2, the worst case) that the table's numerical margin covers it: the stored thresholds
    (coarse rule + margin) never fall below p*(r) = Phi(r)."""
    q = L2FamilyQuadrature(d, 0)
    np.testing.assert_allclose(q.threshold(R_GRID), stats.norm.cdf(R_GRID), rtol=0, atol=achieved)
    if d != 2:
        return
    radii, thresholds, info = certs.quadrature.quadrature_table(d, 0.0, n_radii=32)
    assert info["numerical_margin"] > 0
    assert np.all(thresholds >= stats.norm.cdf(radii))
    assert np.all(thresholds - stats.norm.cdf(radii) <= 10 * info["numerical_margin"])


# ============================================================================ Theorem 3
def test_theorem3_linf_radius_is_l2_radius_over_sqrt_d(l2_tables):
    noise, l2, linf, _ = l2_tables
    d = noise.dim
    assert linf.method == l2.method == "quadrature"
    np.testing.assert_array_equal(linf.radii, l2.radii)  # one table
    np.testing.assert_array_equal(linf.thresholds, l2.thresholds)
    ps = np.array([0.51, 0.6, 0.8, 0.95, 0.999])
    # an independent route: the l2 certificate of the same family at sigma / sqrt(d) (scaled
    # through sigma, not through the l-inf unit)
    narrow = get_certificate(noise.with_sigma(noise.sigma / math.sqrt(d)), "l2")
    np.testing.assert_allclose(linf.radius(ps), narrow.radius(ps), rtol=1e-12)
    assert linf.radius(0.8, exact=True) == pytest.approx(narrow.radius(0.8, exact=True), rel=1e-9)
    r = np.array([0.01, 0.1, 0.5]) * noise.sigma
    np.testing.assert_array_equal(linf.threshold(r / math.sqrt(d)), l2.threshold(r))
    assert linf.value(0.9, 0.05 / math.sqrt(d)) == pytest.approx(l2.value(0.9, 0.05), rel=1e-9)


# ============================================================ exact l2 family vs Monte Carlo
@pytest.mark.parametrize(
    "d,k,r", [(3, 1.0, 0.5), (3, 2.5, 1.0), (10, 5.0, 0.7), (10, 9.0, 0.3), (1000, 900.0, 0.3)]
)
def test_quadrature_agrees_with_independent_monte_carlo(d, k, r):
    """G_r, the median, p*(r) = G_r(-median) and V(p, r) against numpy Monte Carlo of
    rho^2 ~ chi^2_{d-k}, (1 + u)/2 ~ Beta((d-1)/2, (d-1)/2) with ell written out from eq. (8):
    ell(z) = log pi_0(z - delta) - log pi_0(z), ||z - delta||^2 = rho^2 - 2 r rho u + r^2."""
    n = 400_000
    rng = np.random.default_rng(int(10 * d + k + 100 * r))
    rho2 = rng.chisquare(d - k, n)
    rho = np.sqrt(rho2)
    u = 2 * rng.beta((d - 1) / 2, (d - 1) / 2, n) - 1
    near = rho2 - 2 * r * rho * u + r * r  # ||z - delta||^2
    ell = -(k / 2) * np.log(near / rho2) - (near - rho2) / 2
    far = rho2 + 2 * r * rho * u + r * r  # ||x||^2 for x = z + delta ~ pi_delta
    ell_delta = -(k / 2) * np.log(rho2 / far) - (rho2 - far) / 2  # ell at x
    q = L2FamilyQuadrature(d, k)
    srt = np.sort(ell)

    def emp(c):
        return np.searchsorted(srt, c, side="right") / n

    def quant(a):
        return srt[min(n - 1, max(0, int(math.floor(a * n))))]

    cs = np.quantile(ell, [0.02, 0.3, 0.5, 0.7, 0.98])
    g = q.cdf(cs, r)
    assert np.all(np.abs(emp(cs) - g) <= 5 * np.sqrt(g * (1 - g) / n) + 1e-9)
    median = np.median(ell)
    assert abs(float(q.cdf(median, r)) - 0.5) <= 5 * 0.5 / math.sqrt(n)
    p_star = float(q.threshold(np.array([r]))[0])
    p_hat = emp(-median)
    spread = 5 * 0.5 / math.sqrt(n)  # median rank uncertainty, propagated through G_r
    g_lo, g_hi = q.cdf(-np.array([quant(0.5 + spread), quant(0.5 - spread)]), r)
    tol = 5 * math.sqrt(p_star * (1 - p_star) / n) + (g_hi - g_lo)
    assert abs(p_hat - p_star) <= tol
    for p in (0.6, 0.9):
        se = math.sqrt(p * (1 - p) / n)
        v_lo, v_hi = (np.mean(ell_delta <= quant(a)) for a in (p - 5 * se, p + 5 * se))
        v = q.value(p, r)
        sv = 5 * math.sqrt(v * (1 - v) / n)
        assert v_lo - sv <= v <= v_hi + sv


def _h_inverse(y, rho2, k, iters=90):
    """D with (k/2) log(1 + D/rho^2) + D/2 = y (increasing in D), by bisection in
    s = log(1 + D/rho^2): for y >= 0 the root is in [0, log1p(2y/rho^2)], else in [2y/k, 0]."""
    if k == 0:
        return 2 * y + 0 * rho2
    y = np.broadcast_to(y, rho2.shape)
    lo = np.where(y >= 0, 0.0, 2 * y / k)
    hi = np.where(y >= 0, np.log1p(2 * np.maximum(y, 0) / rho2), 0.0)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        above = k * mid / 2 + rho2 * np.expm1(mid) / 2 >= y
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    return rho2 * np.expm1(0.5 * (lo + hi))


def reference_cdf(d, k, r, c, under="pi0", n=20001):
    """P(ell <= c) for the l2 family (sigma = 1) under pi_0 or pi_delta, deterministic and
    independent of exact_l2: trapezoid rule in t = log rho (exponentially accurate for smooth
    integrands) against the chi_{d-k} density, the cosine law (1+u)/2 ~ Beta((d-1)/2, (d-1)/2)
    from scipy.stats, and the root of ell = c in D by bisection. With
    h(D) = (k/2) log(1 + D/rho^2) + D/2: under pi_0, ell(z) = -h(r^2 - 2 r rho u); under pi_delta
    (x = z + delta), ell(x) = h(r^2 + 2 r rho u) (no symmetry argument used)."""
    dof = d - k
    t0 = 0.5 * math.log(dof)
    t = np.linspace(t0 - 70 / dof - 2, t0 + 4, n)
    log_w = dof * t - np.exp(2 * t) / 2
    w = np.exp(log_w - log_w.max())
    rho = np.exp(t)
    if under == "pi0":
        u = (r * r - _h_inverse(-c, rho * rho, k)) / (2 * r * rho)
    else:
        u = (_h_inverse(c, rho * rho, k) - r * r) / (2 * r * rho)
    prob = stats.beta.cdf(np.clip((1 + u) / 2, 0, 1), (d - 1) / 2, (d - 1) / 2)
    return np.trapezoid(w * prob, t) / np.trapezoid(w, t)


@pytest.mark.parametrize(
    "d,k,r,tol",
    [
        (10, 5.0, 0.3, 5e-9),
        (10, 5.0, 1.5, 5e-9),
        (10, 9.5, 1.5, 5e-9),
        (4, 1.0, 0.3, 5e-9),
        (3, 1.0, 1.5, 1e-7),
    ],
)
def test_quadrature_against_independent_deterministic_integration(d, k, r, tol):
    """G_r(c), the median, p*(r) and V(p, r) to ~1e-9 (d = 3: the cosine law has a kink at
    u = +-1; the engine is then accurate to ~5e-8, the reference, refined, to ~1e-9)."""
    n = 80_001 if d == 3 else 20_001

    def ref(c, under="pi0"):
        return reference_cdf(d, k, r, c, under, n)

    q = L2FamilyQuadrature(d, k)
    median = float(q.median(np.array([r]))[0])
    for c in median + np.array([-2.0, -0.5, 0.5, 2.0]) * r:
        assert float(q.cdf(c, r)) == pytest.approx(ref(c), abs=tol)
    assert ref(median) == pytest.approx(0.5, abs=tol)
    p_star = float(q.threshold(np.array([r]))[0])
    assert ref(-median) == pytest.approx(p_star, abs=tol)
    p = 0.9
    c_p = optimize.brentq(
        lambda c: float(q.cdf(c, r)) - p, median, median + 30 * r + 30, xtol=1e-14
    )
    assert ref(c_p) == pytest.approx(p, abs=tol)
    assert q.value(p, r) == pytest.approx(ref(c_p, under="delta"), abs=3 * tol)


def test_low_dimension_quadrature_table_is_sound():
    """d = 3, k = 1 (the cosine law's kink makes the quadrature least accurate, ~5e-8): the
    stored thresholds (coarse rule + numerical margin) are >= p*(r) of the reference
    integration. p*(r) = G(-q) with G(q) = 1/2 is taken at the engine's median m and corrected
    to first order: G(-q) ~ G(-m) - g(-m)/g(m) (G(m) - 1/2)."""
    d, k, n = 3, 1.0, 80_001
    radii, thresholds, info = certs.quadrature.quadrature_table(d, k, n_radii=16)
    q = L2FamilyQuadrature(d, k)
    idx = np.array([1, 3, 6, 10])
    for r, m, t in zip(radii[idx], q.median(radii[idx]), thresholds[idx], strict=True):

        def ref(c, r=r):
            return reference_cdf(d, k, r, c, n=n)

        h = 1e-4
        ratio = (ref(-m + h) - ref(-m - h)) / (ref(m + h) - ref(m - h))
        p_star = ref(-m) - ratio * (ref(m) - 0.5)
        assert t >= p_star - 5e-9
        assert t <= p_star + 2 * info["numerical_margin"] + 5e-9


# ============================================================== table soundness and tightness
P_CHECK = [0.52, 0.6, 0.75, 0.9, 0.99, 0.999]


def test_table_radius_is_sound_and_tight(l2_tables):
    """radius(p) <= the exact radius (brentq root of the fine threshold) and not below the grid
    point under it; radius(p, exact=True) is the root with the table's numerical margin (to 1e-6
    relative), hence never above the exact radius by more than 1e-6 relative."""
    noise, l2, linf, q = l2_tables
    margin = l2.info["numerical_margin"]
    exact_margin = l2.info["exact_margin"]
    spacing = np.max(np.diff(l2.radii))
    for p in P_CHECK:
        exact = noise.sigma * root_radius(q, p)
        with_margin = noise.sigma * root_radius(q, p, exact_margin)
        table = l2.radius(p)
        assert table <= exact * (1 + 1e-12)
        # the coarse table + margin is within 1.1 margins of the fine threshold
        assert table >= noise.sigma * (root_radius(q, p, 2 * margin) - spacing * (1 + 1e-9))
        refined = l2.radius(p, exact=True)
        assert table <= refined <= exact
        assert refined == pytest.approx(with_margin, rel=1e-6)
        # Theorem 3 from the exact root (not from the l2 certificate's own radius)
        linf_refined = linf.radius(p, exact=True)
        assert linf_refined <= with_margin / math.sqrt(noise.dim)
        assert linf_refined == pytest.approx(with_margin / math.sqrt(noise.dim), rel=1e-6)


def test_refined_radius_within_1e6_of_exact_d10(quadrature_tables):
    noise, cert, _, q = quadrature_tables(*L2_CASES[0])
    for p in (0.55, 0.999):
        assert cert.radius(p, exact=True) == pytest.approx(
            noise.sigma * root_radius(q, p), rel=1e-6
        )


@settings(max_examples=60, deadline=None)
@given(p1=st.floats(1e-4, 1 - 1e-6), p2=st.floats(1e-4, 1 - 1e-6))
def test_table_radius_is_monotone_in_p(l2_tables, p1, p2):
    _, l2, linf, _ = l2_tables
    lo, hi = min(p1, p2), max(p1, p2)
    assert l2.radius(lo) <= l2.radius(hi)
    assert linf.radius(lo) <= linf.radius(hi)
    assert l2.radius(np.array([lo, hi])).tolist() == [l2.radius(lo), l2.radius(hi)]


@settings(max_examples=10, deadline=None)
@given(p1=st.floats(0.501, 0.9999), p2=st.floats(0.501, 0.9999))
def test_refined_radius_is_monotone_in_p(l2_tables, p1, p2):
    _, l2, _, _ = l2_tables
    lo, hi = min(p1, p2), max(p1, p2)
    assert l2.radius(lo, exact=True) <= l2.radius(hi, exact=True) * (1 + 1e-9)


@settings(max_examples=150, deadline=None)
@given(p=st.floats(1e-3, 1 - 1e-6), frac=st.floats(0.0, 2.0))
def test_certifies_is_consistent_with_radius(l2_tables, p, frac):
    """For r > 0: certifies(p, r) <=> r <= radius(p) (same table), including r = radius(p)."""
    _, l2, linf, _ = l2_tables
    for cert in (l2, linf):
        rad = cert.radius(p)
        if rad > 0:
            assert cert.certifies(p, rad)
            assert cert.threshold(rad) < p
        r = frac * (rad if rad > 0 else cert.radius(0.999))
        if r <= 0:
            continue
        if r <= rad:
            assert cert.certifies(p, r)
        elif r > rad * (1 + 1e-12):
            assert not cert.certifies(p, r)


def test_certifies_at_the_radius_for_many_scales():
    """radius(p) * (1/scale) must map back onto its grid radius for any sigma (rounding)."""
    radii = np.linspace(0, 3, 301)
    thresholds = 0.5 + 0.49 * np.tanh(radii)
    for sigma in (0.37, 0.1, 1.3, 2.9):
        for norm, unit in (("l2", 1.0), ("linf", 1 / math.sqrt(10))):
            cert = TableCertificate(
                L2Family(10, sigma=sigma, k=5), norm, radii, thresholds, "test", 0.0, unit
            )
            ps = np.linspace(0.501, 0.985, 997)
            rs = cert.radius(ps)
            assert all(cert.certifies(p, r) for p, r in zip(ps, rs, strict=True) if r > 0)
            # the lookup written out: the largest grid radius whose threshold is below p,
            # scaled, and at most rounded one float step down
            want = np.array([radii[thresholds < p].max() for p in ps]) * (sigma * unit)
            assert np.all(rs <= want)
            assert np.all(rs >= np.nextafter(want, 0.0))


# ============================================================ Monte Carlo: coverage, tightness
def _exact_l2_family_threshold(engine, cache_):
    def threshold(radii):
        missing = [r for r in radii if r not in cache_]
        if missing:
            cache_.update(zip(missing, engine.threshold(np.array(missing)), strict=True))
        return np.array([cache_[r] for r in radii])

    return threshold


@pytest.mark.parametrize("family", ["gaussian", "l2-family"])
def test_monte_carlo_table_coverage(family):
    """DKW tables from 5_000 samples, failure_prob = 0.1, 60 seeds: the table is unsound (some
    threshold below the exact p*, equivalently some MC radius above the exact radius) in at most
    a binomial(60, 0.1)-consistent number of seeds."""
    seeds, samples, beta, n_radii = 60, 5_000, 0.1, 6
    if family == "gaussian":
        noise = Gaussian(8, sigma=1.0)
        exact_threshold = stats.norm.cdf
        exact_radius = stats.norm.ppf
    else:
        noise = L2Family(10, sigma=1.0, k=5.0)
        engine = L2FamilyQuadrature(10, 5.0)
        exact_threshold = _exact_l2_family_threshold(engine, {})

        def exact_radius(ps):
            return np.array([root_radius(engine, p) for p in ps])

    ps = np.array([0.6, 0.8, 0.95, 0.99])
    r_exact = exact_radius(ps)
    eps = dkw_eps(samples, beta / n_radii)
    unsound = radius_above = unsound_without_eps = 0
    for seed in range(seeds):
        radii, thr, info = certs.montecarlo.monte_carlo_table(
            noise, "l2", samples, beta, seed, n_radii
        )
        assert info["samples"] == samples and radii[0] == 0 and thr[0] == 0.5
        truth = exact_threshold(radii[1:])
        unsound += bool(np.any(thr[1:] < truth))
        unsound_without_eps += bool(np.any(thr[1:] - eps < truth))
        table = TableCertificate(noise, "l2", radii, thr, "monte-carlo", beta)
        radius_above += bool(np.any(table.radius(ps) > r_exact))
    limit = coverage_limit(seeds, beta)
    assert unsound <= limit and radius_above <= limit
    assert unsound_without_eps > limit  # the check has power


def test_dkw_threshold_and_value_coverage():
    """dkw_threshold >= p*(r) and dkw_value <= V(p, r) except with probability beta (Gaussian:
    ell = r z_1 - r^2/2, drawn with numpy)."""
    seeds, n, beta, r, p = 400, 2_000, 0.1, 0.5, 0.8
    rng = np.random.default_rng(5)
    p_star, v = stats.norm.cdf(r), gaussian_value(p, r)
    bad_t = bad_v = bad_t_plain = bad_v_plain = 0
    for _ in range(seeds):
        ell = r * rng.standard_normal(n) - r * r / 2
        bad_t += dkw_threshold(ell, beta) < p_star
        bad_v += dkw_value(ell, p, beta) > v
        # the plug-in estimates without the DKW band (what the band protects against)
        bad_t_plain += np.mean(ell <= -np.median(ell)) < p_star
        bad_v_plain += 1 - np.mean(ell <= -np.quantile(ell, p)) > v
    limit = coverage_limit(seeds, beta)
    assert bad_t <= limit and bad_v <= limit
    assert bad_t_plain > limit and bad_v_plain > limit
    assert dkw_threshold(np.zeros(2), 0.5) == math.inf  # too few samples: certifies nothing
    assert not dkw_threshold(np.zeros(10), 0.5) < 1


def test_hoeffding_bound_coverage_gaussian():
    """Theorem 7 at the optimal lambda = exp(c_p): lambda p - D_hat - eps <= V except with
    probability beta; D_hat is unbiased for the exact D(lambda)."""
    seeds, n, beta, r, p = 400, 2_000, 0.1, 0.5, 0.8
    lam = math.exp(r * stats.norm.ppf(p) - r * r / 2)
    v = gaussian_value(p, r)
    assert lam * p - gaussian_distance(lam, r) == pytest.approx(v, rel=1e-12)  # duality gap 0
    rng = np.random.default_rng(6)
    bad = bad_plain = 0
    d_hats = []
    for _ in range(seeds):
        ell = r * rng.standard_normal(n) - r * r / 2
        b = hoeffding_value(ell, p, lam, beta)
        bad += b > v
        d_hat = distance_estimate(ell, lam)
        d_hats.append(d_hat)
        bad_plain += lam * p - d_hat > v
        assert b == pytest.approx(lam * p - d_hat - lam * math.sqrt(math.log(1 / beta) / (2 * n)))
    limit = coverage_limit(seeds, beta)
    assert bad <= limit and bad_plain > limit
    d_hats = np.array(d_hats)
    assert abs(d_hats.mean() - gaussian_distance(lam, r)) < 5 * d_hats.std() / math.sqrt(seeds)


def test_hoeffding_bound_coverage_against_exact_l2_family_value(l2_tables):
    """The same for the l2 family, ell from the package's reduced sampler, against V(p, r) from
    the quadrature ``value``."""
    noise, l2, _, q = l2_tables
    unit = noise.with_sigma(1.0)
    seeds, n, beta, p = 150, 2_000, 0.1, 0.8
    r = 0.3
    v = q.value(p, r)
    c_p = optimize.brentq(lambda c: float(q.cdf(c, r)) - p, -20, 20, xtol=1e-13)
    lam = math.exp(c_p)
    assert l2.value(p, r * noise.sigma) == pytest.approx(v, abs=2 * l2.info["numerical_margin"])
    g = torch.Generator().manual_seed(7)
    bad = bad_plain = 0
    for _ in range(seeds):
        ell = log_ratio_samples(unit, [r], "l2", n, g)[0]
        b = hoeffding_value(ell, p, lam, beta)
        bad += b > v
        bad_plain += b + lam * math.sqrt(math.log(1 / beta) / (2 * n)) > v
    limit = coverage_limit(seeds, beta)
    assert bad <= limit and bad_plain > limit


def test_algorithms_1_and_2_coverage():
    """Algorithm 1 (grid, union bound) and Algorithm 2 (lambda from pilot samples, bound on
    fresh ones; grid or quantile rule) never exceed the exact V beyond their failure rate, and
    are not vacuous."""
    seeds, n, beta, r, p = 200, 2_000, 0.1, 0.5, 0.8
    v = gaussian_value(p, r)
    lambdas = np.exp(np.linspace(-2, 3, 11))
    rng = np.random.default_rng(8)
    bad = {"alg1": 0, "alg2-grid": 0, "alg2-quantile": 0}
    bounds = {key: [] for key in bad}
    bad_plain = 0
    for _ in range(seeds):
        ell, pilot, fresh = (r * rng.standard_normal(n) - r * r / 2 for _ in range(3))
        results = {
            "alg1": algorithm1(ell, p, lambdas, beta),
            "alg2-grid": algorithm2(pilot, fresh, p, beta),
            "alg2-quantile": algorithm2(pilot, fresh, p, beta, lambda_rule="quantile"),
        }
        for key, res in results.items():
            assert res.certified == (res.bound > 0.5) and res.failure_prob == beta
            bad[key] += res.bound > v
            bounds[key].append(res.bound)
        quantile = results["alg2-quantile"]
        hoeffding = quantile.lam * math.sqrt(math.log(1 / beta) / (2 * n))
        bad_plain += quantile.bound + hoeffding > v
    limit = coverage_limit(seeds, beta)
    assert all(count <= limit for count in bad.values()), bad
    assert bad_plain > limit  # without the Hoeffding term the bound is violated often
    assert all(np.median(b) > v - 0.1 for b in bounds.values())


def test_monte_carlo_radius_is_not_too_loose():
    """200_000 samples, 256 radii, failure_prob 1e-3: the DKW table radius is below the exact
    radius by no more than the DKW band, the median-rank shift and the grid explain. With
    eps = dkw_eps(n, beta / 256) and Q_r the exact quantile function of ell, the table
    threshold is (5 standard errors) at most T(r) = G_r(-Q_r(1/2 - eps - 2.5/sqrt n)) + eps
    + 5 se, so radius(p) >= root of T(r) = p, less one grid step. In numbers: within 7% at
    p = 0.9 (the additive band costs more in the tails: ~9% at p = 0.99)."""
    n, beta, n_radii = 200_000, 1e-3, 256
    noise = L2Family(10, sigma=0.5, k=5.0)
    q = L2FamilyQuadrature(10, 5.0)
    radii, thr, _ = certs.montecarlo.monte_carlo_table(noise, "l2", n, beta, 0, n_radii)
    cert = TableCertificate(noise, "l2", radii, thr, "monte-carlo", beta)
    eps = dkw_eps(n, beta / n_radii)
    spacing = radii[2] - radii[1]

    def quantile(a, r):
        lo, hi = -1.0, 1.0
        while float(q.cdf(lo, r)) > a:
            lo *= 2
        while float(q.cdf(hi, r)) < a:
            hi *= 2
        return optimize.brentq(lambda c: float(q.cdf(c, r)) - a, lo, hi, xtol=1e-12)

    def loose_threshold(r):
        t = float(q.cdf(-quantile(0.5 - eps - 2.5 / math.sqrt(n), r), r))
        return t + eps + 5 * math.sqrt(t * (1 - t) / n)

    for p in (0.9, 0.99):
        exact = root_radius(q, p)
        predicted = optimize.brentq(lambda r, p=p: loose_threshold(r) - p, 1e-6, exact, xtol=1e-10)
        got = cert.radius(p) / noise.sigma
        assert predicted - spacing <= got <= exact
    assert cert.radius(0.9) >= 0.93 * noise.sigma * root_radius(q, 0.9)


# ================================================= mixed l-infinity table vs brute force (d <= 3)
def _brute_force_threshold(sample, r, k, sigma):
    """p*(r) from exact samples z ~ pi_0 of eq. (9), written out independently: c* is the median
    of ell under pi_delta (ell evaluated at x = z + delta), p* = P_pi0(ell <= c*), whose
    V(p*, r) = 1/2 by Neyman-Pearson. Returns (p*, its standard error)."""

    def log_p(z):
        return -k * np.log(np.max(np.abs(z), axis=1)) - np.sum(z * z, axis=1) / (2 * sigma**2)

    delta = np.full(sample.shape[1], r)
    ell0 = log_p(sample - delta) - log_p(sample)
    ell_delta = log_p(sample) - log_p(sample + delta)
    c_star = np.median(ell_delta)
    p_star = float(np.mean(ell0 <= c_star))
    return p_star, math.sqrt(p_star * (1 - p_star) / sample.shape[0])


@pytest.mark.parametrize("d,k,sigma", [(2, 1.0, 0.5), (3, 2.0, 1.0)])
def test_mixed_linf_dkw_table_against_brute_force(d, k, sigma, mixed_linf_reference_sampler):
    samples, beta, n_radii = 100_000, 1e-3, 8
    cert = get_certificate(
        LinfMixed(d, sigma=sigma, k=k),
        "linf",
        samples=samples,
        failure_prob=beta,
        n_radii=n_radii,
        seed=3,
    )
    assert cert.method == "monte-carlo" and cert.failure_prob == beta
    eps = dkw_eps(samples, beta / n_radii)
    ref = mixed_linf_reference_sampler(np.random.default_rng(d), 400_000, d, k, sigma)
    # the brute force itself: k = 0 is the Gaussian, p*(r) = Phi(sqrt(d) r / sigma)
    gauss = mixed_linf_reference_sampler(np.random.default_rng(d + 1), 400_000, d, 0.0, sigma)
    checked = 0
    for r_unit, t in zip(cert.radii[1:], cert.thresholds[1:], strict=True):
        r = r_unit * sigma
        g_star, g_se = _brute_force_threshold(gauss, r, 0.0, sigma)
        assert abs(g_star - stats.norm.cdf(math.sqrt(d) * r / sigma)) <= 5 * g_se + 1e-4
        p_star, se = _brute_force_threshold(ref, r, k, sigma)
        if p_star > 0.999:
            continue
        checked += 1
        assert t >= p_star - 5 * se  # sound
        assert t <= p_star + 3 * eps + 5 * se  # and not loose beyond the DKW band
        inside = r * (1 - 1e-12)  # r itself may round to the next grid radius in table units
        assert cert.threshold(inside) == t
        if t < 1 - 1e-6:
            assert cert.certifies(t + 1e-9, inside) and not cert.certifies(t, inside)
    assert checked >= 2


# ============================================================================ cache
def _only_file(path):
    files = sorted(path.glob("*.npz"))
    assert len(files) == 1, files
    return files[0]


def _cheap(**kw):
    params = dict(samples=2_000, failure_prob=0.01, n_radii=4, seed=0)
    params.update(kw)
    return params


def _explode(*args, **kwargs):
    raise AssertionError("the table was rebuilt instead of read from the cache")


def test_second_call_is_served_from_disk(tmp_path, monkeypatch):
    cache_dir = tmp_path / "c"
    monkeypatch.setenv("SMOOTHCERT_CACHE", str(cache_dir))
    noise = LinfPure(4, sigma=0.5, k=1.0)
    first = get_certificate(noise, "linf", **_cheap())
    path = _only_file(cache_dir)
    with np.load(path) as f:
        assert json.loads(str(f["params"]))["noise"] == "linf-pure"
    monkeypatch.setattr(certs.montecarlo, "monte_carlo_table", _explode)
    cache._MEMORY.clear()
    second = get_certificate(noise, "linf", **_cheap())  # from disk
    np.testing.assert_array_equal(first.radii, second.radii)
    np.testing.assert_array_equal(first.thresholds, second.thresholds)
    path.unlink()
    third = get_certificate(noise, "linf", **_cheap())  # from memory
    np.testing.assert_array_equal(first.thresholds, third.thresholds)
    # sigma is not part of the key: tables are at sigma = 1 and scaled
    other = get_certificate(noise.with_sigma(1.5), "linf", **_cheap())
    assert other.radius(0.9) == pytest.approx(3 * first.radius(0.9), rel=1e-12)


def test_quadrature_table_served_from_disk(tmp_path, monkeypatch):
    """One quadrature file per (d, k), shared by l2 and l-inf and by every sigma."""
    monkeypatch.setenv("SMOOTHCERT_CACHE", str(tmp_path / "c"))
    built = []

    def fake_table(d, k):  # the cache mechanics, not the numbers, are under test here
        built.append((d, k))
        # thresholds above the exact p*(0.5) = 0.77, p*(1) = 0.92: the load spot-checks them
        return np.array([0.0, 0.5, 1.0]), np.array([0.5, 0.9, 0.99]), {"numerical_margin": 0.0}

    monkeypatch.setattr(certs.quadrature, "quadrature_table", fake_table)
    noise = L2Family(6, sigma=1.0, k=2.5)
    first = get_certificate(noise, "l2")
    path = _only_file(tmp_path / "c")
    monkeypatch.setattr(certs.quadrature, "quadrature_table", _explode)
    cache._MEMORY.clear()
    second = get_certificate(noise, "l2")
    np.testing.assert_array_equal(first.thresholds, second.thresholds)
    assert second.info == first.info
    cache._MEMORY.clear()
    linf = get_certificate(noise.with_sigma(2.0), "linf")
    np.testing.assert_array_equal(linf.thresholds, first.thresholds)
    assert _only_file(tmp_path / "c") == path and built == [(6, 2.5)]


@pytest.mark.parametrize("corruption", ["garbage", "empty", "foreign", "unsorted"])
def test_corrupt_cache_file_is_rebuilt_with_a_warning(tmp_path, monkeypatch, corruption):
    cache_dir = tmp_path / "c"
    monkeypatch.setenv("SMOOTHCERT_CACHE", str(cache_dir))
    noise = LinfMixed(3, sigma=1.0, k=1.0)
    first = get_certificate(noise, "linf", **_cheap())
    path = _only_file(cache_dir)
    if corruption == "garbage":
        path.write_bytes(b"not an npz file")
    elif corruption == "empty":
        path.write_bytes(b"")
    else:
        with np.load(path) as f:
            content = {name: f[name] for name in f.files}
        if corruption == "foreign":  # a valid file of other parameters, with absurd thresholds
            params = json.loads(str(content["params"]))
            params["seed"] = 99
            content.update(
                params=json.dumps(params, sort_keys=True), thresholds=content["thresholds"] * 0
            )
        else:
            content["radii"] = content["radii"][::-1]
        np.savez(path, **content)
    cache._MEMORY.clear()
    builds = []
    real = certs.montecarlo.monte_carlo_table
    monkeypatch.setattr(
        certs.montecarlo, "monte_carlo_table", lambda *a, **kw: builds.append(1) or real(*a, **kw)
    )
    with pytest.warns(UserWarning, match="ignoring certificate cache file"):
        again = get_certificate(noise, "linf", **_cheap())
    assert builds == [1]
    np.testing.assert_array_equal(again.thresholds, first.thresholds)  # same seed: same table
    with np.load(_only_file(cache_dir)) as f:  # and the file is repaired
        np.testing.assert_array_equal(f["thresholds"], first.thresholds)
    cache._MEMORY.clear()
    monkeypatch.setattr(certs.montecarlo, "monte_carlo_table", _explode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_certificate(noise, "linf", **_cheap())


def test_different_parameters_give_different_files(tmp_path, monkeypatch):
    cache_dir = tmp_path / "c"
    monkeypatch.setenv("SMOOTHCERT_CACHE", str(cache_dir))
    base = LinfPure(4, sigma=1.0, k=1.0)
    variants = [
        (base, _cheap()),
        (base, _cheap(seed=1)),
        (base, _cheap(samples=2_001)),
        (base, _cheap(failure_prob=0.02)),
        (base, _cheap(n_radii=5)),
        (LinfPure(4, sigma=1.0, k=1.5), _cheap()),
        (LinfPure(5, sigma=1.0, k=1.0), _cheap()),
        (LinfMixed(4, sigma=1.0, k=1.0), _cheap()),
    ]
    for i, (noise, kw) in enumerate(variants, start=1):
        get_certificate(noise, "linf", **kw)
        assert len(list(cache_dir.glob("*.npz"))) == i
    get_certificate(base.with_sigma(0.3), "linf", **_cheap())  # same table as the first
    assert len(list(cache_dir.glob("*.npz"))) == len(variants)
    assert not list(cache_dir.glob("*.tmp*"))  # atomic writes leave no temporaries


def test_cache_false_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOOTHCERT_CACHE", str(tmp_path / "c"))
    get_certificate(LinfPure(4, sigma=1.0, k=1.0), "linf", cache=False, **_cheap())
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())
    assert not cache._MEMORY


# ============================================================================ bad inputs
BAD_P = [0.0, 1.0, -0.1, 1.1, math.nan, math.inf, -math.inf]


@pytest.fixture(scope="module")
def three_certificates(tmp_path_factory, quadrature_tables):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMOOTHCERT_CACHE", str(tmp_path_factory.mktemp("three")))
        return {
            "closed-form": get_certificate(Gaussian(5, sigma=0.5), "l2"),
            "monte-carlo": get_certificate(LinfPure(4, sigma=0.5, k=1.0), "linf", **_cheap()),
            "quadrature": quadrature_tables(*L2_CASES[0])[1],
        }


@pytest.fixture(params=["closed-form", "monte-carlo", "quadrature"])
def any_certificate(request, three_certificates):
    return three_certificates[request.param]


@pytest.mark.parametrize("p", BAD_P)
def test_bad_probability(any_certificate, p):
    with pytest.raises(SmoothCertError, match=r"p must lie strictly between 0 and 1"):
        any_certificate.radius(p)
    with pytest.raises(SmoothCertError, match=r"p must lie strictly between 0 and 1"):
        any_certificate.radius(np.array([0.7, p]))
    with pytest.raises(SmoothCertError, match=r"p must lie strictly between 0 and 1"):
        any_certificate.certifies(p, 0.1)
    with pytest.raises(SmoothCertError, match=r"p_a must lie"):
        any_certificate.bilateral_radius(p, 0.1)
    with pytest.raises(SmoothCertError, match=r"p_b must lie"):
        any_certificate.bilateral_radius(0.9, p)
    if any_certificate.method != "monte-carlo":
        with pytest.raises(SmoothCertError, match=r"p must lie strictly between 0 and 1"):
            any_certificate.value(p, 0.1)


@pytest.mark.parametrize("r", [-1.0, -1e-12, math.nan])
def test_bad_radius(any_certificate, r):
    with pytest.raises(SmoothCertError, match=r"radius must be"):
        any_certificate.certifies(0.9, r)
    with pytest.raises(SmoothCertError, match=r"radius must be"):
        any_certificate.threshold(r)
    with pytest.raises(SmoothCertError, match=r"radius must be"):
        any_certificate.threshold(np.array([0.1, r]))
    if any_certificate.method != "monte-carlo":
        with pytest.raises(SmoothCertError, match=r"radius must be"):
            any_certificate.value(0.9, r)


def test_infinite_radius_is_never_certified(any_certificate):
    with pytest.raises(SmoothCertError, match=r"radius must be a finite number"):
        any_certificate.certifies(0.9, math.inf)
    assert not any_certificate.threshold(math.inf) < 1


def test_monte_carlo_table_gives_no_values():
    cert = get_certificate(LinfPure(4, sigma=0.5, k=1.0), "linf", **_cheap())
    with pytest.raises(SmoothCertError, match=r"gives radii, not bound values"):
        cert.value(0.9, 0.1)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(samples=50), r"at least 100 samples"),
        (dict(failure_prob=0.0), r"failure_prob must lie in \(0, 1\)"),
        (dict(failure_prob=1.0), r"failure_prob must lie in \(0, 1\)"),
        (dict(n_radii=0), r"n_radii must be >= 1"),
    ],
)
def test_bad_monte_carlo_parameters(kwargs, pattern):
    with pytest.raises(SmoothCertError, match=pattern):
        get_certificate(LinfMixed(4, sigma=1.0, k=1.0), "linf", **kwargs)


def test_bad_noise_or_norm():
    with pytest.raises(SmoothCertError, match=r"noise must be a smoothcert Noise"):
        get_certificate("gaussian", "l2")
    with pytest.raises(SmoothCertError, match=r"no worst-case perturbation.*linf-mixed.*l2"):
        get_certificate(LinfMixed(4, sigma=1.0, k=1.0), "l2")
    with pytest.raises(SmoothCertError, match=r"no worst-case perturbation.*linf-pure.*l2"):
        get_certificate(LinfPure(4, sigma=1.0, k=1.0), "l2")
    with pytest.raises(SmoothCertError, match=r"norm must be one of l2, linf, got 'l1'"):
        get_certificate(Gaussian(4, sigma=1.0), "l1")
