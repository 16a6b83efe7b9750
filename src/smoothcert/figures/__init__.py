"""The figures of the paper's sections 3-4, recomputed by this package (``smoothcert figures``).

One function per figure. Each computes the numbers it plots and returns them as a dict

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
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import textwrap
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import optimize, special, stats

from ..certificates import get_certificate
from ..certificates.exact_l2 import L2FamilyQuadrature
from ..certificates.montecarlo import distance_estimate
from ..errors import SmoothCertError
from ..noises import Gaussian, L2Family, LinfMixed, LinfPure, matched_sigma
from ..palette import FAMILY_COLORS, FAMILY_MARKERS, GREY, GRID, OKABE_ITO, color, linestyle

FIGURE_NAMES = ("radius_density", "pareto_linf", "theorem3", "theorem4", "tradeoff")

FAMILY_LABELS = {"l2-family": "l2 family, eq. (8)", "linf-mixed": "mixed, eq. (9)",
                 "linf-pure": "pure l-inf, eq. (10)", "gaussian": "Gaussian"}
#: legend sample length (em): long enough that a dashed line shows its gaps beside a marker
HANDLE = 4.0


# ----------------------------------------------------------------------------- plumbing
@contextlib.contextmanager
def _one_torch_thread():
    """Run torch and the BLAS single-threaded: reductions then do not depend on the core count
    (a multi-threaded BLAS matrix-vector product in the quadrature moves last digits)."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


def _reproducible(func):
    """Run a figure function single-threaded throughout (see :func:`_one_torch_thread`)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _one_torch_thread():
            return func(*args, **kwargs)

    return wrapper


def _generator(seed: int, *labels) -> torch.Generator:
    """A CPU generator seeded from ``seed`` and a label (one independent stream per draw)."""
    tag = zlib.crc32(repr(labels).encode())
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + tag) % (2**63 - 1))


def _new_figure(ncols: int, width: float = 5.0, height: float = 4.2, nrows: int = 1,
                height_ratios=None):
    """A headless figure with a row-major list of ``nrows * ncols`` axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(nrows, ncols, height_ratios=height_ratios)
    axes = [fig.add_subplot(grid[i, j]) for i in range(nrows) for j in range(ncols)]
    return fig, axes


def _finish(fig, title: str) -> None:
    """Caption-sized title above the panels (wrapped to the figure width), then tight layout."""
    width = fig.get_size_inches()[0]
    lines = textwrap.fill(title, width=int(width * 13.5))
    fig.suptitle(lines, fontsize=9.5, x=0.008, y=0.995, ha="left", va="top")
    fig.tight_layout()  # makes room for the suptitle too


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if math.isfinite(x) else None
    return obj


def _fmt(x) -> str:
    if isinstance(x, (str, bytes)):
        return str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.10g}"


@contextlib.contextmanager
def _private_certificate_cache():
    """Certificate tables built afresh by this code, in a temporary cache that is removed
    afterwards: a figure does not depend on what the user's cache holds (a table cached by an
    earlier development state under the same key once moved theorem3's radii by 1e-6)."""
    import os
    import tempfile

    from ..certificates import cache

    saved_env, saved_memory = os.environ.get("SMOOTHCERT_CACHE"), dict(cache._MEMORY)
    with tempfile.TemporaryDirectory(prefix="smoothcert-figures-") as tmp:
        os.environ["SMOOTHCERT_CACHE"] = tmp
        cache._MEMORY.clear()
        try:
            yield
        finally:
            if saved_env is None:
                os.environ.pop("SMOOTHCERT_CACHE", None)
            else:
                os.environ["SMOOTHCERT_CACHE"] = saved_env
            cache._MEMORY.clear()
            cache._MEMORY.update(saved_memory)


def _legend(ax, **kw):
    """A legend with samples long enough to show every dash pattern next to its marker."""
    kw.setdefault("handlelength", HANDLE)
    kw.setdefault("fontsize", 7.5)
    return ax.legend(**kw)


def _save(result: dict, fig, outdir, csv_header: Sequence[str], csv_rows: Iterable) -> dict:
    """Write NAME.png/.pdf (the figure), NAME.json (all but the series) and NAME.csv, with no
    timestamp or version in the files (reruns give identical bytes); ``result["figure"]`` is the
    matplotlib Figure."""
    if outdir is None:
        return result
    result["figure"] = fig
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except (OSError, FileExistsError) as exc:
        raise SmoothCertError(f"{outdir}: cannot create the output folder: "
                              f"{exc.strerror or exc}") from None
    name = result["name"]
    files = [outdir / f"{name}.{ext}" for ext in ("png", "pdf", "json", "csv")]
    try:
        fig.savefig(files[0], dpi=150, metadata={"Software": None})
        fig.savefig(files[1], metadata={"CreationDate": None, "Producer": None,
                                        "Creator": None})
        meta = {k: v for k, v in result.items() if k not in ("series", "files", "figure")}
        meta["files"] = [f.name for f in files]
        files[2].write_text(json.dumps(_jsonable(meta), indent=1) + "\n")
        with files[3].open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(csv_header)
            for row in csv_rows:
                w.writerow([_fmt(x) for x in row])
    except OSError as exc:
        raise SmoothCertError(f"{outdir}: cannot write the figure {name}: "
                              f"{exc.strerror or exc}") from None
    result["files"] = [str(f) for f in files]
    return result


def _check_int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise SmoothCertError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- Figure 1
def chi_log_density(r, d: int, k: float, sigma: float) -> np.ndarray:
    """log p(r) of ||z||_2 under eq. (8): p(r) = r^(m-1) e^(-r^2 / (2 sigma^2)) /
    (2^(m/2 - 1) Gamma(m/2) sigma^m) with m = d - k (a scaled chi_m law, exactly normalised)."""
    m = d - k
    r = np.asarray(r, dtype=float)
    with np.errstate(divide="ignore"):
        x = np.log(r / sigma)
    out = ((m - 1) * x - 0.5 * (r / sigma) ** 2 - (m / 2 - 1) * math.log(2)
           - special.gammaln(m / 2) - math.log(sigma))
    if m == 1:
        out = np.where(r == 0, -0.5 * math.log(math.pi / 2) - math.log(sigma), out)
    return out


def chi_moments(d: int, k: float, sigma: float) -> tuple[float, float]:
    """Exact mean and standard deviation of ||z||_2 under eq. (8): sigma * chi_{d-k}."""
    m = d - k
    mean = sigma * math.sqrt(2) * math.exp(special.gammaln((m + 1) / 2) - special.gammaln(m / 2))
    return mean, math.sqrt(max(sigma**2 * m - mean**2, 0.0))


@_reproducible
def radius_density(outdir=None, *, quick: bool = False, d: int = 100,
                   ks: Sequence[float] = (0, 50, 90, 98), sigma: float = 1.0,
                   n_grid: int | None = None) -> dict:
    """Paper Figure 1. (a) sigma fixed, k growing; (b) k = 0, sigma shrunk so that the mean of
    ||z||_2 equals that of each curve of (a). Checks: each density integrates to 1 and its
    numerical mean and standard deviation equal the chi-law moments."""
    from scipy import integrate

    d = _check_int("d", d, 2)
    ks = [float(k) for k in ks]
    if not ks or any(not 0 <= k < d for k in ks):
        raise SmoothCertError(f"every k must satisfy 0 <= k < d = {d}, got {ks}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise SmoothCertError(f"sigma must be a finite number > 0, got {sigma}")
    n_grid = n_grid or (301 if quick else 801)
    base_mean, _ = chi_moments(d, 0.0, sigma)
    curves = []
    for k in ks:
        curves.append({"panel": "a", "k": k, "sigma": sigma})
    for k in ks:
        mean_k, _ = chi_moments(d, k, sigma)
        curves.append({"panel": "b", "k": 0.0, "sigma": sigma * mean_k / base_mean,
                       "matches_k": k})
    r_max = 0.0
    for c in curves:
        c["mean"], c["std"] = chi_moments(d, c["k"], c["sigma"])
        r_max = max(r_max, c["mean"] + 6 * c["std"])
    r = np.linspace(0.0, r_max, n_grid)
    worst = {"integral": 0.0, "mean": 0.0, "std": 0.0}
    series = {"r": r}
    for i, c in enumerate(curves):
        m = d - c["k"]
        c["mode"] = c["sigma"] * math.sqrt(max(m - 1, 0.0))

        def pdf(x, c=c):
            return float(np.exp(chi_log_density(x, d, c["k"], c["sigma"])))

        pts = [c["mean"] - 3 * c["std"], c["mean"], c["mean"] + 3 * c["std"]]
        pts = [p for p in pts if p > 0]
        upper = c["mean"] + 40 * c["std"] + 10 * c["sigma"]
        kw = dict(points=pts, limit=200, epsabs=1e-13, epsrel=1e-12)
        total = integrate.quad(pdf, 0, upper, **kw)[0]
        m1 = integrate.quad(lambda x: x * pdf(x), 0, upper, **kw)[0]
        m2 = integrate.quad(lambda x, m1=m1: (x - m1) ** 2 * pdf(x), 0, upper, **kw)[0]
        c["integral"], c["numerical_mean"], c["numerical_std"] = total, m1, math.sqrt(m2)
        worst["integral"] = max(worst["integral"], abs(total - 1))
        worst["mean"] = max(worst["mean"], abs(m1 - c["mean"]))
        worst["std"] = max(worst["std"], abs(math.sqrt(m2) - c["std"]))
        series[f"curve{i}"] = np.exp(chi_log_density(r, d, c["k"], c["sigma"]))

    a = [c for c in curves if c["panel"] == "a"]
    b = [c for c in curves if c["panel"] == "b"]
    last = len(ks) - 1
    headline = (f"k = {ks[0]:g} -> {ks[last]:g} moves the mean {a[0]['mean']:.3g} -> "
                f"{a[last]['mean']:.3g} with std {a[0]['std']:.3g} -> {a[last]['std']:.3g}; "
                f"sigma {b[0]['sigma']:.3g} -> {b[last]['sigma']:.3g} gives the same means "
                f"with std {b[0]['std']:.3g} -> {b[last]['std']:.3g}")
    title = (f"Figure 1. Density of the radius ||z||_2 under eq. (8), d = {d}: p(r) ~ "
             f"r^(d-k-1) exp(-r^2/2 sigma^2). (a) sigma = {sigma:g}, k = "
             f"{', '.join(f'{k:g}' for k in ks)}; (b) k = 0, sigma shrunk to match the means of "
             f"(a). Bars: mean +- std (exact chi moments). Growing k moves the mass toward 0 "
             f"keeping std ~ {a[0]['std']:.2f}; shrinking sigma shrinks the std with the mean.")
    result = {
        "name": "radius_density", "title": title, "caption": title, "headline": headline,
        "settings": {"d": d, "ks": ks, "sigma": sigma, "n_grid": n_grid, "quick": quick},
        "results": {"curves": curves},
        "checks": {"max_abs_integral_minus_1": worst["integral"],
                   "max_abs_mean_error": worst["mean"], "max_abs_std_error": worst["std"]},
        "series": series, "files": [],
    }
    if outdir is None:
        return result
    fig, axes = _new_figure(2, width=5.2, height=4.3)
    for ax, panel, group in zip(axes, "ab", (a, b), strict=True):
        for j, c in enumerate(group):
            i = curves.index(c)
            y = series[f"curve{i}"]
            col = color(j)
            label = (f"k = {c['k']:g}" if panel == "a" else f"sigma = {c['sigma']:.3g}")
            label += f": mean {c['mean']:.2f}, std {c['std']:.2f}"
            ax.plot(r, y, color=col, lw=1.6, ls=linestyle(j), label=label)
            peak = float(np.exp(chi_log_density(c["mean"], d, c["k"], c["sigma"])))
            ax.errorbar([c["mean"]], [peak * 1.04], xerr=[c["std"]], fmt="o", color=col,
                        ms=4, capsize=3, lw=1.2)
        ax.set_xlabel("r = ||z||_2")
        ax.set_ylabel("density of ||z||_2")
        ax.set_xlim(0, r_max)
        top = max(float(series[f"curve{curves.index(c)}"].max()) for c in group)
        ax.set_ylim(0, 1.45 * top)
        ax.grid(True, color=GRID)
        _legend(ax, fontsize=7.5, loc="upper right", ncol=2 if panel == "a" else 1)
        ax.set_title(f"(a) sigma = {sigma:g}, growing k" if panel == "a"
                     else "(b) k = 0, shrinking sigma (same means)", fontsize=10)
    _finish(fig, title)
    header = ["r"] + [f"{'a' if c['panel'] == 'a' else 'b'}_k{c['k']:g}_sigma{c['sigma']:.6g}"
                      for c in curves]
    rows = zip(r, *[series[f"curve{i}"] for i in range(len(curves))], strict=True)
    return _save(result, fig, outdir, header, rows)


# ----------------------------------------------------------------------------- Figure 4
def pareto_frontier(accuracy, distance) -> np.ndarray:
    """Indices of the non-dominated points when ``accuracy`` is maximised and ``distance``
    minimised (one representative of exact duplicates), ordered by decreasing accuracy."""
    a = np.asarray(accuracy, dtype=float)
    dist = np.asarray(distance, dtype=float)
    order = np.lexsort((dist, -a))
    keep, best = [], math.inf
    for i in order:
        if dist[i] < best:
            keep.append(i)
            best = dist[i]
    return np.asarray(keep, dtype=int)


def frontier_distance_at(accuracy, distance, levels) -> np.ndarray:
    """The Pareto frontier's distance term at the given accuracy levels, interpolating linearly
    between frontier points (NaN above the largest accuracy reached)."""
    a = np.asarray(accuracy, dtype=float)
    dist = np.asarray(distance, dtype=float)
    front = pareto_frontier(a, dist)[::-1]  # increasing accuracy (and distance)
    out = np.interp(levels, a[front], dist[front], left=dist[front][0], right=math.nan)
    return np.asarray(out, dtype=float)


def _reflection_bound(ell_sorted: np.ndarray, accuracy: float) -> float:
    """V = max_lambda lambda A - D(lambda) from sorted samples of ell under pi_0: the maximiser
    is lambda = exp(c_A) (c_A the A-quantile of ell) and, because pi_delta is the reflection of
    pi_0 about delta/2 (ell(delta - z) = -ell(z)), V = P_pi_delta(ell <= c_A) =
    P_pi_0(ell >= -c_A), an estimate without the heavy-tailed E[e^ell]."""
    n = ell_sorted.size
    if accuracy <= 0:
        return 0.0
    if accuracy >= 1:
        return 1.0
    c = ell_sorted[max(1, math.ceil(n * accuracy)) - 1]
    return float(n - np.searchsorted(ell_sorted, -c, side="left")) / n


@_reproducible
def pareto_linf(outdir=None, *, quick: bool = False, seed: int = 0, d: int = 5,
                radius: float = 0.65, eps: float = 0.1, n_samples: int | None = None,
                ks: Sequence[float] | None = None, steps: int | None = None) -> dict:
    """Paper Figure 4: for f#(x) = 1(||x||_2 <= radius) at x0 = 0 and an l-inf attack of
    radius ``eps``, the accuracy term A = P(||z||_2 <= radius) and the distance term
    D(pi_0 || pi_delta*) (lambda = 1: total variation) at the worst-case delta* (the vertex
    (eps, ..., eps) for eq. (9)/(10), the l2 shift sqrt(d) eps for eq. (8), Theorem 3), for every
    (k, sigma) of a grid; Pareto frontiers per family; (b) the frontier's smallest D at
    A >= 0.5 and 0.9 as eps is swept.

    Every family is scale-homogeneous, so one sample of pi_0 at sigma = 1 per (family, k) serves
    every sigma: A(sigma) = P(||z_1||_2 <= radius / sigma) and ell(sigma, eps) = ell(1, eps /
    sigma). sigma and eps lie on geometric grids with a common ratio, so the ratios eps / sigma
    are shared. A is exact for eq. (8) (chi law) and Monte Carlo for (9), (10)."""
    d = _check_int("d", d, 2)
    n = n_samples or (20_000 if quick else 200_000)
    n = _check_int("n_samples", n, 100)
    if ks is None:
        ks = (0, 1, 2, 4) if quick else (0, 0.5, 1, 2, 3, 4, 4.5)
    ks = [float(k) for k in ks]
    if not ks or any(not 0 <= k < d for k in ks):
        raise SmoothCertError(f"every k must satisfy 0 <= k < d = {d}, got {ks}")
    steps = steps or (4 if quick else 16)  # sigma grid points per octave (even)
    if _check_int("steps", steps, 2) % 2:
        raise SmoothCertError(f"steps must be even (eps uses every steps/2-th ratio), got {steps}")
    q = 2.0 ** (1.0 / steps)
    sigma_ref = 0.1
    j_lo, j_hi = round(steps * math.log2(0.03 / sigma_ref)), round(steps * math.log2(1.0 / 0.1))
    js = np.arange(j_lo, j_hi + 1)
    sigmas = sigma_ref * q**js
    i_range = range(-2, 3) if quick else range(-4, 4)
    eps_grid = np.array([eps * 2.0 ** (i / 2) for i in i_range])  # eps * q^(steps/2 * i)
    levels = (0.5, 0.9)
    report_levels = (0.3, 0.5, 0.7, 0.9, 0.95, 0.99)
    families = (L2Family, LinfMixed, LinfPure)
    rows = []  # one per (family, k, sigma): A, TV at eps, V at eps, s.e. of TV
    sweep = {}  # (family, level) -> min TV per eps
    with _one_torch_thread():
        for cls in families:
            tv_grid = np.full((len(ks), len(sigmas), len(eps_grid)), np.inf)
            acc = np.zeros((len(ks), len(sigmas)))
            for ik, k in enumerate(ks):
                unit = cls(d, sigma=1.0, k=k)
                gen = _generator(seed, "pareto", cls.name, k)
                if cls is L2Family:
                    st = unit.sample_stats(n, generator=gen)
                    acc[ik] = special.gammainc((d - k) / 2, radius**2 / (2 * sigmas**2))
                else:
                    z = unit.sample(n, gen, dtype=torch.float64)
                    st = unit.reduce(z)
                    norms = np.sort(z.norm(dim=-1).numpy())
                    acc[ik] = np.searchsorted(norms, radius / sigmas, side="right") / n
                    del z
                cache: dict[int, tuple[float, float, np.ndarray | None]] = {}
                # the main eps (i = 0) first: its ratios keep their sorted samples for V
                for ie, i in sorted(enumerate(i_range), key=lambda t: t[1] != 0):
                    for js_i, j in enumerate(js):
                        key = (steps // 2) * i - int(j)  # eps_i / sigma_j = (eps/0.1) q^key
                        if key not in cache:
                            rho = eps / sigma_ref * q**key
                            ell = unit.log_ratio_from_stats(st, rho, "linf").numpy()
                            h = np.maximum(1.0 - np.exp(np.minimum(ell, 700.0)), 0.0)
                            cache[key] = (distance_estimate(ell, 1.0),
                                          float(h.std() / math.sqrt(n)),
                                          np.sort(ell) if i == 0 else None)
                        tv, se, ell_sorted = cache[key]
                        tv_grid[ik, js_i, ie] = tv
                        if i == 0:
                            rows.append({"family": cls.name, "k": k, "sigma": float(sigmas[js_i]),
                                         "A": float(acc[ik, js_i]), "D": tv, "se_D": se,
                                         "V": _reflection_bound(ell_sorted,
                                                                float(acc[ik, js_i]))})
            for ie in range(len(eps_grid)):
                at = frontier_distance_at(acc.ravel(), tv_grid[:, :, ie].ravel(), levels)
                for lev, v in zip(levels, at, strict=True):
                    sweep.setdefault((cls.name, lev), []).append(float(v))

    frontiers, at_levels = {}, {}
    for cls in families:
        idx = [i for i, rw in enumerate(rows) if rw["family"] == cls.name]
        fam = [rows[i] for i in idx]
        front = pareto_frontier([rw["A"] for rw in fam], [rw["D"] for rw in fam])
        for j in front:
            fam[j]["frontier"] = True
        frontiers[cls.name] = [fam[j] for j in front]
        at_levels[cls.name] = {}
        for lev in report_levels:
            cand = [rw for rw in fam if rw["A"] >= lev]
            if cand:
                bestrow = min(cand, key=lambda rw: rw["D"])
                at_levels[cls.name][str(lev)] = {k: bestrow[k] for k in
                                                 ("D", "se_D", "A", "k", "sigma", "V")}
    for rw in rows:
        rw.setdefault("frontier", False)

    # exact cross-check of the Monte Carlo distance term on the l2 family's frontier:
    # D(1) = 2 G(0) - 1 with G the exact CDF of ell (reflection symmetry), quadrature engine
    worst_exact = 0.0
    engines = {}
    for rw in frontiers["l2-family"]:
        eng = engines.setdefault(rw["k"], L2FamilyQuadrature(d, rw["k"]))
        exact = 2.0 * float(eng.cdf(0.0, math.sqrt(d) * eps / rw["sigma"])) - 1.0
        rw["D_exact"] = exact
        worst_exact = max(worst_exact, abs(exact - rw["D"]) / max(rw["se_D"], 1e-12))

    # compare the frontiers (linear between frontier points) on a range of accuracies
    # frontier differences below this are within the resolution of the (k, sigma) grid: on this
    # problem the sign of the mixed - l2 gap flips between 8 and 16 sigmas per octave
    tie = 0.025
    a_cmp = np.linspace(0.5, 0.99, 50)
    fcurve = {}
    for cls in families:
        fam = [rw for rw in rows if rw["family"] == cls.name]
        fcurve[cls.name] = frontier_distance_at([rw["A"] for rw in fam],
                                                [rw["D"] for rw in fam], a_cmp)
    gap_m = fcurve["linf-mixed"] - fcurve["l2-family"]
    gap_p = fcurve["linf-pure"] - np.minimum(fcurve["l2-family"], fcurve["linf-mixed"])
    se = max(rw["se_D"] for rw in rows)
    comparison = {"accuracy_levels": a_cmp, "frontier_D": fcurve,
                  "mixed_minus_l2": {"mean": float(np.nanmean(gap_m)),
                                     "min": float(np.nanmin(gap_m)),
                                     "max": float(np.nanmax(gap_m))},
                  "pure_minus_best_other": {"mean": float(np.nanmean(gap_p)),
                                            "min": float(np.nanmin(gap_p))},
                  "largest_standard_error_of_D": se,
                  "tie_tolerance": tie,
                  "note": "frontiers interpolated linearly between frontier points; gaps below "
                          "the tolerance are grid-resolution effects (on the default problem, 8 "
                          "vs 16 sigmas per octave flip the sign of mixed - l2)"}
    d9 = {f: float(frontier_distance_at([rw["A"] for rw in rows if rw["family"] == f],
                                        [rw["D"] for rw in rows if rw["family"] == f],
                                        [0.9])[0]) for f in fcurve}
    if np.nanmax(np.abs(gap_m)) <= tie:
        verdict = (f"the mixed and l2-family frontiers coincide within {tie:g} in D for A in "
                   f"[0.5, 0.99] (mixed - l2: mean {np.nanmean(gap_m):+.4f}, range "
                   f"[{np.nanmin(gap_m):+.4f}, {np.nanmax(gap_m):+.4f}]; s.e. <= {se:.4f}); "
                   f"the pure l-inf family is worse by {np.nanmin(gap_p):.3f}-"
                   f"{np.nanmax(gap_p):.3f} (at A = 0.9: D = {d9['l2-family']:.3f}, "
                   f"{d9['linf-mixed']:.3f}, {d9['linf-pure']:.3f} for eq. 8, 9, 10)")
        versus_paper = ("The paper claims the mixed family wins; here it only ties with eq. (8) "
                        "(the near-Gaussian k <= 1 members are on both frontiers; gaps this "
                        "small change sign when the sigma grid is refined).")
    else:
        best = min(d9, key=d9.get)
        verdict = (f"{FAMILY_LABELS[best]} is best (frontier D at A = 0.9: "
                   + ", ".join(f"{FAMILY_LABELS[f]} {v:.3f}" for f, v in d9.items())
                   + f"; mixed - l2 mean gap {np.nanmean(gap_m):+.4f})")
        versus_paper = ("As the paper claims, the mixed family wins." if best == "linf-mixed"
                        else "The paper claims the mixed family wins; it does not here.")
    kbest = sorted({rw["k"] for f in ("l2-family", "linf-mixed") for rw in frontiers[f]
                    if rw["A"] >= 0.5})
    title = (f"Figure 4. Accuracy A = P(||z||_2 <= {radius:g}) (f# = 1(||x||_2 <= {radius:g}), "
             f"d = {d}) against the distance term D(pi_0 || pi_delta*) = TV at the worst "
             f"l-inf perturbation of radius eps = {eps:g} (vertex (eps,...,eps); sqrt(d) eps "
             f"l2 shift for eq. 8), over k in {{{', '.join(f'{k:g}' for k in ks)}}} x "
             f"{len(sigmas)} sigmas in [{sigmas[0]:.3g}, {sigmas[-1]:.3g}]; {n:,} samples "
             f"per (family, k). (a) grid and Pareto frontiers (up-left is better); (b) frontier "
             f"D at A = 0.9 (solid) / 0.5 (dashed, open markers) as eps is swept. "
             f"Result: {verdict}. "
             f"{versus_paper}")
    result = {
        "name": "pareto_linf", "title": title, "caption": title,
        "headline": f"eps = {eps:g}: {verdict}",
        "settings": {"d": d, "classifier": f"f#(x) = 1(||x||_2 <= {radius:g}), x0 = 0",
                     "radius": radius, "eps": eps, "attack": "l-inf ball of radius eps",
                     "lambda": 1.0, "ks": ks, "sigmas": sigmas,
                     "sigma_grid": f"{sigma_ref:g} * 2^(j/{steps}), j = {j_lo}..{j_hi}",
                     "eps_sweep": eps_grid, "n_samples_per_family_and_k": n, "seed": seed,
                     "accuracy": "exact (chi law) for eq. (8); Monte Carlo for eq. (9), (10)",
                     "distance": "Monte Carlo mean((1 - exp(ell))_+) = D(pi_0 || pi_delta*)",
                     "bound_V": "max_lambda lambda A - D(lambda), estimated as "
                                "P_pi0(ell >= -c_A) (reflection symmetry)",
                     "quick": quick},
        "results": {"verdict": verdict, "frontier_comparison": comparison,
                    "min_D_at_A_at_least": at_levels,
                    "frontiers": frontiers, "k_on_frontiers_with_A_ge_0.5": kbest,
                    "eps_sweep_frontier_D": {f"{f} A={lev}": v for (f, lev), v in sweep.items()},
                    "note_on_V": "V is near 1 for small sigma whenever sqrt(d) eps < radius, "
                                 "because f# itself is robust there (A -> 1 and V -> 1); "
                                 "the informative trade-off is A against D."},
        "checks": {"l2_frontier_max_abs_mc_minus_exact_D_in_se": worst_exact},
        "series": {"grid": rows},
        "files": [],
    }
    if outdir is None:
        return result
    from matplotlib.lines import Line2D

    fig, (ax, bx) = _new_figure(2, width=5.4, height=4.6)
    level_style = {0.9: dict(ls="-"), 0.5: dict(ls="--", mfc="white")}  # A = 0.9 solid
    for cls in families:
        f = cls.name
        fam = [rw for rw in rows if rw["family"] == f]
        ax.scatter([rw["D"] for rw in fam], [rw["A"] for rw in fam], s=7, alpha=0.25,
                   color=FAMILY_COLORS[f], marker=FAMILY_MARKERS[f], lw=0)
        fr = sorted(frontiers[f], key=lambda rw: rw["D"])
        ax.plot([rw["D"] for rw in fr], [rw["A"] for rw in fr], color=FAMILY_COLORS[f],
                marker=FAMILY_MARKERS[f], ms=3.5, lw=1.5, ls=linestyle(families.index(cls)),
                label=FAMILY_LABELS[f] + " frontier", drawstyle="steps-post")
        for lev in levels:
            bx.plot(eps_grid, sweep[(f, lev)], color=FAMILY_COLORS[f], marker=FAMILY_MARKERS[f],
                    ms=4, label=f"{FAMILY_LABELS[f]}, A = {lev:g}", **level_style[lev])
    ax.set_xlabel("distance term D(pi_0 || pi_delta*) = TV  (lower = more robust)")
    ax.set_ylabel(f"accuracy term A = P(||z||_2 <= {radius:g})")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.03, 1.03)  # room for whole markers at A = 0 and 1
    ax.grid(True, color=GRID)
    _legend(ax, fontsize=8, loc="lower right")
    ax.set_title(f"(a) eps = {eps:g}: grid (dots) and Pareto frontiers", fontsize=10)
    bx.axvline(eps, color=GREY, lw=0.8, ls=":")
    bx.set_xscale("log")
    bx.set_xticks(eps_grid, [f"{e:.3g}" for e in eps_grid])
    bx.minorticks_off()
    bx.set_xlabel("l-inf attack radius eps")
    bx.set_ylabel("frontier D at accuracy A = level")
    bx.set_ylim(0, 1.03)
    bx.grid(True, color=GRID)
    # one legend entry per family (colour, marker) and per level (line style, fill): the
    # samples are drawn exactly as the curves are
    handles = [Line2D([], [], color=FAMILY_COLORS[c.name], marker=FAMILY_MARKERS[c.name], ms=4,
                      label=FAMILY_LABELS[c.name]) for c in families]
    handles += [Line2D([], [], color="black", marker="o", ms=4, label=f"A = {lev:g}",
                       **level_style[lev]) for lev in sorted(levels, reverse=True)]
    _legend(bx, handles=handles, loc="upper left")
    bx.set_title("(b) frontier's D at fixed accuracy, vs eps", fontsize=10)
    _finish(fig, title)
    header = ["family", "k", "sigma", "A", "D", "se_D", "V", "frontier"]
    csv_rows = ([rw[h] if h != "frontier" else int(rw[h]) for h in header] for rw in rows)
    return _save(result, fig, outdir, header, csv_rows)


# ----------------------------------------------------------------------------- Theorem 3
def _mc_vertex_log_ratios(noise, r: float, n: int, gen, chunk: int = 4096) -> np.ndarray:
    """Samples of ell = log(pi_delta/pi_0)(z) evaluated on full d-dimensional vectors z at the
    vertex delta = (r, ..., r) (no symmetry reduction)."""
    delta = noise.worst_case_delta(r, "linf").to(torch.float64)
    parts = []
    for start in range(0, n, chunk):
        z = noise.sample(min(chunk, n - start), gen, dtype=torch.float64)
        parts.append(noise.log_ratio(z, delta).numpy())
    return np.concatenate(parts)


@_reproducible
def theorem3(outdir=None, *, quick: bool = False, seed: int = 0,
             dims: Sequence[int] | None = None, sigma0: float = 0.5,
             n_mc: int | None = None) -> dict:
    """Theorem 3: the l-inf certified radius of the l2 family equals its l2 radius at
    sqrt(d) r, i.e. R_inf(p) = R_2(p) / sqrt(d). For each d, the l2 family with k = d/2 and
    sigma matched to N(0, sigma0^2) (sigma = sqrt((d-1)/(d-1-k)) sigma0), and the Gaussian
    N(0, sigma0^2): R_inf from the l-inf certificate and R_2 / sqrt(d) from the l2 certificate
    (they must coincide), plus an independent Monte Carlo threshold p*(r) computed on full
    d-dimensional samples at the vertex (r, ..., r)."""
    dims = list(dims or ((10, 100) if quick else (10, 100, 1000)))
    for d in dims:
        _check_int("d", d, 2)
    n_mc = _check_int("n_mc", n_mc or (4_000 if quick else 20_000), 100)
    p = np.linspace(0.5, 0.999, 60 if quick else 300)[1:]
    p_marks = (0.6, 0.75, 0.9, 0.99)
    # simultaneous 99% DKW band over every (d, noise, mark) comparison (Bonferroni)
    n_cmp = 2 * len(dims) * len(p_marks)
    dkw = math.sqrt(math.log(2 * n_cmp / 0.01) / (2 * n_mc))
    series, per_d = {"p": p}, []
    worst_table = worst_exact = worst_mc = 0.0
    with _private_certificate_cache(), _one_torch_thread():
        for d in dims:
            k = d / 2
            entries = []
            for noise in (L2Family(d, sigma=matched_sigma(sigma0, d, k), k=k),
                          Gaussian(d, sigma=sigma0)):
                c_inf = get_certificate(noise, "linf")
                c_2 = get_certificate(noise, "l2")
                r_inf = np.asarray(c_inf.radius(p), dtype=float)
                r_2 = np.asarray(c_2.radius(p), dtype=float) / math.sqrt(d)
                diff = float(np.max(np.abs(r_inf - r_2)))
                worst_table = max(worst_table, diff)
                marks = []
                for pm in p_marks:
                    kw = {"exact": True} if c_inf.method == "quadrature" else {}
                    ri = float(c_inf.radius(pm, **kw))
                    r2 = float(c_2.radius(pm, **kw)) / math.sqrt(d)
                    worst_exact = max(worst_exact, abs(ri - r2))
                    gen = _generator(seed, "theorem3", noise.name, d, pm)
                    ell = _mc_vertex_log_ratios(noise, ri, n_mc, gen)
                    p_mc = float(np.mean(ell <= -np.median(ell)))
                    # the exact law of ell for the l2 attack at sqrt(d) r (the theorem's other
                    # side): its CDF G and threshold p*(r) = G(-median)
                    s_unit = math.sqrt(d) * ri / noise.sigma
                    if isinstance(noise, Gaussian):
                        def G(c, s_unit=s_unit):
                            return stats.norm.cdf((np.asarray(c) + s_unit**2 / 2) / s_unit)

                        p_ex = float(stats.norm.cdf(s_unit))
                    else:
                        eng = L2FamilyQuadrature(d, k)

                        def G(c, eng=eng, s_unit=s_unit):
                            return eng.cdf(c, s_unit)

                        p_ex = float(eng.threshold(np.array([s_unit]))[0])
                    # Kolmogorov distance between the vertex samples and the exact law, on 99
                    # sample quantiles, in units of the 99% DKW band
                    grid = np.quantile(ell, np.linspace(0.01, 0.99, 99))
                    ks_dist = float(np.max(np.abs(np.searchsorted(np.sort(ell), grid,
                                                                  side="right") / n_mc
                                                  - G(grid))))
                    worst_mc = max(worst_mc, ks_dist / dkw)
                    marks.append({"p": pm, "radius_linf": ri, "radius_l2_over_sqrt_d": r2,
                                  "mc_threshold_at_vertex": p_mc,
                                  "exact_l2_threshold_at_sqrt_d_r": p_ex,
                                  "ks_distance_vertex_vs_exact": ks_dist})
                key = f"{noise.name}_d{d}"
                series[key + "_linf"] = r_inf
                series[key + "_l2_over_sqrt_d"] = r_2
                entries.append({"noise": noise.name, "k": noise.k, "sigma": noise.sigma,
                                "max_abs_diff": diff, "radius_at_p": marks,
                                "method": c_inf.method})
            per_d.append({"d": d, "noises": entries})
    l2_09 = {e["d"]: next(m["radius_linf"] for m in e["noises"][0]["radius_at_p"]
                          if m["p"] == 0.9) for e in per_d}
    headline = (f"l-inf radius == l2 radius / sqrt(d) to {max(worst_table, worst_exact):.1e} "
                f"for d = {', '.join(map(str, dims))}; law of ell at the vertex (Monte Carlo) vs "
                f"exact law at sqrt(d) r: KS <= {worst_mc:.2f} x the simultaneous 99% DKW band; "
                f"l2-family "
                f"l-inf radius at p = 0.9: "
                + ", ".join(f"{v:.4g} (d={d})" for d, v in l2_09.items()))
    title = (f"Theorem 3. l-inf certified radius vs p_A for the l2 family (k = d/2, sigma "
             f"matched to sigma0 = {sigma0:g}) and the Gaussian N(0, {sigma0:g}^2): from the "
             f"l-inf certificate (solid) and as l2 radius / sqrt(d) (dashed) - the curves "
             f"coincide (max difference {worst_table:.1e}). Markers: Monte Carlo threshold "
             f"p*(r) = G(-median ell) from {n_mc:,} full d-dimensional draws at the vertex "
             f"delta = (r,...,r), independent of the symmetry reduction (the law of ell there "
             f"matches the exact law at sqrt(d) r: KS <= {worst_mc:.2f} x the simultaneous 99% "
             f"DKW band). The matched l2 family and the Gaussian give nearly equal radii. "
             f"The radius shrinks like 1/sqrt(d).")
    result = {
        "name": "theorem3", "title": title, "caption": title, "headline": headline,
        "settings": {"dims": dims, "k": "d/2", "sigma0": sigma0,
                     "sigma_l2_family": "sqrt((d-1)/(d-1-k)) sigma0", "p_grid": [
                         float(p[0]), float(p[-1]), int(p.size)], "p_marks": p_marks,
                     "n_mc": n_mc, "seed": seed, "quick": quick,
                     "certificates": "get_certificate(noise, norm).radius(p) (table lookup; "
                                     "exact=True refinement at the marks)"},
        "results": {"per_d": per_d},
        "checks": {"max_abs_diff_table": worst_table, "max_abs_diff_exact": worst_exact,
                   "max_ks_vertex_vs_exact_in_dkw_bands": worst_mc,
                   "dkw_band_99_simultaneous": dkw},
        "series": series, "files": [],
    }
    if outdir is None:
        return result
    fig, axes = _new_figure(len(dims), width=4.3, height=4.2)
    for ax, entry in zip(axes, per_d, strict=True):
        d = entry["d"]
        for e in entry["noises"]:
            key = f"{e['noise']}_d{d}"
            gauss = e["noise"] == "gaussian"
            col = FAMILY_COLORS[e["noise"]]
            lab = (f"Gaussian sigma={e['sigma']:g}" if gauss
                   else f"l2 family k={e['k']:g}, sigma={e['sigma']:.3g}")
            ax.plot(p, series[key + "_linf"], color=col, lw=2.6, alpha=0.55,
                    label=lab + ": l-inf cert.")
            # the overlay in a light colour, so that it shows on the thick line beneath
            ax.plot(p, series[key + "_l2_over_sqrt_d"], lw=1.0, ls="--",
                    color=OKABE_ITO["sky blue" if gauss else "orange"],
                    label="  l2 radius / sqrt(d)")
            ax.plot([m["mc_threshold_at_vertex"] for m in e["radius_at_p"]],
                    [m["radius_linf"] for m in e["radius_at_p"]], ls="none",
                    marker="+" if gauss else "x", ms=8, mew=1.4, color=col,
                    label="  MC p*(r) at vertex")
        ax.set_title(f"d = {d}", fontsize=10)
        ax.set_xlabel("p_A (lower bound)")
        ax.set_ylabel("certified l-inf radius")
        ax.set_xlim(0.5, 1.01)
        ax.set_ylim(bottom=0)
        ax.grid(True, color=GRID)
        _legend(ax, fontsize=6.5, loc="upper left")
    _finish(fig, title)
    keys = [k for k in series if k != "p"]
    rows = zip(p, *[series[k] for k in keys], strict=True)
    return _save(result, fig, outdir, ["p"] + keys, rows)


# ----------------------------------------------------------------------------- Theorem 4
def mixed_linf_mode(d: int, k: float) -> float:
    """The mode u* of ||z||_inf / sigma under the mixed family eq. (9): the root of
    -k/u - u + (d-1) sqrt(2/pi) e^(-u^2/2) / erf(u/sqrt 2) (needs d - 1 - k > 0)."""
    if not d - 1 - k > 0:
        raise SmoothCertError(f"||z||_inf has its mode at 0 unless k < d - 1 (d={d}, k={k:g})")

    def f(u):
        return (-k / u - u + (d - 1) * math.sqrt(2 / math.pi) * math.exp(-u * u / 2)
                / special.erf(u / math.sqrt(2)))

    return optimize.brentq(f, 1e-9, 60.0, xtol=1e-14)


@_reproducible
def theorem4(outdir=None, *, quick: bool = False, seed: int = 0, C: float = 10.0,
             r: float = 1.0, dims: Sequence[int] | None = None,
             lambdas: Sequence[float] = (1.0, 2.0), n_samples: int | None = None,
             confidence: float = 0.99) -> dict:
    """Theorem 4: with the pure l-inf family eq. (10) and (k, sigma) such that the mode of
    ||z||_inf is C r (sqrt(d-1-k) sigma = C r), D(lambda pi_0 || pi_delta*) / lambda -> 1 as d
    grows (delta* = (r, ..., r)). Two rules for k: k = 0 and k = (d-1)/2. Contrast: the mixed
    family eq. (9) with the same k and sigma chosen so that its ||z||_inf has the same mode
    C r. Monte Carlo with Hoeffding bands (two-sided, level ``confidence``)."""
    dims = list(dims or ((2, 5, 10, 20, 50, 100) if quick
                         else (2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)))
    for d in dims:
        _check_int("d", d, 2)
    n = _check_int("n_samples", n_samples or (20_000 if quick else 100_000), 100)
    if not (C > 0 and r > 0):
        raise SmoothCertError(f"C and r must be > 0, got C={C}, r={r}")
    if not 0 < confidence < 1:
        raise SmoothCertError(f"confidence must lie in (0, 1), got {confidence}")
    lambdas = [float(x) for x in lambdas]
    half = math.sqrt(math.log(2 / (1 - confidence)) / (2 * n))  # on D / lambda
    rules = {"k = 0": lambda d: 0.0, "k = (d-1)/2": lambda d: (d - 1) / 2}
    out = {}
    with _one_torch_thread():
        for rule, kfun in rules.items():
            for d in dims:
                k = kfun(d)
                sig_pure = C * r / math.sqrt(d - 1 - k)
                sig_mixed = C * r / mixed_linf_mode(d, k)
                for fam, noise in (("linf-pure", LinfPure(d, sigma=sig_pure, k=k)),
                                   ("linf-mixed", LinfMixed(d, sigma=sig_mixed, k=k))):
                    st = noise.sample_stats(n, generator=_generator(seed, "theorem4", fam,
                                                                    rule, d))
                    ell = noise.log_ratio_from_stats(st, r, "linf").numpy()
                    vals = [distance_estimate(ell, lam) / lam for lam in lambdas]
                    out.setdefault((rule, fam), []).append(
                        {"d": d, "k": k, "sigma": noise.sigma, "D_over_lambda": vals})
    results, series = {}, {}
    for (rule, fam), lst in out.items():
        key = f"{fam} {rule}"
        results[key] = lst
        for il, lam in enumerate(lambdas):
            series[f"{fam}|{rule}|lambda={lam:g}"] = np.array([e["D_over_lambda"][il]
                                                               for e in lst])
    first99 = {}
    for rule in rules:
        tv = series[f"linf-pure|{rule}|lambda={lambdas[0]:g}"]
        hit = [d for d, v in zip(dims, tv, strict=True) if v >= 0.99]
        first99[rule] = hit[0] if hit else None
    mono = {rule: bool(np.all(np.diff(series[f"linf-pure|{rule}|lambda={lambdas[0]:g}"])
                              > -2 * half)) for rule in rules}
    pure_last = series[f"linf-pure|k = 0|lambda={lambdas[0]:g}"][-1]
    mixed_last = series[f"linf-mixed|k = 0|lambda={lambdas[0]:g}"][-1]
    mid = dims[len(dims) // 2]
    pure_mid = series[f"linf-pure|k = 0|lambda={lambdas[0]:g}"][len(dims) // 2]
    mixed_mid = series[f"linf-mixed|k = 0|lambda={lambdas[0]:g}"][len(dims) // 2]
    headline = (f"pure l-inf (k=0, C={C:g}): D/lambda at lambda=1 reaches 0.99 at d = "
                f"{first99['k = 0']}; at d = {mid}: pure {pure_mid:.3f} vs mixed "
                f"{mixed_mid:.3f}; at d = {dims[-1]}: pure {pure_last:.3f}, mixed "
                f"{mixed_last:.3f} (band +-{half:.4f})")
    title = (f"Theorem 4. Distance term D(lambda pi_0 || pi_delta*)/lambda at the vertex "
             f"delta* = (r,...,r), r = {r:g}, against d, lambda in "
             f"{{{', '.join(f'{x:g}' for x in lambdas)}}}. Pure l-inf family eq. (10) "
             f"(solid) with the mode of ||z||_inf at C r, C = {C:g}: sqrt(d-1-k) sigma = C r; "
             f"mixed family eq. (9) (dashed) with the same k and its ||z||_inf mode also at "
             f"C r. Bands: {confidence:.0%} Hoeffding, {n:,} samples per point. The pure "
             f"family's D/lambda -> 1 (certification becomes vacuous); the mixed family "
             f"degrades much more slowly. (d = 1 is excluded: the mode is 0 there.)")
    result = {
        "name": "theorem4", "title": title, "caption": title, "headline": headline,
        "settings": {"C": C, "r": r, "dims": dims, "k_rules": list(rules), "lambdas": lambdas,
                     "sigma_pure": "C r / sqrt(d - 1 - k)",
                     "sigma_mixed": "C r / u*(d, k), u* the mode of ||z||_inf/sigma (eq. 9)",
                     "n_samples": n, "seed": seed, "band": f"Hoeffding, two-sided "
                     f"{confidence:g}: D/lambda +- sqrt(log(2/(1-conf))/(2n)) = {half:.5f}",
                     "quick": quick},
        "results": {"points": results, "pure_first_d_with_tv_ge_0.99": first99},
        "checks": {"pure_nondecreasing_within_2_bands": mono, "band_half_width": half},
        "series": series, "files": [],
    }
    if outdir is None:
        return result
    fig, axes = _new_figure(2, width=5.2, height=4.4)
    lam_colors = [OKABE_ITO[c] for c in ("reddish purple", "orange", "sky blue", "black")]
    for ax, rule in zip(axes, rules, strict=True):
        for il, lam in enumerate(lambdas):
            col = lam_colors[il % len(lam_colors)]
            for fam, ls in (("linf-pure", "-"), ("linf-mixed", "--")):
                y = series[f"{fam}|{rule}|lambda={lam:g}"]
                pure = fam == "linf-pure"
                ax.plot(dims, y, ls=ls, marker="o" if pure else "s", ms=3.5,
                        mfc=col if pure else "white", color=col,
                        label=f"{'pure' if pure else 'mixed'}, lambda = {lam:g}")
                ax.fill_between(dims, np.clip(y - half, 0, 1), np.clip(y + half, 0, 1),
                                color=col, alpha=0.18, lw=0)
            if lam > 1:
                ax.axhline(1 - 1 / lam, color=col, lw=0.7, ls=":")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("dimension d")
        ax.set_ylabel("D(lambda pi_0 || pi_delta*) / lambda")
        ax.grid(True, color=GRID)
        _legend(ax, fontsize=7.5, loc="lower right")
        ax.set_title(f"{rule}, C = {C:g}, r = {r:g}  (dotted: 1 - 1/lambda floor)",
                     fontsize=10)
    _finish(fig, title)
    keys = list(series)
    rows = zip(dims, *[series[k] for k in keys], strict=True)
    return _save(result, fig, outdir, ["d"] + keys, rows)


# ----------------------------------------------------------------------------- eq. (7)
_GL8 = np.polynomial.legendre.leggauss(8)


def _gl(a, b):
    x, w = _GL8
    a, b = np.asarray(a, float)[..., None], np.asarray(b, float)[..., None]
    return (a + b) / 2 + (b - a) / 2 * x, (b - a) / 2 * w


def distance_from_cdf(cdf: Callable[[np.ndarray], np.ndarray], edges: np.ndarray):
    """D(lambda) = E[(lambda - e^ell)_+] = int_0^lambda P(e^ell < t) dt
    = int_{-inf}^{log lambda} G(c) e^c dc at lambda = exp(edges), by 8-point Gauss-Legendre on
    each panel between consecutive ``edges`` (ascending; the tail below edges[0] is neglected:
    it is at most exp(edges[0]) G(edges[0]))."""
    nodes, weights = _gl(edges[:-1], edges[1:])
    vals = cdf(nodes.ravel()).reshape(nodes.shape) * np.exp(nodes)
    return np.concatenate([[0.0], np.cumsum((vals * weights).sum(-1))])


@_reproducible
def tradeoff(outdir=None, *, quick: bool = False, seed: int = 0, p: float = 0.9,
             d: int = 3072, k: float = 500.0, sigma0: float = 0.5, r: float = 0.5,
             n_mc: int | None = None) -> dict:
    """Eq. (7) for one input with p_A = ``p`` against an l2 attack of radius ``r``: the
    accuracy term lambda p, the robustness term D(lambda pi_0 || pi_delta*) and their difference,
    for the l2 family (d, k, sigma matched to sigma0) and the Gaussian N(0, sigma0^2).
    D(lambda) = int_0^lambda G(log t) dt with G the exact CDF of ell (quadrature engine / normal),
    integrated numerically; the maximiser found numerically is compared with exp(c_p)
    (G(c_p) = p) and the maximum with the certificate's value(p, r). Checks also
    D(lambda) = lambda G(log lambda) - 1 + G(-log lambda) (reflection identity) and Monte Carlo
    estimates of D."""
    d = _check_int("d", d, 2)
    if not 0 < p < 1:
        raise SmoothCertError(f"p must lie strictly between 0 and 1, got {p}")
    n_mc = _check_int("n_mc", n_mc or (20_000 if quick else 200_000), 100)
    h = 0.1 if quick else 0.04
    sig = matched_sigma(sigma0, d, k)
    eng = L2FamilyQuadrature(d, k)
    ru = r / sig  # the unit-sigma engine at radius r / sigma
    rho = r / sigma0
    noises = {
        "l2-family": dict(noise=L2Family(d, sigma=sig, k=k),
                          cdf=lambda c: eng.cdf(c, ru),
                          value=lambda: float(eng.value(p, ru))),
        "gaussian": dict(noise=Gaussian(d, sigma=sigma0),
                         cdf=lambda c: stats.norm.cdf((np.asarray(c) + rho**2 / 2) / rho),
                         value=lambda: get_certificate(Gaussian(d, sigma=sigma0), "l2")
                         .value(p, r)),
    }
    series, res = {}, {}
    worst = {"lambda_rel": 0.0, "value": 0.0, "identity": 0.0, "mc_se": 0.0}
    with _one_torch_thread():
        for name, spec in noises.items():
            G = spec["cdf"]
            c_p = optimize.brentq(lambda c, G=G: float(G(np.array([c]))[0]) - p, -60, 60,
                                  xtol=1e-14)
            lam_p = math.exp(c_p)
            # lower end: where the neglected tail exp(c) G(c) is below 1e-13
            c_lo = c_p - 1.0
            while math.exp(c_lo) * float(G(np.array([c_lo]))[0]) > 1e-13:
                c_lo -= 1.0
            c_hi = math.log(3.0 * lam_p)
            edges = np.arange(c_lo, c_hi + h / 2, h)
            D = distance_from_cdf(G, edges)
            lam = np.exp(edges)
            V = lam * p - D

            def D_at(c, edges=edges, D=D, G=G):
                j = int(np.clip(np.searchsorted(edges, c, side="right") - 1, 0, len(edges) - 2))
                nodes, w = _gl(edges[j], c)
                return D[j] + float((G(nodes.ravel()) * np.exp(nodes.ravel()) * w.ravel()).sum())

            j = int(np.argmax(V))
            opt = optimize.minimize_scalar(lambda c: -(math.exp(c) * p - D_at(c)),
                                           bounds=(edges[max(j - 1, 0)],
                                                   edges[min(j + 1, len(edges) - 1)]),
                                           method="bounded", options={"xatol": 1e-11})
            lam_star, v_star = math.exp(opt.x), -opt.fun
            value = float(spec["value"]())
            ident = lam * G(edges) - 1.0 + G(-edges)
            tail = math.exp(c_lo) * float(G(np.array([c_lo]))[0])
            # Monte Carlo D at a few lambdas (independent of the CDF)
            noise = spec["noise"]
            st = noise.sample_stats(n_mc, generator=_generator(seed, "tradeoff", name))
            ell = noise.log_ratio_from_stats(st, r, "l2").numpy()
            lam_marks = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0]) * lam_p / 2
            mc = []
            for lm in lam_marks:
                hh = np.maximum(lm - np.exp(np.minimum(ell, 700.0)), 0.0)
                exact = D_at(math.log(lm))
                se = float(hh.std() / math.sqrt(n_mc))
                mc.append({"lambda": float(lm), "D_mc": distance_estimate(ell, lm),
                           "se": se, "D_quadrature": exact})
                worst["mc_se"] = max(worst["mc_se"], abs(mc[-1]["D_mc"] - exact) / max(se, 1e-12))
            rel = abs(lam_star - lam_p) / lam_p
            worst["lambda_rel"] = max(worst["lambda_rel"], rel)
            worst["value"] = max(worst["value"], abs(v_star - value))
            worst["identity"] = max(worst["identity"], float(np.max(np.abs(D - ident))))
            res[name] = {"sigma": noise.sigma, "k": noise.k, "c_p": c_p, "exp_c_p": lam_p,
                         "lambda_star_numerical": lam_star, "rel_diff_lambda": rel,
                         "max_bound_numerical": v_star, "certificate_value": value,
                         "abs_diff_value": abs(v_star - value),
                         "D_at_lambda_star": D_at(opt.x), "neglected_tail": tail,
                         "max_abs_D_minus_identity": float(np.max(np.abs(D - ident))),
                         "monte_carlo": mc}
            series[name] = {"lambda": lam, "accuracy": lam * p, "D": D, "V": V}
    lf, gs = res["l2-family"], res["gaussian"]
    headline = (f"p_A = {p:g}, l2 radius {r:g}: max_lambda = {lf['max_bound_numerical']:.6f} at "
                f"lambda* = {lf['lambda_star_numerical']:.5f} (exp(c_p) = {lf['exp_c_p']:.5f}) "
                f"for the l2 family (d={d}, k={k:g}); Gaussian {gs['max_bound_numerical']:.6f} "
                f"at {gs['lambda_star_numerical']:.5f}")
    title = (f"Eq. (7) trade-off for one input: p_A = {p:g}, l2 attack radius r = {r:g}. Left: "
             f"l2 family d = {d}, k = {k:g}, sigma = {sig:.4f} (matched to sigma0 = {sigma0:g}); "
             f"right: Gaussian N(0, {sigma0:g}^2). Accuracy term lambda p_A, robustness term "
             f"D(lambda pi_0 || pi_delta*) = int_0^lambda G(log t) dt (quadrature of the exact "
             f"CDF G of the log likelihood ratio; x: Monte Carlo, {n_mc:,} samples) and their "
             f"difference. The maximiser is exp(c_p) (c_p the p-quantile of ell) and the maximum "
             f"is the "
             f"certified bound value(p, r) (maximiser: relative error {worst['lambda_rel']:.0e}; "
             f"maximum: absolute error {worst['value']:.0e}). Bottom: the difference, zoomed. "
             f"Certified bounds: l2 family {lf['certificate_value']:.6f}, Gaussian "
             f"{gs['certificate_value']:.6f}.")
    result = {
        "name": "tradeoff", "title": title, "caption": title, "headline": headline,
        "settings": {"p": p, "d": d, "k": k, "sigma0": sigma0, "sigma_l2_family": sig,
                     "r": r, "norm": "l2", "panel_width_in_log_lambda": h,
                     "quadrature": "8-point Gauss-Legendre per panel", "n_mc": n_mc,
                     "seed": seed, "quick": quick},
        "results": res,
        "checks": {"max_rel_diff_lambda_star": worst["lambda_rel"],
                   "max_abs_diff_value": worst["value"],
                   "max_abs_D_minus_reflection_identity": worst["identity"],
                   "max_mc_deviation_in_se": worst["mc_se"]},
        "series": series, "files": [],
    }
    if outdir is None:
        return result
    fig, axes = _new_figure(2, width=5.2, height=6.6, nrows=2, height_ratios=(3, 2))
    for col, name in enumerate(("l2-family", "gaussian")):
        ax, bx = axes[col], axes[2 + col]
        s, rr = series[name], res[name]
        xmax = 2.5 * rr["exp_c_p"]
        m = s["lambda"] <= xmax * 1.001
        ax.plot(s["lambda"][m], s["accuracy"][m], color=OKABE_ITO["blue"], ls="--",
                label="accuracy term lambda p_A")
        ax.plot(s["lambda"][m], s["D"][m], color=OKABE_ITO["vermillion"],
                label="robustness term D(lambda pi_0 || pi_delta*)")
        ax.plot(s["lambda"][m], s["V"][m], color="black", lw=2, ls="-.", label="difference")
        mcx = [x for x in rr["monte_carlo"] if x["lambda"] <= xmax]
        ax.plot([x["lambda"] for x in mcx], [x["D_mc"] for x in mcx], ls="none", marker="x",
                color=OKABE_ITO["vermillion"], ms=6, mew=1.3,
                label=f"D, Monte Carlo ({n_mc:,} samples)")
        bx.plot(s["lambda"][m], s["V"][m], color="black", lw=2, ls="-.",
                label="difference lambda p_A - D(lambda)")
        bx.axhline(rr["certificate_value"], color=OKABE_ITO["bluish green"], lw=1.2, ls="--",
                   label=f"value(p, r) = {rr['certificate_value']:.6f}")
        for a_ in (ax, bx):
            a_.axvline(rr["exp_c_p"], color=GREY, ls=":", lw=1)
            # a little room beyond the last Monte Carlo mark (at xmax), so it is not clipped
            a_.set_xlim(0, 1.04 * xmax)
            a_.grid(True, color=GRID)
        bx.plot([rr["lambda_star_numerical"]], [rr["max_bound_numerical"]], "o", color="black",
                label=f"numerical max at lambda = {rr['lambda_star_numerical']:.6f}")
        bx.plot([], [], ls=":", color=GREY, label=f"exp(c_p) = {rr['exp_c_p']:.6f}")
        top = float(max(s["accuracy"][m].max(), s["D"][m].max()))
        # below 0: the marks at D ~ 0 stay whole; above: room for the legend
        ax.set_ylim(-0.04 * top, 1.4 * top)
        bx.set_ylim(0, 1.3 * rr["max_bound_numerical"])
        bx.set_xlabel("lambda")
        ax.set_ylabel("lambda p_A, D(lambda) and their difference")
        bx.set_ylabel("lambda p_A - D(lambda)")
        _legend(ax, fontsize=8, loc="upper left")
        _legend(bx, fontsize=7.5, loc="lower center")
        label = (f"l2 family d={d}, k={k:g}, sigma={rr['sigma']:.4f}" if name == "l2-family"
                 else f"Gaussian d={d}, sigma = {sigma0:g}")
        ax.set_title(label, fontsize=10)
    _finish(fig, title)
    rows = []
    for name in ("l2-family", "gaussian"):
        s = series[name]
        rows += [(name, a, b, c, e) for a, b, c, e in zip(s["lambda"], s["accuracy"], s["D"],
                                                          s["V"], strict=True)]
    return _save(result, fig, outdir, ["noise", "lambda", "accuracy_term", "D", "difference"],
                 rows)


# ----------------------------------------------------------------------------- driver
FIGURES: dict[str, Callable[..., dict]] = {
    "radius_density": radius_density, "pareto_linf": pareto_linf, "theorem3": theorem3,
    "theorem4": theorem4, "tradeoff": tradeoff,
}


def make_figures(outdir, only: Sequence[str] | None = None, quick: bool = False,
                 seed: int = 0, progress: Callable[[str, dict, float], None] | None = None
                 ) -> list[dict]:
    """Compute and write the figures named in ``only`` (default: all) into ``outdir``."""
    names = list(only) if only else list(FIGURE_NAMES)
    unknown = [nm for nm in names if nm not in FIGURES]
    if unknown:
        raise SmoothCertError(f"unknown figure {unknown[0]!r}; choose from "
                              f"{', '.join(FIGURE_NAMES)}")
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


__all__ = ["FIGURE_NAMES", "FIGURES", "make_figures", "radius_density", "pareto_linf",
           "theorem3", "theorem4", "tradeoff", "pareto_frontier", "frontier_distance_at",
           "chi_log_density", "chi_moments", "mixed_linf_mode", "distance_from_cdf"]
