"""The l2 family of eq. (8): pi_0(z) ~ ||z||_2^-k exp(-||z||_2^2 / (2 sigma^2)).

Exact sampler: ||z||_2^2 / sigma^2 ~ chi^2_{d-k} (Lemma 2) times a uniform direction.
Against l2 attacks delta* = (r, 0, ..., 0) (Theorem 2); against l-infinity attacks the
certificate is the l2 one at radius sqrt(d) r (Theorem 3).
"""

from __future__ import annotations

import math

from .base import Noise, NoiseStats, check_norm


class L2Family(Noise):
    name = "l2-family"

    @property
    def certificate_engine(self) -> str:
        """Exact quadrature; at k = 0 the family is the Gaussian: Cohen's closed form."""
        return "closed-form" if self.k == 0 else "quadrature"

    def _radius(self, n, generator, device):
        import torch

        shape = torch.full((n,), (self.dim - self.k) / 2, dtype=torch.float64, device=device)
        return self.sigma * torch.sqrt(2 * torch._standard_gamma(shape, generator=generator))

    def _sample(self, n, generator, device, dtype):
        import torch

        g = torch.randn(n, self.dim, generator=generator, device=device, dtype=dtype)
        # uniform direction g / ||g|| times the chi_{d-k} radius, in place
        scale = self._radius(n, generator, device).to(dtype) / g.norm(dim=-1).clamp_min(
            torch.finfo(dtype).tiny
        )
        return g.mul_(scale.unsqueeze(-1))

    def log_prob(self, z):
        import torch

        r = z.norm(dim=-1)
        return -self.k * torch.log(r) - r.pow(2) / (2 * self.sigma**2)

    def sample_stats(self, n, generator=None, device=None):
        """Exact joint law of (||z||_2, z_1): the radius is a scaled chi_{d-k} and, independently,
        the cosine u = z_1/||z|| satisfies (1+u)/2 ~ Beta((d-1)/2, (d-1)/2) (u = +-1 for d = 1)."""
        import torch

        device = (
            torch.device(device)
            if device is not None
            else (generator.device if generator is not None else torch.device("cpu"))
        )
        f64 = torch.float64
        rho = self._radius(n, generator, device)
        if self.dim == 1:
            u = torch.where(
                torch.rand(n, generator=generator, device=device, dtype=f64) < 0.5, -1.0, 1.0
            ).to(f64)
        else:
            a = torch.full((n,), (self.dim - 1) / 2, dtype=f64, device=device)
            x = torch._standard_gamma(a, generator=generator)
            y = torch._standard_gamma(a, generator=generator)
            u = (x - y) / (x + y)
        return NoiseStats(l2_norm=rho, first_coord=rho * u)

    def log_ratio_from_stats(self, stats, radius, norm):
        check_norm(norm)
        r = float(radius) * (1.0 if norm == "l2" else math.sqrt(self.dim))
        rho, z1 = stats.l2_norm, stats.first_coord
        # ||z - delta||^2 - ||z||^2 with delta = (r, 0, ..., 0)
        diff = r * r - 2 * r * z1
        out = -diff / (2 * self.sigma**2)
        if self.k:
            import torch

            out = out - 0.5 * self.k * torch.log1p(diff / rho.pow(2))
        return out
