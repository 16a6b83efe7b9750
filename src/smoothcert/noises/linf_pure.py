"""The pure l-infinity family of eq. (10): pi_0(z) ~ ||z||_inf^-k exp(-||z||_inf^2 / (2 sigma^2)).

Exact hierarchical sampler of appendix A.3.1: a = ||z||_inf with a^2/sigma^2 ~ chi^2_{d-k},
s ~ Unif(-1, 1)^d, z = a s / ||s||_inf. Only l-infinity attacks are supported, with
delta* = (r, ..., r) (the reflection argument of Theorem 6 applies to any density that decreases
in every |z_i|).
"""

from __future__ import annotations

from .base import Noise, _linf_stats, check_norm


class LinfPure(Noise):
    name = "linf-pure"
    norms = ("linf",)

    def _sample(self, n, generator, device, dtype):
        import torch

        shape = torch.full((n,), (self.dim - self.k) / 2, dtype=torch.float64, device=device)
        a = self.sigma * torch.sqrt(2 * torch._standard_gamma(shape, generator=generator))
        s = torch.rand(n, self.dim, generator=generator, device=device, dtype=dtype) * 2 - 1
        s = s / s.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        return s * a.to(dtype).unsqueeze(-1)

    def reduce(self, z):
        return _linf_stats(z)

    def log_prob(self, z):
        import torch

        m = z.abs().amax(-1)
        return -self.k * torch.log(m) - m.pow(2) / (2 * self.sigma**2)

    def log_ratio_from_stats(self, stats, radius, norm):
        check_norm(norm)
        self.check_certifiable(norm)
        import torch

        r = float(radius)
        zmax, zmin, m = stats.max_coord, stats.min_coord, stats.linf_norm
        shifted = torch.maximum((zmax - r).abs(), (zmin - r).abs())  # ||z - (r,...,r)||_inf
        out = -(shifted.pow(2) - m.pow(2)) / (2 * self.sigma**2)
        if self.k:
            out = out - self.k * torch.log(shifted / m)
        return out
