"""Certificates: from a lower bound p of p_A to a certified radius, for any noise and norm.

The certificate of the paper (eq. 5 with F = [0,1] functions) does not depend on the input, so
it is computed once per (noise family, d, k, norm) at sigma = 1, cached on disk, and scaled by
sigma (every family is scale-homogeneous). Each noise names its engine; :mod:`.registry` maps
the name to the module that builds it (the table of engines is there):

- :mod:`.base`: the contract every certificate follows (``radius(p, *, exact=False)``, ...);
- :mod:`.gaussian`: Cohen's closed form;
- :mod:`.table`: a certificate read from a table of radii and thresholds;
- :mod:`.quadrature`: the l2 family's table from the exact quadrature of :mod:`.exact_l2`;
- :mod:`.montecarlo`: the DKW bounds and the Monte Carlo table of the l-infinity families;
- :mod:`.cache`: the content-addressed, checked on-disk cache of the tables.

A table certificate stores radii r_i and upper bounds t_i of the threshold p*(r_i) (the smallest
p_A that certifies r_i); the lookup R(p) = max{r_i : t_i < p} rounds toward the safe side. The
failure probability of a Monte Carlo table is shared by every certificate made with it; add it
to the per-input alpha of the p_A bound (union bound), as :meth:`Certificate.describe` states.
"""

from __future__ import annotations

from .base import ENGINE_VERSION, Certificate, check_probability, check_radius
from .gaussian import GaussianCertificate
from .montecarlo import dkw_threshold
from .registry import (
    DEFAULT_FAILURE_PROB,
    DEFAULT_SAMPLES,
    ENGINES,
    certified_radius,
    get_certificate,
)
from .table import TableCertificate

__all__ = [
    "Certificate",
    "GaussianCertificate",
    "TableCertificate",
    "get_certificate",
    "certified_radius",
    "check_probability",
    "check_radius",
    "dkw_threshold",
    "ENGINES",
    "ENGINE_VERSION",
    "DEFAULT_SAMPLES",
    "DEFAULT_FAILURE_PROB",
]
