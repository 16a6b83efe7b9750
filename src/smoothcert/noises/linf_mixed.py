"""The mixed-norm l-infinity family of eq. (9):
pi_0(z) ~ ||z||_inf^-k exp(-||z||_2^2 / (2 sigma^2)).

Exact sampler, no rejection in d dimensions:

1. m = ||z||_inf has the 1-D density  m^-k phi(m/sigma) (2 Phi(m/sigma) - 1)^(d-1).
   In t = log(m / sigma) its log density  (1-k) t - e^{2t}/2 + (d-1) log erf(e^t/sqrt 2)  is
   concave (checked in the tests), so a piecewise-constant envelope on a fine grid (the larger
   end value in each bin, the mode in the mode's bin) and exponential tangent tails bound it
   from above: exact 1-D rejection sampling with acceptance close to 1, vectorised.
2. Given m, one coordinate chosen uniformly is +-m and the other d-1 are independent
   N(0, sigma^2) truncated to [-m, m]: |z_i| = sqrt(2) sigma erfinv(U erf(m / (sqrt(2) sigma))).

Only l-infinity attacks are supported, with delta* = (r, ..., r) (Theorem 5).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special  # scipy.optimize where used: fast start-up

from .base import Noise, _linf_stats, check_norm

_SQRT2 = math.sqrt(2.0)


_LOG_2_OVER_SQRT_PI, _LOG_2 = math.log(2 / math.sqrt(math.pi)), math.log(2)


def _log_density_t(t, d, k):
    """Unnormalised log density of t = log(m/sigma), float64: a numpy array (the envelope) or a
    torch tensor (the sampler's acceptance test), with the same formula."""
    if isinstance(t, np.ndarray):
        exp, log, erf, where = np.exp, np.log, special.erf, np.where
    else:
        import torch

        exp, log, erf, where = torch.exp, torch.log, torch.special.erf, torch.where
    x = exp(t) / _SQRT2
    # log erf(x), accurate for tiny x (erf(x) ~ 2x/sqrt(pi))
    small = x < 1e-8
    with np.errstate(divide="ignore"):
        log_erf = where(
            small, _LOG_2_OVER_SQRT_PI + t - 0.5 * _LOG_2, log(erf(where(small, 1.0, x)))
        )
    return (1 - k) * t - exp(2 * t) / 2 + (d - 1) * log_erf


def _dlog_density_t(t, d, k):
    """Derivative in t of :func:`_log_density_t` (exact, for the tangent tails)."""
    x = np.exp(t) / _SQRT2
    small = x < 1e-6
    xs = np.where(small, 1.0, x)
    h = np.where(
        small, 1 - 2 * x**2 / 3, 2 * xs * np.exp(-(xs**2)) / (math.sqrt(math.pi) * special.erf(xs))
    )
    return (1 - k) - np.exp(2 * t) + (d - 1) * h


class _MaxNormSampler:
    """Exact sampler of t = log(||z||_inf / sigma) by rejection from a piecewise envelope."""

    def __init__(self, d: int, k: float, bins: int = 4096, drop: float = 40.0):
        from scipy import optimize

        self.d, self.k = d, k
        f = lambda t: _log_density_t(np.asarray(t, dtype=np.float64), d, k)  # noqa: E731
        df = lambda t: _dlog_density_t(np.asarray(t, dtype=np.float64), d, k)  # noqa: E731
        # the mode: df is decreasing (concavity); bracket it
        lo, hi = -1.0, 1.0
        while df(lo) <= 0:
            lo -= 2 * abs(lo) + 1
        while df(hi) >= 0:
            hi += 1.0
        mode = optimize.brentq(df, lo, hi, xtol=1e-14)
        fmax = float(f(mode))
        # grid ends where the log density has dropped by `drop` (monotone on each side)
        left = mode - 1.0
        while f(left) > fmax - drop:
            left = mode - 2 * (mode - left)
        t_lo = optimize.brentq(lambda t: f(t) - (fmax - drop), left, mode)
        right = mode + 1.0
        while f(right) > fmax - drop:
            right = mode + 2 * (right - mode)
        t_hi = optimize.brentq(lambda t: f(t) - (fmax - drop), mode, right)
        grid = np.linspace(t_lo, t_hi, bins + 1)
        grid = np.unique(np.concatenate([grid, [mode]]))
        logf = f(grid) - fmax
        env = np.maximum(logf[:-1], logf[1:])  # bins not containing the mode: larger end value
        # the mode is a grid point, so the bins beside it are covered by their end values
        widths = np.diff(grid)
        s_lo, s_hi = float(df(t_lo)), float(df(t_hi))
        mass = np.concatenate(
            [[math.exp(logf[0]) / s_lo], np.exp(env) * widths, [math.exp(logf[-1]) / -s_hi]]
        )
        import torch

        self.grid = torch.as_tensor(grid)
        self.env = torch.as_tensor(env)
        # the log density is monotone on every bin (the mode is a grid point), so the smaller
        # end value bounds it from below: a squeeze that accepts most draws without evaluating it
        self.squeeze = torch.as_tensor(np.minimum(logf[:-1], logf[1:]) - env)
        self.cum = torch.as_tensor(np.cumsum(mass) / mass.sum())
        self.s_lo, self.s_hi, self.fmax = s_lo, s_hi, fmax
        self.logf_ends = (float(logf[0]), float(logf[-1]))
        self._dev = {}

    def _on(self, device):
        key = str(device)
        if key not in self._dev:
            self._dev[key] = (
                self.grid.to(device),
                self.env.to(device),
                self.cum.to(device),
                self.squeeze.to(device),
            )
        return self._dev[key]

    def _logf(self, t):
        return _log_density_t(t, self.d, self.k) - self.fmax

    def sample(self, n, generator, device):
        import torch

        grid, env, cum, squeeze = self._on(device)
        nbins = env.numel()
        out, have = [], 0
        while have < n:
            m = int((n - have) * 1.05) + 16
            u = torch.rand(3, m, generator=generator, device=device, dtype=torch.float64)
            piece = torch.searchsorted(cum, u[0].contiguous(), right=True).clamp_(max=nbins + 1)
            b = (piece - 1).clamp_(0, nbins - 1)
            t = grid[b] + u[1] * (grid[b + 1] - grid[b])
            logenv = env[b]
            log_u = torch.log(u[2])
            # most draws are accepted by the squeeze; the density is evaluated for the others
            # (and for the rare draws of the tails, whose squeeze is off)
            tails = (piece == 0) | (piece == nbins + 1)
            sq = torch.where(tails, -math.inf, squeeze[b])
            if tails.any():
                # exponential tails, tangent lines of the concave log density
                e = -torch.log1p(-u[1])  # Exp(1)
                lo, hi = piece == 0, piece == nbins + 1
                t = torch.where(lo, grid[0] - e / self.s_lo, t)
                t = torch.where(hi, grid[-1] + e / -self.s_hi, t)
                logenv = torch.where(lo, self.logf_ends[0] + (t - grid[0]) * self.s_lo, logenv)
                logenv = torch.where(hi, self.logf_ends[1] + (t - grid[-1]) * self.s_hi, logenv)
            accept = log_u <= sq
            check = (~accept).nonzero().squeeze(-1)
            accept[check] = log_u[check] <= self._logf(t[check]) - logenv[check]
            acc = t[accept]
            out.append(acc)
            have += acc.numel()
        if not out:  # n = 0
            return torch.empty(0, dtype=torch.float64, device=device)
        return torch.cat(out)[:n]


class LinfMixed(Noise):
    name = "linf-mixed"
    norms = ("linf",)

    def __init__(self, dim: int, sigma: float, k: float = 0.0):
        super().__init__(dim, sigma, k)
        self._max_sampler = None

    def _sample_max_norm(self, n, generator, device):
        import torch

        if self._max_sampler is None:
            self._max_sampler = _MaxNormSampler(self.dim, self.k)
        return self.sigma * torch.exp(self._max_sampler.sample(n, generator, device))

    def _sample(self, n, generator, device, dtype):
        import torch

        m = self._sample_max_norm(n, generator, device)  # float64 (n,)
        # erfinv is odd: V ~ Unif(-1, 1) gives signed truncated normals in one pass each
        z = torch.empty(n, self.dim, device=device, dtype=dtype)
        z.uniform_(-1, 1, generator=generator)
        z.mul_(torch.special.erf(m / (_SQRT2 * self.sigma)).to(dtype).unsqueeze(-1))
        torch.special.erfinv(z, out=z)
        z.mul_(_SQRT2 * self.sigma)
        mm = m.to(dtype).unsqueeze(-1)
        z.clamp_(min=-mm, max=mm)  # float rounding only; exact arithmetic never leaves [-m, m]
        j = torch.randint(self.dim, (n,), generator=generator, device=device)
        sign = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
        z[torch.arange(n, device=device), j] = (sign.to(torch.float64) * m).to(dtype)
        return z

    def reduce(self, z):
        return _linf_stats(z)

    def log_prob(self, z):
        import torch

        m = z.abs().amax(-1)
        return -self.k * torch.log(m) - z.pow(2).sum(-1) / (2 * self.sigma**2)

    def log_ratio_from_stats(self, stats, radius, norm):
        check_norm(norm)
        self.check_certifiable(norm)
        r = float(radius)
        zmax, zmin, m, s = stats.max_coord, stats.min_coord, stats.linf_norm, stats.coord_sum
        out = -(self.dim * r * r - 2 * r * s) / (2 * self.sigma**2)
        if self.k:
            import torch

            shifted = torch.maximum((zmax - r).abs(), (zmin - r).abs())
            out = out - self.k * torch.log(shifted / m)
        return out
