"""The contract every smoothing noise follows (modelled on ``torch.distributions``).

A noise is an isotropic-in-shape distribution pi_0 on R^d with a scale ``sigma`` and a shape
exponent ``k``. It offers

- ``sample(n, generator=None, device=None)``: an exact sample, a ``(n, d)`` float32 tensor;
- ``log_prob(z)``: the *unnormalised* log density log pi_0(z), shape ``(n,)``;
- ``log_ratio(z, delta)``: log pi_0(z - delta) - log pi_0(z), the log likelihood ratio
  log(pi_delta / pi_0)(z) that enters the certificate;
- ``worst_case_delta(radius, norm)``: the perturbation delta* of Theorems 2, 3 and 5 at which the
  distance term max_delta D(lambda pi_0 || pi_delta) is attained;
- ``sample_stats`` / ``log_ratio_from_stats``: the few scalars of a sample z (a
  :class:`NoiseStats`) on which
  log_ratio(z, delta*(r)) depends, so that certificates for many radii are computed without
  keeping (n, d) arrays. ``log_ratio_from_stats(reduce(z), r, norm)`` equals
  ``log_ratio(z, worst_case_delta(r, norm))``.

Every family is scale-homogeneous: z ~ pi_0(sigma) iff z / sigma ~ pi_0(1). Certificates are
therefore computed once at sigma = 1 and scaled (radius(p; sigma) = sigma * radius(p; 1)).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import SmoothCertError

if TYPE_CHECKING:  # torch itself is imported where a tensor is made: fast start-up
    import torch

NORMS = ("l2", "linf")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise SmoothCertError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    return norm


#: coordinates drawn at once by the default :meth:`Noise.sample_stats`
STATS_CHUNK_VALUES = 1 << 24

#: admissible noise scales (sigma, sigma0)
SCALE_RANGE = (1e-30, 1e30)


def _check_positive_finite(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise SmoothCertError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SmoothCertError(f"{name} must be a finite number > 0, got {value}")
    if not SCALE_RANGE[0] <= value <= SCALE_RANGE[1]:
        # far beyond any pixel scale; outside it float32 noise and scaled radii over/underflow
        raise SmoothCertError(
            f"{name} must lie in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}], got {value:g}"
        )
    return value


def _check_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int,)) and not (hasattr(dim, "__index__")):
        raise SmoothCertError(f"dimension must be an integer >= 1, got {dim!r}")
    dim = int(dim)
    if dim < 1:
        raise SmoothCertError(f"dimension must be an integer >= 1, got {dim}")
    return dim


_STAT_FIELDS = ("max_coord", "min_coord", "linf_norm", "coord_sum", "l2_norm", "first_coord")


@dataclass(frozen=True)
class NoiseStats:
    """The statistics of samples z on which the worst-case log ratio depends: float64 tensors
    of the batch shape (``(n,)`` for n samples), None where a family neither needs nor draws
    them. ``stats[i:j]`` selects samples, :meth:`cat` joins chunks."""

    max_coord: torch.Tensor | None = None  #: max_i z_i
    min_coord: torch.Tensor | None = None  #: min_i z_i
    linf_norm: torch.Tensor | None = None  #: ||z||_inf
    coord_sum: torch.Tensor | None = None  #: sum_i z_i
    l2_norm: torch.Tensor | None = None  #: ||z||_2
    first_coord: torch.Tensor | None = None  #: z_1

    def _present(self) -> list[torch.Tensor]:
        return [v for v in (getattr(self, f) for f in _STAT_FIELDS) if v is not None]

    def __len__(self) -> int:
        present = self._present()
        return int(present[0].shape[0]) if present else 0

    def __getitem__(self, idx) -> NoiseStats:
        return NoiseStats(
            **{f: None if getattr(self, f) is None else getattr(self, f)[idx] for f in _STAT_FIELDS}
        )

    @property
    def device(self) -> torch.device:
        return self._present()[0].device

    @staticmethod
    def cat(parts: list[NoiseStats]) -> NoiseStats:
        """The statistics of the samples of ``parts``, in order (the fields of the first)."""
        import torch

        return NoiseStats(
            **{
                f: None
                if getattr(parts[0], f) is None
                else torch.cat([getattr(p, f) for p in parts])
                for f in _STAT_FIELDS
            }
        )


def _linf_stats(z: torch.Tensor) -> NoiseStats:
    """max z_i, min z_i, ||z||_inf, sum z_i and z_1 in float64, one pass per statistic."""
    import torch

    zmax, zmin = z.amax(-1).to(torch.float64), z.amin(-1).to(torch.float64)
    return NoiseStats(
        max_coord=zmax,
        min_coord=zmin,
        linf_norm=torch.maximum(zmax, -zmin),
        coord_sum=z.sum(-1, dtype=torch.float64),
        first_coord=z[..., 0].to(torch.float64),
    )


class Noise(ABC):
    """Base class of the smoothing noises. Subclasses set ``name`` and implement the sampler."""

    name: str = "noise"
    #: threat models whose worst-case perturbation is known for this family
    norms: tuple[str, ...] = NORMS
    #: the certificate engine of this family, a key of ``smoothcert.certificates.ENGINES`` (a
    #: name, so that noises never import the certificates): the Monte Carlo table works for any
    #: family with ``sample_stats`` and ``log_ratio_from_stats``
    certificate_engine: str = "monte-carlo"

    def __init__(self, dim: int, sigma: float, k: float = 0.0):
        self.dim = _check_dim(dim)
        self.sigma = _check_positive_finite("sigma", sigma)
        try:
            k = float(k)
        except (TypeError, ValueError):
            raise SmoothCertError(f"k must be a number, got {k!r}") from None
        if not math.isfinite(k) or k < 0:
            raise SmoothCertError(f"k must be a finite number >= 0, got {k}")
        if k >= self.dim:
            raise SmoothCertError(
                f"k must be < d for the density to normalise, got k={k:g} with d={self.dim}"
            )
        self.k = k

    # ----------------------------------------------------------------- description
    def params(self) -> dict:
        """All parameters that define the distribution (used in cache keys and result files)."""
        return {"noise": self.name, "dim": self.dim, "k": self.k, "sigma": self.sigma}

    def with_sigma(self, sigma: float) -> Noise:
        return type(self)(self.dim, sigma=sigma, k=self.k)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, k={self.k:g}, sigma={self.sigma:g})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Noise) and self.params() == other.params()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.params().items())))

    # ----------------------------------------------------------------- sampling
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device=None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` exact samples, a ``(n, dim)`` tensor on ``device`` (``dtype`` float32 by
        default)."""
        import torch

        dtype = torch.float32 if dtype is None else dtype
        n = int(n)
        if n < 0:
            raise SmoothCertError(f"number of samples must be >= 0, got {n}")
        device = (
            torch.device(device)
            if device is not None
            else (generator.device if generator is not None else torch.device("cpu"))
        )
        return self._sample(n, generator, device, dtype)

    @abstractmethod
    def _sample(self, n: int, generator, device, dtype) -> torch.Tensor: ...

    # ----------------------------------------------------------------- densities
    @abstractmethod
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised log density of each row of ``z`` (shape ``(..., dim)``)."""

    def log_ratio(self, z: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """log pi_0(z - delta) - log pi_0(z), the log of (pi_delta / pi_0)(z)."""
        import torch

        delta = torch.as_tensor(delta, dtype=z.dtype, device=z.device)
        return self.log_prob(z - delta) - self.log_prob(z)

    # ----------------------------------------------------------------- worst case
    def check_certifiable(self, norm: str) -> None:
        check_norm(norm)
        if norm not in self.norms:
            raise SmoothCertError(
                f"no worst-case perturbation is known for the {self.name} noise against {norm} "
                f"attacks; use one of: {', '.join(self.norms)}"
            )

    def worst_case_delta(self, radius: float, norm: str) -> torch.Tensor:
        """delta* of Theorems 2/3/5: (r, 0, ..., 0) for l2 and (r, ..., r) for l-infinity."""
        import torch

        self.check_certifiable(norm)
        delta = torch.zeros(self.dim, dtype=torch.float64)
        if norm == "l2":
            delta[0] = radius
        else:
            delta[:] = radius
        return delta

    def reduce(self, z: torch.Tensor) -> NoiseStats:
        """The statistics of ``z`` on which the worst-case log ratio depends (every field;
        families whose log ratio needs fewer may fill fewer)."""
        import torch

        return replace(_linf_stats(z), l2_norm=z.square().sum(-1, dtype=torch.float64).sqrt())

    def sample_stats(
        self, n: int, generator: torch.Generator | None = None, device=None
    ) -> NoiseStats:
        """``reduce(sample(n))`` in chunks of about :data:`STATS_CHUNK_VALUES` coordinates
        (bounded memory; float64, on ``device``). Families with an exact law of the statistics
        draw them directly."""
        chunk = max(1, min(n, STATS_CHUNK_VALUES // self.dim))
        parts = [
            self.reduce(self.sample(min(chunk, n - i), generator, device))
            for i in range(0, n, chunk)
        ]
        return NoiseStats.cat(parts) if parts else self.reduce(self.sample(0, generator, device))

    @abstractmethod
    def log_ratio_from_stats(self, stats: NoiseStats, radius: float, norm: str) -> torch.Tensor:
        """log(pi_delta*/pi_0) for each row of ``stats`` at the worst-case delta of ``radius``."""


def matched_sigma(sigma0: float, dim: int, k: float) -> float:
    """The paper's sigma-matching rule (section 5): sigma = sqrt((d-1)/(d-1-k)) * sigma0,
    so that the noise has the radius scale of N(0, sigma0^2 I)."""
    sigma0 = _check_positive_finite("sigma0", sigma0)
    dim = _check_dim(dim)
    if k < 0 or k >= dim - 1 and k > 0:
        raise SmoothCertError(f"sigma matching needs 0 <= k < d-1, got k={k:g} with d={dim}")
    if dim == 1:
        return sigma0
    return math.sqrt((dim - 1) / (dim - 1 - k)) * sigma0
