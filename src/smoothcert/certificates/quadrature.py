"""The l2 family's certificate table: thresholds from the exact 1-D quadrature of
:mod:`.exact_l2` (roots of ell in d = 1) on a radius grid, with a numerical margin."""

from __future__ import annotations

import functools
import math

import numpy as np

from ..noises import Noise
from .base import ENGINE_VERSION
from .cache import cached_table, check_quadrature_table
from .exact_l2 import L2FamilyLine, L2FamilyQuadrature
from .table import TableCertificate


@functools.lru_cache(maxsize=32)
def l2_engine(dim: int, k: float):
    """The exact engine of the l2 family at sigma = 1 (shared: it holds the quadrature rule)."""
    return L2FamilyLine(k) if dim == 1 else L2FamilyQuadrature(dim, k)


def quadrature_table(dim: int, k: float, n_radii: int = 1024):
    """Thresholds of the l2 family (sigma = 1) on a radius grid, with a numerical margin."""
    fine = l2_engine(dim, k)
    if dim == 1:  # roots to machine precision: fine and coarse are the same exact engine
        coarse = fine
    else:
        coarse = L2FamilyQuadrature(dim, k, panels=32 if dim > 8 else 64, order=16)

    # radius range: up to where p*(r) exceeds 1 - 1e-12 (a power of 2, below 1 when k ~ d)
    def saturated(r):
        t = fine.threshold(np.array([r]))[0]
        return not t < 1 - 1e-12  # NaN counts as saturated: never certify on a failed value

    hi = 1.0
    while not saturated(hi) and hi < 1e4:
        hi *= 2
    while saturated(hi / 2) and hi > 1e-8:
        hi /= 2
    dense = np.linspace(0.0, min(hi, 6.0), n_radii)
    radii = np.unique(np.concatenate([dense, np.linspace(dense[-1], hi, 65)]))
    thresholds = coarse.threshold(radii)
    # error estimates: coarse (the table) against fine, and fine (the exact refinement) against
    # a finer rule, each on a subset of the radii, times a safety factor of 10
    check = radii[1 :: max(1, radii.size // 32)]
    fine_t = fine.threshold(check)
    margin = 10 * float(np.max(np.abs(fine_t - coarse.threshold(check))))
    if dim == 1:
        fine_margin = 0.0
    else:
        finer = L2FamilyQuadrature(dim, k, panels=128, order=32)
        few = slice(None, None, 4)
        fine_margin = 10 * float(np.max(np.abs(finer.threshold(check[few]) - fine_t[few])))
    floor = 1e-10 if dim == 1 else 1e-12
    margin, fine_margin = margin + floor, fine_margin + floor
    info = {"numerical_margin": margin, "exact_margin": fine_margin}
    return radii, np.minimum(thresholds + margin, 1.0 + margin), info


def quadrature_certificate(
    noise: Noise, norm: str, *, cache: bool = True, **_options
) -> TableCertificate:
    """The ``"quadrature"`` engine: the l2 family's table (cached), refined exactly on demand;
    l-inf radii are the l2 ones at sqrt(d) r (Theorem 3). Monte Carlo options are ignored."""
    unit_scale = 1.0 / math.sqrt(noise.dim) if norm == "linf" else 1.0
    key = {"engine": ENGINE_VERSION, "kind": "quadrature", "dim": noise.dim, "k": noise.k}
    radii, thr, info = cached_table(
        key,
        lambda: quadrature_table(noise.dim, noise.k),
        use_cache=cache,
        check=check_quadrature_table(l2_engine(noise.dim, noise.k)),
    )
    return TableCertificate(
        noise,
        norm,
        radii,
        thr,
        "quadrature",
        0.0,
        unit_scale,
        engine=l2_engine(noise.dim, noise.k),
        info=info,
    )
