"""Smoothing noises: exact samplers checked against independent descriptions of their laws.

Statistical tests use fixed seeds (so the suite is deterministic) and thresholds chosen so that a
fresh seed would raise a false alarm with probability about ``ALPHA`` = 1e-4 per comparison:

* one-sample and two-sample Kolmogorov-Smirnov tests reject when the p-value is < ALPHA;
* self-normalised importance sampling (SNIS) comparisons use the two-sample KS critical value
  c(ALPHA) sqrt(1/n + 1/n_eff) with n_eff = (sum w)^2 / sum w^2 the Kish effective sample size
  (an asymptotic approximation for weighted empirical CDFs, hence a 10% safety factor);
* moment comparisons allow 5 standard errors (two-sided false alarm 6e-7 per moment).
"""

import math
from dataclasses import fields

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats

from smoothcert.errors import SmoothCertError
from smoothcert.noises import (
    FAMILIES,
    Gaussian,
    L2Family,
    LinfMixed,
    LinfPure,
    NoiseStats,
    make_noise,
    matched_sigma,
)
from smoothcert.noises.linf_mixed import _dlog_density_t, _log_density_t

ALPHA = 1e-4
KS_C = math.sqrt(-math.log(ALPHA / 2) / 2)  # two-sample KS critical constant, ~2.23


def gen(seed):
    return torch.Generator().manual_seed(seed)


def draw(noise, n, seed):
    """Float64 samples (exact arithmetic checks are not blurred by float32 rounding)."""
    return noise.sample(n, generator=gen(seed), dtype=torch.float64).numpy()


def ks_ok(sample, cdf):
    return stats.kstest(sample, cdf).pvalue > ALPHA


def ks2_ok(a, b):
    return stats.ks_2samp(a, b).pvalue > ALPHA


def weighted_ecdf(values, weights, at):
    order = np.argsort(values)
    cw = np.concatenate([[0.0], np.cumsum(weights[order])])
    return cw[np.searchsorted(values[order], at, side="right")] / cw[-1]


# ===================================================================== l2 family (eq. 8)
@pytest.mark.parametrize(
    "d,k,sigma", [(1, 0.5, 1.0), (2, 1.0, 0.7), (5, 0.0, 1.3), (10, 7.5, 0.5), (64, 60.0, 2.0)]
)
def test_l2_family_radius_law(d, k, sigma):
    """||z||^2 / sigma^2 ~ chi^2_{d-k} (the radial law of eq. 8)."""
    z = draw(L2Family(d, sigma=sigma, k=k), 20_000, seed=d)
    rho2 = np.sum(z**2, axis=1) / sigma**2
    assert ks_ok(rho2, stats.chi2(d - k).cdf)


@pytest.mark.parametrize("d,k", [(2, 1.5), (3, 0.5), (10, 9.0)])
def test_l2_family_direction_uniform_and_independent_of_radius(d, k):
    """The direction is uniform on the sphere: the cosine with any fixed unit vector v has
    (1 + cos)/2 ~ Beta((d-1)/2, (d-1)/2); it is independent of the radius."""
    n = 20_000
    z = draw(L2Family(d, sigma=1.0, k=k), n, seed=100 + d)
    rho = np.linalg.norm(z, axis=1)
    beta = stats.beta((d - 1) / 2, (d - 1) / 2)
    v = np.random.default_rng(d).standard_normal(d)
    for direction in (np.eye(d)[0], v / np.linalg.norm(v)):
        cos = z @ direction / rho
        assert ks_ok((1 + cos) / 2, beta.cdf)
    # independence of radius and direction: rank correlation of rho with |cos| ~ N(0, 1/n)
    cos1 = np.abs(z[:, 0] / rho)
    assert abs(stats.spearmanr(rho, cos1).statistic) < 5 / math.sqrt(n)


# ===================================================================== pure linf (eq. 10)
@pytest.mark.parametrize(
    "d,k,sigma", [(1, 0.5, 1.0), (2, 1.0, 0.5), (5, 4.5, 1.0), (20, 10.0, 2.0)]
)
def test_linf_pure_max_norm_law(d, k, sigma):
    """a = ||z||_inf has a^2 / sigma^2 ~ chi^2_{d-k} (appendix A.3.1)."""
    z = draw(LinfPure(d, sigma=sigma, k=k), 20_000, seed=200 + d)
    a2 = np.max(np.abs(z), axis=1) ** 2 / sigma**2
    assert ks_ok(a2, stats.chi2(d - k).cdf)


@pytest.mark.parametrize("d", [2, 7])
def test_linf_pure_surface_structure(d):
    """Given a = ||z||_inf, z is uniform on the surface of the cube [-a, a]^d: one coordinate
    (uniform index, uniform sign) is +-a, the others divided by a are i.i.d. Unif(-1, 1)."""
    n = 20_000
    z = draw(LinfPure(d, sigma=1.0, k=1.0), n, seed=300 + d)
    a = np.max(np.abs(z), axis=1)
    at_max = np.abs(z) == a[:, None]
    assert np.all(at_max.sum(axis=1) == 1)  # exactly one coordinate on the face
    j = np.argmax(at_max, axis=1)
    counts = np.bincount(j, minlength=d)
    assert stats.chisquare(counts).pvalue > ALPHA
    positive = np.count_nonzero(z[np.arange(n), j] > 0)
    assert stats.binomtest(positive, n, 0.5).pvalue > ALPHA
    rest = (z / a[:, None])[~at_max]
    assert ks_ok(rest, stats.uniform(-1, 2).cdf)


# ===================================================================== mixed linf (eq. 9)
def _max_norm_cdf(d, k, sigma):
    """CDF of m = ||z||_inf under eq. (9), written out independently of the package:
    p(m) ~ m^-k phi(m / sigma) (2 Phi(m / sigma) - 1)^(d-1), i.e. in t = log(m / sigma)
    log p(t) = (1 - k) t - e^{2t} / 2 + (d - 1) log erf(e^t / sqrt 2). Cumulative trapezoid on a
    fine grid that covers all but e^-60 of the mass."""

    def logp(t):
        x = np.exp(t)
        return (1 - k) * t - x * x / 2 + (d - 1) * np.log(special.erf(x / math.sqrt(2)))

    t = np.linspace(-700.0, 6.0, 200_001)
    lp = logp(t)
    top = lp.max()
    keep = lp > top - 60
    lo, hi = t[keep][0] - 0.01, t[keep][-1] + 0.01
    t = np.linspace(lo, hi, 400_001)
    dens = np.exp(logp(t) - top)
    cum = integrate.cumulative_trapezoid(dens, t, initial=0.0)
    cum /= cum[-1]

    def cdf(m):
        return np.interp(np.log(np.asarray(m) / sigma), t, cum, left=0.0, right=1.0)

    return cdf


@pytest.mark.parametrize(
    "d,k,sigma,n",
    [
        (1, 0.5, 1.0, 20_000),
        (2, 1.5, 0.5, 20_000),
        (3, 0.0, 1.0, 20_000),
        (10, 9.5, 1.0, 20_000),
        (100, 99.0, 0.25, 10_000),
        (1000, 999.0, 1.0, 2_000),
        (1000, 300.0, 1.0, 2_000),
    ],
)
def test_linf_mixed_max_norm_law(d, k, sigma, n):
    """The rejection sampler of ||z||_inf against the 1-D integral of its exact density, down to
    k close to d (where the law of log ||z||_inf has a long left tail)."""
    z = LinfMixed(d, sigma=sigma, k=k).sample(n, generator=gen(400 + d))
    m = z.abs().amax(-1).double().numpy()
    assert ks_ok(m, _max_norm_cdf(d, k, sigma))


def test_linf_mixed_max_norm_law_imagenet_dimension():
    """The envelope of the max-norm sampler at d = 150528 (max norm only: full vectors would be
    gigabytes)."""
    d, k = 150528, 150000.0
    noise = LinfMixed(d, sigma=0.5, k=k)
    m = noise._sample_max_norm(5_000, gen(1), torch.device("cpu")).numpy()
    assert ks_ok(m, _max_norm_cdf(d, k, 0.5))


@pytest.mark.parametrize("d", [2, 6])
def test_linf_mixed_conditional_coordinates(d):
    """Given m = ||z||_inf, one coordinate is +-m (uniform index and sign) and the other d - 1
    are i.i.d. N(0, sigma^2) truncated to [-m, m]: their truncated-normal CDF transform
    (Phi(z/sigma) - Phi(-m/sigma)) / (2 Phi(m/sigma) - 1) is Unif(0, 1)."""
    n, sigma = 20_000, 0.8
    z = draw(LinfMixed(d, sigma=sigma, k=1.0), n, seed=500 + d)
    m = np.max(np.abs(z), axis=1)
    at_max = np.abs(z) == m[:, None]
    assert np.all(at_max.sum(axis=1) == 1)
    j = np.argmax(at_max, axis=1)
    assert stats.chisquare(np.bincount(j, minlength=d)).pvalue > ALPHA
    positive = np.count_nonzero(z[np.arange(n), j] > 0)
    assert stats.binomtest(positive, n, 0.5).pvalue > ALPHA
    mm = np.broadcast_to(m[:, None], z.shape)[~at_max]
    rest = z[~at_max]
    lo = stats.norm.cdf(-mm / sigma)
    u = (stats.norm.cdf(rest / sigma) - lo) / (1 - 2 * lo)
    assert ks_ok(u, stats.uniform.cdf)


@pytest.mark.parametrize("d,k,sigma", [(2, 0.5, 1.0), (3, 1.0, 0.8), (5, 2.0, 1.5)])
def test_linf_mixed_against_importance_sampling(d, k, sigma):
    """Law of ||z||_inf, ||z||_2 and z_1 under the sampler against self-normalised importance
    sampling from N(0, sigma^2 I) with weights exp(log_prob(z) - log N(z; 0, sigma^2 I))
    (= ||z||_inf^-k; finite variance because 2k < d)."""
    n_s, n_is = 20_000, 200_000
    noise = LinfMixed(d, sigma=sigma, k=k)
    z = draw(noise, n_s, seed=600 + d)
    y = np.random.default_rng(700 + d).standard_normal((n_is, d)) * sigma
    log_w = noise.log_prob(torch.from_numpy(y)).numpy() + np.sum(y**2, axis=1) / (2 * sigma**2)
    w = np.exp(log_w - log_w.max())
    n_eff = w.sum() ** 2 / np.sum(w**2)
    assert n_eff > 0.2 * n_is  # the comparison below has power
    crit = 1.1 * KS_C * math.sqrt(1 / n_s + 1 / n_eff)
    for f in (
        lambda x: np.max(np.abs(x), axis=1),
        lambda x: np.linalg.norm(x, axis=1),
        lambda x: x[:, 0],
    ):
        a, b = f(z), f(y)
        grid = np.quantile(a, np.linspace(0.001, 0.999, 999))
        gap = np.max(
            np.abs(
                np.searchsorted(np.sort(a), grid, side="right") / n_s - weighted_ecdf(b, w, grid)
            )
        )
        assert gap < crit
        for power in (1, 2):  # moments, 5 standard errors
            mean_is = np.sum(w * b**power) / w.sum()
            var_is = np.sum(w**2 * (b**power - mean_is) ** 2) / w.sum() ** 2
            se = math.sqrt(np.var(a**power) / n_s + var_is)
            assert abs(np.mean(a**power) - mean_is) < 5 * se


@settings(max_examples=40, deadline=None)
@given(
    d=st.sampled_from([1, 2, 3, 10, 100, 3072, 150528]), frac=st.floats(0.0, 1.0, exclude_max=True)
)
def test_linf_mixed_log_density_of_log_max_norm_is_concave(d, frac):
    """The sampler's envelope (constant pieces + tangent tails) is an upper bound only if the log
    density of t = log(||z||_inf / sigma) is concave: second differences <= 0 up to rounding, for
    k anywhere in [0, d) (k = frac * d, hypothesis pushes it to within a hair of d); the
    derivative used for the tangent tails brackets every secant slope."""
    k = frac * d
    t = np.linspace(-40.0, 8.0, 4801)
    h = t[1] - t[0]
    f = _log_density_t(t, d, k)
    assert np.all(np.isfinite(f))
    # rounding: f is a sum of terms of size `scale` that cancel when k is close to d
    x = np.exp(t)
    scale = (
        abs(1 - k) * np.abs(t) + x * x / 2 + (d - 1) * np.abs(np.log(special.erf(x / math.sqrt(2))))
    )
    ulp = 8 * np.finfo(float).eps * (scale + 1)
    second = f[2:] - 2 * f[1:-1] + f[:-2]
    assert np.all(second <= ulp[2:] + 2 * ulp[1:-1] + ulp[:-2])
    # for a concave f the secant slope on [t_i, t_i+1] lies between f'(t_i+1) and f'(t_i)
    df = _dlog_density_t(t, d, k)
    secant = np.diff(f) / h
    slack = 1e-9 * (np.abs(secant) + 1) + (ulp[1:] + ulp[:-1]) / h
    assert np.all(df[1:] <= secant + slack) and np.all(secant <= df[:-1] + slack)


def test_log_density_of_log_max_norm_matches_formula():
    t = np.array([-30.0, -5.0, -0.3, 0.0, 0.7, 2.0])
    d, k = 7, 2.5
    x = np.exp(t)
    expected = (1 - k) * t - x**2 / 2 + (d - 1) * np.log(special.erf(x / math.sqrt(2)))
    assert np.allclose(_log_density_t(t, d, k), expected, rtol=1e-12, atol=1e-12)


# ===================================================================== densities
def _formula(name, z, sigma, k):
    l2, linf = np.linalg.norm(z, axis=1), np.max(np.abs(z), axis=1)
    return {
        "gaussian": -(l2**2) / (2 * sigma**2),
        "l2-family": -k * np.log(l2) - l2**2 / (2 * sigma**2),
        "linf-mixed": -k * np.log(linf) - l2**2 / (2 * sigma**2),
        "linf-pure": -k * np.log(linf) - linf**2 / (2 * sigma**2),
    }[name]


@pytest.mark.parametrize(
    "name,k", [("gaussian", 0.0), ("l2-family", 3.0), ("linf-mixed", 2.0), ("linf-pure", 4.5)]
)
def test_log_prob_matches_formula(name, k):
    """Unnormalised: compared up to a constant, i.e. through differences between points."""
    d, sigma = 6, 0.7
    z = np.random.default_rng(1).standard_normal((50, d)) * np.linspace(0.1, 3, 50)[:, None]
    got = make_noise(name, d, k=k, sigma=sigma).log_prob(torch.from_numpy(z)).numpy()
    want = _formula(name, z, sigma, k)
    assert np.allclose(got - got[0], want - want[0], rtol=1e-12, atol=1e-10)


CASES = [
    (Gaussian(7, sigma=0.6), "l2"),
    (Gaussian(7, sigma=0.6), "linf"),
    (L2Family(7, sigma=0.6, k=3.0), "l2"),
    (L2Family(1, sigma=1.0, k=0.5), "l2"),
    (LinfMixed(7, sigma=0.6, k=3.0), "linf"),
    (LinfMixed(7, sigma=0.6, k=0.0), "linf"),
    (LinfPure(7, sigma=0.6, k=3.0), "linf"),
    (LinfPure(7, sigma=0.6, k=0.0), "linf"),
]


@pytest.mark.parametrize("noise,norm", CASES, ids=lambda x: repr(x))
@pytest.mark.parametrize("radius", [0.01, 0.3, 2.5])
def test_log_ratio_from_stats_is_pointwise_log_ratio(noise, norm, radius):
    """log_ratio_from_stats(reduce(z), r) = log pi_0(z - delta*) - log pi_0(z), computed here
    from the density formula, and equal to log_ratio(z, worst_case_delta(r))."""
    z = draw(noise, 2_000, seed=11)
    delta = noise.worst_case_delta(radius, norm)
    want = _formula(noise.name, z - delta.numpy(), noise.sigma, noise.k) - _formula(
        noise.name, z, noise.sigma, noise.k
    )
    direct = noise.log_ratio(torch.from_numpy(z), delta).numpy()
    fast = noise.log_ratio_from_stats(noise.reduce(torch.from_numpy(z)), radius, norm).numpy()
    assert np.allclose(direct, want, rtol=1e-9, atol=1e-9)
    assert np.allclose(fast, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("d,k", [(5, 2.0), (16, 0.0)])
def test_l2_family_linf_log_ratio_is_the_rotated_l2_one(d, k):
    """Theorem 3 for the l2 family: with a rotation Q taking e_1 to (1, ..., 1)/sqrt(d),
    log_ratio(Q z, (r, ..., r)) = log_ratio_from_stats(reduce(z), r, 'linf') pointwise (the
    stats use delta = (sqrt(d) r, 0, ..., 0)); and the two have the same law under pi_0."""
    noise, r = L2Family(d, sigma=0.8, k=k), 0.4
    v = np.eye(d)[0] - np.ones(d) / math.sqrt(d)
    q = np.eye(d) - 2 * np.outer(v, v) / (v @ v)  # Householder: symmetric, orthogonal
    assert np.allclose(q @ np.eye(d)[0], np.ones(d) / math.sqrt(d))
    z = draw(noise, 5_000, seed=12)
    delta = noise.worst_case_delta(r, "linf")
    assert np.allclose(delta.numpy(), r)
    rotated = noise.log_ratio(torch.from_numpy(z @ q.T), delta).numpy()
    fast = noise.log_ratio_from_stats(noise.reduce(torch.from_numpy(z)), r, "linf").numpy()
    assert np.allclose(rotated, fast, rtol=1e-9, atol=1e-9)
    # in law, on unrotated samples against the reduced sampler
    direct = noise.log_ratio(torch.from_numpy(draw(noise, 20_000, seed=13)), delta).numpy()
    reduced = noise.log_ratio_from_stats(noise.sample_stats(20_000, gen(14)), r, "linf").numpy()
    assert ks2_ok(direct, reduced)


# ===================================================================== reduced samplers
@pytest.mark.parametrize("d", [1, 2, 5, 50])
def test_gaussian_sample_stats_law(d):
    """sample_stats draws (sum z_i, ||z||_2, z_1) without (n, d) arrays: same marginals as
    reduce(sample(n)), and the same joint law: Cauchy-Schwarz (sum z)^2 <= d ||z||^2 on every
    row, and (sum z)^2 / (d ||z||^2) ~ Beta(1/2, (d-1)/2) (the squared cosine with (1,...,1))."""
    noise, n = Gaussian(d, sigma=0.7), 20_000
    fast = noise.sample_stats(n, gen(20))
    slow = noise.reduce(torch.from_numpy(draw(noise, n, seed=21)))
    for field in ("coord_sum", "l2_norm", "first_coord"):
        assert ks2_ok(getattr(fast, field).numpy(), getattr(slow, field).numpy())
    total, l2, z1 = fast.coord_sum.numpy(), fast.l2_norm.numpy(), fast.first_coord.numpy()
    assert ks_ok(l2**2 / 0.49, stats.chi2(d).cdf)
    cos2 = total**2 / (d * l2**2)
    assert np.all(cos2 <= 1 + 1e-12)
    if d > 1:
        assert ks_ok(cos2, stats.beta(0.5, (d - 1) / 2).cdf)
        # z_1 and the sum: corr = 1/sqrt(d)
        assert abs(np.corrcoef(total, z1)[0, 1] - 1 / math.sqrt(d)) < 5 / math.sqrt(n)


@pytest.mark.parametrize("d,k", [(1, 0.5), (3, 1.0), (10, 8.0)])
def test_l2_family_sample_stats_law(d, k):
    noise, n = L2Family(d, sigma=1.3, k=k), 20_000
    fast = noise.sample_stats(n, gen(30))
    slow = noise.reduce(torch.from_numpy(draw(noise, n, seed=31)))
    for field in ("l2_norm", "first_coord"):
        assert ks2_ok(getattr(fast, field).numpy(), getattr(slow, field).numpy())
    cos = (fast.first_coord / fast.l2_norm).numpy()
    if d == 1:
        assert set(np.unique(np.round(cos, 12))) == {-1.0, 1.0}
    else:
        assert ks_ok((1 + cos) / 2, stats.beta((d - 1) / 2, (d - 1) / 2).cdf)


@pytest.mark.parametrize("cls", [LinfMixed, LinfPure])
def test_linf_sample_stats_is_reduce_of_sample(cls):
    noise = cls(9, sigma=0.5, k=2.0)
    fast = noise.sample_stats(300, gen(40))
    slow = noise.reduce(noise.sample(300, gen(40)))
    for field in fields(NoiseStats):
        a, b = getattr(fast, field.name), getattr(slow, field.name)
        assert (a is None and b is None) or torch.equal(a, b), field.name
    z = noise.sample(300, gen(41))
    st_ = noise.reduce(z)
    zz = z.double().numpy()
    assert np.allclose(st_.max_coord, zz.max(1)) and np.allclose(st_.min_coord, zz.min(1))
    assert np.allclose(st_.linf_norm, np.abs(zz).max(1))
    assert np.allclose(st_.coord_sum, zz.sum(1)) and np.allclose(st_.first_coord, zz[:, 0])


# ===================================================================== worst cases, parameters
def test_worst_case_delta():
    g = Gaussian(4, sigma=1.0)
    assert np.array_equal(g.worst_case_delta(0.3, "l2").numpy(), [0.3, 0, 0, 0])
    assert np.array_equal(g.worst_case_delta(0.3, "linf").numpy(), [0.3] * 4)
    assert np.array_equal(LinfMixed(3, 1.0, 1.0).worst_case_delta(0.2, "linf").numpy(), [0.2] * 3)


@pytest.mark.parametrize("cls", [LinfMixed, LinfPure])
def test_linf_families_refuse_l2(cls):
    noise = cls(4, sigma=1.0, k=1.0)
    with pytest.raises(SmoothCertError, match=r"l2"):
        noise.worst_case_delta(0.1, "l2")
    with pytest.raises(SmoothCertError, match=r"no worst-case perturbation.*l2"):
        noise.log_ratio_from_stats(noise.sample_stats(3, gen(0)), 0.1, "l2")
    with pytest.raises(SmoothCertError, match=r"norm must be one of"):
        noise.worst_case_delta(0.1, "l1")


@pytest.mark.parametrize("name", ["l2-family", "linf-mixed", "linf-pure"])
@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(dim=5, k=5.0, sigma=1.0), r"k must be < d"),
        (dict(dim=5, k=7.0, sigma=1.0), r"k must be < d"),
        (dict(dim=5, k=-1.0, sigma=1.0), r"k must be .*>= 0"),
        (dict(dim=5, k=math.nan, sigma=1.0), r"k must be"),
        (dict(dim=5, k=1.0, sigma=0.0), r"sigma must be .*> 0"),
        (dict(dim=5, k=1.0, sigma=-0.5), r"sigma must be .*> 0"),
        (dict(dim=5, k=1.0, sigma=math.nan), r"sigma must be"),
        (dict(dim=5, k=1.0, sigma=math.inf), r"sigma must be"),
        (dict(dim=0, k=0.0, sigma=1.0), r"dimension"),
        (dict(dim=-3, k=0.0, sigma=1.0), r"dimension"),
        (dict(dim=2.5, k=0.0, sigma=1.0), r"dimension"),
    ],
)
def test_invalid_parameters(name, kwargs, pattern):
    with pytest.raises(SmoothCertError, match=pattern):
        make_noise(name, **kwargs)
    with pytest.raises(SmoothCertError, match=pattern):
        FAMILIES[name](kwargs["dim"], sigma=kwargs["sigma"], k=kwargs["k"])


def test_gaussian_and_factory_errors():
    with pytest.raises(SmoothCertError, match=r"gaussian.*no shape parameter"):
        make_noise("gaussian", 5, k=1.0, sigma=1.0)
    with pytest.raises(SmoothCertError, match=r"no shape parameter"):
        Gaussian(5, sigma=1.0, k=0.5)
    with pytest.raises(SmoothCertError, match=r"unknown noise 'laplace'"):
        make_noise("laplace", 5, sigma=1.0)
    with pytest.raises(SmoothCertError, match=r"exactly one of sigma and sigma0"):
        make_noise("l2-family", 5, k=1.0)
    with pytest.raises(SmoothCertError, match=r"exactly one of sigma and sigma0"):
        make_noise("l2-family", 5, k=1.0, sigma=1.0, sigma0=1.0)
    with pytest.raises(SmoothCertError, match=r"number of samples"):
        Gaussian(3, sigma=1.0).sample(-1)


def test_matched_sigma():
    assert matched_sigma(0.25, 3072, 500) == pytest.approx(math.sqrt(3071 / 2571) * 0.25, rel=1e-14)
    assert matched_sigma(0.5, 10, 0) == 0.5
    noise = make_noise("l2-family", 100, k=50, sigma0=0.5)
    assert noise.sigma == pytest.approx(math.sqrt(99 / 49) * 0.5, rel=1e-14)
    with pytest.raises(SmoothCertError, match=r"0 <= k < d-1"):
        matched_sigma(0.5, 10, 9.0)
    with pytest.raises(SmoothCertError, match=r"0 <= k < d-1"):
        matched_sigma(0.5, 10, -1.0)
    with pytest.raises(SmoothCertError, match=r"sigma0"):
        matched_sigma(0.0, 10, 1.0)


@pytest.mark.parametrize("d,k,sigma", [(2, 1.5, 1.0), (3, 2.5, 0.6), (4, 0.0, 1.0)])
def test_linf_mixed_against_cube_polar_sampler(d, k, sigma, mixed_linf_reference_sampler):
    """Two-sample KS against an independent exact sampler (conftest), also where k > d/2 and
    importance sampling from a Gaussian would have infinite variance."""
    n = 20_000
    z = draw(LinfMixed(d, sigma=sigma, k=k), n, seed=800 + d)
    y = mixed_linf_reference_sampler(np.random.default_rng(900 + d), n, d, k, sigma)
    if k == 0:  # the reference itself: k = 0 is N(0, sigma^2 I)
        assert ks_ok(np.sum(y**2, axis=1) / sigma**2, stats.chi2(d).cdf)
    for f in (
        lambda x: np.max(np.abs(x), axis=1),
        lambda x: np.linalg.norm(x, axis=1),
        lambda x: x[:, 0],
        lambda x: x.sum(axis=1),
    ):
        assert ks2_ok(f(z), f(y))


@pytest.mark.parametrize(
    "name,k", [("gaussian", 0.0), ("l2-family", 3.0), ("linf-mixed", 2.0), ("linf-pure", 2.0)]
)
def test_sample_of_zero_draws_is_an_empty_batch(name, k):
    """Guards sample(0): an empty (0, d) batch for every family (the mixed l-inf sampler's
    torch.cat of no pieces raised a raw ValueError)."""
    from smoothcert.noises import make_noise

    noise = make_noise(name, 16, k=k, sigma0=0.25)
    z = noise.sample(0, generator=torch.Generator().manual_seed(0))
    assert tuple(z.shape) == (0, 16)
