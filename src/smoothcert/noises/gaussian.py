"""Isotropic Gaussian noise N(0, sigma^2 I), the noise of Cohen et al. (2019)."""

from __future__ import annotations

import math

from ..errors import SmoothCertError
from .base import Noise, NoiseStats, check_norm


class Gaussian(Noise):
    name = "gaussian"
    certificate_engine = "closed-form"

    def __init__(self, dim: int, sigma: float, k: float = 0.0):
        super().__init__(dim, sigma, k)
        if self.k != 0:
            raise SmoothCertError("the gaussian noise has no shape parameter: leave k at 0")

    def _sample(self, n, generator, device, dtype):
        import torch

        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=dtype)
        return z.mul_(self.sigma)

    def log_prob(self, z):
        return -z.pow(2).sum(-1) / (2 * self.sigma**2)

    def sample_stats(self, n, generator=None, device=None):
        """Exact joint law of (z_1, sum z_i, ||z||_2) without drawing (n, d) arrays."""
        import torch

        device = (
            torch.device(device)
            if device is not None
            else (generator.device if generator is not None else torch.device("cpu"))
        )
        f64 = torch.float64
        z1 = torch.randn(n, generator=generator, device=device, dtype=f64)
        w = torch.randn(n, generator=generator, device=device, dtype=f64)
        rest_sum = w * math.sqrt(self.dim - 1)
        # sum of squares of z_2..z_d = (their sum)^2 / (d-1) + an independent chi^2_{d-2}
        rest_sq = w * w if self.dim > 1 else torch.zeros(n, dtype=f64, device=device)
        if self.dim > 2:
            rest_sq = rest_sq + 2 * torch._standard_gamma(
                torch.full((n,), (self.dim - 2) / 2, dtype=f64, device=device), generator=generator
            )
        s = self.sigma
        return NoiseStats(
            coord_sum=s * (z1 + rest_sum),
            l2_norm=s * torch.sqrt(z1**2 + rest_sq),
            first_coord=s * z1,
        )

    def log_ratio_from_stats(self, stats, radius, norm):
        check_norm(norm)
        r = float(radius)
        if norm == "l2":  # delta* = (r, 0, ..., 0)
            return (2 * r * stats.first_coord - r * r) / (2 * self.sigma**2)
        # delta* = (r, ..., r) (Theorem 3: same law as the l2 case at sqrt(d) r)
        return (2 * r * stats.coord_sum - self.dim * r * r) / (2 * self.sigma**2)
