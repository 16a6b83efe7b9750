"""The figures of the paper's sections 3-4, recomputed by this package (``smoothcert figures``).

One module per figure, each with ``compute_NAME`` (the numbers: library code, no matplotlib),
``draw_NAME`` (its panels, from the computed result) and ``NAME`` (both, and the files). Each
computes the numbers it plots and returns them as a dict

    {"name", "title", "caption", "settings", "results", "checks", "series", "files"}

(``settings``: every parameter of the computation, seeds included; ``results``: the numbers a
text can cite; ``checks``: self-consistency numbers; ``series``: the plotted arrays). When
``outdir`` is given it also draws the figure (``"figure"``: the matplotlib Figure) and writes
``NAME.png``, ``NAME.pdf``, ``NAME.json`` (everything but the series and the figure) and
``NAME.csv`` (the plotted series) there. ``quick=True`` selects small settings
(seconds, for tests); the defaults are the documented full settings.

=================  ===========================================================================
radius_density     paper Figure 1: the density of ||z||_2 under eq. (8), d = 100, growing k at
                   sigma = 1 against shrinking sigma at k = 0 (means matched); exact chi law.
pareto_linf        paper Figure 4: accuracy term A = P(||z||_2 <= 0.65) against the distance
                   term D(pi_0 || pi_delta*) (total variation) of the three families of eq. (8),
                   (9), (10) for an l-inf attack in d = 5, Pareto frontiers over a (k, sigma)
                   grid; Monte Carlo with fixed seeds.
theorem3           the l-inf radius of the l2 family (and the Gaussian) equals its l2 radius
                   divided by sqrt(d); independent Monte Carlo check at the vertex (r, ..., r).
theorem4           the pure l-inf family's D(lambda pi_0 || pi_delta*) / lambda -> 1 as d grows
                   with the mode of ||z||_inf fixed at C r; the mixed family at matched scale.
tradeoff           eq. (7) for one input: lambda p_A, D(lambda) (exact, by integrating the CDF of
                   the log likelihood ratio) and their difference, whose maximiser is exp(c_p).
=================  ===========================================================================

All Monte Carlo draws use ``torch.Generator`` seeds derived from ``seed`` and the draw's label;
every figure runs with one torch thread and one BLAS thread (results do not depend on the number
of cores), and builds its certificate tables afresh in a private cache (results do not depend on
the user's cache). The files carry no timestamp, so rerunning ``smoothcert figures`` reproduces
the committed docs/figures byte for byte. Plots are drawn headless (Agg) in the colour-blind-safe
palette of :mod:`smoothcert.palette` and carry a caption-sized title that states the sample sizes
and confidence levels.

Modules: :mod:`.fig1_radius_density`, :mod:`.fig4_pareto_linf`, :mod:`.thm3_linf_radius`,
:mod:`.thm4_pure_linf`, :mod:`.eq7_tradeoff` (one a figure); :mod:`.common` (what the
computations share: threads, seeds, private certificate cache, checks, the result dict);
:mod:`.plotting` (what the drawings share: axes, legend and grid style, caption, files).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..errors import SmoothCertError
from .eq7_tradeoff import compute_tradeoff, distance_from_cdf, draw_tradeoff, tradeoff
from .fig1_radius_density import (
    chi_log_density,
    chi_moments,
    compute_radius_density,
    draw_radius_density,
    radius_density,
)
from .fig4_pareto_linf import (
    compute_pareto_linf,
    draw_pareto_linf,
    frontier_distance_at,
    pareto_frontier,
    pareto_linf,
)
from .thm3_linf_radius import compute_theorem3, draw_theorem3, theorem3
from .thm4_pure_linf import compute_theorem4, draw_theorem4, mixed_linf_mode, theorem4

FIGURE_NAMES = ("radius_density", "pareto_linf", "theorem3", "theorem4", "tradeoff")

FIGURES: dict[str, Callable[..., dict]] = {
    "radius_density": radius_density,
    "pareto_linf": pareto_linf,
    "theorem3": theorem3,
    "theorem4": theorem4,
    "tradeoff": tradeoff,
}


def make_figures(
    outdir,
    only: Sequence[str] | None = None,
    quick: bool = False,
    seed: int = 0,
    progress: Callable[[str, dict, float], None] | None = None,
) -> list[dict]:
    """Compute and write the figures named in ``only`` (default: all) into ``outdir``."""
    names = list(only) if only else list(FIGURE_NAMES)
    unknown = [nm for nm in names if nm not in FIGURES]
    if unknown:
        raise SmoothCertError(
            f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURE_NAMES)}"
        )
    out = []
    for nm in dict.fromkeys(names):
        t0 = time.perf_counter()
        kwargs = {"quick": quick}
        if nm != "radius_density":
            kwargs["seed"] = seed
        res = FIGURES[nm](outdir, **kwargs)
        res["seconds"] = time.perf_counter() - t0
        if progress is not None:
            progress(nm, res, res["seconds"])
        out.append(res)
    return out


__all__ = [
    "FIGURE_NAMES",
    "FIGURES",
    "make_figures",
    "radius_density",
    "pareto_linf",
    "theorem3",
    "theorem4",
    "tradeoff",
    "pareto_frontier",
    "frontier_distance_at",
    "chi_log_density",
    "chi_moments",
    "mixed_linf_mode",
    "distance_from_cdf",
    "compute_radius_density",
    "compute_pareto_linf",
    "compute_theorem3",
    "compute_theorem4",
    "compute_tradeoff",
    "draw_radius_density",
    "draw_pareto_linf",
    "draw_theorem3",
    "draw_theorem4",
    "draw_tradeoff",
]
