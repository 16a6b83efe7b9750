"""Sequential certification: time-uniform binomial bounds, certify_adaptive, predict_adaptive."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats

from smoothcert.errors import SmoothCertError
from smoothcert.noises import make_noise
from smoothcert.sequential import (
    BetaBinomialMixture,
    UnionBoundCP,
    grid_bound,
    grid_look_schedule,
    grid_thresholds,
    look_schedule,
    run_certification,
)
from smoothcert.smooth import Smooth, derive_seed

SHAPE = (1, 2, 2)
DIM = 4
SIGMA = 0.25


def gaussian(sigma=SIGMA, dim=DIM):
    return make_noise("gaussian", dim, sigma=sigma)


class Threshold(torch.nn.Module):
    """Class 0 iff the first noise coordinate is <= Phi^-1(p) sigma: P(class 0) = p exactly
    (Gaussian noise), and it counts its forward passes."""

    def __init__(self, p, x0=0.5, sigma=SIGMA):
        super().__init__()
        self.cut = x0 + stats.norm.ppf(p) * sigma
        self.calls = 0

    def forward(self, x):
        self.calls += x.shape[0]
        t = x.reshape(x.shape[0], -1)[:, 0]
        return torch.stack([(t <= self.cut).float(), (t > self.cut).float()], dim=1)


def x0():
    return torch.full(SHAPE, 0.5)


# ----------------------------------------------------------------------------- bounds
def _peeking_rates(p, seeds, looks, alpha, rng):
    """Fraction of runs whose lower bound exceeds p at some look, for a fixed-n Clopper-Pearson
    bound re-used at every look, the union bound and the Jeffreys mixture."""
    inc = np.diff(np.concatenate([[0], looks]))
    s = np.cumsum(rng.binomial(inc, p, size=(seeds, looks.size)), axis=1)
    n = np.broadcast_to(looks, s.shape)
    fixed = np.where(s > 0, stats.beta.ppf(alpha, np.maximum(s, 1), n - s + 1), 0.0)
    union = UnionBoundCP(alpha, looks).lower(s, n)
    mixture = BetaBinomialMixture(alpha).lower(s, n)
    return [float(np.mean(np.any(b > p, axis=1))) for b in (fixed, union, mixture)]


def test_fixed_n_bound_fails_under_peeking_and_time_uniform_bounds_do_not():
    """Guards time-uniformity: a fixed-n Clopper-Pearson lower bound checked at every look of the
    schedule exceeds p far more often than alpha, the union bound and the mixture do not."""
    alpha, seeds = 0.05, 4000
    looks = look_schedule(20_000, 16, 1.5)
    assert looks.size >= 15
    rng = np.random.default_rng(0)
    for p in (0.5, 0.9):
        fixed, union, mixture = _peeking_rates(p, seeds, looks, alpha, rng)
        se = math.sqrt(alpha * (1 - alpha) / seeds)
        assert fixed > alpha + 8 * se, (p, fixed)  # peeking breaks the fixed-n bound
        assert union <= alpha + 3 * se, (p, union)
        assert mixture <= alpha + 3 * se, (p, mixture)


def test_upper_bounds_are_time_uniform_too():
    """Guards the upper side: the union-bound and mixture upper bounds fall below p at some look
    in at most alpha of the runs."""
    alpha, seeds = 0.05, 4000
    looks = look_schedule(20_000, 16, 1.5)
    rng = np.random.default_rng(1)
    inc = np.diff(np.concatenate([[0], looks]))
    p = 0.7
    s = np.cumsum(rng.binomial(inc, p, size=(seeds, looks.size)), axis=1)
    n = np.broadcast_to(looks, s.shape)
    se = math.sqrt(alpha * (1 - alpha) / seeds)
    for cs in (UnionBoundCP(alpha, looks), BetaBinomialMixture(alpha)):
        assert np.mean(np.any(cs.upper(s, n) < p, axis=1)) <= alpha + 3 * se


THRESHOLDS = stats.norm.cdf(np.array([0.25, 0.5, 0.75, 1.0]) / 0.3)


def test_grid_schedule_levels_sum_to_alpha_and_sit_where_all_successes_certify():
    """Guards the grid-aware schedule: its levels sum to alpha (never more), n_max is its last
    look, and each threshold's look is the first size at which all-success draws certify it."""
    alpha, n_max = 0.001, 100_000
    looks, w = grid_look_schedule(THRESHOLDS, n_max, alpha)
    cs = UnionBoundCP(alpha, looks, weights=w)
    assert looks[-1] == n_max and np.all(np.diff(looks) > 0)
    assert cs.alphas.sum() <= alpha * (1 + 1e-12)
    top = THRESHOLDS[-1]
    n_top = math.floor(math.log(alpha * 0.5) / math.log(top)) + 1
    assert n_top in looks
    # at level alpha/2 exactly: n_top successes certify top, n_top - 1 would not
    assert (
        cp_lower_exact(n_top, n_top, alpha * 0.5)
        > top
        >= cp_lower_exact(n_top - 1, n_top - 1, alpha * 0.5)
    )
    k = int(np.searchsorted(looks, n_top))
    assert cs.alphas[k] >= alpha * 0.5 * (1 - 1e-12)
    assert cs.lower(n_top, n_top) > top
    assert cs.describe()["name"] == "union-cp" and grid_bound(alpha, n_max, THRESHOLDS).name


def cp_lower_exact(s, n, level):
    return float(stats.beta.ppf(level, s, n - s + 1))


def test_grid_schedule_is_time_uniform_at_the_thresholds():
    """Guards the union bound of the grid-aware schedule: with p just below a threshold, the
    lower bound exceeds p at some look in at most alpha of the runs (exact per-look levels
    that did not sum to alpha, e.g. alpha at each grid look, fail this)."""
    alpha, n_max, seeds = 0.05, 20_000, 4000
    looks, w = grid_look_schedule(THRESHOLDS, n_max, alpha, first=16)
    cs = UnionBoundCP(alpha, looks, weights=w)
    se = math.sqrt(alpha * (1 - alpha) / seeds)
    rng = np.random.default_rng(5)
    inc = np.diff(np.concatenate([[0], looks]))
    for p in THRESHOLDS[-2:] - 1e-9:
        s = np.cumsum(rng.binomial(inc, p, size=(seeds, looks.size)), axis=1)
        n = np.broadcast_to(looks, s.shape)
        rate = float(np.mean(np.any(cs.lower(s, n) > p, axis=1)))
        assert rate <= alpha + 3 * se, (p, rate)


def test_forecast_level_stops_sooner_and_only_stops():
    """Guards the forecast of the grid stopping rule: with p between two thresholds, a weaker
    forecast stops no later, and the lower bound at the stop is the bound's own at that look."""
    alpha, n_max = 0.001, 100_000
    looks, w = grid_look_schedule(THRESHOLDS, n_max, alpha)
    cs = UnionBoundCP(alpha, looks, weights=w)
    p = THRESHOLDS[-1] - 1e-4  # just below the top threshold
    stops = []
    for level in (None, 0.05):
        rng = np.random.default_rng(3)
        st_ = run_certification(
            cs, looks, lambda m, rng=rng: rng.binomial(m, p), THRESHOLDS, None, forecast_level=level
        )
        assert st_.lower == float(cs.lower(st_.successes, st_.n))
        stops.append(st_.n)
    assert stops[1] < stops[0] * 0.6, stops


def _mixture_by_quadrature(p, s, n, a, b):
    """M_n(p) = E_{q ~ Beta(a, b)} (q/p)^s ((1-q)/(1-p))^(n-s), by adaptive quadrature around
    the posterior mode (independent of the closed form with betaln)."""
    f = n - s

    def log_integrand(q):
        return (
            special.xlogy(s + a - 1, q)
            + special.xlog1py(f + b - 1, -q)
            - special.betaln(a, b)
            - special.xlogy(s, p)
            - special.xlog1py(f, -p)
        )

    mode = (s + a) / (n + a + b)  # posterior mean: the integrand's mass sits around it
    peak = log_integrand(mode)
    sd = math.sqrt(mode * (1 - mode) / (n + a + b))
    pts = sorted({max(0.0, mode - 20 * sd), mode, min(1.0, mode + 20 * sd)})
    val, _ = integrate.quad(
        lambda q: math.exp(log_integrand(q) - peak),
        0.0,
        1.0,
        points=pts,
        limit=400,
        epsabs=0,
        epsrel=1e-10,
    )
    return math.log(val) + peak


@pytest.mark.parametrize(
    "s,n",
    [(1, 1), (7, 10), (95, 100), (100, 100), (4990, 5000), (50_000, 100_000), (99_990, 100_000)],
)
def test_mixture_bounds_solve_the_integrated_martingale(s, n):
    """Guards the closed form of the beta-binomial mixture: at the returned bounds the
    martingale, integrated numerically, equals 1/alpha, and just inside it is below."""
    alpha = 0.001
    cs = BetaBinomialMixture(alpha)
    lo, up = float(cs.lower(s, n)), float(cs.upper(s, n))
    target = math.log(1 / alpha)
    for bound, inward in ((lo, 1), (up, -1)):
        if bound in (0.0, 1.0):
            continue
        assert _mixture_by_quadrature(bound, s, n, 0.5, 0.5) == pytest.approx(target, abs=1e-6)
        inside = bound + inward * 1e-6 * min(bound, 1 - bound)
        assert _mixture_by_quadrature(inside, s, n, 0.5, 0.5) < target
    assert lo <= s / n <= up


def test_union_bound_levels_sum_to_alpha_and_match_binomtest():
    """Guards the union bound: the per-look levels sum to alpha and each look's bound is the
    exact Clopper-Pearson bound (scipy's binomtest interval) at its level."""
    looks = look_schedule(100_000)
    cs = UnionBoundCP(0.001, looks)
    assert cs.alphas.sum() == pytest.approx(0.001, rel=1e-12)
    assert cs.alphas[-1] == pytest.approx(0.0005)
    for k in (0, 5, looks.size - 1):
        n = int(looks[k])
        s = int(0.93 * n)
        lo, hi = stats.binomtest(s, n).proportion_ci(1 - 2 * cs.alphas[k], method="exact")
        assert float(cs.lower(s, n)) == pytest.approx(lo, rel=1e-9)
        assert float(cs.upper(s, n)) == pytest.approx(hi, rel=1e-9)
    with pytest.raises(SmoothCertError, match="not a look"):
        cs.lower(5, 65)


# ----------------------------------------------------------------------------- certify_adaptive
def _coverage(p, radii, seeds, alpha=0.05, n_max=3000):
    smooth = Smooth(Threshold(p), 2, gaussian())
    true_radius = SIGMA * stats.norm.ppf(p)
    wrong = 0
    for seed in range(seeds):
        r = smooth.certify_adaptive(x0(), 20, n_max, alpha, 4096, radii=radii, generator=seed)
        wrong += r.prediction == 1 or (r.prediction == 0 and r.radius > true_radius)
    return wrong / seeds


@pytest.mark.parametrize("side", [-1, 1])
def test_certify_adaptive_coverage_near_a_grid_threshold(side):
    """Guards validity at any stopping time: with p_A just below / just above the threshold of a
    grid radius (and then just below the next one), the rate of certificates above the true
    radius stays <= alpha (a fixed-n bound re-used at every look fails this test)."""
    alpha, seeds, eps = 0.05, 400, 0.0005
    t = stats.norm.cdf(0.5 / SIGMA)  # threshold of r = 0.5
    p = t + side * eps
    radii = [0.5] if side < 0 else [0.25, 0.5, SIGMA * stats.norm.ppf(p + eps)]
    rate = _coverage(p, radii, seeds, alpha)
    assert rate <= alpha + 2.5 * math.sqrt(alpha * (1 - alpha) / seeds), rate


def test_certify_adaptive_coverage_without_grid():
    """Guards the no-grid mode: the radius at the stopping time exceeds the true radius in at
    most alpha of the runs (p_A chosen so that the bound often comes close)."""
    alpha, seeds = 0.05, 300
    rate = _coverage(0.9, None, seeds, alpha, n_max=2000)
    assert rate <= alpha + 2.5 * math.sqrt(alpha * (1 - alpha) / seeds), rate


class Recorder(torch.nn.Module):
    """Remembers every input row it classifies; class 0 iff the first coordinate is <= cut."""

    def __init__(self, cut=10.0):
        super().__init__()
        self.rows, self.cut = [], cut

    def forward(self, x):
        flat = x.reshape(x.shape[0], -1)
        self.rows.append(flat.clone())
        t = flat[:, 0]
        return torch.stack([(t <= self.cut).float(), (t > self.cut).float()], dim=1)


def test_estimation_never_reuses_the_selection_samples():
    """Guards the separation of selection and estimation: the first n0 forward passes are the
    selection noise (seed phase 1), every later one is the estimation noise (phase 2) in order,
    and no selection row is seen again."""
    rec = Recorder()
    smooth = Smooth(rec, 2, gaussian())
    n0, n_max, seed = 50, 3000, 7
    r = smooth.certify_adaptive(
        x0(), n0, n_max, 0.001, 100, radii=[0.25, 0.5, 0.75], generator=seed
    )
    rows = torch.cat(rec.rows)
    assert rows.shape[0] == r.samples
    est = r.samples - n0
    assert 0 < est < n_max  # stopped early (constant classifier: largest radius certified)
    sel_noise = torch.cat(list(smooth._noise_blocks(n0, derive_seed(seed, 1), torch.float32)))
    est_noise = torch.cat(list(smooth._noise_blocks(n_max, derive_seed(seed, 2), torch.float32)))
    flat = x0().reshape(1, -1)
    assert torch.equal(rows[:n0], flat + sel_noise)
    assert torch.equal(rows[n0:], flat + est_noise[:est])
    # no selection sample among the estimation inputs
    assert not bool((rows[n0:, None, :] == rows[None, :n0, :]).all(-1).any())


def test_single_look_reproduces_fixed_n_certify():
    """Guards the sample stream: with n_max a single look, certify_adaptive draws the samples of
    certify(n = n_max) and returns its class, pA_lower and radius exactly."""
    for p in (0.8, 0.97):
        smooth = Smooth(Threshold(p), 2, gaussian())
        for seed in range(3):
            cls, radius, p_a = smooth.certify(x0(), 30, 64, 0.01, 17, generator=seed)
            r = smooth.certify_adaptive(x0(), 30, 64, 0.01, 17, generator=seed)
            assert (r.prediction, r.pA_lower, r.radius) == (cls, p_a, radius)
            assert r.samples == 30 + 64 and r.reason == "budget"


def test_estimation_counts_equal_fixed_n_counts_at_each_look():
    """Guards the block seeding: the class counts after n estimation samples equal those of
    sample_counts over the first n samples of the same stream (n_max = n)."""
    smooth = Smooth(Threshold(0.7), 2, gaussian())
    flat = x0()
    looks = look_schedule(5000)
    from smoothcert.smooth import _SampleStream

    stream = _SampleStream(smooth, flat, 5000, 333, derive_seed(3, 2))
    total = np.zeros(2, dtype=np.int64)
    n = 0
    for m in looks.tolist():
        total += stream.counts(m - n)
        n = m
    assert np.array_equal(total, smooth._counts(flat, 5000, 333, derive_seed(3, 2)))


@pytest.mark.parametrize("radii", [None, [0.25, 0.5, 0.75, 1.0], [0.5]])
@pytest.mark.parametrize("p", [0.3, 0.6, 0.95, 0.9999])
def test_forward_passes_are_counted(radii, p):
    """Guards the cost accounting: ``samples`` equals the forward passes made, n0 included."""
    f = Threshold(p)
    smooth = Smooth(f, 2, gaussian())
    r = smooth.certify_adaptive(x0(), 25, 20_000, 0.001, 500, radii=radii, generator=1)
    assert r.samples == f.calls
    f.calls = 0
    pr = smooth.predict_adaptive(x0(), 20_000, 0.001, 500, generator=1)
    assert pr.samples == f.calls


class Scripted(torch.nn.Module):
    """Class 0 for the first round(frac * m) rows of the k-th call, class 1 for the rest."""

    def __init__(self, fracs):
        super().__init__()
        self.fracs, self.k = list(fracs), 0

    def forward(self, x):
        m = x.shape[0]
        frac = self.fracs[min(self.k, len(self.fracs) - 1)]
        self.k += 1
        out = torch.zeros(m, 2)
        s = int(round(frac * m))
        out[:s, 0] = 1.0
        out[s:, 1] = 1.0
        return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fracs=st.lists(st.floats(0.9, 1.0), min_size=1, max_size=25),
    grid=st.lists(st.floats(0.0, 1.2), min_size=1, max_size=6, unique=True),
    norm=st.sampled_from(["l2", "linf"]),
)
def test_returned_grid_radius_is_certified_by_the_lower_bound(fracs, grid, norm):
    """Guards the grid rounding: the returned radius is a grid radius r_j with threshold(r_j)
    < pA_lower (or 0), never the next one, and pA_lower is the union-bound Clopper-Pearson bound
    of the counts at the stop."""
    grid = sorted(grid)
    n_max = 4000
    smooth = Smooth(Scripted([1.0] + fracs), 2, gaussian(), norm=norm)
    r = smooth.certify_adaptive(x0(), 5, n_max, 0.01, n_max, radii=grid, generator=0)
    cert = smooth.certificate
    bound = grid_bound(0.01, n_max, grid_thresholds(cert, grid))
    looks = bound.looks
    n = r.samples - 5
    assert n in looks
    # the counts at the stop, from the script (one call per look: batch_size >= n_max)
    k = int(np.searchsorted(looks, n))
    inc = np.diff(np.concatenate([[0], looks[: k + 1]]))
    s = sum(int(round(fracs[min(i, len(fracs) - 1)] * m)) for i, m in enumerate(inc))
    expect = stats.beta.ppf(bound.alphas[k], s, n - s + 1) if s else 0.0
    assert r.pA_lower == pytest.approx(expect, rel=1e-12)
    if r.pA_lower < 0.5:
        assert r.prediction == Smooth.ABSTAIN and r.radius == 0.0
        return
    assert r.prediction == 0
    certified = [g for g in grid if cert.threshold(g) < r.pA_lower]
    assert r.radius == (max(certified) if certified else 0.0)
    assert r.radius <= cert.radius(r.pA_lower) + 1e-15


# ----------------------------------------------------------------------------- predict_adaptive
def test_predict_adaptive_decides_fast_and_abstains_on_a_tie():
    """Guards the sequential predict: a clear top class is returned after the first look, a
    50/50 classifier abstains, and the class is the one predict returns."""
    smooth = Smooth(Threshold(0.995), 2, gaussian())
    r = smooth.predict_adaptive(x0(), 100_000, 0.001, 1000, generator=0)
    assert (r.prediction, r.samples, r.reason) == (0, 64, "decided")
    assert smooth.predict(x0(), 1000, 0.001, 1000, generator=0) == 0
    tie = Smooth(Threshold(0.5), 2, gaussian())
    r = tie.predict_adaptive(x0(), 5000, 0.001, 1000, generator=0)
    assert r.prediction == Smooth.ABSTAIN


class ThreeWay(torch.nn.Module):
    """Classes 0 / 1 / 2 with probabilities p0, p1, 1 - p0 - p1 (first noise coordinate)."""

    def __init__(self, p0, p1):
        super().__init__()
        self.c0 = 0.5 + stats.norm.ppf(p0) * SIGMA
        self.c1 = 0.5 + stats.norm.ppf(p0 + p1) * SIGMA

    def forward(self, x):
        t = x.reshape(x.shape[0], -1)[:, 0]
        a = t <= self.c0
        b = (t > self.c0) & (t <= self.c1)
        return torch.stack([a.float(), b.float(), (~a & ~b).float()], dim=1)


def test_predict_adaptive_wrong_class_rate_at_most_alpha():
    """Guards the anytime-valid predict: with the top two classes nearly tied the wrong class is
    returned in at most alpha of the runs, while a fixed-n test re-used at every look is not
    protected (the leader changes)."""
    alpha, seeds = 0.1, 300
    smooth = Smooth(ThreeWay(0.36, 0.34), 3, gaussian())
    wrong = sum(
        smooth.predict_adaptive(x0(), 1500, alpha, 1500, generator=s).prediction
        not in (0, Smooth.ABSTAIN)
        for s in range(seeds)
    )
    assert wrong / seeds <= alpha + 2.5 * math.sqrt(alpha * (1 - alpha) / seeds)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_max": 0}, "n_max"),
        ({"n_max": 1.5}, "n_max"),
        ({"n0": 0}, "n0"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": "x"}, "alpha"),
        ({"batch_size": 0}, "batch_size"),
        ({"radii": [0.5, 0.25]}, "increasing"),
        ({"radii": [0.25, 0.25]}, "increasing"),
        ({"radii": [-0.1, 0.5]}, ">= 0"),
        ({"radii": [float("nan")]}, "finite"),
        ({"radii": [float("inf")]}, "finite"),
        ({"radii": []}, "non-empty"),
        ({"radii": "abc"}, "radii"),
        ({"rtol": 0.0}, "rtol"),
        ({"rtol": -1}, "rtol"),
        ({"rtol": float("nan")}, "rtol"),
    ],
)
def test_bad_input_is_a_one_line_error(kwargs, match):
    """Guards input checking: bad arguments raise a one-line SmoothCertError before sampling."""
    f = Threshold(0.9)
    smooth = Smooth(f, 2, gaussian())
    args = {"n0": 10, "n_max": 100, "alpha": 0.01, "batch_size": 10, **kwargs}
    with pytest.raises(SmoothCertError, match=match) as err:
        smooth.certify_adaptive(x0(), **args)
    assert "\n" not in str(err.value) and f.calls == 0
    if "n_max" in kwargs or "alpha" in kwargs or "batch_size" in kwargs:
        pargs = {k: v for k, v in args.items() if k in ("n_max", "alpha", "batch_size")}
        with pytest.raises(SmoothCertError, match=match):
            smooth.predict_adaptive(x0(), **pargs)
    assert f.calls == 0


def test_fixed_n_certify_never_reuses_the_selection_samples():
    """Guards the separation of selection and estimation in fixed-n certify (a surviving mutant
    seeded the selection with the estimation phase, so that c_A was chosen on the very samples
    that then estimate p_A): no selection input is seen again among the estimation inputs."""
    rec = Recorder()
    smooth = Smooth(rec, 2, gaussian())
    n0, n = 40, 200
    smooth.certify(x0(), n0, n, 0.001, 64, generator=11)
    rows = torch.cat(rec.rows)
    assert rows.shape[0] == n0 + n
    assert not bool((rows[n0:, None, :] == rows[None, :n0, :]).all(-1).any())
