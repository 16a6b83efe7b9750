"""Tests that kill mutants of the certificates (issue 11): each compares with a value computed
independently of the code under test, at a tolerance near the size of the effect it guards.

References: Phi (k = 0), a brute-force integration of the Neyman-Pearson set in d = 1 (roots of
ell on the real line by a grid scan + brentq, the density |z|^-k exp(-z^2/2) integrated between
them by scipy's tanh-sinh), and the DKW band written out from its formula.
"""

import math

import numpy as np
import pytest
import torch
from scipy import optimize, special, stats
from scipy.integrate import tanhsinh

import smoothcert.certificates as certs
from smoothcert.certificates import TableCertificate, get_certificate
from smoothcert.certificates.exact_l2 import L2FamilyLine, L2FamilyQuadrature
from smoothcert.noises import Gaussian, L2Family, LinfPure
from smoothcert.smooth import Smooth


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOOTHCERT_CACHE", str(tmp_path / "cache"))


# ============================================================ d = 1: brute-force reference
def _ell_line(z, r, k):
    """log(pi_0(z - r) / pi_0(z)) for the d = 1 density |z|^-k exp(-z^2/2), written out."""
    return -k * np.log(np.abs(z - r) / np.abs(z)) - ((z - r) ** 2 - z * z) / 2


def _line_cdf(c, r, k, under="pi0"):
    """P(ell <= c) for z ~ pi_0 (or P(ell(x) <= c) for x ~ pi_delta, x = z + r): the set
    {ell <= c} is split at the roots of ell = c (grid scan over the real line + brentq) and at
    the poles 0 and r; the density is integrated over each piece of the set by tanh-sinh."""
    shift = r if under == "delta" else 0.0  # x = z + shift has density p(x - shift)
    grid = np.concatenate(
        [
            -np.geomspace(1e-12, 60, 20001)[::-1],
            np.geomspace(1e-12, 60, 20001),
            r + np.geomspace(1e-13, 1, 4001),
            r - np.geomspace(1e-13, 1, 4001),
        ]
    )
    grid = np.unique(grid[(grid != 0) & (grid != r)])
    g = _ell_line(grid, r, k) - c
    cuts = [-80.0, 0.0, r, 80.0]  # the density beyond |z| = 80 is below 1e-1300
    for i in np.flatnonzero(np.sign(g[:-1]) != np.sign(g[1:])):
        a, b = grid[i], grid[i + 1]
        if a < 0 < b or a < r < b:
            continue  # a pole, not a root
        cuts.append(
            optimize.brentq(lambda z: _ell_line(z, r, k) - c, a, b, xtol=1e-300, rtol=1e-15)
        )
    cuts = np.unique(cuts)
    norm = 2 * 2 ** (-(k + 1) / 2) * math.gamma((1 - k) / 2)  # int |z|^-k exp(-z^2/2) dz

    def dens(z):
        y = z - shift
        return np.abs(y) ** (-k) * np.exp(-y * y / 2) / norm

    total = 0.0
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        mid = (a + b) / 2
        if _ell_line(mid, r, k) <= c:
            pieces = [(a, b)] if not (a < shift < b) else [(a, shift), (shift, b)]
            for lo, hi in pieces:
                res = tanhsinh(dens, lo, hi, atol=1e-17, rtol=1e-14)
                assert res.success
                total += float(res.integral)
    return total


def _line_root(f, lo=-40.0, hi=40.0):
    return optimize.brentq(f, lo, hi, xtol=1e-15, rtol=1e-15)


def _line_threshold(r, k):
    q = _line_root(lambda c: _line_cdf(c, r, k) - 0.5)
    return _line_cdf(-q, r, k)


def _line_value(p, r, k):
    """V(p, r) and the optimal log-lambda c_p (G_r(c_p) = p)."""
    c_p = _line_root(lambda c: _line_cdf(c, r, k) - p)
    return _line_cdf(c_p, r, k, under="delta"), c_p


@pytest.mark.parametrize("k,r", [(0.5, 0.3), (0.5, 1.5), (0.9, 0.8)])
def test_d1_engine_against_brute_force_neyman_pearson(k, r):
    """The d = 1 engine (L2FamilyLine, otherwise untested): G_r, p*(r) and V(p, r) equal a
    brute-force integration of the Neyman-Pearson set to 1e-12."""
    line = L2FamilyLine(k)
    for c in (-1.0, -0.2, 0.0, 0.4, 2.0):
        assert float(line.cdf(c, r)) == pytest.approx(_line_cdf(c, r, k), abs=1e-12)
    assert float(line.threshold(np.array([r]))[0]) == pytest.approx(
        _line_threshold(r, k), abs=1e-12
    )
    for p in (0.6, 0.95):
        assert line.value(p, r) == pytest.approx(_line_value(p, r, k)[0], abs=1e-12)


def test_value_is_below_exact_by_the_margin_d1():
    """value() subtracts its numerical margin (a '+ margin' mutant over-reports V(p, r), which
    feeds the bilateral radius): the d = 1 table's value is <= the brute-force V(p, r) and
    within (1 + lambda) margins (1e-10 each) of it, lambda = exp(c_p) = dV/dp."""
    k, sigma = 0.5, 0.7
    cert = get_certificate(L2Family(1, sigma=sigma, k=k), "l2")
    margin = cert.info["exact_margin"]
    assert 0 < margin <= 1e-9
    for p, r in ((0.99, 1.2), (0.7, 0.1)):
        exact, c_p = _line_value(p, r, k)
        got = cert.value(p, r * sigma)
        assert got <= exact
        assert got >= exact - (1 + math.exp(c_p)) * margin - 1e-13


@pytest.mark.parametrize("d", [3, 10])
def test_engine_value_subtracts_the_margin_k0(d):
    """value(p, r, margin) <= V(p, r) - margin + 1e-13 at k = 0, where V = Phi(Phi^-1(p) - r)
    exactly (so '+ margin' in either place of value() fails by 1e-9), and not below
    V - (1 + lambda) margin."""
    q = L2FamilyQuadrature(d, 0.0)
    margin = 1e-9
    for p, r in ((0.6, 0.2), (0.9, 1.0), (0.999, 2.5)):
        exact = stats.norm.cdf(stats.norm.ppf(p) - r)
        lam = math.exp(r * stats.norm.ppf(p) - r * r / 2)  # dV/dp
        got = q.value(p, r, margin)
        assert got <= exact - margin + 1e-13
        assert got >= exact - (1 + lam) * margin - 1e-13


def test_d1_certificate_radius_against_brute_force():
    """get_certificate at d = 1: radius(p, exact=True) is <= the brute-force exact radius
    (root of the brute-force p*(r) = p) and within 1e-8 relative of it."""
    k, sigma = 0.5, 1.3
    cert = get_certificate(L2Family(1, sigma=sigma, k=k), "l2")
    for p in (0.95,):
        refined = cert.radius(p, exact=True)
        # the bracket only locates the root; the brute force decides where it is
        lo, hi = 0.99 * refined / sigma, 1.01 * refined / sigma
        assert _line_threshold(lo, k) < p < _line_threshold(hi, k)
        exact = sigma * optimize.brentq(
            lambda r, p=p: _line_threshold(r, k) - p, lo, hi, xtol=1e-14, rtol=1e-13
        )
        assert refined <= exact
        assert refined >= exact * (1 - 1e-8)
        assert cert.radius(p) <= refined


# ============================================================ exact refinement and its margin
def _k0_table(d):
    radii, thr, info = certs.quadrature.quadrature_table(d, 0.0, n_radii=64)
    return TableCertificate(
        Gaussian(d, sigma=1.0),
        "l2",
        radii,
        thr,
        "quadrature",
        0.0,
        engine=L2FamilyQuadrature(d, 0.0),
        info=info,
    )


@pytest.mark.parametrize("p", [0.5 + 1e-6, 0.5 + 1e-4, 0.9])
def test_refined_radius_applies_the_exact_margin_k0(p):
    """radius(p, exact=True) solves threshold + margin = p (ignoring the margin was up to
    3.9e-3 relative too large at d = 3, p = 1/2 + 1e-6): at k = 0, d = 3 it is <=
    Phi^-1(p - margin) and within 1e-6 relative of it (the margin alone moves the radius by
    1e-6 relative at p = 1/2 + 1e-6)."""
    cert = _k0_table(3)
    margin = cert.info["exact_margin"]
    assert margin > 0
    want = stats.norm.ppf(p - margin)
    got = cert.radius(p, exact=True)
    assert got <= want
    assert got >= want * (1 - 1e-6)


def test_refined_radius_reaches_the_root_when_k_is_close_to_d():
    """The refinement searches past the table's bracket (d = 150528, k = 150520: the table
    margin exceeded the gap to p and the refined radius stopped 4.6e-4 short of the engine
    root): radius(p, exact=True) is <= the engine root (with the exact margin) and within 1e-8
    relative of it."""
    d, k, sigma, p = 150528, 150520.0, 68.5857, 0.9999239939
    cert = get_certificate(L2Family(d, sigma=sigma, k=k), "l2")
    engine = cert.engine
    margin = cert.info["exact_margin"]

    def f(r):
        return float(engine.threshold(np.array([r]))[0]) + margin - p

    root = sigma * optimize.brentq(f, 0.01, 0.06, xtol=1e-16, rtol=1e-14)
    got = cert.radius(p, exact=True)
    assert got <= root
    assert got >= root * (1 - 1e-8)


# ============================================================ Monte Carlo: union bound
def test_monte_carlo_table_uses_the_union_bound_over_the_grid(monkeypatch):
    """Each grid radius of a Monte Carlo table is bounded at level failure_prob / n_radii
    (union bound over the grid; coverage tests cannot see 'beta = failure_prob'): every
    threshold equals the DKW formula G_hat(-ell_(j)) + sqrt(log(2/beta)/(2n)),
    j = ceil(n (1/2 - eps)), written out here, at beta = failure_prob / n_radii."""
    samples, failure_prob, n_radii = 4_000, 0.05, 8
    seen = []
    real = certs.montecarlo.dkw_thresholds

    def spy(rows, beta):  # one row of log ratios per grid radius
        seen.extend(np.array(rows, copy=True))
        return real(rows, beta)

    monkeypatch.setattr(certs.montecarlo, "dkw_thresholds", spy)
    radii, thr, _ = certs.montecarlo.monte_carlo_table(
        LinfPure(4, sigma=1.0, k=1.0), "linf", samples, failure_prob, 0, n_radii
    )
    assert len(seen) == n_radii == radii.size - 1
    beta = 0.05 / 8
    eps = math.sqrt(math.log(2 / beta) / (2 * samples))
    for ell, t in zip(seen, thr[1:], strict=True):
        assert ell.size == samples
        srt = np.sort(ell)
        j = math.ceil(samples * (0.5 - eps))
        want = np.count_nonzero(ell <= -srt[j - 1]) / samples + eps
        assert t == pytest.approx(want, abs=1e-15)


# ============================================================ bilateral abstention (smooth.py)
class _Thirds(torch.nn.Module):
    """Class by the Gaussian quantile of the first noise coordinate (the input is 0): class 0
    with probability q0, 1 with probability q1, 2 otherwise."""

    def __init__(self, q0, q1, sigma):
        super().__init__()
        self.q0, self.q1, self.sigma = q0, q1, sigma

    def forward(self, x):
        u = special.ndtr(x.reshape(x.shape[0], -1)[:, 0].double().numpy() / self.sigma)
        cls = np.where(u < self.q0, 0, np.where(u < self.q0 + self.q1, 1, 2))
        return torch.nn.functional.one_hot(torch.as_tensor(cls), 3).float()


@pytest.mark.parametrize(
    "q0,q1,n,expect_class", [(0.45, 0.30, 20_000, True), (0.40, 0.38, 2_000, False)]
)
def test_bilateral_abstains_only_when_pa_is_not_above_pb(q0, q1, n, expect_class):
    """Bilateral CERTIFY with pA_lower < 1/2 returns the class when pA_lower > pB_upper (with
    a positive radius) and abstains when pA_lower <= pB_upper."""
    sigma = 0.5
    smooth = Smooth(_Thirds(q0, q1, sigma), 3, Gaussian(4, sigma=sigma))
    x = torch.zeros(1, 2, 2)
    cls, radius, p_a, p_b = smooth.certify_detailed(
        x, 200, n, 0.001, 1000, generator=0, bilateral=True
    )
    assert p_a < 0.5 and p_b is not None
    if expect_class:
        assert p_a > p_b
        assert cls == 0 and radius > 0
        want = 0.5 * sigma * (stats.norm.ppf(p_a) - stats.norm.ppf(p_b))
        assert radius == pytest.approx(want, rel=1e-9)
    else:
        assert p_a <= p_b
        assert cls == Smooth.ABSTAIN and radius == 0.0
