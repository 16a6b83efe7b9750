"""Sequential (anytime-valid) estimation for randomized smoothing: time-uniform binomial bounds
and the stopping rules of :meth:`smoothcert.Smooth.certify_adaptive` and
:meth:`smoothcert.Smooth.predict_adaptive`.

Time-uniform bounds
-------------------
A *confidence sequence* at level alpha for the success probability p of i.i.d. Bernoulli draws
is a pair of bounds (L_n, U_n), functions of the first n draws, with

    P_p( exists n in T : L_n > p )  <=  alpha,        P_p( exists n in T : U_n < p )  <=  alpha,

over a set T of sample sizes ("looks"). Because the guarantee holds for all looks at once, it
holds at any random stopping time tau with values in T, whatever rule chose tau (the event
{L_tau > p} is contained in {exists n: L_n > p}). Stopping early, looking at L, U or anything
else, is therefore free; re-using a fixed-n bound at every look is not (tests/test_sequential.py:
a fixed-n Clopper-Pearson bound at level 0.05 re-used at the 19 looks of a schedule exceeds p in
28-31 % of the runs; the union bound 3.0-3.7 %, the mixture 0.4 %).

Two constructions are implemented:

:class:`UnionBoundCP` (the default of the Smooth methods; with a grid, on the grid-aware
schedule of :func:`grid_look_schedule`, see "Grid-aware looks" below)
    One-sided Clopper-Pearson bounds at each look n_1 < ... < n_K of a schedule fixed before
    sampling (:func:`look_schedule`: geometric growth up to the budget n_max), at level alpha_k
    with sum_k alpha_k = alpha. Guarantee: P(exists k: L_{n_k} > p) <= sum_k P(L_{n_k} > p)
    <= sum_k alpha_k = alpha (union bound; each Clopper-Pearson bound is exact-conservative at
    its fixed n). Also valid when the n_k draws are the random-size subsequence of the draws
    that fall in two classes (the test of :meth:`Smooth.predict_adaptive`): given the positions
    of those draws, their labels are i.i.d. Bernoulli, so each look is a Clopper-Pearson bound at
    a fixed (conditioned) size. By default alpha_k = alpha / 2 at the last look n_max and the
    other half is split evenly over the earlier looks (``final_share``).

:class:`BetaBinomialMixture` (Robbins' mixture; needs no budget)
    M_n(p) = int q^S (1 - q)^F dBeta(q; a, b) / (p^S (1 - p)^F) (S successes, F failures out
    of n) is, for the true p, a non-negative martingale with M_0 = 1, so by Ville's inequality
    P(exists n: M_n(p) >= 1/alpha) <= alpha. The confidence set {p : M_n(p) < 1/alpha} is an
    interval (log M_n is convex in p) [L_n, U_n], valid at every n >= 1 simultaneously, both
    sides together at level alpha. Jeffreys prior a = b = 1/2 by default: its width penalty
    (about log(1/alpha) + log(n)/2 + 0.23 in units of n KL(p_hat, p)) does not depend on p,
    where the uniform prior pays log(1/(p(1-p)))/2 more (4.6 at p = 0.9999).

Choice (measured, alpha = 0.001): the price of a bound is n KL(p_hat, L) at its boundary, in
    nats. Fixed-n Clopper-Pearson (not time-uniform): 4.8-6.0. :class:`UnionBoundCP` on the
    default schedule (first look 64, growth 1.5, n_max = 10^5: 20 looks): 8.2-9.6 at the earlier
    looks, 5.4-5.6 at n_max. The Jeffreys mixture: 9.2 at n = 64 growing as log(n)/2 to 12.9 at
    n = 10^5, for p_A from 0.5 to 0.999. The union bound over a known budget is the winner for
    Smooth (which always has a budget n_max): its last look loses little against fixed-N
    Clopper-Pearson (the Gaussian radius cap at N = 10^5 drops from 3.81 sigma to 3.79 sigma),
    and in simulated grid certification (sigma = 0.25, radii 0.25..1, n_max = 10^5) it stopped
    as early as the mixture on a finer schedule or earlier (p_A = 0.99: 2.4k vs 2.9k samples;
    0.9999: 11k vs 14k), and at p_A = 0.999, where fixed N is at the edge of r = 0.75, it kept
    that radius in 40 % of the runs against 2 % for the mixture (fixed N: 52 %). Growth 1.5
    beat 2 by about 10 % of the samples; spending half of alpha at n_max (``final_share``)
    costs 5 % more samples than an even split but keeps the borderline inputs (36-40 % vs
    22-24 % of runs at r = 0.75 above). The mixture stays available for open-ended sampling. A
    betting confidence sequence (Waudby-Smith & Ramdas) was not implemented: for Bernoulli data
    it is a mixture of the same likelihood ratios with the same log(n)/2-type price.

    Independent checks: the mixture's bounds solve the numerically integrated martingale, and
    the union bound matches scipy's exact binomial interval (tests/test_sequential.py). The
    ``confseq`` package (Howard et al.) could not serve as a cross-check: its only release is a
    source distribution that needs Boost headers and pins pybind11 2.6, which does not compile
    on Python 3.11.

Grid-aware looks (the default of ``certify_adaptive`` with a grid; :func:`grid_bound`)
    Theorem (union bound): for any looks n_1 < ... < n_K and levels alpha_k >= 0 with
    sum_k alpha_k <= alpha, all fixed before sampling, and i.i.d. Bernoulli(p) draws,
    P_p(exists k: CP_lower(S_{n_k}, n_k, alpha_k) > p) <= sum_k alpha_k <= alpha. The grid
    thresholds t_j are known before sampling (they depend on the certificate and the grid
    only), so the looks may depend on them: :func:`grid_look_schedule` adds, for each t_j,
    the look n_j = floor(ln a_j / ln t_j) + 1 where all-success draws first certify t_j at that
    look's level a_j (a_top = alpha/2 for the top threshold, alpha/10 split over the others,
    alpha/5 at n_max, the rest over the geometric looks 64, 96, ...; :class:`UnionBoundCP`
    normalises the weights so the levels sum to alpha). An input with p_A ~ 1 then stops
    at the all-success floor ln(2/alpha) / -ln t_m instead of the next geometric look after
    ln(38/alpha) / -ln t_m. The stopping forecast of the grid rule uses a fixed-n
    Clopper-Pearson upper bound at level 0.05 (:data:`DEFAULT_FORECAST_LEVEL`) as the rate: a
    stopping choice only, it gives up grid radii that are unlikely to be reached (each
    certificate still comes from the time-uniform lower bound).

    Measured (scripts/sequential_report.py's binomial simulation of this engine, Cohen et
    al.'s 1,500 published p_A, alpha = 0.001, n_max = 10^5; factor = fixed-N passes / adaptive
    passes, loss = largest drop of certified accuracy at a grid radius against fixed N):
    old default (geometric looks, final_share 1/2, time-uniform forecast) 5.8x, 0.6 points;
    grid looks alone (alpha/2 over the grid looks) 6.5-6.6x, 0.6; forecast level 0.2 alone
    8.4x, 1.0; 0.5 alone 10.7x, 3.2 points; grid looks (top 1/2, others 1/10, final 1/5) with
    forecast 0.05: 9.1-9.3x, 0.6-1.0 (two seeds; the default); with forecast 0.07: 9.1x, 1.0;
    with 0.1: 10.1-10.4x, 1.2 points (over the 1-point target); final share 0.3 and
    forecast 0.1: 9.7x, 1.4. A two-component beta-binomial mixture (Jeffreys + Beta(1, b),
    b = 0.02-0.1, looks x1.1) was too slow to simulate on the workload here (root finding at
    every later look of every input) and was not measured; its price for all-success draws
    (ln(1/alpha) + ln(1/w) + b ln n ~ 8.1 nats at w = 1/2, b = 0.05, n = 3.5e4) is above the
    grid look's ln(2/alpha) = 7.6, so it cannot beat the grid looks on the p_A ~ 1 inputs.

Bounds are rounded toward the safe side: a lower bound is the lower end of a root bracket whose
value is still excluded (never above the exact bound), an upper bound the upper end.

Stopping rules (used by Smooth; any rule keeps the guarantee, see above)
-------------------------------------------------------------------------
- abstention: the upper bound of p_A is below 1/2, or a projected lower bound (below) cannot
  reach 1/2;
- grid radii r_0 < ... < r_m with thresholds t_j = certificate.threshold(r_j) (an upper bound of
  the smallest p_A certifying r_j): the certified index j = max{j : t_j < L}; stop when j is the
  last one or t_{j+1} is ruled out: the *projected* lower bound — the largest lower bound at any
  later look if the remaining draws succeeded at the rate U (the current upper bound), which
  covers "U below t_{j+1}" and "unreachable even if every remaining draw succeeded" — does not
  exceed t_{j+1};
- no grid: stop when the radius at the projected lower bound is at most (1 + rtol) times the
  radius at the current one. The forecast is optimistic (rate U), so the radius given up is
  smaller than rtol: measured (Gaussian sigma = 0.25, alpha = 0.001, n_max = 10^5, 50 seeds),
  rtol = 0.05 (the default) stops at 28k-63k samples with a mean radius 1-2 % below fixed-N
  Clopper-Pearson at 10^5; rtol = 0.1 at 12k-63k samples, 1.5-4 % below; rtol = 0.02 at
  63k-95k, 1 % below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats
from scipy.optimize import elementwise

from .errors import SmoothCertError

#: first look of the default schedule (samples after the class selection)
DEFAULT_FIRST_LOOK = 64
#: growth factor of the default schedule (each look 1.5 times the previous one)
DEFAULT_GROWTH = 1.5
#: share of alpha spent at the last look n_max by :class:`UnionBoundCP` (the rest is split
#: evenly over the earlier looks)
DEFAULT_FINAL_SHARE = 0.5
#: default relative tolerance of the radius when no grid is given
DEFAULT_RTOL = 0.05
#: grid-aware schedule (:func:`grid_look_schedule`): share of alpha at the look where
#: all-success draws first certify the top grid threshold, and split over the looks of the
#: other thresholds
DEFAULT_TOP_SHARE = 0.5
DEFAULT_GRID_SHARE = 0.1
#: share of alpha at n_max in the grid-aware schedule
DEFAULT_GRID_FINAL_SHARE = 0.2
#: level of the fixed-n Clopper-Pearson upper bound that forecasts the success rate in the
#: grid stopping rule (stopping only: it carries no share of alpha, see run_certification)
DEFAULT_FORECAST_LEVEL = 0.05


def _check_alpha(alpha) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise SmoothCertError(f"alpha must be a number in (0, 1), got {alpha!r}") from None
    if not 0.0 < a < 1.0:
        raise SmoothCertError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return a


def _check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SmoothCertError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def look_schedule(
    n_max: int, first: int = DEFAULT_FIRST_LOOK, growth: float = DEFAULT_GROWTH
) -> np.ndarray:
    """The looks n_1 < n_2 < ... < n_K = n_max: ``first``, then each about ``growth`` times the
    previous one (rounded up), then n_max. Fixed before any sampling (it depends on these three
    numbers only), as the union bound of :class:`UnionBoundCP` requires."""
    n_max = _check_int("n_max", n_max)
    first = _check_int("first look", first)
    try:
        g = float(growth)
    except (TypeError, ValueError):
        raise SmoothCertError(f"growth must be a number > 1, got {growth!r}") from None
    if not (math.isfinite(g) and g > 1.0):
        raise SmoothCertError(f"growth must be a finite number > 1, got {growth}")
    looks = []
    n = min(first, n_max)
    while n < n_max:
        looks.append(n)
        n = max(n + 1, math.ceil(n * g))
    looks.append(n_max)
    return np.asarray(looks, dtype=np.int64)


def grid_look_schedule(
    thresholds,
    n_max: int,
    alpha: float,
    first: int = DEFAULT_FIRST_LOOK,
    growth: float = DEFAULT_GROWTH,
    top_share: float = DEFAULT_TOP_SHARE,
    grid_share: float = DEFAULT_GRID_SHARE,
    final_share: float = DEFAULT_GRID_FINAL_SHARE,
):
    """Grid-aware looks and their weights for :class:`UnionBoundCP`: (looks, weights).

    The grid thresholds t_j are known before sampling, so the looks can sit where all-success
    draws first certify them: with level a_j, the Clopper-Pearson lower bound after n
    successes in n draws is a_j^(1/n), which exceeds t_j from n_j = floor(ln a_j / ln t_j) + 1.
    The top threshold's look gets ``top_share`` of alpha, the looks of the other thresholds
    < 1 split ``grid_share``, n_max gets ``final_share`` (plus the share of any n_j >= n_max),
    and the geometric looks of :func:`look_schedule` below n_max split the rest. Looks that
    coincide add their weights. Depends on (thresholds, n_max, alpha and the knobs) only, all
    known before sampling, as the union bound requires."""
    n_max = _check_int("n_max", n_max)
    alpha = _check_alpha(alpha)
    shares = (float(top_share), float(grid_share), float(final_share))
    if not (all(math.isfinite(x) and x >= 0 for x in shares) and shares[2] > 0 and sum(shares) < 1):
        raise SmoothCertError(
            "the shares of the grid schedule must be >= 0 (final > 0) and sum to less than 1"
        )
    t = np.unique(np.asarray(thresholds, dtype=float))
    t = t[(t > 0) & (t < 1)]
    geo = look_schedule(n_max, first, growth)[:-1]
    weight: dict[int, float] = {}
    rest = 1.0 - sum(shares)
    if geo.size == 0:
        shares = (shares[0], shares[1], shares[2] + rest)
    for n in geo.tolist():
        weight[n] = weight.get(n, 0.0) + rest / geo.size
    final = shares[2]
    if t.size == 0:
        final += shares[0] + shares[1]
    for i, tj in enumerate(t.tolist()):
        if i == t.size - 1:
            w = shares[0] + (shares[1] if t.size == 1 else 0.0)
        else:
            w = shares[1] / (t.size - 1)
        if w <= 0:
            continue
        n = math.floor(math.log(alpha * w) / math.log(tj)) + 1
        if n < n_max:
            weight[n] = weight.get(n, 0.0) + w
        else:
            final += w
    weight[n_max] = weight.get(n_max, 0.0) + final
    looks = np.array(sorted(weight), dtype=np.int64)
    return looks, np.array([weight[n] for n in looks.tolist()])


def _as_counts(successes, n):
    s = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(~np.isfinite(s)) or np.any(s < 0) or np.any(s > n) or np.any(n < 1):
        raise SmoothCertError("successes must lie in [0, n] with n >= 1")
    return np.broadcast_arrays(s, n)


def cp_lower(successes, n, alpha):
    """One-sided Clopper-Pearson lower bounds at level ``alpha`` (vectorised; 0 at 0 successes;
    fractional successes allowed for projections)."""
    s, nn = _as_counts(successes, n)
    with np.errstate(invalid="ignore"):
        out = stats.beta.ppf(alpha, np.maximum(s, 1e-300), nn - s + 1)
    return np.where(s <= 0, 0.0, out)


def cp_upper(successes, n, alpha):
    """One-sided Clopper-Pearson upper bounds at level ``alpha`` (vectorised; 1 at n)."""
    s, nn = _as_counts(successes, n)
    with np.errstate(invalid="ignore"):
        out = stats.beta.ppf(1.0 - alpha, s + 1, np.maximum(nn - s, 1e-300))
    return np.where(s >= nn, 1.0, out)


class ConfidenceSequence:
    """Time-uniform lower and upper bounds of a binomial proportion at level ``alpha`` (each
    side fails with probability at most alpha over all looks). ``looks``: the sample sizes at
    which the bounds may be evaluated (None: any)."""

    alpha: float
    looks: np.ndarray | None = None

    def lower(self, successes, n):
        """Lower bounds (vectorised); ``successes`` may be fractional (projections)."""
        raise NotImplementedError

    def upper(self, successes, n):
        """Upper bounds (vectorised)."""
        raise NotImplementedError


class UnionBoundCP(ConfidenceSequence):
    """Clopper-Pearson at each look of a fixed schedule, alpha split over the looks (union
    bound): ``final_share`` of alpha at the last look, the rest evenly over the others."""

    def __init__(self, alpha: float, looks, final_share: float = DEFAULT_FINAL_SHARE, weights=None):
        self.alpha = _check_alpha(alpha)
        looks = np.asarray(looks)
        if (
            looks.ndim != 1
            or looks.size == 0
            or not np.issubdtype(looks.dtype, np.integer)
            or looks[0] < 1
            or np.any(np.diff(looks) <= 0)
        ):
            raise SmoothCertError("looks must be a non-empty increasing sequence of integers >= 1")
        try:
            share = float(final_share)
        except (TypeError, ValueError):
            raise SmoothCertError(
                f"final_share must be a number in (0, 1], got {final_share!r}"
            ) from None
        if not 0.0 < share <= 1.0:
            raise SmoothCertError(f"final_share must lie in (0, 1], got {final_share}")
        self.looks = looks.astype(np.int64)
        k = looks.size
        self.final_share = share
        if weights is not None:
            weights = np.asarray(weights, dtype=float)
            if (
                weights.shape != looks.shape
                or not np.all(np.isfinite(weights))
                or np.any(weights <= 0)
            ):
                raise SmoothCertError("weights must be positive numbers, one per look")
            weights = weights / weights.sum()
            self.final_share = float(weights[-1])
        elif k == 1:
            weights = np.ones(1)
        elif share == 1.0:
            raise SmoothCertError("final_share = 1 leaves nothing for the earlier looks")
        else:
            weights = np.full(k, (1.0 - share) / (k - 1))
            weights[-1] = share
        #: level of the bound at each look (sums to alpha, up to rounding)
        self.alphas = self.alpha * weights

    name = "union-cp"

    def describe(self) -> dict:
        """The bound's identity for a run's config: name, alpha, looks and their levels."""
        return {
            "name": self.name,
            "alpha": self.alpha,
            "looks": self.looks.tolist(),
            "levels": self.alphas.tolist(),
        }

    def level(self, n) -> np.ndarray:
        """alpha_k of the look n_k = n (an error for sizes outside the schedule)."""
        n = np.asarray(n)
        idx = np.searchsorted(self.looks, n)
        ok = (idx < self.looks.size) & (self.looks[np.clip(idx, 0, self.looks.size - 1)] == n)
        if not np.all(ok):
            bad = n[~ok].ravel()[0] if n.ndim else n
            raise SmoothCertError(
                f"{int(bad)} samples is not a look of the schedule: the "
                "union bound covers the scheduled looks only"
            )
        return self.alphas[idx]

    def lower(self, successes, n):
        s, nn = _as_counts(successes, n)
        return cp_lower(s, nn, self.level(np.asarray(nn, dtype=np.int64)))

    def upper(self, successes, n):
        s, nn = _as_counts(successes, n)
        return cp_upper(s, nn, self.level(np.asarray(nn, dtype=np.int64)))


class BetaBinomialMixture(ConfidenceSequence):
    """Robbins' beta-binomial mixture confidence sequence, valid at every n (Ville's
    inequality): [L_n, U_n] = {p : M_n(p) < 1/alpha} with a Beta(a, b) mixing prior."""

    def __init__(self, alpha: float, a: float = 0.5, b: float = 0.5):
        self.alpha = _check_alpha(alpha)
        if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
            raise SmoothCertError(f"the prior parameters must be positive, got {a}, {b}")
        self.a, self.b = float(a), float(b)

    name = "beta-binomial-mixture"

    def describe(self) -> dict:
        """The bound's identity for a run's config: name, alpha and the prior."""
        return {"name": self.name, "alpha": self.alpha, "prior": [self.a, self.b]}

    def log_martingale(self, p, successes, n):
        """log M_n(p) (vectorised)."""
        s, nn = _as_counts(successes, n)
        f = nn - s
        return (
            special.betaln(self.a + s, self.b + f)
            - special.betaln(self.a, self.b)
            - special.xlogy(s, p)
            - special.xlog1py(f, -np.asarray(p, dtype=float))
        )

    def _lower(self, s, f, a, b):
        """Lower end of the interval for s successes and f failures, prior Beta(a, b)."""
        s, f = np.broadcast_arrays(np.asarray(s, dtype=float), np.asarray(f, dtype=float))
        level = math.log(1.0 / self.alpha)
        const = special.betaln(a + s, b + f) - special.betaln(a, b) - level

        def g(p, s, f, const):  # decreasing on (0, s / n]: positive = p excluded
            return const - special.xlogy(s, p) - special.xlog1py(f, -p)

        out = np.zeros(s.shape)
        live = s > 0
        if np.any(live):
            ss, ff, cc = s[live], f[live], const[live]
            lo = np.full(ss.shape, 1e-300)
            hi = ss / (ss + ff)
            glo, ghi = g(lo, ss, ff, cc), g(hi, ss, ff, cc)
            if np.any(glo <= 0) or np.any(ghi >= 0):  # cannot happen for n < 1e100
                raise SmoothCertError("internal error: no bracket for the mixture bound")
            res = elementwise.find_root(g, (lo, hi), args=(ss, ff, cc))
            if not np.all(res.success):
                raise SmoothCertError("internal error: the mixture bound did not converge")
            out[live] = res.bracket[0]  # g > 0 there: excluded, so never above the bound
        return out

    def lower(self, successes, n):
        s, nn = _as_counts(successes, n)
        return self._lower(s, nn - s, self.a, self.b)

    def upper(self, successes, n):
        s, nn = _as_counts(successes, n)
        return 1.0 - self._lower(nn - s, s, self.b, self.a)


def grid_bound(alpha: float, n_max: int, thresholds=None) -> UnionBoundCP:
    """The bound :meth:`smoothcert.Smooth.certify_adaptive` uses: :class:`UnionBoundCP` on
    the grid-aware schedule of :func:`grid_look_schedule` when grid thresholds are given, on
    :func:`look_schedule` (``final_share`` = 1/2) otherwise. Its ``looks`` are the schedule;
    ``describe()`` gives its identity for a run's config."""
    if thresholds is None:
        return UnionBoundCP(alpha, look_schedule(n_max))
    looks, weights = grid_look_schedule(thresholds, n_max, alpha)
    cs = UnionBoundCP(alpha, looks, weights=weights)
    cs.name = "union-cp-grid"
    return cs


# --------------------------------------------------------------------------- stopping rules
@dataclass(frozen=True)
class Look:
    """The state after a look: the bounds and the decision taken."""

    n: int
    successes: int
    lower: float
    upper: float
    reason: str


def projected_lower(cs: ConfidenceSequence, successes: float, n: int, upper: float, later) -> float:
    """The largest lower bound at the ``later`` looks if the draws after the n-th succeeded at
    rate ``upper``: an optimistic forecast (p_A <= upper except with small probability), used
    only to stop. ``upper = 1`` gives the bound if every remaining draw succeeded. With no later
    look, the current lower bound."""
    later = np.asarray(later, dtype=np.int64)
    if later.size == 0:
        return float(cs.lower(successes, n))
    s = np.minimum(successes + upper * (later - n), later)
    return float(np.max(cs.lower(s, later)))


def run_certification(
    cs: ConfidenceSequence,
    looks,
    draw,
    thresholds=None,
    radius=None,
    rtol: float = DEFAULT_RTOL,
    forecast_level: float | None = None,
) -> Look:
    """Sample at the ``looks`` until a stopping rule fires: ``draw(m)`` runs m more draws and
    returns their successes; with ``thresholds`` (non-decreasing, one per grid radius) the grid
    rules, else the ``rtol`` rule on ``radius`` (a function of the lower bound). Returns the
    last :class:`Look`; the caller certifies from its lower bound (valid at any stop).

    ``forecast_level`` (grid rules only): the rate of the projection is the fixed-n
    Clopper-Pearson upper bound at this level instead of the time-uniform upper bound (a less
    optimistic forecast: gives up hopeless grid radii sooner). It only chooses when to stop,
    so it needs no share of alpha."""
    looks = np.asarray(looks, dtype=np.int64)
    s, n = 0, 0
    for k, m in enumerate(looks.tolist()):
        s += int(draw(m - n))
        n = m
        lo, up = float(cs.lower(s, n)), float(cs.upper(s, n))
        later = looks[k + 1 :]
        reason = ""
        rate = up
        if forecast_level is not None and thresholds is not None:
            rate = min(up, float(cp_upper(s, n, forecast_level)))
        if later.size == 0:
            reason = "budget"
        elif rate < 0.5:
            reason = "upper bound below 1/2"
        elif thresholds is not None:
            j = grid_index(thresholds, lo)
            if j == len(thresholds) - 1:
                reason = "largest grid radius certified"
            elif not projected_lower(cs, s, n, rate, later) > thresholds[j + 1]:
                reason = "next grid radius out of reach"
        else:
            proj = projected_lower(cs, s, n, up, later)
            if proj < 0.5:
                reason = "1/2 out of reach"
            elif lo >= 0.5 and radius(proj) <= radius(lo) * (1.0 + rtol):
                reason = "radius converged"
        if reason:
            return Look(n, s, lo, up, reason)
    raise AssertionError("unreachable: the last look always stops")


def grid_thresholds(certificate, radii) -> np.ndarray:
    """t_j = certificate.threshold(r_j) for a checked grid, made safe for a lookup: NaN -> inf
    (never certified) and the running maximum (raising a threshold only certifies less)."""
    t = np.atleast_1d(np.asarray(certificate.threshold(radii), dtype=float))
    t = np.where(np.isnan(t), np.inf, t)
    return np.maximum.accumulate(t)


@dataclass(frozen=True)
class AdaptiveCertificate:
    """Result of :meth:`smoothcert.Smooth.certify_adaptive`.

    :ivar prediction: the class c_A, or ``Smooth.ABSTAIN`` (-1) when pA_lower < 1/2
    :ivar radius: the certified radius (a grid value when a grid was given; 0 on abstention or
        when no grid radius is certified)
    :ivar pA_lower: the time-uniform lower bound of p_A at the stop (what certifies)
    :ivar pA_upper: the upper bound of p_A at the stop (used only to stop)
    :ivar samples: forward passes on this input, the n0 selection samples included
    :ivar reason: why sampling stopped
    """

    prediction: int
    radius: float
    pA_lower: float
    pA_upper: float
    samples: int
    reason: str


@dataclass(frozen=True)
class AdaptivePrediction:
    """Result of :meth:`smoothcert.Smooth.predict_adaptive`: the class or ``Smooth.ABSTAIN``,
    the forward passes spent and why sampling stopped."""

    prediction: int
    samples: int
    reason: str


def grid_index(thresholds: np.ndarray, lower: float) -> int:
    """The largest j with thresholds[j] < lower (thresholds non-decreasing), or -1: the index
    of the largest grid radius the lower bound certifies (strict, as ``Certificate.certifies``)."""
    return int(np.searchsorted(thresholds, lower, side="left")) - 1


def check_radii(radii) -> np.ndarray:
    """A radius grid: finite, >= 0, strictly increasing, non-empty (else SmoothCertError)."""
    try:
        arr = np.asarray(radii, dtype=float)
    except (TypeError, ValueError):
        raise SmoothCertError(f"radii must be a sequence of numbers, got {radii!r}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0:
        raise SmoothCertError("radii must be a non-empty list of numbers")
    if not np.all(np.isfinite(arr)):
        raise SmoothCertError(f"radii must be finite numbers, got {arr[~np.isfinite(arr)][0]}")
    if np.any(arr < 0):
        raise SmoothCertError(f"radii must be >= 0, got {arr[arr < 0][0]}")
    if np.any(np.diff(arr) <= 0):
        raise SmoothCertError("radii must be strictly increasing (sorted, no duplicates)")
    return arr


def check_rtol(rtol) -> float:
    try:
        r = float(rtol)
    except (TypeError, ValueError):
        raise SmoothCertError(f"rtol must be a number > 0, got {rtol!r}") from None
    if not (math.isfinite(r) and r > 0):
        raise SmoothCertError(f"rtol must be a finite number > 0, got {rtol}")
    return r


__all__ = [
    "ConfidenceSequence",
    "UnionBoundCP",
    "BetaBinomialMixture",
    "look_schedule",
    "projected_lower",
    "run_certification",
    "grid_index",
    "grid_thresholds",
    "cp_lower",
    "cp_upper",
    "AdaptiveCertificate",
    "AdaptivePrediction",
    "Look",
    "check_radii",
    "check_rtol",
    "DEFAULT_FIRST_LOOK",
    "DEFAULT_GROWTH",
    "DEFAULT_FINAL_SHARE",
    "DEFAULT_RTOL",
    "grid_look_schedule",
    "grid_bound",
    "DEFAULT_TOP_SHARE",
    "DEFAULT_GRID_SHARE",
    "DEFAULT_GRID_FINAL_SHARE",
    "DEFAULT_FORECAST_LEVEL",
]
