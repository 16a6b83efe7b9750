"""Monte Carlo certificates for noises without a closed form (the l-infinity families).

All bounds work on samples ell_i = log(pi_delta*/pi_0)(z_i), z_i ~ pi_0 i.i.d., at the worst-case
delta* of Theorems 2/5 (see :meth:`smoothcert.noises.Noise.log_ratio_from_stats`).

Two ways to turn samples into a rigorous lower bound of V(p, r) = max_lambda lambda p - D(lambda):

* **DKW (default, used for the cached tables).** With probability >= 1 - beta the empirical CDF
  of ell is uniformly within eps = sqrt(log(2/beta) / (2N)) of the true CDF G (Dvoretzky-Kiefer-
  Wolfowitz with Massart's constant). On that event, for every p at once,
  V(p, r) >= 1 - eps - G_hat(-ell_(ceil(N (p - eps)))), and V(p, r) > 1/2 holds whenever
  p > p_hat*(r) := G_hat(-ell_(j)) + eps with j = ceil(N (1/2 - eps)) — the sample version of the
  exact threshold p*(r) = G(-median). This is the optimal lambda (a quantile of the likelihood
  ratio), so no grid over lambda is needed and the bound holds uniformly in lambda and p.
* **Hoeffding / McDiarmid (Theorem 7), Algorithms 1 and 2 of the paper.** For a fixed lambda,
  D(lambda) <= D_hat + lambda sqrt(log(1/beta) / (2N)) with probability >= 1 - beta.
  Algorithm 1 takes a grid of lambdas (union bound over the grid); Algorithm 2 picks lambda on
  pilot samples and bounds with fresh ones; ``lambda_rule="quantile"`` picks the optimal
  lambda = exp(c_p) from the pilot instead of a grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is not needed by the DKW bounds (fast start-up of the CLI)
    import torch


def dkw_epsilon(n: int, beta: float) -> float:
    """Half-width of the two-sided DKW band that holds with probability >= 1 - beta."""
    return math.sqrt(math.log(2.0 / beta) / (2.0 * n))


def dkw_threshold(ell: np.ndarray, beta: float) -> float:
    """Upper bound p_hat*(r) (valid with probability >= 1 - beta) of the smallest p_A that
    certifies the radius at which the log-ratio samples ``ell`` were drawn. Returns a value > 1
    when the samples cannot certify that radius at all."""
    n = ell.size
    eps = dkw_epsilon(n, beta)
    j = math.ceil(n * (0.5 - eps))
    if j < 1:
        return math.inf
    ell_j = np.partition(ell, j - 1)[j - 1]
    return float(np.count_nonzero(ell <= -ell_j)) / n + eps



def dkw_thresholds(ell: np.ndarray, beta: float) -> np.ndarray:
    """:func:`dkw_threshold` of each row of ``ell`` (a 2-D array, overwritten: each row is
    partitioned in place), bit for bit: one selection and one count over all the rows."""
    n = ell.shape[1]
    eps = dkw_epsilon(n, beta)
    j = math.ceil(n * (0.5 - eps))
    if j < 1:
        return np.full(ell.shape[0], math.inf)
    ell.partition(j - 1, axis=1)  # the count below does not depend on the order within a row
    ell_j = ell[:, j - 1].copy()
    return np.count_nonzero(ell <= -ell_j[:, None], axis=1) / n + eps


def dkw_value(ell: np.ndarray, p: float, beta: float) -> float:
    """Lower bound of V(p, r) valid (with probability >= 1 - beta) simultaneously for all p."""
    n = ell.size
    eps = dkw_epsilon(n, beta)
    i = math.ceil(n * (p - eps))
    if i < 1:
        return 0.0
    c = np.partition(ell, i - 1)[i - 1]
    return max(0.0, 1.0 - eps - np.count_nonzero(ell <= -c) / n)


def distance_estimate(ell: np.ndarray, lam: float) -> float:
    """D_hat(lambda) = mean((lambda - exp(ell))_+), the Monte Carlo estimate of
    D_{F[0,1]}(lambda pi_0 || pi_delta) (section 4.1)."""
    return float(np.mean(np.maximum(lam - np.exp(np.minimum(ell, 700.0)), 0.0)))


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


def algorithm2(pilot: np.ndarray, fresh: np.ndarray, p: float, beta: float,
               lambdas=None, lambda_rule: str = "grid") -> AlgorithmResult:
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


def log_ratio_samples(noise, radii, norm: str, n: int, generator: torch.Generator,
                      device=None, chunk: int = 1 << 16, progress=None) -> np.ndarray:
    """ell samples at each radius: an array (len(radii), n), sharing the same z samples.

    Memory stays bounded: z is drawn ``chunk`` rows at a time and reduced to a few statistics."""
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    out = np.empty((radii.size, n))
    done = 0
    while done < n:
        m = min(chunk, n - done)
        stats = noise.sample_stats(m, generator=generator, device=device)
        for i, r in enumerate(radii):
            out[i, done:done + m] = noise.log_ratio_from_stats(stats, r, norm).cpu().numpy()
        done += m
        if progress is not None:
            progress(m)
    return out
